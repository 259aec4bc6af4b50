#!/usr/bin/env bash
# install.sh - build and install nook, then check (and, where allowed, fix) what rootless
# containers need on this machine. Safe to run again: a second run changes nothing.
# Run `./install.sh --help` for usage.
set -euo pipefail

readonly SUBID_FIRST=100000     # first id considered when picking a free subuid/subgid range
readonly SUBID_COUNT=65536      # size of the range we add (and the size we consider complete)
readonly MIN_KERNEL=5.11        # unprivileged overlayfs mounts inside a user namespace
readonly MIN_WATCHES=65536      # fs.inotify.max_user_watches
readonly MIN_INSTANCES=128      # fs.inotify.max_user_instances
readonly GOOD_WATCHES=524288    # values we suggest when the limits are too low
readonly GOOD_INSTANCES=512

usage() {
	cat <<'EOF'
Usage: install.sh [--prefix DIR] [--no-build | --check] [--fix-tun]

Builds nook from this source tree, installs it to PREFIX/bin and checks what rootless
containers need: user namespaces, newuidmap/newgidmap, a subuid/subgid range, overlayfs,
pasta or slirp4netns, /dev/net/tun and inotify limits. When run as root, or when
passwordless sudo works, missing packages are installed (apt-get or dnf) and a subuid/subgid
range is added; otherwise the exact commands to run as root are printed.

Options:
  --prefix DIR  install to DIR/bin (default: $HOME/.local; when root installs for another
                user, e.g. under sudo, that user's ~/.local, written as that user)
  --no-build    do not build or install nook; check and fix the prerequisites only
  --check       check only: no build, no changes; exit 1 if a required check fails
  --fix-tun     also make /dev/net/tun usable by all users (chmod 0666; machines
                without udev leave it 0600); never done without this flag
  -h, --help    show this help

Environment:
  NOOK_USER     user to check and set up (default: $SUDO_USER under sudo, else yourself)
  NO_COLOR      set to disable colours

Downloads: system packages through the package manager, and nook's Go modules through
the Go module proxy (GOPROXY) when they are not in the module cache yet. The build uses
the installed Go (GOTOOLCHAIN=local) and never fetches a toolchain.

Exit status: 0 installed and ready; 1 a build step or required check failed; 2 usage error.
EOF
}

# ---------------------------------------------------------------------------------------
# output

if [[ -t 1 && -z ${NO_COLOR:-} && ${TERM:-dumb} != dumb ]]; then
	C_OK=$'\e[32m' C_BAD=$'\e[31m' C_WARN=$'\e[33m' C_DIM=$'\e[2m' C_BOLD=$'\e[1m' C_OFF=$'\e[0m'
else
	C_OK='' C_BAD='' C_WARN='' C_DIM='' C_BOLD='' C_OFF=''
fi

MISSING=()  # labels of failed required checks / steps
WARNINGS=() # labels of warnings
CHANGES=()  # what this run changed

section() { printf '\n%s== %s%s\n' "$C_BOLD" "$1" "$C_OFF"; }

# report STATUS LABEL REASON: one line per check or step.
report() {
	local status=$1 label=$2 reason=$3 color=''
	case $status in
	ok | done) color=$C_OK ;;
	missing | failed) color=$C_BAD MISSING+=("$label") ;;
	warn) color=$C_WARN WARNINGS+=("$label") ;;
	*) color=$C_DIM ;;
	esac
	printf '  %s%-8s%s %-18s %s\n' "$color" "$status" "$C_OFF" "$label" "$reason"
}

# hint LINE...: indented advice under the previous report line.
hint() {
	local line
	for line in "$@"; do printf '  %s%-8s%s %-18s %s\n' "$C_DIM" '' "$C_OFF" '' "$line"; done
}

die_usage() {
	printf 'install.sh: %s\n' "$1" >&2
	printf 'Try: install.sh --help\n' >&2
	exit 2
}

# ---------------------------------------------------------------------------------------
# arguments

PREFIX=''
PREFIX_SET=0
NO_BUILD=0
CHECK_ONLY=0
FIX_TUN=0
while (($#)); do
	case $1 in
	--prefix)
		[[ $# -ge 2 && -n $2 ]] || die_usage '--prefix needs a directory'
		PREFIX=$2 PREFIX_SET=1
		shift 2
		;;
	--prefix=*)
		PREFIX=${1#*=} PREFIX_SET=1
		[[ -n $PREFIX ]] || die_usage '--prefix needs a directory'
		shift
		;;
	--no-build) NO_BUILD=1 && shift ;;
	--check) CHECK_ONLY=1 NO_BUILD=1 && shift ;;
	--fix-tun) FIX_TUN=1 && shift ;;
	-h | --help) usage && exit 0 ;;
	*) die_usage "unknown argument: $1" ;;
	esac
done

# ---------------------------------------------------------------------------------------
# who and where

SRC_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
SELF="$SRC_DIR/$(basename -- "${BASH_SOURCE[0]}")"
CUR_UID=$(id -u)
CUR_USER=$(id -un)

UNDER_SUDO=0
if [[ $CUR_UID -eq 0 && -n ${SUDO_USER:-} ]]; then
	TARGET=$SUDO_USER
	TARGET_WHY='from SUDO_USER'
	[[ $SUDO_USER == root ]] || UNDER_SUDO=1
elif [[ -n ${NOOK_USER:-} ]]; then
	TARGET=$NOOK_USER
	TARGET_WHY='from NOOK_USER'
