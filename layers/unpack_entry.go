package layers

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// entry applies one tar header; r yields a regular file's content.
func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX defaults; Go's reader does not apply them and neither do we
	}
	name, err := unpackCleanName(hdr.Name)
	if err != nil {
		return err
	}
	kind, target, err := unpackWhiteout(name)
	if err != nil {
		return err
	}
	parent, base := path.Dir(name), path.Base(name)
	switch kind {
	case "meta":
		return nil
	case "opaque":
		return u.setOpaque(parent)
	case "whiteout":
		return u.whiteout(parent, target)
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: replaces the layer root", ErrUnsafeEntry)
		}
		u.dirs[name] = hdr
		return nil
	}
	if hdr.Typeflag != tar.TypeChar && hdr.Typeflag != tar.TypeBlock {
		delete(u.skipped, name)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		return u.file(hdr, r, name, parent, base)
	case tar.TypeDir:
		return u.dir(hdr, name, parent, base)
	case tar.TypeSymlink:
		return u.symlink(hdr, name, parent, base)
	case tar.TypeLink:
		return u.hardlink(hdr, name, parent, base)
	case tar.TypeFifo:
		return u.fifo(hdr, name, parent, base)
	case tar.TypeChar, tar.TypeBlock:
		// Skipped: mknod of a real device needs CAP_MKNOD in the initial
		// user namespace, and a rootless container could not open one.
		u.skipped[name] = true
		return nil
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
}

// place runs create; if the name is taken it clears it (keeping a
// directory when dir is true) and runs create once more.
func (u *unpacker) place(pfd int, name, base string, dir bool, create func() error) (kept, whiteout bool, err error) {
	err = create()
	if !errors.Is(err, unix.EEXIST) {
		return false, false, err
	}
	kept, whiteout, err = u.clear(pfd, name, base, dir)
	if err != nil || kept {
		return kept, whiteout, err
	}
	return false, whiteout, create()
}

func (u *unpacker) file(hdr *tar.Header, r io.Reader, name, parent, base string) error {
	if hdr.Size > u.opts.MaxSize-u.size {
		return fmt.Errorf("files larger than %d bytes in total: %w", u.opts.MaxSize, ErrUnpackLimit)
	}
	u.size += hdr.Size
	uid, gid, err := unpackOwner(hdr)
	if err != nil {
		return err
	}
	pfd, err := u.parent(parent)
	if err != nil {
		return err
	}
	fd := -1
	_, _, err = u.place(pfd, name, base, false, func() (err error) {
		// O_EXCL|O_NOFOLLOW: never open whatever an earlier entry left
		// under this name, a symlink least of all.
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return fmt.Errorf("create file: %w", err)
	}
	err = u.fill(fd, r)
	if err == nil {
		err = u.fileMeta(fd, hdr, uid, gid)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return err
	}
	return unpackUtimes(pfd, base, hdr)
}

// fill copies r to fd through the pooled buffer. A plain loop on purpose:
// io.Copy into an *os.File would take its ReaderFrom path, which for a tar
// reader falls back to a fresh 32 KiB buffer per file.
func (u *unpacker) fill(fd int, r io.Reader) error {
	for {
		n, err := r.Read(u.buf)
		for p := u.buf[:n]; len(p) > 0; {
			w, werr := unix.Write(fd, p)
			if werr == unix.EINTR {
				continue
			}
			if werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
			p = p[w:]
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read content: %w", err)
		}
	}
}

func (u *unpacker) dir(hdr *tar.Header, name, parent, base string) error {
	if _, _, err := unpackOwner(hdr); err != nil {
		return err
	}
	pfd, err := u.parent(parent)
	if err != nil {
		return err
	}
	// 0700 until finishDirs: the directory must stay writable for its
	// entries even when the tar says 0555 or 0000.
	kept, whiteout, err := u.place(pfd, name, base, true, func() error { return unix.Mkdirat(pfd, base, 0o700) })
	if err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	if !kept && whiteout {
		// Same layer: a whiteout deleted the lower directory, then the
		// directory came back. overlayfs records that as an opaque dir.
		if err := unpackSetOpaqueAt(pfd, base); err != nil {
			return err
		}
	}
	u.dirs[name] = hdr
	return nil
}

func unpackSetOpaqueAt(pfd int, base string) error {
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, "user.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("mark opaque: setxattr user.overlay.opaque: %w", err)
	}
	return nil
}

