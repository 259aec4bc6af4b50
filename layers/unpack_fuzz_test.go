package layers

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// FuzzUnpack feeds Unpack tars built from the fuzz input. By default the
// input is a list of records (type, name, link target, mode, body) drawn
// from a small alphabet full of "..", whiteout names and links that point
// at the sentinel next to the layer; an input starting with 0xff is a raw
// tar stream instead. Invariants: no panic, nothing outside the layer dir
// changes, and the layer holds no device but 0/0 whiteouts, no setuid or
// setgid file, and no non-directory named ".wh.*".
//
// Link targets that leave the arena are kept inside the test's temp dir on
// purpose: run the fuzzer as an unprivileged user all the same, so a bug
// cannot damage the host (`go test -c -fuzz`, then run the binary with su).
func FuzzUnpack(f *testing.F) {
	f.Add([]byte{2, 0, 0, 1, 9, 0, 0, 0, 3, 0})                // symlink then write through it
	f.Add([]byte{2, 1, 2, 0, 3, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5}) // symlink to sentinel, hardlink through
	f.Add([]byte{1, 0, 0, 0, 0, 0, 8, 6, 0, 0, 0, 0})          // dir, then whiteout names
	f.Add([]byte{0, 1, 3, 0, 1, 1, 5, 0, 2, 0, 1, 2, 2, 5, 0})
	for _, entries := range [][]utEntry{
		{utDir("etc", 0o755), utSymlink("localetc", "../etc"), utFile("localetc/unbroken", "broken", 0o644)},
		{utSymlink("d", ".."), utLink("l", "d/etc/passwd")},
		{utFile(".wh...", "", 0o644), utFile("a/.wh..wh..opq", "", 0o644)},
		{utDir("d", 0o555), utFile("d/f", "x", 0o4755), utFile("d", "x", 0o644)},
	} {
		f.Add(append([]byte{0xff}, utTar(f, entries...)...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := newUTArena(t)
		var tarball []byte
		if len(data) > 0 && data[0] == 0xff {
			tarball = data[1:]
		} else {
			tarball = utFuzzTar(data, a)
		}
		opts := UnpackOptions{IgnoreChownErrors: true, MaxSize: 4 << 20, MaxEntries: 512}
		_, err := Unpack(bytes.NewReader(tarball), a.root, opts)
		a.checkOutside(t)
		utCheckLayer(t, a.root)
		_ = err // errors are fine; escaping is not
	})
}

// utFuzzInput hands out the fuzz bytes one at a time, then zeros.
type utFuzzInput []byte

func (in *utFuzzInput) next() int {
	if len(*in) == 0 {
		return 0
	}
	b := (*in)[0]
	*in = (*in)[1:]
	return int(b)
}

func (in *utFuzzInput) pick(from []string) string { return from[in.next()%len(from)] }

func utFuzzTar(data []byte, a *utArena) []byte {
	in := utFuzzInput(data)
	components := []string{"a", "b", "etc", "passwd", "unbroken", "..", ".", "", ".wh.a", ".wh.etc", ".wh..wh..opq", ".wh..", ".wh...", ".wh.", ".wh..wh.plnk", "d"}
	targets := []string{"a", "b", "etc", "a/b", "..", "../..", "../etc", "../etc/passwd", "a/../..", "./a", ".", "", a.etc, a.etc + "/passwd", a.top, a.top + "/perm400", "etc/passwd", strings.Repeat("../", 20) + strings.TrimPrefix(a.etc, "/")}
	modes := []int64{0o644, 0o755, 0o4755, 0o2755, 0o000, 0o555, 0o1777, 0o600}
	types := []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar, tar.TypeBlock, tar.TypeReg, tar.TypeReg}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n := 0; len(in) > 0 && n < 64; n++ {
		op := in.next() % len(types)
		parts := make([]string, 1+in.next()%3)
		for i := range parts {
			parts[i] = in.pick(components)
		}
		name := strings.Join(parts, "/")
		switch in.next() % 8 {
		case 0:
			name = "/" + name
		case 1:
			name = "./" + name
		}
		hdr := &tar.Header{
			Typeflag: types[op], Name: name, Mode: modes[in.next()%len(modes)],
			Uid: in.next() % 3 * 1000, Gid: in.next() % 3 * 1000, Format: tar.FormatPAX,
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			hdr.Linkname = in.pick(targets)
		case tar.TypeChar, tar.TypeBlock:
			hdr.Devmajor, hdr.Devminor = int64(in.next()%2), int64(in.next()%2)
		}
		var body string
		if hdr.Typeflag == tar.TypeReg {
			body = strings.Repeat("x", in.next()%8)
			hdr.Size = int64(len(body))
			if op == 7 {
				hdr.PAXRecords = map[string]string{
					"SCHILY.xattr." + in.pick([]string{"user.overlay.opaque", "user.x", "trusted.overlay.redirect", "security.capability"}): "y",
				}
			}
		}
		if tw.WriteHeader(hdr) != nil {
			return buf.Bytes() // archive/tar refused the header: stop here
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return buf.Bytes()
}

// utCheckLayer checks what may never be in an unpacked layer.
func utCheckLayer(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable 0000 dirs as non-root
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		m := fi.Mode()
		if m&fs.ModeDevice != 0 {
			st := fi.Sys().(*syscall.Stat_t)
			if m&fs.ModeCharDevice == 0 || st.Rdev != 0 {
				t.Errorf("device node %q (rdev %#x) in the layer", p, st.Rdev)
			}
		}
		if !m.IsDir() && m&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			t.Errorf("setuid/setgid %q (%v) in the layer", p, m)
		}
		if !m.IsDir() && strings.HasPrefix(d.Name(), ".wh.") {
			t.Errorf("whiteout entry %q appears as a file", p)
		}
		if m.IsDir() && m.Perm()&0o500 != 0o500 && os.Geteuid() != 0 {
			os.Chmod(p, 0o700) // let the walk go on as non-root
		}
		return nil
	})
}