else
	TARGET=$CUR_USER
	TARGET_WHY='current user'
fi
if ! TARGET_PW=$(getent passwd "$TARGET"); then
	printf 'install.sh: unknown user %s (%s)\n' "$TARGET" "$TARGET_WHY" >&2
	exit 2
fi
IFS=: read -r TARGET _ TARGET_UID _ _ TARGET_HOME TARGET_SHELL <<<"$TARGET_PW"

# Root installing for somebody else defaults to that user's ~/.local and writes there as
# that user (root writing into a directory tree another user controls is unsafe).
INSTALL_USER=$CUR_USER
if ((PREFIX_SET)); then
	[[ $PREFIX == /* ]] || PREFIX="$PWD/$PREFIX"
elif [[ $CUR_UID -eq 0 && $TARGET_UID -ne 0 ]]; then
	PREFIX="$TARGET_HOME/.local"
	INSTALL_USER=$TARGET
else
	PREFIX="${HOME:?HOME is not set}/.local"
fi
while [[ $PREFIX == */ && $PREFIX != / ]]; do PREFIX=${PREFIX%/}; done
BIN_DIR="${PREFIX%/}/bin"
NOOK_BIN="$BIN_DIR/nook"
# Under sudo the build runs as the invoking user: their checkout, Go caches and modules.
BUILD_USER=$CUR_USER
((UNDER_SUDO)) && BUILD_USER=$TARGET

# find_tool NAME: print the path of NAME, also looking in sbin directories that are not on
# an ordinary user's PATH.
find_tool() {
	local p d
	if p=$(command -v -- "$1" 2>/dev/null) && [[ $p == /* ]]; then
		printf '%s\n' "$p"
		return 0
	fi
	for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
		if [[ -x $d/$1 ]]; then
			printf '%s\n' "$d/$1"
			return 0
		fi
	done
	return 1
}

# run_as USER CMD...: run CMD as USER (directly when that is us), with USER's HOME.
run_as() {
	local user=$1 home tool
	shift
	if [[ $user == "$CUR_USER" ]]; then
		"$@"
		return
	fi
	home=$(getent passwd "$user" | cut -d: -f6)
	local envcmd=(env -u GOCACHE -u GOMODCACHE -u GOPATH -u GOENV -u XDG_CACHE_HOME
		-u XDG_CONFIG_HOME "HOME=$home" "USER=$user" "LOGNAME=$user")
	if tool=$(find_tool runuser); then
		"$tool" -u "$user" -- "${envcmd[@]}" "$@"
	elif tool=$(find_tool setpriv); then
		"$tool" --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "${envcmd[@]}" "$@"
	else
		printf 'install.sh: need runuser or setpriv to run commands as %s\n' "$user" >&2
		return 1
	fi
}

# Privilege for fixes: root, passwordless sudo, or none (then commands are printed).
# Decided lazily, so sudo is only tried when there is something to fix.
PRIV=''
set_priv_mode() {
	if [[ $CUR_UID -eq 0 ]]; then
		PRIV=root
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		PRIV=sudo
	else
		PRIV=none
	fi
}
priv() {
	if [[ $CUR_UID -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}
# How a printed command must be run: with sudo if there is one, else from a root shell.
if [[ $CUR_UID -ne 0 ]] && command -v sudo >/dev/null 2>&1; then SUDO_PFX='sudo '; else SUDO_PFX=''; fi

version_ge() { # version_ge A B: A >= B (dotted versions)
	[[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1) == "$2" ]]
}

read_sysctl() { # read_sysctl /proc/sys/...: value, or empty when absent
	local v=''
	[[ -r $1 ]] && read -r v <"$1"
	printf '%s\n' "$v"
}

# ---------------------------------------------------------------------------------------
# header

printf '%snook installer%s\n' "$C_BOLD" "$C_OFF"
printf '  source   %s\n' "$SRC_DIR"
if ((CHECK_ONLY)); then
	printf '  mode     check only (no build, no changes)\n'
elif ((NO_BUILD)); then
	printf '  mode     prerequisites only (--no-build)\n'
else
	printf '  mode     build, install to %s\n' "$BIN_DIR"
fi
printf '  user     %s (uid %s, %s)\n' "$TARGET" "$TARGET_UID" "$TARGET_WHY"
if [[ $CUR_UID -ne 0 && -z $SUDO_PFX ]]; then
	printf '  note     no sudo here: run the commands suggested below as root\n'
fi
if ((FIX_TUN && CHECK_ONLY)); then
	printf '  note     --fix-tun ignored with --check\n'
fi

# ---------------------------------------------------------------------------------------
# build and install

NOOK_STATE=''
STAGE=''
trap '[[ -z $STAGE ]] || rm -rf -- "$STAGE"' EXIT

go_arch() {
	case $(uname -m) in
	x86_64) echo amd64 ;; aarch64 | arm64) echo arm64 ;; armv6l | armv7l) echo armv6l ;;
	i?86) echo 386 ;; ppc64le) echo ppc64le ;; s390x) echo s390x ;; riscv64) echo riscv64 ;;
	*) uname -m ;;
	esac
}

how_to_get_go() { # how_to_get_go MIN_VERSION
	local v=$1 tarball
	tarball="go$v.linux-$(go_arch).tar.gz"
	hint "Install Go >= $v from https://go.dev/dl/ (distribution packages such as" \
		"golang-go or golang are usually older), then re-run this script:" \
		"  curl -fLO https://go.dev/dl/$tarball" \
		"  sudo rm -rf /usr/local/go && sudo tar -C /usr/local -xzf $tarball" \
		"  export PATH=\"/usr/local/go/bin:\$PATH\"   # add to your shell profile too"
}

profile_line() { # the PATH line for the target user's shell profile
	local dir=$BIN_DIR
	[[ $dir == "$TARGET_HOME"/* ]] && dir="\$HOME${dir#"$TARGET_HOME"}"
	case ${TARGET_SHELL##*/} in
	zsh) hint "add this line to ~/.zshrc:" "  export PATH=\"$dir:\$PATH\"" ;;
	fish) hint "run once in fish:" "  fish_add_path $dir" ;;
	bash) hint "add this line to ~/.bashrc:" "  export PATH=\"$dir:\$PATH\"" ;;
	*) hint "add this line to ~/.profile:" "  export PATH=\"$dir:\$PATH\"" ;;
	esac
}

