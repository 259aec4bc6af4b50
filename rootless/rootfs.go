package rootless

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// mountError names what was being mounted where, like runc's mountError,
// so a failure says which of the dozen mounts broke.
type mountError struct {
	op, source, target, fstype string
	err                        error
}

func (e *mountError) Error() string {
	s := e.op + " " + e.target
	if e.fstype != "" {
		s += " (" + e.fstype + ")"
	}
	if e.source != "" && e.source != e.fstype {
		s += " from " + e.source
	}
	return s + ": " + e.err.Error()
}

func (e *mountError) Unwrap() error { return e.err }

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &mountError{op: "mount", source: source, target: target, fstype: fstype, err: err}
	}
	return nil
}

// setupRootfs builds the container's filesystem and makes it the root:
// the overlay, /proc, /dev, /sys, the /etc files, bind mounts, then
// pivot_root. It runs in init, inside fresh mount, pid, uts and ipc
// namespaces, following runc's prepareRootfs and pivotRoot.
func setupRootfs(spec *Spec) error {
	// Nothing we mount may propagate back to the host.
	if err := mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := mountOverlay(spec); err != nil {
		return err
	}
	root := spec.Rootfs
	steps := []func(string, *Spec) error{mountProc, mountDev, mountSys, mountEtc, mountVolumes}
	for _, step := range steps {
		if err := step(root, spec); err != nil {
			return err
		}
	}
	if err := pivotRoot(root); err != nil {
		return err
	}
	return maskProc()
}

// mountOverlay mounts the image's layers and the container's upper layer
// on Rootfs. Lower paths are relative to LayerRoot (init changes into it)
// so that even deep images fit mount(2)'s one-page option limit.
func mountOverlay(spec *Spec) error {
	lowers := spec.Lowers
	if len(lowers) == 0 {
		// overlay needs a lower layer: an image without layers is empty.
		empty := filepath.Join(filepath.Dir(spec.Upper), "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return err
		}
		lowers = []string{empty}
	}
	if spec.LayerRoot != "" {
		if err := os.Chdir(spec.LayerRoot); err != nil {
			return fmt.Errorf("mount overlay: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,userxattr", strings.Join(lowers, ":"), spec.Upper, spec.Work)
	var err error = unix.EINVAL
	if spec.Volatile {
		err = unix.Mount("overlay", spec.Rootfs, "overlay", 0, opts+",volatile")
	}
	if errors.Is(err, unix.EINVAL) { // not asked for, or a kernel before 5.10
		err = mount("overlay", spec.Rootfs, "overlay", 0, opts)
	}
	if err != nil {
		return err
	}
	return os.Chdir("/")
}

func mountProc(root string, _ *Spec) error {
	target := filepath.Join(root, "proc")
	if err := os.MkdirAll(target, 0o555); err != nil {
		return err
	}
	return mount("proc", target, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// devices are bind-mounted from the host: a user namespace may not mknod.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

func mountDev(root string, _ *Spec) error {
	dev := filepath.Join(root, "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return err
	}
	if err := mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	for _, d := range devices {
		target := filepath.Join(dev, d)
		if err := os.WriteFile(target, nil, 0o666); err != nil {
			return err
		}
		if err := mount("/dev/"+d, target, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	if err := mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	if err := mount("shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return err
	}
	if err := mount("mqueue", filepath.Join(dev, "mqueue"), "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	for link, target := range map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, link)); err != nil {
			return err
		}
	}
	return nil
}

// mountSys binds the host's /sys read-only: a rootless container may not
// mount a sysfs of its own unless it owns its network namespace.
func mountSys(root string, _ *Spec) error {
	target := filepath.Join(root, "sys")
	if err := os.MkdirAll(target, 0o555); err != nil {
		return err
	}
	if err := mount("/sys", target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return remountReadOnly(target)
}

// remountReadOnly makes a bind mount read-only, keeping the flags the
// kernel insists an unprivileged remount keeps (nosuid, nodev, noexec).
func remountReadOnly(target string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return &mountError{op: "statfs", target: target, err: err}
	}
	keep := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME | unix.MS_NOATIME | unix.MS_NODIRATIME)
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|keep, ""); err != nil {
		return &mountError{op: "remount read-only", target: target, err: err}
	}
	return nil
}

// mountEtc binds the generated /etc/hosts, /etc/hostname and
// /etc/resolv.conf.
func mountEtc(root string, spec *Spec) error {
	for target, source := range map[string]string{"hosts": spec.Hosts, "hostname": spec.HostnameFile, "resolv.conf": spec.ResolvConf} {
		if source == "" {
			continue
		}
		if err := bindFile(source, filepath.Join(root, "etc", target)); err != nil {
			return err
		}
	}
	return nil
}

// bindFile bind-mounts a host file over path in the rootfs, creating it.
// path was built by joining the rootfs and a fixed name, but the image may
// hold a symlink there (an /etc/resolv.conf pointing out of the rootfs is
// common): replace it rather than follow it.
func bindFile(source, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		if err := os.RemoveAll(path); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return mount(source, path, "", unix.MS_BIND, "")
}

// mountVolumes binds the container's volumes. Targets are resolved inside
// the rootfs: a symlink in the image cannot send a mount to the host.
func mountVolumes(root string, spec *Spec) error {
	for _, m := range spec.Mounts {
		target, err := secureJoin(root, m.Target)
		if err != nil {
			return err
		}
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("bind %s: %w", m.Source, err)
		}
		if fi.IsDir() {
			err = os.MkdirAll(target, 0o755)
		} else {
			err = bindTargetFile(target)
		}
		if err != nil {
			return fmt.Errorf("bind %s: %w", m.Target, err)
		}
		if err := mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if m.ReadOnly {
			if err := remountReadOnly(target); err != nil {
				return err
			}
		}
	}
	return nil
}

func bindTargetFile(target string) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// secureJoin resolves path inside root as if root were "/": symlinks in
// the image resolve against root, and ".." stops at it.
func secureJoin(root, path string) (string, error) {
	cur := root
	parts := strings.Split(filepath.Clean("/"+path), "/")
	for links := 0; len(parts) > 0; {
		p := parts[0]
		parts = parts[1:]
		if p == "" || p == "." {
			continue
		}
		if p == ".." {
			if cur != root {
				cur = filepath.Dir(cur)
			}
			continue
		}
		next := filepath.Join(cur, p)
		fi, err := os.Lstat(next)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("resolve %s: too many symlinks", path)
		}
		dest, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(dest) {
			cur = root
		}
		parts = append(strings.Split(dest, "/"), parts...)
	}
	return cur, nil
}

// pivotRoot makes root the root of the mount namespace and detaches the
// old one, as runc does without a temporary folder: pivot_root(".", ".")
// stacks the old root on the new one, which is then unmounted lazily.
func pivotRoot(root string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", root, err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// maskedPaths and readonlyPaths are runc's defaults: kernel interfaces a
// container must not read or change.
var (
	maskedPaths   = []string{"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

func maskProc() error {
	for _, p := range maskedPaths {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil && !errors.Is(err, unix.EROFS) { // /sys is read-only already
			return &mountError{op: "mask", target: p, err: err}
		}
	}
	for _, p := range readonlyPaths {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return &mountError{op: "bind", target: p, err: err}
		}
		if err := remountReadOnly(p); err != nil {
			return err
		}
	}
	return nil
}
