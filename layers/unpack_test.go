package layers

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestUnpackImageTree(t *testing.T) {
	uid, gid := os.Getuid(), os.Getgid()
	owned := os.Geteuid() == 0
	hosts := utFile("etc/hosts", "127.0.0.1 localhost\n", 0o644)
	if owned {
		hosts.hdr.Uid, hosts.hdr.Gid = 1000, 2000
	}
	sudo := utFile("usr/bin/sudo", "#!/bin/sh\n", 0o4755)
	sudo.hdr.Typeflag = '\x00' // old-style regular file
	wall := utFile("usr/bin/wall", "x", 0o2755)
	shared := utDir("srv/shared", 0o2775) // setgid directories keep the bit
	note := utXattrs(utFile("usr/share/note", "n", 0o644),
		"user.note", "hello",
		"user.overlay.opaque", "y", // forged overlay metadata: dropped
		"trusted.overlay.redirect", "/x",
		"security.selinux", "system_u:object_r:etc_t:s0")
	tarball := utTar(t,
		utDir("./", 0o755),
		utDir("etc/", 0o750),
		hosts,
		utLink("etc/hosts.allow", "etc/hosts"),
		utDir("usr/bin", 0o755), // parent usr/ not listed
		sudo,
		wall,
		utSymlink("usr/bin/sh", "busybox"),
		utSymlink("usr/bin/abs", "/etc/hosts"),
		note,
		utDir("ro", 0o555),
		utFile("ro/file", "read only", 0o444),
		utDir("ro/sub", 0o500),
		shared,
		utFifo("run/initctl", 0o620),
		utDev("dev/null", tar.TypeChar, 1, 3),
		utDev("dev/sda", tar.TypeBlock, 8, 0),
		utLink("dev/null-again", "dev/null"),
	)
	a := newUTArena(t)
	digest, err := Unpack(bytes.NewReader(tarball), a.root, utOpts())
	if err != nil {
		t.Fatalf("Unpack = %v", err)
	}
	if want := utDigest(tarball); digest != want {
		t.Errorf("Unpack digest = %s, want %s", digest, want)
	}
	a.checkOutside(t)

	type want struct {
		mode fs.FileMode
		data string
		link string
	}
	wants := map[string]want{
		".":               {mode: fs.ModeDir | 0o755},
		"etc":             {mode: fs.ModeDir | 0o750},
		"etc/hosts":       {mode: 0o644, data: "127.0.0.1 localhost\n"},
		"etc/hosts.allow": {mode: 0o644, data: "127.0.0.1 localhost\n"},
		"usr":             {mode: fs.ModeDir | 0o755},
		"usr/bin":         {mode: fs.ModeDir | 0o755},
		"usr/bin/sudo":    {mode: 0o755, data: "#!/bin/sh\n"}, // setuid stripped
		"usr/bin/wall":    {mode: 0o755, data: "x"},           // setgid stripped
		"usr/bin/sh":      {mode: fs.ModeSymlink | 0o777, link: "busybox"},
		"usr/bin/abs":     {mode: fs.ModeSymlink | 0o777, link: "/etc/hosts"},
		"usr/share":       {mode: fs.ModeDir | 0o755},
		"usr/share/note":  {mode: 0o644, data: "n"},
		"ro":              {mode: fs.ModeDir | 0o555},
		"ro/file":         {mode: 0o444, data: "read only"},
		"ro/sub":          {mode: fs.ModeDir | 0o500},
		"srv":             {mode: fs.ModeDir | 0o755},
		"srv/shared":      {mode: fs.ModeDir | fs.ModeSetgid | 0o775},
		"run":             {mode: fs.ModeDir | 0o755},
		"run/initctl":     {mode: fs.ModeNamedPipe | 0o620},
	}
	got := map[string]bool{}
	err = filepath.WalkDir(a.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a.root, p)
		got[rel] = true
		w, ok := wants[rel]
		if !ok {
			t.Errorf("unexpected %q in the layer", rel)
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode() != w.mode {
			t.Errorf("mode of %q = %v, want %v", rel, fi.Mode(), w.mode)
		}
		if fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); string(b) != w.data {
				t.Errorf("content of %q = %q, want %q", rel, b, w.data)
			}
		}
		if w.link != "" {
			if l, _ := os.Readlink(p); l != w.link {
				t.Errorf("symlink %q -> %q, want %q", rel, l, w.link)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel := range wants {
		if !got[rel] {
			t.Errorf("%q missing from the layer", rel)
		}
	}

	// Times: every entry the tar lists carries utTime to the nanosecond,
	// directories included (they are finished after their contents).
	for _, rel := range []string{".", "etc", "etc/hosts", "usr/bin", "usr/bin/sh", "ro", "ro/file", "run/initctl"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(a.root, rel), &st); err != nil {
			t.Fatal(err)
		}
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(utTime) {
			t.Errorf("mtime of %q = %v, want %v", rel, got, utTime)
		}
	}

	// Hardlinks share the inode.
	fa, _ := os.Stat(filepath.Join(a.root, "etc/hosts"))
	fb, _ := os.Stat(filepath.Join(a.root, "etc/hosts.allow"))
	if !os.SameFile(fa, fb) {
		t.Errorf("etc/hosts.allow is not a hardlink of etc/hosts")
	}

	// Owners: only root can give files away; otherwise everything is ours.
	wantUID, wantGID := uid, gid
	if owned {
		wantUID, wantGID = 1000, 2000
	}
	st := fa.Sys().(*syscall.Stat_t)
	if int(st.Uid) != wantUID || int(st.Gid) != wantGID {
		t.Errorf("owner of etc/hosts = %d:%d, want %d:%d", st.Uid, st.Gid, wantUID, wantGID)
	}

	// Xattrs: user.* kept, overlay/trusted/security dropped.
	notePath := filepath.Join(a.root, "usr/share/note")
	if v, err := utLgetxattr(notePath, "user.note"); err != nil || v != "hello" {
		t.Errorf("user.note on usr/share/note = %q, %v; want \"hello\"", v, err)
	}
	for _, name := range []string{"user.overlay.opaque", "trusted.overlay.redirect", "security.selinux"} {
		if v, err := utLgetxattr(notePath, name); !errors.Is(err, unix.ENODATA) {
			t.Errorf("%s on usr/share/note = %q, %v; want ENODATA", name, v, err)
		}
	}
}