check_path() {
	local found
	if ((UNDER_SUDO)); then
		report info PATH "not checked under sudo; $BIN_DIR must be on $TARGET's PATH:"
		profile_line
		return
	fi
	case ":$PATH:" in
	*":$BIN_DIR:"* | *":$BIN_DIR/:"*)
		found=$(command -v nook 2>/dev/null || true)
		if [[ -n $found && $found != "$NOOK_BIN" ]]; then
			report warn PATH "'nook' runs $found, which comes before $BIN_DIR on PATH"
		else
			report ok PATH "$BIN_DIR is on PATH"
		fi
		;;
	*)
		report warn PATH "$BIN_DIR is not on PATH"
		profile_line
		if [[ ${TARGET_SHELL##*/} != @(zsh|fish) && $BIN_DIR == "$TARGET_HOME/.local/bin" ]] &&
			grep -qs '\.local/bin' "$TARGET_HOME/.profile"; then
			hint "(~/.profile already adds it when it exists: a new login shell will have it)"
		fi
		;;
	esac
}

build_and_install() {
	local go='' gov need log rc token
	section 'Build and install'

	if ! go=$(find_tool go); then
		for go in /usr/local/go/bin/go "${GOROOT:-/nonexistent}/bin/go" /usr/lib/go/bin/go; do
			[[ -x $go ]] && break
		done
		[[ -x $go ]] || go=''
	fi
	need=$(awk '$1 == "go" { print $2; exit }' "$SRC_DIR/go.mod" 2>/dev/null || true)
	need=${need:-1.26}
	if [[ -z $go ]]; then
		report missing go "the Go toolchain is not installed (or not on PATH)"
		how_to_get_go "$need"
		NOOK_STATE='not built: Go missing'
		return
	fi
	if ! gov=$(GOTOOLCHAIN=local "$go" env GOVERSION 2>/dev/null); then
		report missing go "$go does not run"
		how_to_get_go "$need"
		NOOK_STATE='not built: Go broken'
		return
	fi
	gov=${gov#go}
	if [[ $gov != devel* ]] && ! version_ge "${gov%%[-+ ]*}" "$need"; then
		report missing go "go $gov at $go is older than go $need (go.mod)"
		how_to_get_go "$need"
		NOOK_STATE='not built: Go too old'
		return
	fi
	report ok go "go $gov ($go)"

	STAGE=$(mktemp -d "${TMPDIR:-/tmp}/nook-install.XXXXXX")
	chmod 0755 "$STAGE"
	local as_build='' as_install=''
	if [[ $BUILD_USER != "$CUR_USER" ]]; then
		chown "$BUILD_USER" "$STAGE"
		as_build=" as $BUILD_USER"
	fi
	[[ $INSTALL_USER == "$CUR_USER" ]] || as_install=" as $INSTALL_USER"
	log="$STAGE/build.log"

	# The exact commands, for P in nook and nook-init:
	#   CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -X ...rootless.buildToken=T' ./cmd/P
	# A static binary without symbols starts faster: a container start
	# runs nook two to four times (CLI, namespace entry, monitor, init).
	# nook-init is the init alone, which starts in half the time; nook
	# takes it only with its own token T (rootless/initbinary.go), a hash
	# of the source, so the same source builds the same binaries.
	token=$(source_token)
	build_once() {
		local p
		for p in nook nook-init; do
			(cd "$SRC_DIR" && run_as "$BUILD_USER" env GOTOOLCHAIN=local CGO_ENABLED=0 \
				"$go" build -trimpath -ldflags="-s -w -X github.com/nook-dev/nook/rootless.buildToken=$token" \
				"$@" -o "$STAGE/$p" "./cmd/$p") >>"$log" 2>&1 || return
		done
	}
	rc=0
	: >"$log"
	build_once || rc=$?
	if ((rc)) && grep -qE 'error obtaining VCS status|dubious ownership' "$log"; then
		# e.g. root building a checkout owned by someone else: git refuses to look at it.
		rc=0
		: >"$log"
		build_once -buildvcs=false || rc=$?
	fi
	if ((rc)); then
		report failed build "go build ./cmd/nook ./cmd/nook-init failed${as_build}:"
		grep -v '^go: downloading' "$log" | sed -n '1,20p' | while IFS= read -r line; do hint "| $line"; done
		if grep -qE 'dial tcp|proxy|module lookup disabled' "$log"; then
			hint "Go could not fetch nook's modules: check GOPROXY (go env GOPROXY) and the network," \
				"or fetch them once where the proxy is reachable:" \
				"  cd '$SRC_DIR' && go mod download"
		elif grep -q 'no Go files' "$log"; then
			hint "cmd/nook has no Go source yet."
		fi
		NOOK_STATE='build failed'
		return
	fi
	report ok build "built ./cmd/nook and ./cmd/nook-init${as_build} ($(du -k "$STAGE/nook" | cut -f1) and $(du -k "$STAGE/nook-init" | cut -f1) KiB)"

	if [[ ! -d $BIN_DIR ]]; then
		if ! run_as "$INSTALL_USER" mkdir -p -- "$BIN_DIR"; then
			report failed install "could not create $BIN_DIR${as_install}"
			NOOK_STATE='install failed'
			return
		fi
		CHANGES+=("created $BIN_DIR")
	fi
	# nook-init first: a nook of the new build looks for it.
	install_one nook-init && install_one nook || return
	check_path
}

# install_one NAME installs $STAGE/NAME as $BIN_DIR/NAME unless that is the same file, and
# sets NOOK_STATE. It returns 1 when it could not.
install_one() {
	local name=$1 target="$BIN_DIR/$1" verb=installed sum
	if [[ -f $target ]] && cmp -s "$STAGE/$name" "$target"; then
		report ok install "$target is up to date (unchanged)"
		NOOK_STATE="$NOOK_BIN (unchanged)"
		return 0
	fi
	[[ -e $target ]] && verb=updated
	# install next to the target, then rename: atomic, and fine while nook is running.
	if run_as "$INSTALL_USER" install -m 0755 -- "$STAGE/$name" "$BIN_DIR/.$name.new.$$" &&
		run_as "$INSTALL_USER" mv -f -- "$BIN_DIR/.$name.new.$$" "$target"; then
		sum=$(sha256sum "$target" | cut -c1-12)
		report 'done' install "$verb $target${as_install} (sha256 $sum...)"
		CHANGES+=("$verb $target")
		NOOK_STATE="$NOOK_BIN ($verb)"
		return 0
	fi
	run_as "$INSTALL_USER" rm -f -- "$BIN_DIR/.$name.new.$$" 2>/dev/null || true
	report failed install "could not write $target${as_install}"
	NOOK_STATE='install failed'
	return 1
}

# source_token prints the build token: the first 32 hex digits of a hash of nook's Go
# source (every .go file, go.mod and go.sum, with their paths).
source_token() {
	(cd "$SRC_DIR" && find . -path ./.git -prune -o -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 |
		LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-32)
}

if ((NO_BUILD)); then
	if [[ -x $NOOK_BIN ]]; then NOOK_STATE="$NOOK_BIN (present, not rebuilt)"; else NOOK_STATE="not installed ($NOOK_BIN absent)"; fi
else
	build_and_install
fi

# ---------------------------------------------------------------------------------------
# prerequisite checks

PKG_MGR=''
if find_tool apt-get >/dev/null; then PKG_MGR=apt; elif find_tool dnf >/dev/null; then PKG_MGR=dnf; fi

# Set by run_checks: automatic fixes that are possible.
FIX_PKGS=()
FIX_SUBUID=0
FIX_SUBGID=0
FIX_OVERLAY=0
FIX_TUN_NOW=0
SUBID_RANGE=''

add_pkg() {
	local p
	for p in "${FIX_PKGS[@]}"; do [[ $p == "$1" ]] && return 0; done
	FIX_PKGS+=("$1")
}

pkg_name() { # pkg_name uidmap|passt|slirp4netns
	case $1:$PKG_MGR in
	uidmap:dnf) echo shadow-utils ;;
	uidmap:*) echo uidmap ;;
	*) echo "$1" ;;
	esac
}

