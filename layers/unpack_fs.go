package layers

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// unpacker holds one Unpack call's state. Every path is resolved by root
// (os.Root: openat per component, symlinks followed only while they stay
// inside, absolute symlinks refused). The *at syscalls that os.Root lacks
// (mknod, xattrs, no-follow utimes, linkat without following) then act on
// a single name inside a directory fd obtained from root, never on a path
// string joined onto dir.
type unpacker struct {
	root *os.Root
	opts UnpackOptions
	buf  []byte

	// dirs holds the last header seen for each directory; their owners,
	// xattrs, mtimes and modes are applied after all entries (finishDirs).
	dirs map[string]*tar.Header
	// skipped holds device entries that were not created, so hardlinks to
	// them are skipped too instead of failing.
	skipped map[string]bool
	// size is the sum of regular files' sizes so far.
	size int64

	// One cached parent directory: tar writers emit a directory's entries
	// together, so most entries reuse the previous entry's parent. Any
	// removal invalidates it, since a removed symlink or directory could be
	// a component of the cached path.
	pname  string
	pdir   *os.File
	pvalid bool
}

func newUnpacker(root *os.Root, opts UnpackOptions, buf []byte) *unpacker {
	return &unpacker{root: root, opts: opts, buf: buf, dirs: map[string]*tar.Header{}, skipped: map[string]bool{}}
}

func (u *unpacker) close() {
	if u.pdir != nil {
		u.pdir.Close()
		u.pdir = nil
	}
	u.pvalid = false
}

// parent returns a directory fd for rel, creating missing directories. The
// fd stays valid until the next parent or existing call.
func (u *unpacker) parent(rel string) (int, error) { return u.dirFD(rel, true) }

// existing is parent without creating anything.
func (u *unpacker) existing(rel string) (int, error) { return u.dirFD(rel, false) }

func (u *unpacker) dirFD(rel string, create bool) (int, error) {
	if u.pvalid && u.pname == rel {
		return int(u.pdir.Fd()), nil
	}
	u.close()
	f, err := u.openDir(rel)
	if create && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
		if err := u.mkdirAll(rel); err != nil {
			return -1, err
		}
		u.close() // mkdirAll may have cached a directory of its own
		f, err = u.openDir(rel)
	}
	if err != nil {
		return -1, err
	}
	u.pname, u.pdir, u.pvalid = rel, f, true
	return int(f.Fd()), nil
}

func (u *unpacker) openDir(rel string) (*os.File, error) {
	return u.root.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY, 0)
}

// mkdirAll creates the missing directories of rel with mode 0755 (tar -x
// does the same for parents a layer does not list). A whiteout on the way
// means an earlier entry deleted the lower layers' directory and a later
// one puts files back under that name: it becomes an opaque directory, as
// overlayfs itself would record it.
func (u *unpacker) mkdirAll(rel string) error {
	u.pvalid = false
	var p string
	for c := range strings.SplitSeq(rel, "/") {
		if p == "" {
			p = c
		} else {
			p += "/" + c
		}
		fi, err := u.root.Lstat(p)
		switch {
		case err == nil && (fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0):
			continue // a symlink is followed by root, inside the layer only
		case err == nil && unpackIsWhiteoutInfo(fi):
			if err := u.root.Remove(p); err != nil {
				return fmt.Errorf("replace whiteout %q with a directory: %w", p, err)
			}
			if err := u.mkdir1(p); err != nil {
				return err
			}
			if err := u.setOpaque(p); err != nil {
				return err
			}
		case err == nil:
			return fmt.Errorf("create parent %q: %w", p, syscall.ENOTDIR)
		case errors.Is(err, fs.ErrNotExist):
			if err := u.mkdir1(p); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return nil
}

func (u *unpacker) mkdir1(p string) error {
	if err := u.root.Mkdir(p, 0o755); err != nil {
		return fmt.Errorf("create parent: %w", err)
	}
	return u.root.Chmod(p, 0o755) // undo the umask
}

// setOpaque marks directory rel opaque for overlayfs mounted with userxattr.
func (u *unpacker) setOpaque(rel string) error {
	fd, err := u.parent(rel)
	if err != nil {
		return err
	}
	if err := unix.Fsetxattr(fd, "user.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("mark %q opaque: setxattr user.overlay.opaque: %w", rel, err)
	}
	return nil
}

// clear makes room for a new entry base in directory pfd (name is its full
// in-root path). An existing directory is kept when dir is true (tar merges
// directories) and otherwise removed with its tree; anything else is
// unlinked, never followed. It reports whether a directory was kept and
// whether a whiteout was replaced.
func (u *unpacker) clear(pfd int, name, base string, dir bool) (kept, whiteout bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, false, nil
		}
		return false, false, fmt.Errorf("stat existing entry: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if dir {
			return true, false, nil
		}
		u.pvalid = false
		u.forgetDirs(name)
		// The tree is removed through fds by os.Root; its parent is
		// resolved again, but inside the layer like everything else.
		if err := u.root.RemoveAll(name); err != nil {
			return false, false, fmt.Errorf("replace directory: %w", err)
		}
		return false, false, nil
	}
	u.pvalid = false
	if err := unix.Unlinkat(pfd, base, 0); err != nil {
		return false, false, fmt.Errorf("replace existing entry: %w", err)
	}
	return false, unpackIsWhiteout(&st), nil
}

// forgetDirs drops pending directory metadata for name and its subtree.
func (u *unpacker) forgetDirs(name string) {
	delete(u.dirs, name)
	prefix := name + "/"
	for d := range u.dirs {
		if strings.HasPrefix(d, prefix) {
			delete(u.dirs, d)
		}
	}
}

func unpackIsWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func unpackIsWhiteoutInfo(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0
}
