package watch

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDirCreatedAfterStart covers folders that appear while watching, with
// files already inside before any watch can exist on them: a tree moved in
// from elsewhere (one event for the whole tree, as from tar or git), and
// mkdir -p with files written right away. Later writes inside are reported.
func TestDirCreatedAfterStart(t *testing.T) {
	f := newFixture(t)
	f.start(Options{})

	outside := t.TempDir()
	for _, rel := range []string{"vendored/lib/a.go", "vendored/lib/deep/b.go", "vendored/c.go"} {
		p := filepath.Join(outside, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(filepath.Join(outside, "vendored"), f.path("vendored")); err != nil {
		t.Fatal(err)
	}
	f.write("a/b/c/f1.txt", "1")
	f.write("a/f0.txt", "0")

	paths, _ := union(f.sync())
	want := []string{"a/b/c/f1.txt", "a/f0.txt", "vendored/c.go", "vendored/lib/a.go", "vendored/lib/deep/b.go"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("paths after creating folders (-want +got):\n%s", diff)
	}

	f.write("a/b/c/later.txt", "later")
	f.write("vendored/lib/deep/b.go", "edited")
	paths, _ = union(f.sync())
	if diff := cmp.Diff([]string{"a/b/c/later.txt", "vendored/lib/deep/b.go"}, paths); diff != "" {
		t.Errorf("paths after writing in new folders (-want +got):\n%s", diff)
	}
}

// TestIgnoredTreesAreNotWatched checks that ignored trees cost no inotify
// watch, asking the kernel itself (/proc/self/fdinfo), and that changes in
// them produce nothing.
func TestIgnoredTreesAreNotWatched(t *testing.T) {
	f := newFixture(t)
	f.write("src/main.js", "main")
	f.write("node_modules/left-pad/index.js", "pad")
	f.write("node_modules/left-pad/lib/x.js", "x")
	f.write(".git/objects/ab/cdef", "blob")
	f.write(".nook/out/api", "binary")
	f.write("build/out.o", "obj")
	f.write(".nookignore", "build\n")
	f.start(Options{})

	watched := kernelWatches(t)
	for _, rel := range []string{".", "src"} {
		if !watched[inode(t, f.path(rel))] {
			t.Errorf("%q has no inotify watch", rel)
		}
	}
	for _, rel := range []string{"node_modules", "node_modules/left-pad", "node_modules/left-pad/lib", ".git", ".git/objects", ".nook", "build"} {
		if watched[inode(t, f.path(rel))] {
			t.Errorf("%q has an inotify watch; ignored trees must not", rel)
		}
	}
	if got := f.w.fsw.WatchList(); len(got) != 2 {
		t.Errorf("fsnotify watches %q, want the root and src only", got)
	}

	f.write("node_modules/left-pad/index.js", "changed")
	f.write("node_modules/new-dep/index.js", "new")
	f.write("src/node_modules/local/index.js", "nested")
	f.write(".git/HEAD", "ref: refs/heads/other")
	f.write("build/out.o", "relinked")
	if bs := f.sync(); len(bs) != 0 {
		t.Errorf("changes in ignored trees gave batches %+v, want none", bs)
	}
	if got := f.w.fsw.WatchList(); len(got) != 2 {
		t.Errorf("after new ignored folders fsnotify watches %q, want the root and src only", got)
	}
}

// kernelWatches returns the inodes watched by every inotify instance of
// this process, read from /proc/self/fdinfo ("inotify wd:1 ino:2a0e ...").
func kernelWatches(t *testing.T) map[uint64]bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list /proc/self/fd: %v", err)
	}
	inodes := map[uint64]bool{}
	for _, fd := range fds {
		if link, _ := os.Readlink("/proc/self/fd/" + fd.Name()); link != "anon_inode:inotify" {
			continue
		}
		info, err := os.Open("/proc/self/fdinfo/" + fd.Name())
		if err != nil {
			continue // closed since listed
		}
		sc := bufio.NewScanner(info)
		for sc.Scan() {
			for _, field := range strings.Fields(sc.Text()) {
				if hex, ok := strings.CutPrefix(field, "ino:"); ok && strings.HasPrefix(sc.Text(), "inotify ") {
					n, err := strconv.ParseUint(hex, 16, 64)
					if err != nil {
						t.Fatalf("parse %q: %v", sc.Text(), err)
					}
					inodes[n] = true
				}
			}
		}
		info.Close()
	}
	if len(inodes) == 0 {
		t.Fatal("found no inotify watches in /proc/self/fdinfo")
	}
	return inodes
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