check_userns() {
	local max clone aa out
	max=$(read_sysctl /proc/sys/user/max_user_namespaces)
	clone=$(read_sysctl /proc/sys/kernel/unprivileged_userns_clone)
	if [[ -z $max ]]; then
		report missing 'user namespaces' "kernel without user namespaces (CONFIG_USER_NS)"
	elif [[ $max -eq 0 ]]; then
		report missing 'user namespaces' "user.max_user_namespaces=0 disables them"
		hint "${SUDO_PFX}sysctl -w user.max_user_namespaces=28633" \
			"persistent: echo 'user.max_user_namespaces = 28633' | ${SUDO_PFX}tee /etc/sysctl.d/90-nook-userns.conf"
	elif [[ -n $clone && $clone != 1 && $TARGET_UID -ne 0 ]]; then
		report missing 'user namespaces' "kernel.unprivileged_userns_clone=$clone (must be 1)"
		hint "${SUDO_PFX}sysctl -w kernel.unprivileged_userns_clone=1" \
			"persistent: echo 'kernel.unprivileged_userns_clone = 1' | ${SUDO_PFX}tee /etc/sysctl.d/90-nook-userns.conf"
	elif [[ $TARGET_UID -ne 0 && $CUR_UID -eq $TARGET_UID ]] && find_tool unshare >/dev/null &&
		! out=$(unshare --user true 2>&1); then
		report missing 'user namespaces' "sysctls allow them, but 'unshare --user true' fails: ${out:-error}"
	else
		report ok 'user namespaces' "user.max_user_namespaces=$max${clone:+, unprivileged_userns_clone=$clone}"
	fi

	aa=$(read_sysctl /proc/sys/kernel/apparmor_restrict_unprivileged_userns)
	[[ -n $aa ]] || return 0
	if [[ $aa != 1 ]]; then
		report ok 'AppArmor userns' "kernel.apparmor_restrict_unprivileged_userns=$aa"
	elif [[ $TARGET_UID -eq 0 ]]; then
		report ok 'AppArmor userns' "restricted, but not for root"
	elif [[ -d /etc/apparmor.d ]] && grep -rlsF -- "$NOOK_BIN" /etc/apparmor.d 2>/dev/null |
		xargs -r grep -lsE '^[[:space:]]*userns' >/dev/null 2>&1; then
		report ok 'AppArmor userns' "restricted; an /etc/apparmor.d profile allows userns for $NOOK_BIN"
	else
		report missing 'AppArmor userns' "kernel.apparmor_restrict_unprivileged_userns=1 blocks user namespaces"
		hint "Either allow them for nook only (an AppArmor profile for its binary path):" \
			"  ${SUDO_PFX}tee /etc/apparmor.d/nook >/dev/null <<'EOF'" \
			"  abi <abi/4.0>," \
			"  include <tunables/global>" \
			"  profile nook $NOOK_BIN flags=(unconfined) {" \
			"    userns," \
			"    include if exists <local/nook>" \
			"  }" \
			"  EOF" \
			"  ${SUDO_PFX}apparmor_parser -r /etc/apparmor.d/nook" \
			"or lift the restriction system-wide:" \
			"  ${SUDO_PFX}sysctl kernel.apparmor_restrict_unprivileged_userns=0"
	fi
}

