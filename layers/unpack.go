package layers

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// UnpackOptions tunes Unpack. The zero value is right for a store owned by
// root or by a user namespace that maps a full subordinate id range.
type UnpackOptions struct {
	// IgnoreChownErrors keeps Unpack going when the kernel refuses an
	// entry's recorded owner (EPERM, or EINVAL for an id the user namespace
	// does not map) or refuses an xattr tied to ownership (security.capability,
	// POSIX ACLs). The entry then keeps the unpacking process's ids. Set it
	// for a single-id mapping (no subuid range), where other owners cannot be
	// represented.
	IgnoreChownErrors bool

	// MaxSize caps both the bytes read from the stream and the sum of the
	// regular files' sizes (a sparse entry can expand far beyond the bytes
	// it occupies in the stream). Zero means DefaultUnpackMaxSize.
	MaxSize int64

	// MaxEntries caps the number of tar headers. Zero means
	// DefaultUnpackMaxEntries.
	MaxEntries int
}

// Unpack limits. Both are guesses: the largest public image layers seen
// (CUDA and ML images) are a few tens of GB, and a full Debian with
// compilers holds around 10^5 files. They exist to stop a tar bomb from
// filling the disk or the inode table, not to police normal images.
const (
	DefaultUnpackMaxSize    int64 = 64 << 30
	DefaultUnpackMaxEntries       = 1_000_000
)

var (
	// ErrUnpackLimit is wrapped by Unpack's error when a layer exceeds
	// UnpackOptions.MaxSize or MaxEntries.
	ErrUnpackLimit = errors.New("layer exceeds unpack limit")

	// ErrUnsafeEntry is wrapped by Unpack's error when an entry's name or
	// hardlink target could reach outside the layer (absolute, "..", NUL,
	// too long), or when an entry would replace the layer root.
	ErrUnsafeEntry = errors.New("unsafe layer entry")
)

// unpackBufPool holds the 1 MiB copy buffers; one is taken per Unpack call.
var unpackBufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// Unpack extracts the uncompressed layer tar read from r into dir, which
// must exist and be empty. It returns the digest ("sha256:<hex>") of every
// byte read from r, including padding after the end-of-archive marker, so
// callers can check it against the layer's diff_id before using dir.
//
// The result is an overlayfs lower directory for a mount with -o userxattr:
// an OCI whiteout "a/.wh.NAME" becomes a 0/0 character device "a/NAME"
// (unless "a/NAME" is itself in this layer: whiteouts hide lower layers
// only), and "a/.wh..wh..opq" sets user.overlay.opaque=y on "a". Whiteout
// entries never appear as files, and AUFS metadata (".wh..wh.*") is skipped.
//
// Regular files, directories, symlinks, hardlinks (to entries earlier in
// the same layer) and FIFOs are created. Device nodes other than whiteouts
// are skipped: a rootless container cannot use them. Setuid and setgid bits
// are stripped from regular files and FIFOs (directories keep setgid): nook
// is a development tool and never needs privilege-raising binaries in its
// store. Owners are set as recorded (see IgnoreChownErrors); modes and
// mtimes as recorded, directories' after their contents. Xattrs come from
// PAX SCHILY.xattr.* records on files and directories, allowing only user.*,
// security.capability and system.posix_acl_*, and never user.overlay.*, so
// a tar cannot forge overlay metadata; filesystems without xattr support
// drop them silently.
//
// Nothing is written outside dir. Names and hardlink targets that are
// absolute, contain "..", NUL or over-long components are refused with
// ErrUnsafeEntry. Symlinks are data and may point anywhere, but paths are
// resolved through an os.Root, so a later entry that would be written
// through a symlink leading out of dir (or through an absolute symlink)
// fails. A later entry with the same name replaces the earlier one, as tar
// does; a non-directory replacing a directory removes the directory's tree.
//
// Unpack stops at the first error and leaves dir partly written; the caller
// removes it. It does not fsync: the caller renames the finished dir into
// place and syncs once. It neither closes r nor reads past a failure.
// Concurrent calls on different dirs are safe.
func Unpack(r io.Reader, dir string, opts UnpackOptions) (digest string, err error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultUnpackMaxSize
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultUnpackMaxEntries
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("unpack layer: %w", err)
	}
	defer root.Close()
	if err := unpackCheckEmpty(root, dir); err != nil {
		return "", err
	}

	bp := unpackBufPool.Get().(*[]byte)
	defer unpackBufPool.Put(bp)
	u := newUnpacker(root, opts, *bp)
	defer u.close()

	h := newUnpackHasher()
	defer h.Sum() // stops its goroutine on every path
	counted := &unpackCounter{r: r, max: opts.MaxSize}
	// bufio saves a read(2) per 512-byte header on file and pipe readers;
	// its read-ahead is still hashed, and drained below.
	src := bufio.NewReaderSize(io.TeeReader(counted, h), 64<<10)
	tr := tar.NewReader(src)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("unpack layer: read entry %d: %w", n+1, err)
		}
		if n >= opts.MaxEntries {
			return "", fmt.Errorf("unpack layer: more than %d entries: %w", opts.MaxEntries, ErrUnpackLimit)
		}
		if err := u.entry(hdr, tr); err != nil {
			return "", fmt.Errorf("unpack %s: %w", unpackQuote(hdr.Name), err)
		}
	}
	if err := u.finishDirs(); err != nil {
		return "", err
	}
	if err := unpackDrain(src, u.buf); err != nil {
		return "", fmt.Errorf("unpack layer: %w", err)
	}
	return h.Sum(), nil
}

func unpackCheckEmpty(root *os.Root, dir string) error {
	f, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("unpack layer: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return fmt.Errorf("unpack layer: read %q: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("unpack layer: %q is not empty", dir)
	}
	return nil
}

// unpackDrain reads r to the end so the digest covers the whole stream.
// Go's tar reader stops at the end-of-archive marker; what follows may only
// be zero padding (tar pads to its record size). Anything else means two
// streams were glued together or the tar is corrupt.
func unpackDrain(r io.Reader, buf []byte) error {
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return errors.New("non-zero data after the end of the archive")
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// unpackCounter fails reads once more than max bytes came from r.
type unpackCounter struct {
	r      io.Reader
	n, max int64
}

func (c *unpackCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, fmt.Errorf("stream longer than %d bytes: %w", c.max, ErrUnpackLimit)
	}
	return n, err
}
