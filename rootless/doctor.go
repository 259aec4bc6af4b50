package rootless

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Thresholds and suggested values of Doctor's checks, the same as
// install.sh's.
const (
	minWatches    = 65536  // fs.inotify.max_user_watches: a big source tree plus node_modules
	minInstances  = 128    // fs.inotify.max_user_instances: the kernel's default; one per watcher
	goodWatches   = 524288 // suggested; what many distributions and IDEs recommend
	goodInstances = 512
	minSubIDs     = 65536 // ids 0..65535: what images assume (nobody is 65534)
)

// Warning reports whether c passed with a caveat: nook works, but something
// is degraded, and Hint says how to fix it. Checks that pass without
// caveat have no Hint, so every check is a failure (!OK), a warning or a
// plain pass; Doctor's informational checks are plain passes whose Message
// says what to know.
func (c Check) Warning() bool { return c.OK && c.Hint != "" }

// Doctor checks everything rootless containers need on this machine and
// returns one Check per item, in this order:
//
//	kernel, user namespaces, AppArmor userns, newuidmap, newgidmap,
//	subuid range, subgid range, store,
//	userns, uid, idmap, overlay, whiteout (ProbeDir's, as it reports them),
//	network helper, /dev/net/tun, inotify watches, inotify instances,
//	unprivileged ports, cgroups.
//
// The probe stops after a failed "userns", so uid to whiteout are missing
// then. The probe runs on the filesystem of storeRoot, or of its nearest
// existing parent when storeRoot does not exist yet (nothing is created).
// Each failure and warning carries in Hint the command that fixes it (for
// a non-root caller prefixed with sudo), where one exists. Doctor only reads
// the machine's state, apart from the probe's scratch directory, and is
// safe for concurrent use.
func Doctor(storeRoot string) []Check {
	d := newDoctor()
	store, probeDir := d.store(storeRoot)
	probe := ProbeDir(probeDir).Checks
	for i, c := range probe {
		if c.OK && c.Message == "" {
			probe[i].Message = strings.ReplaceAll(probePassed[c.Name], "DIR", probeDir)
		}
	}
	uidmap, gidmap := d.idHelper("newuidmap"), d.idHelper("newgidmap")
	subUID, subGID := d.subIDs()
	watches, instances := d.inotify()

	checks := []Check{
		d.kernel(probeOK(probe, "overlay") && probeOK(probe, "whiteout")),
		d.userns(), d.apparmor(), uidmap, gidmap, subUID, subGID, store,
	}
	checks = append(checks, probe...)
	return append(checks, d.network(), d.nft(), d.tun(), watches, instances, d.ports(), d.cgroups())
}

// probePassed says what a passing probe check (whose Message ProbeDir
// leaves empty) showed; DIR is the directory it ran in.
var probePassed = map[string]string{
	"uid":      "the namespace's first process is uid 0 and gid 0",
	"idmap":    "uid_map and gid_map are the mapping above",
	"overlay":  "overlay with userxattr works on the filesystem of DIR: it mounts, takes writes and records deletions as whiteouts",
	"whiteout": "a whiteout (char device 0/0) can be made on the filesystem of DIR without CAP_MKNOD",
}

func probeOK(checks []Check, name string) bool {
	for _, c := range checks {
		if c.Name == name {
			return c.OK
		}
	}
	return false
}

// doctor is what the checks read from the machine; tests replace fields.
type doctor struct {
	readFile    func(name string) ([]byte, error) // /proc/sys, /proc/self/mounts, AppArmor profiles
	lookPath    func(file string) (string, error)
	release     string // uname -r
	euid        int
	uid, gid    int
	user        string // login name, or the decimal uid without a passwd entry
	exe         string // nook's binary, for the AppArmor profile
	apparmorDir string
}

func newDoctor() *doctor {
	d := &doctor{
		readFile: os.ReadFile, lookPath: exec.LookPath,
		euid: os.Geteuid(), uid: os.Getuid(), gid: os.Getgid(),
		apparmorDir: "/etc/apparmor.d",
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		d.release = unix.ByteSliceToString(u.Release[:])
	}
	d.user = strconv.Itoa(d.uid)
	if u, err := user.LookupId(d.user); err == nil {
		d.user = u.Username
	}
	d.exe, _ = os.Executable()
	return d
}

// sudo prefixes the fix commands of a caller that is not root.
func (d *doctor) sudo() string {
	if d.euid == 0 {
		return ""
	}
	return "sudo "
}