check_idmap_tool() { # check_idmap_tool newuidmap|newgidmap
	local name=$1 path caps cap getcap
	[[ $name == newuidmap ]] && cap=cap_setuid || cap=cap_setgid
	if [[ $TARGET_UID -eq 0 ]]; then
		report ok "$name" "not needed for root"
		return
	fi
	if ! path=$(find_tool "$name"); then
		report missing "$name" "not installed (package $(pkg_name uidmap))"
		[[ -n $PKG_MGR ]] && add_pkg "$(pkg_name uidmap)"
		[[ -n $PKG_MGR ]] || hint "install the package that provides $name (uidmap or shadow)"
		return
	fi
	if [[ -u $path ]]; then
		report ok "$name" "$path (setuid root)"
		return
	fi
	caps=''
	if getcap=$(find_tool getcap); then caps=$("$getcap" "$path" 2>/dev/null || true); fi
	if [[ $caps == *"$cap"* ]]; then
		report ok "$name" "$path (file capability ${caps##* })"
	else
		report missing "$name" "$path is neither setuid nor has $cap"
		case $PKG_MGR in
		apt) hint "reinstall it: ${SUDO_PFX}apt-get install --reinstall -y uidmap" ;;
		dnf) hint "reinstall it: ${SUDO_PFX}dnf reinstall -y shadow-utils" ;;
		*) hint "make it setuid root: ${SUDO_PFX}chmod u+s $path" ;;
		esac
	fi
}

# subid_ranges FILE: "start count" lines for the target user (by name or uid).
subid_ranges() {
	local file=$1 flag=$2 tool
	if [[ -r $file ]]; then
		awk -F: -v u="$TARGET" -v id="$TARGET_UID" \
			'($1 == u || $1 == id) && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { print $2, $3 }' "$file"
	fi | grep . && return 0
	# Not in the file: ask getsubids, which also sees ranges served through NSS (e.g. sssd).
	if tool=$(find_tool getsubids); then
		# shellcheck disable=SC2086 # $flag is empty or -g
		"$tool" $flag "$TARGET" 2>/dev/null | awk 'NF >= 4 && $3 ~ /^[0-9]+$/ { print $3, $4 }' | grep .
	else
		return 1
	fi
}

# free_subid_start: lowest start >= SUBID_FIRST whose SUBID_COUNT ids overlap no entry of
# /etc/subuid or /etc/subgid (the same range is then free in both).
free_subid_start() {
	cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: -v first="$SUBID_FIRST" -v want="$SUBID_COUNT" '
		NF >= 3 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { s[n] = $2 + 0; e[n] = $2 + $3; n++ }
		END {
			c = first
			do {
				moved = 0
				for (i = 0; i < n; i++)
					if (c < e[i] && s[i] < c + want) { c = e[i]; moved = 1 }
			} while (moved)
			printf "%d\n", c
		}'
}

check_subids() { # check_subids uid|gid
	local kind=$1 file flag ranges best start
	file=/etc/sub$kind
	[[ $kind == gid ]] && flag=-g || flag=''
	if [[ $TARGET_UID -eq 0 ]]; then
		report ok "sub$kind range" "not needed for root (root maps ids directly)"
		return
	fi
	if ! ranges=$(subid_ranges "$file" "$flag"); then
		report missing "sub$kind range" "none for $TARGET in $file"
		if [[ -z $SUBID_RANGE ]]; then
			start=$(free_subid_start)
			SUBID_RANGE="$start-$((start + SUBID_COUNT - 1))"
		fi
		if [[ $kind == uid ]]; then FIX_SUBUID=1; else FIX_SUBGID=1; fi
		return
	fi
	best=$(sort -k2,2n <<<"$ranges" | tail -n1)
	read -r start best <<<"$best"
	if ((best < SUBID_COUNT)); then
		report warn "sub$kind range" "$start-$((start + best - 1)) has only $best ids for $TARGET; images may need $SUBID_COUNT"
		hint "a second range can be added with: ${SUDO_PFX}usermod --add-sub${kind}s A-B $TARGET"
	else
		report ok "sub$kind range" "$start-$((start + best - 1)) ($best ids) for $TARGET"
	fi
}

