package layers

import (
	"archive/tar"
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// unpackMaxID is the largest owner id a tar may record; 2^32-1 is the
// kernel's "unchanged" (-1) and would silently skip the chown.
const unpackMaxID = 1<<32 - 2

func unpackOwner(hdr *tar.Header) (uid, gid int, err error) {
	if hdr.Uid < 0 || hdr.Uid > unpackMaxID || hdr.Gid < 0 || hdr.Gid > unpackMaxID {
		return 0, 0, fmt.Errorf("invalid owner %d:%d", hdr.Uid, hdr.Gid)
	}
	return hdr.Uid, hdr.Gid, nil
}

// unpackFileMode is a non-directory's permission bits without setuid and
// setgid (see Unpack's doc comment).
func unpackFileMode(hdr *tar.Header) uint32 {
	return uint32(hdr.Mode) & 0o7777 &^ (unix.S_ISUID | unix.S_ISGID)
}

// chown filters a chown error: EPERM (no CAP_CHOWN, or outside a user
// namespace) and EINVAL (id not mapped in this user namespace) are dropped
// when the caller asked for it.
func (u *unpacker) chown(err error) error {
	if err != nil && u.opts.IgnoreChownErrors && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL)) {
		return nil
	}
	return err
}

// fileMeta sets a regular file's owner, mode and xattrs, in that order:
// chown clears security.capability, so xattrs come last.
func (u *unpacker) fileMeta(fd int, hdr *tar.Header, uid, gid int) error {
	if err := u.chown(unix.Fchown(fd, uid, gid)); err != nil {
		return fmt.Errorf("chown to %d:%d: %w", uid, gid, err)
	}
	if err := unix.Fchmod(fd, unpackFileMode(hdr)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return u.setXattrs(fd, hdr)
}

// unpackXattrAllowed is the allow-list for xattrs taken from a layer.
// overlay's own attributes are never taken: a layer that carried
// user.overlay.opaque, .redirect or .metacopy could steer the mount
// (containers/storage drops them too). trusted.* and security.* need
// privilege we do not have and mean nothing in a rootless store, except
// file capabilities, which the kernel namespaces (v3 caps).
func unpackXattrAllowed(name string) bool {
	switch {
	case strings.HasPrefix(name, "user.overlay."):
		return false
	case strings.HasPrefix(name, "user."):
		return true
	}
	switch name {
	case "security.capability", "system.posix_acl_access", "system.posix_acl_default":
		return true
	}
	return false
}

// setXattrs applies the allowed SCHILY.xattr.* PAX records to fd.
func (u *unpacker) setXattrs(fd int, hdr *tar.Header) error {
	for key, value := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(key, "SCHILY.xattr.")
		if !ok || !unpackXattrAllowed(name) {
			continue
		}
		err := unix.Fsetxattr(fd, name, []byte(value), 0)
		switch {
		case err == nil, errors.Is(err, unix.ENOTSUP):
			// ENOTSUP: the store's filesystem has no xattrs of this kind.
		case u.opts.IgnoreChownErrors && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL)):
			// Capabilities and ACLs name owners this mapping lacks.
		default:
			return fmt.Errorf("setxattr %q: %w", name, err)
		}
	}
	return nil
}

func unpackTimespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

func unpackTimes(hdr *tar.Header) []unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return []unix.Timespec{unpackTimespec(atime), unpackTimespec(hdr.ModTime)}
}

// unpackUtimes sets base's times without following a symlink.
func unpackUtimes(dirfd int, base string, hdr *tar.Header) error {
	if err := unix.UtimesNanoAt(dirfd, base, unpackTimes(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// finishDirs applies directories' metadata once their contents exist:
// children before parents, so a parent's final mode (0555, 0000) never
// blocks work below it and no later entry bumps a finished mtime.
func (u *unpacker) finishDirs() error {
	names := make([]string, 0, len(u.dirs))
	for name := range u.dirs {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(unpackDepth(b), unpackDepth(a)), strings.Compare(a, b))
	})
	for _, name := range names {
		if err := u.finishDir(name, u.dirs[name]); err != nil {
			return fmt.Errorf("unpack %s: %w", unpackQuote(name), err)
		}
	}
	return nil
}

func (u *unpacker) finishDir(name string, hdr *tar.Header) error {
	uid, gid, err := unpackOwner(hdr)
	if err != nil {
		return err
	}
	var fd int
	if name == "." {
		f, err := u.openDir(".")
		if err != nil {
			return err
		}
		defer f.Close()
		fd = int(f.Fd())
	} else {
		pfd, err := u.existing(path.Dir(name))
		if err == nil {
			fd, err = unix.Openat(pfd, path.Base(name), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			// A later entry replaced it, reached through another path
			// (a symlink inside the layer) than forgetDirs could see.
			return nil
		}
		if err != nil {
			return fmt.Errorf("open directory: %w", err)
		}
		defer unix.Close(fd)
	}
	if err := u.chown(unix.Fchown(fd, uid, gid)); err != nil {
		return fmt.Errorf("chown to %d:%d: %w", uid, gid, err)
	}
	if err := u.setXattrs(fd, hdr); err != nil {
		return err
	}
	// "." names the directory itself; resolving it needs search permission,
	// so times go before the final mode.
	if err := unix.UtimesNanoAt(fd, ".", unpackTimes(hdr), 0); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode)&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}