// sysctl returns the trimmed value of key ("fs.inotify.max_user_watches",
// read from /proc/sys/fs/inotify/max_user_watches), and false when it
// cannot be read: the knob does not exist on this kernel.
func (d *doctor) sysctl(key string) (string, bool) {
	b, err := d.readFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// sysctlFix is the command that sets key to value now, and the one that
// keeps it after a reboot.
func (d *doctor) sysctlFix(key string, value int, file string) string {
	return fmt.Sprintf("%ssysctl -w %s=%d\necho '%s = %d' | %stee -a /etc/sysctl.d/%s",
		d.sudo(), key, value, key, value, d.sudo(), file)
}

func fail(name, msg, hint string) Check { return Check{Name: name, Message: msg, Hint: hint} }
func warn(name, msg, hint string) Check { return Check{Name: name, OK: true, Message: msg, Hint: hint} }
func pass(name, msg string) Check       { return Check{Name: name, OK: true, Message: msg} }

// parseRelease returns the major and minor version of a kernel release
// such as "6.1.0-18-amd64".
func parseRelease(release string) (major, minor int, ok bool) {
	_, err := fmt.Sscanf(release, "%d.%d", &major, &minor)
	return major, minor, err == nil
}

func atLeast(major, minor, wantMajor, wantMinor int) bool {
	return major > wantMajor || (major == wantMajor && minor >= wantMinor)
}

// kernel compares uname's release with the versions that brought what nook
// needs. probesOK downgrades a too-old kernel to a warning: some
// distributions patched overlay-in-userns into older kernels, and the
// probes below tried it for real.
func (d *doctor) kernel(probesOK bool) Check {
	const name = "kernel"
	major, minor, ok := parseRelease(d.release)
	switch {
	case !ok:
		return pass(name, fmt.Sprintf("%q (version not recognised; the overlay and whiteout probes decide)", d.release))
	case atLeast(major, minor, 5, 11):
		return pass(name, d.release+" (>= 5.11: overlay mounts inside a user namespace)")
	}
	msg := d.release + " < 5.11: no overlay mounts inside a user namespace"
	if !atLeast(major, minor, 5, 8) {
		msg += ", and < 5.8: no unprivileged whiteouts"
	}
	const hint = "upgrade to Linux 5.11 or later"
	if probesOK {
		return warn(name, msg+"; but the overlay and whiteout probes pass (a distribution patch)", hint)
	}
	return fail(name, msg, hint)
}

// userns checks the sysctls that switch unprivileged user namespaces off.
func (d *doctor) userns() Check {
	const name = "user namespaces"
	max, ok := d.sysctl("user.max_user_namespaces")
	if !ok {
		return fail(name, "kernel without user namespaces (no user.max_user_namespaces: CONFIG_USER_NS is off)",
			"use a kernel built with CONFIG_USER_NS=y")
	}
	msg := "user.max_user_namespaces=" + max
	var problems, fixes []string
	if n, err := strconv.Atoi(max); err != nil || n <= 0 {
		problems = append(problems, msg+" disables them")
		// Any positive number works; 28633 is the kernel's default on a
		// machine with about 4 GB of memory, as in errors.go.
		fixes = append(fixes, d.sysctlFix("user.max_user_namespaces", 28633, "90-nook-userns.conf"))
	}
	// Debian and Ubuntu kernels before 6.x carried this out-of-tree knob;
	// root (CAP_SYS_ADMIN) is exempt.
	if clone, ok := d.sysctl("kernel.unprivileged_userns_clone"); ok {
		msg += ", kernel.unprivileged_userns_clone=" + clone
		if clone != "1" && d.euid != 0 {
			problems = append(problems, "kernel.unprivileged_userns_clone="+clone+" (must be 1)")
			fixes = append(fixes, d.sysctlFix("kernel.unprivileged_userns_clone", 1, "90-nook-userns.conf"))
		} else if clone != "1" {
			msg += " (does not apply to root)"
		}
	}
	if len(problems) > 0 {
		return fail(name, strings.Join(problems, "; "), strings.Join(fixes, "\n"))
	}
	return pass(name, msg)
}

// apparmor checks Ubuntu's (24.04 and later) restriction: with
// kernel.apparmor_restrict_unprivileged_userns=1 only programs whose
// AppArmor profile has the "userns," rule get a usable user namespace.
func (d *doctor) apparmor() Check {
	const name, key = "AppArmor userns", "kernel.apparmor_restrict_unprivileged_userns"
	v, ok := d.sysctl(key)
	switch {
	case !ok:
		return pass(name, key+" not present: no AppArmor restriction")
	case v != "1":
		return pass(name, key+"="+v)
	case d.euid == 0:
		return pass(name, "restricted, but not for root")
	}
	if p := d.apparmorProfile(); p != "" {
		return pass(name, fmt.Sprintf("restricted; %s allows userns for %s", p, d.exe))
	}
	profile := filepath.Join(d.apparmorDir, "nook")
	return fail(name, key+"=1 blocks user namespaces",
		fmt.Sprintf("allow them for nook only: put this profile in %s\n"+
			"  abi <abi/4.0>,\n"+
			"  include <tunables/global>\n"+
			"  profile nook %s flags=(unconfined) {\n"+
			"    userns,\n"+
			"    include if exists <local/nook>\n"+
			"  }\n"+
			"and load it: %sapparmor_parser -r %s\n"+
			"or lift the restriction for every program: %ssysctl -w %s=0",
			profile, d.exe, d.sudo(), profile, d.sudo(), key))
}

// apparmorProfile returns a file under apparmorDir that names nook's binary
// and has a userns rule, or "".
func (d *doctor) apparmorProfile() string {
	var found string
	filepath.WalkDir(d.apparmorDir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || found != "" {
			return nil
		}
		b, err := d.readFile(path)
		if err != nil || !strings.Contains(string(b), d.exe) {
			return nil
		}
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(strings.TrimSpace(line), "userns") {
				found = path
				return filepath.SkipAll
			}
		}
		return nil
	})
	return found
}