check_overlay() {
	local kver
	kver=$(uname -r)
	if grep -qw overlay /proc/filesystems 2>/dev/null; then
		report ok overlayfs "overlay listed in /proc/filesystems"
	elif compgen -G "/lib/modules/$kver/kernel/fs/overlayfs/overlay.ko*" >/dev/null ||
		grep -qs '/overlay\.ko' "/lib/modules/$kver/modules.dep"; then
		report warn overlayfs "overlay module not loaded (usually loaded on first mount)"
		if find_tool modprobe >/dev/null; then
			FIX_OVERLAY=1
		else
			hint "load it as root: modprobe overlay"
		fi
	else
		report missing overlayfs "kernel $kver has no overlay filesystem"
	fi

	if [[ $kver =~ ^([0-9]+)\.([0-9]+) ]] && version_ge "${BASH_REMATCH[1]}.${BASH_REMATCH[2]}" "$MIN_KERNEL"; then
		report ok kernel "$kver (>= $MIN_KERNEL: overlay mounts inside a user namespace)"
	elif [[ $TARGET_UID -eq 0 ]]; then
		report warn kernel "$kver < $MIN_KERNEL: no overlay inside user namespaces"
	else
		report missing kernel "$kver < $MIN_KERNEL: no unprivileged overlay mounts in a user namespace"
	fi
}

check_network() {
	local pasta slirp
	pasta=$(find_tool pasta || true)
	slirp=$(find_tool slirp4netns || true)
	if [[ -n $pasta && -n $slirp ]]; then
		report ok 'network helper' "pasta ($pasta), slirp4netns ($slirp)"
	elif [[ -n $pasta ]]; then
		report ok 'network helper' "pasta ($pasta)"
	elif [[ -n $slirp ]]; then
		report ok 'network helper' "slirp4netns ($slirp)"
	else
		report missing 'network helper' "neither pasta (package passt) nor slirp4netns is installed"
		if [[ -n $PKG_MGR ]]; then
			add_pkg passt
			add_pkg slirp4netns
		else
			hint "install passt (pasta) or slirp4netns with your package manager"
		fi
	fi
}