func (u *unpacker) symlink(hdr *tar.Header, name, parent, base string) error {
	if strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return fmt.Errorf("%w: symlink target contains NUL", ErrUnsafeEntry)
	}
	uid, gid, err := unpackOwner(hdr)
	if err != nil {
		return err
	}
	pfd, err := u.parent(parent)
	if err != nil {
		return err
	}
	// The target is data: it may point anywhere and is never resolved here.
	if _, _, err := u.place(pfd, name, base, false, func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) }); err != nil {
		return fmt.Errorf("create symlink: %w", err)
	}
	if err := u.chown(unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)); err != nil {
		return fmt.Errorf("chown to %d:%d: %w", uid, gid, err)
	}
	return unpackUtimes(pfd, base, hdr)
}

// hardlink links name to an earlier entry of this layer. The target is a
// member name like any other (same rules, resolved inside the root), and
// linkat without AT_SYMLINK_FOLLOW links a symlink itself, never what it
// points to. Metadata is the target's: tar -x does not apply a link's.
func (u *unpacker) hardlink(hdr *tar.Header, name, parent, base string) error {
	target, err := unpackCleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", unpackQuote(hdr.Linkname), err)
	}
	switch {
	case target == ".":
		return fmt.Errorf("%w: hardlink to the layer root", ErrUnsafeEntry)
	case target == name:
		return nil
	case u.skipped[target]:
		u.skipped[name] = true
		return nil
	}
	tdir, err := u.openDir(path.Dir(target))
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", unpackQuote(hdr.Linkname), err)
	}
	defer tdir.Close()
	tfd := int(tdir.Fd())
	pfd, err := u.parent(parent)
	if err != nil {
		return err
	}
	tbase := path.Base(target)
	if _, _, err := u.place(pfd, name, base, false, func() error { return unix.Linkat(tfd, tbase, pfd, base, 0) }); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("hardlink target %s is not in this layer: %w", unpackQuote(hdr.Linkname), err)
		}
		return fmt.Errorf("hardlink to %s: %w", unpackQuote(hdr.Linkname), err)
	}
	return nil
}

func (u *unpacker) fifo(hdr *tar.Header, name, parent, base string) error {
	uid, gid, err := unpackOwner(hdr)
	if err != nil {
		return err
	}
	pfd, err := u.parent(parent)
	if err != nil {
		return err
	}
	if _, _, err := u.place(pfd, name, base, false, func() error { return unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0) }); err != nil {
		return fmt.Errorf("create fifo: %w", err)
	}
	if err := u.chown(unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)); err != nil {
		return fmt.Errorf("chown to %d:%d: %w", uid, gid, err)
	}
	// Opening a FIFO would block, so chmod by name; base was just created
	// as a FIFO by this call and nothing else writes into the layer.
	if err := unix.Fchmodat(pfd, base, unpackFileMode(hdr), 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return unpackUtimes(pfd, base, hdr)
}

// whiteout records that target, in directory parent, is deleted from the
// lower layers. An entry already there from this layer (or an earlier
// whiteout) stays: the image spec says whiteouts only hide lower layers.
// mknod of a 0/0 character device needs no privilege since Linux 5.8.
func (u *unpacker) whiteout(parent, target string) error {
	pfd, err := u.parent(parent)
	if err != nil {
		return err
	}
	err = unix.Mknodat(pfd, target, unix.S_IFCHR, 0)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create whiteout for %q: mknod: %w", target, err)
	}
	return nil
}