func TestUnpackWhiteoutsForOverlay(t *testing.T) {
	if ok, why := utWhiteoutsWork(t); !ok {
		t.Skip(why)
	}
	tarball := utTar(t,
		utDir("a", 0o755),
		utFile("a/.wh.gone", "", 0o644),
		utFile("b/.wh..wh..opq", "", 0o644), // b/ not listed: created, opaque
		utDir("c", 0o755),
		utFile("c/kept", "same layer", 0o644),
		utFile("c/.wh.kept", "", 0o644), // whiteouts hide lower layers only
		utFile(".wh.d", "", 0o644),
		utFile("d/back", "x", 0o644), // deleted below, recreated here: opaque
		utFile(".wh.e", "", 0o644),
		utDir("e", 0o700),
		utFile(".wh..wh.plnk/123.456", "aufs", 0o644),
		utFile("f/.wh..wh.aufs", "", 0o644),
		utXattrs(utDir("forged", 0o755), "user.overlay.opaque", "y"),
		utFile("f/late", "", 0o644),
		utFile("f/.wh..wh..opq", "", 0o644), // after its siblings
	)
	a := newUTArena(t)
	if _, err := Unpack(bytes.NewReader(tarball), a.root, utOpts()); err != nil {
		t.Fatalf("Unpack = %v", err)
	}
	a.checkOutside(t)
	p := func(rel string) string { return filepath.Join(a.root, rel) }

	for _, rel := range []string{"a/gone"} {
		if !utIsWhiteout(t, p(rel)) {
			t.Errorf("%q is not a 0/0 character device", rel)
		}
	}
	if b, err := os.ReadFile(p("c/kept")); err != nil || string(b) != "same layer" {
		t.Errorf("c/kept = %q, %v; want the same-layer file to survive its whiteout", b, err)
	}
	if b, err := os.ReadFile(p("d/back")); err != nil || string(b) != "x" {
		t.Errorf("d/back = %q, %v", b, err)
	}
	for rel, want := range map[string]string{"b": "y", "d": "y", "e": "y", "f": "y", "a": "", "c": "", "forged": ""} {
		v, err := utLgetxattr(p(rel), "user.overlay.opaque")
		if want == "" {
			if !errors.Is(err, unix.ENODATA) {
				t.Errorf("user.overlay.opaque on %q = %q, %v; want none", rel, v, err)
			}
			continue
		}
		if err != nil || v != want {
			t.Errorf("user.overlay.opaque on %q = %q, %v; want %q", rel, v, err, want)
		}
	}
	if _, err := os.Lstat(p(".wh..wh.plnk")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("AUFS metadata dir was created: %v", err)
	}
	filepath.WalkDir(a.root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".wh.") {
			t.Errorf("whiteout entry %q appears as a file", path)
		}
		return err
	})
}