// idHelper checks that newuidmap (newgidmap) exists and can write another
// process's map: setuid root, or with the file capability cap_setuid
// (cap_setgid), as Fedora installs them.
func (d *doctor) idHelper(name string) Check {
	if d.euid == 0 {
		return pass(name, "not needed for root")
	}
	path, err := d.lookPath(name)
	if err != nil {
		return fail(name, "not installed (package uidmap)", installUidmapHint)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fail(name, fmt.Sprintf("stat %s: %v", path, err), installUidmapHint)
	}
	caps := make([]byte, 24)
	n, err := unix.Getxattr(path, "security.capability", caps)
	if err != nil {
		n = 0
	}
	return idHelperCheck(name, path, st.Mode, st.Uid, caps[:n], d.sudo())
}

// idHelperCheck judges a helper from its mode, owner and raw
// security.capability xattr (empty when it has none).
func idHelperCheck(name, path string, mode, owner uint32, caps []byte, sudo string) Check {
	capName, capNum := "cap_setuid", 7
	if name == "newgidmap" {
		capName, capNum = "cap_setgid", 6
	}
	switch {
	case mode&unix.S_ISUID != 0 && owner == 0:
		return pass(name, path+" (setuid root)")
	case hasFileCap(caps, capNum):
		return pass(name, path+" (file capability "+capName+")")
	}
	return fail(name, fmt.Sprintf("%s is neither setuid root nor has %s", path, capName),
		sudo+"apt-get install --reinstall uidmap (Debian, Ubuntu; "+sudo+"dnf reinstall shadow-utils on Fedora)")
}

// hasFileCap reports whether a security.capability xattr (struct
// vfs_cap_data, little-endian: magic_etc, then permitted and inheritable
// words; revisions 2 and 3 add the high words) grants capability num in
// its permitted set.
func hasFileCap(data []byte, num int) bool {
	if len(data) < 12 || num >= 32 {
		return false
	}
	// From linux/capability.h; x/sys/unix does not define them.
	const (
		revisionMask = 0xff000000
		revision1    = 0x01000000
		revision2    = 0x02000000
		revision3    = 0x03000000
	)
	switch binary.LittleEndian.Uint32(data) & revisionMask {
	case revision1, revision2, revision3:
		return binary.LittleEndian.Uint32(data[4:])&(1<<num) != 0
	}
	return false
}

// subIDs checks the caller's ranges in /etc/subuid and /etc/subgid, as
// HostMapping reads them.
func (d *doctor) subIDs() (Check, Check) {
	if d.euid == 0 {
		const msg = "not needed for root (root maps ids directly)"
		return pass("subuid range", msg), pass("subgid range", msg)
	}
	uids, uidErr := SubUIDs(d.user, uint32(d.uid))
	gids, gidErr := SubGIDs(d.user, uint32(d.uid))
	start := freeSubIDStart(subUIDFile, subGIDFile)
	block := fmt.Sprintf("%d-%d", start, start+minSubIDs-1)
	// One command adds whatever is missing from both files.
	var add []string
	if uidErr == nil && len(normalize(uids, uint32(d.uid))) == 0 {
		add = append(add, "--add-subuids "+block)
	}
	if gidErr == nil && len(normalize(gids, uint32(d.gid))) == 0 {
		add = append(add, "--add-subgids "+block)
	}
	missingFix := d.sudo() + "usermod " + strings.Join(add, " ") + " " + d.user
	check := func(kind, file string, ranges []IDRange, err error, own uint32) Check {
		name := "sub" + kind + " range"
		if err != nil {
			return fail(name, err.Error(), "")
		}
		moreFix := fmt.Sprintf("%susermod --add-sub%ss %s %s", d.sudo(), kind, block, d.user)
		return subIDCheck(name, file, d.user, normalize(ranges, own), missingFix, moreFix)
	}
	return check("uid", subUIDFile, uids, uidErr, uint32(d.uid)), check("gid", subGIDFile, gids, gidErr, uint32(d.gid))
}

// subIDCheck judges user's normalized ranges from file: none is a
// failure fixed by missingFix, fewer than minSubIDs ids a warning fixed by
// moreFix.
func subIDCheck(name, file, user string, ranges []IDRange, missingFix, moreFix string) Check {
	if len(ranges) == 0 {
		return fail(name, fmt.Sprintf("none for %s in %s", user, file), missingFix)
	}
	var total uint64
	var parts []string
	for _, r := range ranges {
		total += uint64(r.Count)
		parts = append(parts, fmt.Sprintf("%d-%d", r.Start, uint64(r.Start)+uint64(r.Count)-1))
	}
	msg := fmt.Sprintf("%s (%d ids) for %s", strings.Join(parts, ", "), total, user)
	if total < minSubIDs {
		return warn(name, fmt.Sprintf("%s; images may need %d", msg, minSubIDs), moreFix)
	}
	return pass(name, msg)
}
