package layers

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// utEntry is one tar member for tests: a header and, for regular files,
// the body.
type utEntry struct {
	hdr  tar.Header
	body string
}

var utTime = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)

func utOwner(h tar.Header) tar.Header {
	h.Uid, h.Gid = os.Getuid(), os.Getgid()
	h.ModTime = utTime
	h.Format = tar.FormatPAX // sub-second mtimes and xattrs
	return h
}

func utDir(name string, mode int64) utEntry {
	return utEntry{hdr: utOwner(tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode})}
}

func utFile(name, body string, mode int64) utEntry {
	return utEntry{hdr: utOwner(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}), body: body}
}

func utSymlink(name, target string) utEntry {
	return utEntry{hdr: utOwner(tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})}
}

func utLink(name, target string) utEntry {
	return utEntry{hdr: utOwner(tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644})}
}

func utFifo(name string, mode int64) utEntry {
	return utEntry{hdr: utOwner(tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: mode})}
}

func utDev(name string, typ byte, major, minor int64) utEntry {
	return utEntry{hdr: utOwner(tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor})}
}

func utXattrs(e utEntry, kv ...string) utEntry {
	e.hdr.PAXRecords = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		e.hdr.PAXRecords["SCHILY.xattr."+kv[i]] = kv[i+1]
	}
	return e
}

// utTar writes entries as a tar stream.
func utTar(t testing.TB, entries ...utEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write tar header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatalf("write tar body %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func utDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// utOpts is what a caller on this machine would pass: ownership can only
// be kept as root.
func utOpts() UnpackOptions {
	return UnpackOptions{IgnoreChownErrors: os.Geteuid() != 0}
}

// utNode is what a snapshot records of one path.
type utNode struct {
	Mode  fs.FileMode
	Size  int64
	MTime time.Time
	Ino   uint64
	Link  string
	Data  string
	Xattr string
}

// utSnapshot records every path under top except the skip subtree.
func utSnapshot(t testing.TB, top, skip string) map[string]utNode {
	t.Helper()
	out := map[string]utNode{}
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n := utNode{Mode: fi.Mode(), Size: fi.Size(), MTime: fi.ModTime(), Ino: fi.Sys().(*syscall.Stat_t).Ino}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			n.Link, _ = os.Readlink(p)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Data = string(b)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			buf := make([]byte, 256)
			if k, err := unix.Llistxattr(p, buf); err == nil {
				n.Xattr = string(buf[:k])
			}
		}
		rel, _ := filepath.Rel(top, p)
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", top, err)
	}
	return out
}

// utArena is a temp dir holding the layer dir "root" and, next to it, a
// sentinel "etc" with known files that no tar may change.
type utArena struct {
	top, root, etc string
	before         map[string]utNode
}

func newUTArena(t testing.TB) *utArena {
	t.Helper()
	top := t.TempDir()
	a := &utArena{top: top, root: filepath.Join(top, "root"), etc: filepath.Join(top, "etc")}
	for _, d := range []string{a.root, a.etc} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{"unbroken": "unbroken", "passwd": "outside", "emptied": "notempty", "whitedout": "still here"} {
		if err := os.WriteFile(filepath.Join(a.etc, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(top, "perm400"), []byte("..."), 0o400); err != nil {
		t.Fatal(err)
	}
	a.before = utSnapshot(t, top, a.root)
	// Layers may hold 0555 and 0000 directories; as a non-root user the
	// TempDir cleanup (which runs after this one) could not remove them.
	t.Cleanup(func() { utMakeRemovable(a.root) })
	return a
}

// checkOutside fails the test if anything outside root changed.
func (a *utArena) checkOutside(t testing.TB) {
	t.Helper()
	if diff := cmp.Diff(a.before, utSnapshot(t, a.top, a.root)); diff != "" {
		t.Errorf("files outside the layer dir changed (-before +after):\n%s", diff)
	}
}

// utWhiteoutsWork reports whether this process may create a 0/0 whiteout
// and set user.* xattrs here, and if not, why.
func utWhiteoutsWork(t testing.TB) (bool, string) {
	dir := t.TempDir()
	if err := unix.Mknod(filepath.Join(dir, "w"), unix.S_IFCHR, 0); err != nil {
		return false, "mknod of a 0/0 whiteout is not permitted here (needs Linux 5.8+): " + err.Error()
	}
	if err := unix.Setxattr(dir, "user.overlay.opaque", []byte("y"), 0); err != nil {
		return false, "user.* xattrs are not supported on " + dir + ": " + err.Error()
	}
	return true, ""
}

func utLgetxattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func utIsWhiteout(t testing.TB, p string) bool {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false
		}
		t.Fatal(err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func utMakeRemovable(root string) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
}
