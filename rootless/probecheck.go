package rootless

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// checkOverlay creates dir with l (lower), u (upper), w (work) and m
// (merged) in it, mounts overlay on m with userxattr (required in a user
// namespace: trusted.* xattrs need CAP_SYS_ADMIN in the initial one), writes
// and deletes through m and checks what lands in u: the new file, and a
// whiteout (char 0/0) for the deleted lower file. It unmounts m but leaves
// the directories for the caller to inspect. Run it inside the namespace.
func checkOverlay(dir string) error {
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "l", "old"), []byte("lower"), 0o644); err != nil {
		return err
	}
	// Relative paths after a chdir keep the options short and free of the
	// commas and colons an absolute dir may contain (containers/storage does
	// the same). The chdir is process-wide: fine in a probe child.
	if err := os.Chdir(dir); err != nil {
		return err
	}
	if err := unix.Mount("overlay", "m", "overlay", 0, "lowerdir=l,upperdir=u,workdir=w,userxattr"); err != nil {
		return fmt.Errorf("mount overlay with userxattr: %w", err)
	}
	mounted := true
	defer func() {
		if mounted {
			unix.Unmount("m", unix.MNT_DETACH)
		}
	}()
	if err := os.WriteFile("m/new", []byte("upper"), 0o644); err != nil {
		return fmt.Errorf("write through overlay: %w", err)
	}
	if err := os.Remove("m/old"); err != nil {
		return fmt.Errorf("delete through overlay: %w", err)
	}
	if err := unix.Unmount("m", 0); err != nil {
		return fmt.Errorf("unmount overlay: %w", err)
	}
	mounted = false
	if b, err := os.ReadFile("u/new"); err != nil || !bytes.Equal(b, []byte("upper")) {
		return fmt.Errorf("write through overlay did not land in the upper dir: read u/new = %q, %v", b, err)
	}
	if _, err := os.Lstat("l/new"); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write through overlay reached the lower dir: lstat l/new: %v", err)
	}
	if err := isWhiteout("u/old"); err != nil {
		return fmt.Errorf("delete through overlay: %w", err)
	}
	return nil
}

// checkWhiteout makes an overlay whiteout, a char device 0/0, at path and
// removes it. Unprivileged processes may create exactly this device since
// Linux 5.8 (vfs: allow unprivileged whiteout creation); nook unpacks
// image layers that way.
func checkWhiteout(path string) error {
	if err := unix.Mknod(path, unix.S_IFCHR|0o600, 0); err != nil {
		return fmt.Errorf("mknod whiteout: %w", err)
	}
	defer os.Remove(path)
	return isWhiteout(path)
}

func isWhiteout(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("no whiteout: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		return fmt.Errorf("no whiteout: %s has mode %#o, rdev %d; want a char device 0/0", path, st.Mode, st.Rdev)
	}
	return nil
}