check_tun() {
	local mode owner group
	if [[ ! -e /dev/net/tun ]]; then
		report missing /dev/net/tun "does not exist (pasta and slirp4netns need it)"
		if ((FIX_TUN)); then FIX_TUN_NOW=1; fi
		return
	fi
	read -r mode owner group < <(stat -Lc '%a %U %G' /dev/net/tun)
	if [[ $TARGET_UID -eq 0 ]]; then
		report ok /dev/net/tun "mode $mode, root can open it"
	elif [[ $CUR_UID -eq $TARGET_UID ]] && [[ -r /dev/net/tun && -w /dev/net/tun ]]; then
		report ok /dev/net/tun "mode $mode, usable by $TARGET"
	elif (((8#$mode & 8#006) == 8#006)) || { [[ $owner == "$TARGET" ]] && (((8#$mode & 8#600) == 8#600)); } ||
		{ (((8#$mode & 8#060) == 8#060)) && [[ " $(id -Gn "$TARGET") " == *" $group "* ]]; }; then
		report ok /dev/net/tun "mode $mode, usable by $TARGET"
	else
		report missing /dev/net/tun "mode $mode $owner:$group: $TARGET cannot open it (no udev?), so pasta/slirp4netns fail"
		if ((FIX_TUN)); then FIX_TUN_NOW=1; fi
	fi
}

check_inotify() {
	local w i
	w=$(read_sysctl /proc/sys/fs/inotify/max_user_watches)
	i=$(read_sysctl /proc/sys/fs/inotify/max_user_instances)
	if [[ -z $w || -z $i ]]; then
		report warn inotify "limits not readable (no inotify?): file watching may not work"
		return
	fi
	if ((w >= MIN_WATCHES)); then
		report ok 'inotify watches' "fs.inotify.max_user_watches=$w"
	else
		report warn 'inotify watches' "fs.inotify.max_user_watches=$w < $MIN_WATCHES: watching big trees fails"
		hint "${SUDO_PFX}sysctl -w fs.inotify.max_user_watches=$GOOD_WATCHES" \
			"persistent, in /etc/sysctl.d/90-nook-inotify.conf: fs.inotify.max_user_watches = $GOOD_WATCHES"
	fi
	if ((i >= MIN_INSTANCES)); then
		report ok 'inotify instances' "fs.inotify.max_user_instances=$i"
	else
		report warn 'inotify instances' "fs.inotify.max_user_instances=$i < $MIN_INSTANCES"
		hint "${SUDO_PFX}sysctl -w fs.inotify.max_user_instances=$GOOD_INSTANCES" \
			"persistent, in /etc/sysctl.d/90-nook-inotify.conf: fs.inotify.max_user_instances = $GOOD_INSTANCES"
	fi
}

run_checks() {
	FIX_PKGS=()
	FIX_SUBUID=0 FIX_SUBGID=0 FIX_OVERLAY=0 FIX_TUN_NOW=0 SUBID_RANGE=''
	check_userns
	check_idmap_tool newuidmap
	check_idmap_tool newgidmap
	check_subids uid
	check_subids gid
	check_overlay
	check_network
	check_tun
	check_inotify
}

# ---------------------------------------------------------------------------------------
# fixes

fixes_pending() {
	((${#FIX_PKGS[@]} || FIX_SUBUID || FIX_SUBGID || FIX_OVERLAY || FIX_TUN_NOW))
}

usermod_has_subids() {
	local um help
	um=$(find_tool usermod) || return 1
	help=$("$um" --help 2>&1 || true)
	[[ $help == *--add-subuids* && -e /etc/subuid && -e /etc/subgid ]]
}

# The commands that fix what run_checks found, one per line, with sudo where needed.
fix_commands() {
	local args=() f p=$SUDO_PFX
	if ((${#FIX_PKGS[@]})); then
		case $PKG_MGR in
		apt) echo "${p}apt-get update && ${p}apt-get install -y ${FIX_PKGS[*]}" ;;
		dnf) echo "${p}dnf install -y ${FIX_PKGS[*]}" ;;
		esac
	fi
	if ((FIX_SUBUID || FIX_SUBGID)); then
		if usermod_has_subids; then
			((FIX_SUBUID)) && args+=(--add-subuids "$SUBID_RANGE")
			((FIX_SUBGID)) && args+=(--add-subgids "$SUBID_RANGE")
			echo "${p}usermod ${args[*]} $TARGET"
		else
			for f in uid gid; do
				[[ $f == uid ]] && ((!FIX_SUBUID)) && continue
				[[ $f == gid ]] && ((!FIX_SUBGID)) && continue
				echo "echo '$TARGET:${SUBID_RANGE%-*}:$SUBID_COUNT' | ${p}tee -a /etc/sub$f >/dev/null"
			done
		fi
	fi
	((FIX_OVERLAY)) && echo "${p}modprobe overlay"
	if ((FIX_TUN_NOW)); then
		[[ -e /dev/net/tun ]] || echo "${p}modprobe tun"
		echo "${p}chmod 0666 /dev/net/tun"
	fi
	return 0
}

# step DESCRIPTION CMD...: run one privileged fix, indenting its output.
step() {
	local what=$1 rc=0
	shift
	printf '  %s%-8s%s %s\n' "$C_DIM" run "$C_OFF" "$what"
	priv "$@" 2>&1 | sed 's/^/           | /' || rc=$?
	return "$rc"
}

apply_packages() {
	local p cand avail=()
	((${#FIX_PKGS[@]})) || return 0
	case $PKG_MGR in
	apt)
		if ! step 'apt-get update' env DEBIAN_FRONTEND=noninteractive apt-get -q update; then
			report failed packages 'apt-get update failed'
			return
		fi
		for p in "${FIX_PKGS[@]}"; do
			cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')
			if [[ -n $cand && $cand != '(none)' ]]; then avail+=("$p"); else report warn packages "$p is not available from apt"; fi
		done
		((${#avail[@]})) || return 0
		if step "apt-get install -y ${avail[*]}" env DEBIAN_FRONTEND=noninteractive \
			apt-get -q install -y --no-install-recommends "${avail[@]}"; then
			report 'done' packages "installed ${avail[*]}"
			CHANGES+=("installed packages: ${avail[*]}")
		else
			report failed packages "apt-get install ${avail[*]} failed"
		fi
		;;
	dnf)
		if step "dnf install -y ${FIX_PKGS[*]}" dnf -y install "${FIX_PKGS[@]}"; then
			report 'done' packages "installed ${FIX_PKGS[*]}"
			CHANGES+=("installed packages: ${FIX_PKGS[*]}")
		else
			# One may be unavailable (e.g. passt on an old release): try them one by one.
			for p in "${FIX_PKGS[@]}"; do
				if step "dnf install -y $p" dnf -y install "$p"; then
					CHANGES+=("installed package: $p")
				else
					report warn packages "dnf could not install $p"
				fi
			done
		fi
		;;
	esac
}

apply_subids() {
	local args=() f start
	((FIX_SUBUID || FIX_SUBGID)) || return 0
	start=${SUBID_RANGE%-*}
	if usermod_has_subids; then
		((FIX_SUBUID)) && args+=(--add-subuids "$SUBID_RANGE")
		((FIX_SUBGID)) && args+=(--add-subgids "$SUBID_RANGE")
		if step "usermod ${args[*]} $TARGET" "$(find_tool usermod)" "${args[@]}" "$TARGET"; then
			report 'done' 'subid ranges' "added $SUBID_RANGE for $TARGET"
			CHANGES+=("added subordinate id range $SUBID_RANGE for $TARGET")
		else
			report failed 'subid ranges' "usermod failed"
		fi
		return
	fi
	for f in uid gid; do
		[[ $f == uid ]] && ((!FIX_SUBUID)) && continue
		[[ $f == gid ]] && ((!FIX_SUBGID)) && continue
		# Append "user:start:count", first ending an unterminated last line.
		# shellcheck disable=SC2016 # expanded by sh -c
		if step "append $TARGET:$start:$SUBID_COUNT to /etc/sub$f" sh -c \
			'f=$1; l=$2; if [ -s "$f" ] && [ -n "$(tail -c1 "$f")" ]; then echo >>"$f"; fi
			 [ -e "$f" ] || { : >"$f"; chmod 0644 "$f"; }
			 printf "%s\n" "$l" >>"$f"' sh "/etc/sub$f" "$TARGET:$start:$SUBID_COUNT"; then
			report 'done' "sub$f range" "added $SUBID_RANGE for $TARGET"
			CHANGES+=("added sub$f range $SUBID_RANGE for $TARGET to /etc/sub$f")
		else
			report failed "sub$f range" "could not write /etc/sub$f"
		fi
	done
}

apply_overlay() {
	((FIX_OVERLAY)) || return 0
	if step 'modprobe overlay' "$(find_tool modprobe)" overlay; then
		CHANGES+=('loaded the overlay kernel module')
	else
		report warn overlayfs 'modprobe overlay failed'
	fi
}

apply_tun() {
	((FIX_TUN_NOW)) || return 0
	if [[ ! -e /dev/net/tun ]]; then
		if step 'modprobe tun' "$(find_tool modprobe || echo modprobe)" tun; then
			CHANGES+=('loaded the tun kernel module')
		fi
		if [[ ! -e /dev/net/tun ]]; then
			step 'mknod /dev/net/tun c 10 200' sh -c 'mkdir -p /dev/net && mknod -m 0600 /dev/net/tun c 10 200' &&
				CHANGES+=('created /dev/net/tun')
		fi
	fi
	if step 'chmod 0666 /dev/net/tun' chmod 0666 /dev/net/tun; then
		report 'done' /dev/net/tun 'mode 0666'
		CHANGES+=('made /dev/net/tun mode 0666 (until reboot; devtmpfs recreates it 0600 without udev)')
	else
		report failed /dev/net/tun 'chmod failed'
	fi
}

# ---------------------------------------------------------------------------------------
# main

join() { # join ITEM...: "a, b, c" without repeats
	local out='' x
	for x in "$@"; do [[ ", $out, " == *", $x, "* ]] || out+="${out:+, }$x"; done
	printf '%s\n' "$out"
}

section "Rootless prerequisites for $TARGET"
n0=${#MISSING[@]} w0=${#WARNINGS[@]}
run_checks
n1=${#MISSING[@]} w1=${#WARNINGS[@]}

if ! fixes_pending; then
	:
elif ((CHECK_ONLY)); then
	section 'To fix (as root)'
	fix_commands | while IFS= read -r c; do printf '  %s\n' "$c"; done
else
	set_priv_mode
	if [[ $PRIV != none ]]; then
		if [[ $PRIV == sudo ]]; then section 'Fixing (via sudo)'; else section 'Fixing (as root)'; fi
		apply_packages
		apply_subids
		apply_overlay
		apply_tun
		# The re-check replaces the first check's results; failures of the fixes stay.
		MISSING=("${MISSING[@]:0:n0}" "${MISSING[@]:n1}")
		WARNINGS=("${WARNINGS[@]:0:w0}" "${WARNINGS[@]:w1}")
		section "Re-checking for $TARGET"
		run_checks
	else
		section 'Not fixed: no root and no passwordless sudo'
		if [[ -n $SUDO_PFX ]]; then
			printf '  Run these commands, then re-run %s:\n' "$SELF"
		else
			printf '  Run these commands as root (e.g. after "su -"), then re-run %s:\n' "$SELF"
		fi
		fix_commands | while IFS= read -r c; do printf '    %s\n' "$c"; done
	fi
fi
# /dev/net/tun is only changed with --fix-tun: say so when it is the problem.
for m in "${MISSING[@]}"; do
	if [[ $m == /dev/net/tun ]] && ((!FIX_TUN || CHECK_ONLY)); then
		if [[ $CUR_UID -ne 0 && -z $SUDO_PFX ]]; then tun_how='as root, run: chmod'; else tun_how="run: ${SUDO_PFX}chmod"; fi
		printf '\n  /dev/net/tun: %s 0666 /dev/net/tun (or re-run this script as root with --fix-tun)\n' "$tun_how"
		printf '  This does not survive a reboot: without udev the node comes back as 0600.\n'
		break
	fi
done

# ---------------------------------------------------------------------------------------
# summary

section Summary
printf '  nook      %s\n' "$NOOK_STATE"
if ((${#CHANGES[@]})); then
	printf '  changes   %s\n' "${CHANGES[0]}"
	for c in "${CHANGES[@]:1}"; do printf '            %s\n' "$c"; done
elif ((CHECK_ONLY)); then
	printf '  changes   none (--check)\n'
else
	printf '  changes   none: nothing changed\n'
fi
if ((${#WARNINGS[@]})); then
	printf '  warnings  %s\n' "$(join "${WARNINGS[@]}")"
fi
if ((${#MISSING[@]})); then
	printf '  %sresult    NOT READY%s: %s\n' "$C_BAD" "$C_OFF" "$(join "${MISSING[@]}")"
	printf '            fix the lines marked missing/failed above, then re-run %s\n' "$SELF"
	exit 1
fi
if ((NO_BUILD)); then
	printf '  %sresult    ready%s: rootless prerequisites are in place for %s\n' "$C_OK" "$C_OFF" "$TARGET"
else
	printf '  %sresult    ready%s: nook is installed and rootless prerequisites are in place for %s\n' "$C_OK" "$C_OFF" "$TARGET"
fi
exit 0
