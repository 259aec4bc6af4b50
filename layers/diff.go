package layers

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// WriteUpper stores an overlay upper folder (what a run step or a
// container changed) as a layer, converting overlay's format back to
// OCI's: a 0/0 character device becomes a ".wh.NAME" whiteout, a folder
// marked user.overlay.opaque gets a ".wh..wh..opq" entry, and overlay's
// own xattrs are dropped. Entries are sorted and timestamps set to
// SOURCE_DATE_EPOCH (or 0), so the same changes give the same layer. The
// caller must be able to read every file (uid 0 in nook's user namespace).
// Paths in skip (slash-separated, relative) are left out.
func (s *Store) WriteUpper(upper string, skip ...string) (LayerDesc, error) {
	w, err := s.NewBlob()
	if err != nil {
		return LayerDesc{}, err
	}
	if err := writeUpperTar(w, upper, sourceDateEpoch(), skip); err != nil {
		w.Abort()
		return LayerDesc{}, fmt.Errorf("write layer from %s: %w", upper, err)
	}
	d, n, err := w.Commit()
	return LayerDesc{Digest: d, Size: n}, err
}

func writeUpperTar(w io.Writer, upper string, mtime int64, skip []string) error {
	var paths []string
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != upper {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{} // (dev, ino) -> first name, for hard links
	buf := copyBuf.Get().(*[]byte)
	defer copyBuf.Put(buf)
	for _, p := range paths {
		rel := filepath.ToSlash(strings.TrimPrefix(p, upper+"/"))
		if slices.Contains(skip, rel) {
			continue
		}
		if err := writeUpperEntry(tw, p, rel, mtime, links, *buf); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
	}
	return tw.Close()
}

func writeUpperEntry(tw *tar.Writer, p, rel string, mtime int64, links map[[2]uint64]string, buf []byte) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	dir, base := path2(rel)
	if fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0 {
		return tw.WriteHeader(&tar.Header{Name: dir + ".wh." + base, Typeflag: tar.TypeReg, ModTime: unixTime(mtime), Format: tar.FormatPAX})
	}
	hdr, err := tar.FileInfoHeader(fi, "")
	if err != nil {
		return err
	}
	hdr.Name, hdr.Uname, hdr.Gname = rel, "", ""
	hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = unixTime(mtime), time.Time{}, time.Time{}
	hdr.Format = tar.FormatPAX
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		if hdr.Linkname, err = os.Readlink(p); err != nil {
			return err
		}
	case fi.IsDir():
		hdr.Name += "/"
	case fi.Mode().IsRegular() && st.Nlink > 1:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := links[key]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		} else {
			links[key] = rel
		}
	}
	hdr.PAXRecords = keptXattrs(p)
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if fi.IsDir() && isOpaque(p) {
		if err := tw.WriteHeader(&tar.Header{Name: rel + "/.wh..wh..opq", Typeflag: tar.TypeReg, ModTime: unixTime(mtime), Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
	return err
}

func path2(rel string) (dir, base string) {
	i := strings.LastIndex(rel, "/")
	return rel[:i+1], rel[i+1:]
}

func isOpaque(p string) bool {
	var v [1]byte
	n, err := unix.Lgetxattr(p, "user.overlay.opaque", v[:])
	return err == nil && n == 1 && v[0] == 'y'
}

// keptXattrs returns the extended attributes a layer keeps, as PAX
// records: not overlay's bookkeeping, which would forge metadata in
// whoever unpacks the layer.
func keptXattrs(p string) map[string]string {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size <= 0 {
		return nil
	}
	names := make([]byte, size)
	if size, err = unix.Llistxattr(p, names); err != nil {
		return nil
	}
	var out map[string]string
	for _, name := range strings.Split(strings.TrimRight(string(names[:size]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "user.overlay.") || strings.HasPrefix(name, "trusted.") {
			continue
		}
		val := make([]byte, 64<<10)
		n, err := unix.Lgetxattr(p, name, val)
		if errors.Is(err, unix.ERANGE) || err != nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out["SCHILY.xattr."+name] = string(val[:n])
	}
	return out
}