func TestUnpackLaterEntryWins(t *testing.T) {
	tests := []struct {
		name    string
		entries []utEntry
		check   func(t *testing.T, root string)
	}{
		{
			name:    "FileThenFile",
			entries: []utEntry{utFile("f", "old", 0o644), utFile("f", "new", 0o600)},
			check:   utWant("f", 0o600, "new"),
		},
		{
			name:    "DirWithChildrenThenFile",
			entries: []utEntry{utDir("d", 0o755), utFile("d/child", "c", 0o644), utDir("d/sub", 0o755), utFile("d", "now a file", 0o644)},
			check:   utWant("d", 0o644, "now a file"),
		},
		{
			name:    "FileThenDir",
			entries: []utEntry{utFile("d", "file", 0o644), utDir("d", 0o750), utFile("d/x", "x", 0o644)},
			check:   utWant("d", fs.ModeDir|0o750, ""),
		},
		{
			name:    "DirThenDirMerges",
			entries: []utEntry{utDir("d", 0o700), utFile("d/a", "a", 0o644), utDir("d", 0o755), utFile("d/b", "b", 0o644)},
			check: func(t *testing.T, root string) {
				utWant("d", fs.ModeDir|0o755, "")(t, root)
				utWant("d/a", 0o644, "a")(t, root)
				utWant("d/b", 0o644, "b")(t, root)
			},
		},
		{
			name:    "SymlinkThenDir",
			entries: []utEntry{utDir("real", 0o755), utSymlink("d", "real"), utDir("d", 0o755), utFile("d/x", "x", 0o644)},
			check: func(t *testing.T, root string) {
				utWant("d", fs.ModeDir|0o755, "")(t, root)
				utWant("d/x", 0o644, "x")(t, root)
				utMissing("real/x")(t, root)
			},
		},
		{
			name:    "DirThenSymlink",
			entries: []utEntry{utDir("d", 0o755), utFile("d/x", "x", 0o644), utSymlink("d", "elsewhere")},
			check:   utWant("d", fs.ModeSymlink|0o777, ""),
		},
		{
			name:    "HardlinkThenFileLeavesTarget",
			entries: []utEntry{utFile("a", "orig", 0o644), utLink("b", "a"), utFile("b", "new", 0o644)},
			check: func(t *testing.T, root string) {
				utWant("a", 0o644, "orig")(t, root)
				utWant("b", 0o644, "new")(t, root)
			},
		},
		{
			name:    "SymlinkThenFileLeavesTarget",
			entries: []utEntry{utFile("a", "orig", 0o644), utSymlink("b", "a"), utFile("b", "new", 0o644)},
			check: func(t *testing.T, root string) {
				utWant("a", 0o644, "orig")(t, root)
				utWant("b", 0o644, "new")(t, root)
			},
		},
		{
			name:    "FifoThenFile",
			entries: []utEntry{utFifo("p", 0o644), utFile("p", "data", 0o644)},
			check:   utWant("p", 0o644, "data"),
		},
		{
			name:    "DeviceAfterFileIsSkipped",
			entries: []utEntry{utFile("n", "file", 0o644), utDev("n", tar.TypeChar, 1, 3)},
			check:   utWant("n", 0o644, "file"),
		},
		{
			name:    "LinkToItself",
			entries: []utEntry{utFile("a", "a", 0o644), utLink("a", "a")},
			check:   utWant("a", 0o644, "a"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newUTArena(t)
			if _, err := Unpack(bytes.NewReader(utTar(t, tt.entries...)), a.root, utOpts()); err != nil {
				t.Fatalf("Unpack = %v", err)
			}
			tt.check(t, a.root)
			a.checkOutside(t)
		})
	}
}

func utWant(rel string, mode fs.FileMode, data string) func(*testing.T, string) {
	return func(t *testing.T, root string) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("Lstat(%q) = %v", rel, err)
			return
		}
		if fi.Mode() != mode {
			t.Errorf("mode of %q = %v, want %v", rel, fi.Mode(), mode)
		}
		if mode.IsRegular() {
			if b, _ := os.ReadFile(filepath.Join(root, rel)); string(b) != data {
				t.Errorf("content of %q = %q, want %q", rel, b, data)
			}
		}
	}
}

func utMissing(rel string) func(*testing.T, string) {
	return func(t *testing.T, root string) {
		t.Helper()
		if _, err := os.Lstat(filepath.Join(root, rel)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lstat(%q) = %v, want not exist", rel, err)
		}
	}
}

