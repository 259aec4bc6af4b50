package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The user, folders and packages of a run started as root. /tmp because
// the user must read the binaries and its store must be on a local
// filesystem that supports overlay in a user namespace.
const (
	benchUser  = "nookbench"
	rootWork   = "/tmp/nookbench"
	runtimeDir = "/tmp/nookbench-run" // su leaves XDG_RUNTIME_DIR unset; podman needs one
)

var packages = []string{"podman", "crun", "bubblewrap", "uidmap", "busybox-static"}

// asRoot prepares the machine, then runs the measuring part as benchUser.
func asRoot(o options, table io.Writer) error {
	if err := ensurePackages(); err != nil {
		return err
	}
	u, err := ensureUser(benchUser)
	if err != nil {
		return err
	}
	if err := ensureTun(); err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{runtimeDir, 0o700}, {rootWork, 0o755}} {
		if err := ownedDir(d.path, d.mode, uid, gid); err != nil {
			return err
		}
	}
	if err := buildBinaries(o.repo, rootWork); err != nil {
		return err
	}
	for _, f := range []string{"nook", "nook-init", "floor", "bench", "examples"} {
		if err := chownTree(filepath.Join(rootWork, f), uid, gid); err != nil {
			return err
		}
	}
	return measureAsUser(o, table)
}

// ownedDir makes path a folder of uid with mode. One left by an earlier
// benchUser with another uid is of no use to this one, so it goes.
func ownedDir(path string, mode os.FileMode, uid, gid int) error {
	if st, err := os.Stat(path); err == nil && st.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		logf("bench: removing %s: it belongs to another uid", path)
		if err := os.RemoveAll(path); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(path, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	return os.Chown(path, uid, gid)
}

// measureAsUser runs "bench -measure" as benchUser in a private mount
// namespace without /sys/fs/cgroup/unified. These machines mount cgroup v1
// plus a v2 hierarchy holding hugetlb there, and crun (podman's runtime
// too) then refuses every container: "cgroups in hybrid mode not
// supported, drop all controllers from cgroupv2". Without that mount crun
// sees plain v1, where rootless containers get no cgroup, as everywhere
// here. The host's mounts are untouched; all tools measure in the same
// namespace.
func measureAsUser(o options, table io.Writer) error {
	inner := fmt.Sprintf("XDG_RUNTIME_DIR=%s exec %s -measure -work %s -quick=%t -n %d -warmup %d -rows %s",
		runtimeDir, filepath.Join(rootWork, "bench"), rootWork, o.quick, o.runs, o.warmups, shellQuote(o.only))
	script := `mountpoint -q /sys/fs/cgroup/unified && umount -l /sys/fs/cgroup/unified
exec su ` + benchUser + ` -s /bin/sh -c "$1"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", inner)
	cmd.Stdout, cmd.Stderr = table, os.Stderr
	logf("bench: measuring as %s: %s", benchUser, inner)
	return cmd.Run()
}

// asUser measures as the current user with what is installed.
func asUser(o options, table io.Writer) error {
	for _, p := range packages {
		if !installed(p) {
			logf("bench: skipping what needs %s: not installed (run as root to install it)", p)
		}
	}
	o.work = filepath.Join(os.TempDir(), fmt.Sprintf("nookbench-%d", os.Getuid()))
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		return err
	}
	if os.Getenv("XDG_RUNTIME_DIR") == "" {
		dir := o.work + "-run"
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		os.Setenv("XDG_RUNTIME_DIR", dir)
	}
	if err := buildBinaries(o.repo, o.work); err != nil {
		return err
	}
	return measureAll(o, table)
}

// buildBinaries puts nook, the floor and a copy of this program in dir,
// and the tree's examples/ (rows 4 and 5 run them from copies). nook is
// built as install.sh builds it: static and stripped, with nook-init
// next to it of the same build (one token for both, see
// rootless/initbinary.go).
func buildBinaries(repo, dir string) error {
	var raw [16]byte
	rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	for _, b := range []struct{ out, pkg string }{{"nook", "./cmd/nook"}, {"nook-init", "./cmd/nook-init"}, {"floor", "./bench/floor"}} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -X github.com/nook-dev/nook/rootless.buildToken="+token, "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Dir, cmd.Stdout, cmd.Stderr = repo, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", b.pkg, err)
		}
	}
	if err := copyExamples(filepath.Join(repo, "examples"), filepath.Join(dir, "examples")); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return copyFile(self, filepath.Join(dir, "bench"), 0o755)
}

// copyExamples replaces dst with a copy of the examples folder src,
// without what builds left in it (.nook/).
func copyExamples(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if _, err := os.Stat(src); err != nil {
		return nil // rows 4 and 5 say what is missing
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && d.Name() == ".nook":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type().IsRegular():
			return copyFile(path, to, 0o644)
		}
		return nil
	})
}

// chownTree gives path and everything under it to uid.
func chownTree(path string, uid, gid int) error {
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if p == path && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func ensurePackages() error {
	var missing []string
	for _, p := range packages {
		if !installed(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	logf("bench: installing %s", strings.Join(missing, " "))
	install := func() error {
		cmd := exec.Command("apt-get", append([]string{"install", "-y", "-q"}, missing...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	if install() == nil {
		return nil
	}
	// Only when the package lists are missing or stale.
	if err := runQuiet("apt-get", "update", "-q"); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	if err := install(); err != nil {
		return fmt.Errorf("apt-get install %s: %w", strings.Join(missing, " "), err)
	}
	return nil
}

func installed(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	return err == nil && strings.Contains(string(out), "install ok installed")
}

// ensureUser creates name (useradd -m; Debian's adds subuid/subgid ranges)
// and makes sure both ranges exist.
func ensureUser(name string) (*user.User, error) {
	if _, err := user.Lookup(name); err != nil {
		if err := runQuiet("useradd", "-m", "-s", "/bin/sh", name); err != nil {
			return nil, fmt.Errorf("useradd %s: %w", name, err)
		}
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		if err := ensureSubRange(f, name); err != nil {
			return nil, err
		}
	}
	return user.Lookup(name)
}

// ensureSubRange appends a 65536-id range for name to file after every
// range in it, unless name has one.
func ensureSubRange(file, name string) error {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	next := 100000
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) != 3 {
			continue
		}
		if fields[0] == name {
			return nil
		}
		start, _ := strconv.Atoi(fields[1])
		n, _ := strconv.Atoi(fields[2])
		next = max(next, start+n)
	}
	logf("bench: adding %s:%d:65536 to %s", name, next, file)
	_, err = fmt.Fprintf(f, "%s:%d:65536\n", name, next)
	return err
}

// ensureTun makes /dev/net/tun 0666 as Debian has it with udev; without it
// slirp4netns and pasta fail for an unprivileged user.
func ensureTun() error {
	st, err := os.Stat("/dev/net/tun")
	if err != nil || st.Mode().Perm()&0o006 == 0o006 {
		return nil
	}
	logf("bench: chmod 0666 /dev/net/tun")
	return os.Chmod("/dev/net/tun", 0o666)
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	os.Remove(dst) // a running copy cannot be written over
	return os.WriteFile(dst, data, mode)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func runQuiet(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, lastLine(string(out)))
	}
	return nil
}

// lastLine returns the last line of a command's output, for its error;
// cobra's closing "Run 'nook --help' for usage." is passed over for the
// error above it.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	last := lines[len(lines)-1]
	if len(lines) > 1 && strings.HasPrefix(last, "Run '") && strings.HasSuffix(last, "for usage.") {
		return lines[len(lines)-2]
	}
	return last
}