func TestUnpackLimits(t *testing.T) {
	many := []utEntry{utDir("d", 0o755)}
	for i := range 5 {
		many = append(many, utFile("d/"+string(rune('a'+i)), "", 0o644))
	}
	var empties []utEntry // ~1.5 KiB of headers each, no content
	for i := range 100 {
		empties = append(empties, utFile(strings.Repeat("e", i+1), "", 0o644))
	}
	tests := []struct {
		name    string
		tarball []byte
		opts    UnpackOptions
		msg     string
	}{
		{"TooManyEntries", utTar(t, many...), UnpackOptions{MaxEntries: 3}, "more than 3 entries"},
		{"StreamTooLong", utTar(t, empties...), UnpackOptions{MaxSize: 64 << 10}, "stream longer than 65536 bytes"},
		{"FilesTooLargeInTotal", utTar(t, utFile("a", strings.Repeat("x", 3000), 0o644), utFile("b", strings.Repeat("x", 3000), 0o644)), UnpackOptions{MaxSize: 5000}, "larger than 5000 bytes in total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.IgnoreChownErrors = utOpts().IgnoreChownErrors
			_, err := Unpack(bytes.NewReader(tt.tarball), t.TempDir(), tt.opts)
			if !errors.Is(err, ErrUnpackLimit) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Unpack = %v, want ErrUnpackLimit mentioning %q", err, tt.msg)
			}
		})
	}
	t.Run("DefaultsAllowNormalLayers", func(t *testing.T) {
		if _, err := Unpack(bytes.NewReader(utTar(t, many...)), t.TempDir(), utOpts()); err != nil {
			t.Fatalf("Unpack = %v", err)
		}
	})
}

func TestUnpackStream(t *testing.T) {
	good := utTar(t, utFile("a", "a", 0o644))
	t.Run("DigestCoversZeroPadding", func(t *testing.T) {
		padded := append(bytes.Clone(good), make([]byte, 10240)...)
		d, err := Unpack(bytes.NewReader(padded), t.TempDir(), utOpts())
		if err != nil || d != utDigest(padded) {
			t.Fatalf("Unpack = %s, %v; want %s", d, err, utDigest(padded))
		}
	})
	t.Run("DigestOfLargeStream", func(t *testing.T) {
		// Larger than the hasher's chunks and the copy buffer, odd sizes.
		big := utTar(t, utFile("a", strings.Repeat("ab", 1<<20+333), 0o644), utFile("b", strings.Repeat("c", 777), 0o644))
		d, err := Unpack(bytes.NewReader(big), t.TempDir(), utOpts())
		if err != nil || d != utDigest(big) {
			t.Fatalf("Unpack = %s, %v; want %s", d, err, utDigest(big))
		}
	})
	t.Run("TrailingGarbage", func(t *testing.T) {
		bad := append(bytes.Clone(good), []byte("second stream")...)
		if _, err := Unpack(bytes.NewReader(bad), t.TempDir(), utOpts()); err == nil || !strings.Contains(err.Error(), "after the end of the archive") {
			t.Fatalf("Unpack = %v, want trailing data error", err)
		}
	})
	t.Run("Truncated", func(t *testing.T) {
		big := utTar(t, utFile("a", strings.Repeat("x", 5000), 0o644))
		if _, err := Unpack(bytes.NewReader(big[:2048]), t.TempDir(), utOpts()); err == nil {
			t.Fatal("Unpack of a truncated tar succeeded")
		}
	})
	t.Run("DirNotEmpty", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
		if _, err := Unpack(bytes.NewReader(good), dir, utOpts()); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("Unpack into a non-empty dir = %v, want error", err)
		}
	})
}

func TestUnpackCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "./etc/passwd", want: "etc/passwd"},
		{in: "etc//x/", want: "etc/x"},
		{in: "./", want: "."},
		{in: "", want: "."},
		{in: "a\\b", want: "a\\b"}, // a backslash is an ordinary byte on Linux (systemd unit names)
		{in: "../x", bad: true},
		{in: "a/../b", bad: true},
		{in: "a/..", bad: true},
		{in: "/etc/passwd", bad: true},
		{in: "a\x00b", bad: true},
		{in: strings.Repeat("n", 256), bad: true},
		{in: strings.Repeat("d/", 2049), bad: true},
	}
	for _, tt := range tests {
		got, err := unpackCleanName(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrUnsafeEntry) {
				t.Errorf("unpackCleanName(%.40q) = %q, %v; want ErrUnsafeEntry", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("unpackCleanName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
