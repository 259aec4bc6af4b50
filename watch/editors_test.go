package watch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// wantOneSave checks that a save came out as one batch naming only the saved
// file, and that the file holds the final content when the batch arrives.
func wantOneSave(f *fixture, rel, content string) {
	f.t.Helper()
	b := f.one(f.sync())
	if diff := cmp.Diff([]string{rel}, b.Paths); diff != "" {
		f.t.Errorf("Batch.Paths (-want +got):\n%s", diff)
	}
	if len(b.Removed) != 0 || b.Rescan {
		f.t.Errorf("Batch.Removed = %q, Rescan = %v; want none, false", b.Removed, b.Rescan)
	}
	if got := f.read(rel); got != content {
		f.t.Errorf("%s holds %q at batch time, want %q", rel, got, content)
	}
}

// TestVimRenameSave replays vim's default save on Linux (backupcopy=auto
// picks rename for a file with one link): probe the folder with "4913",
// rename the file to its backup, write the new file, remove the backup.
// The swap file is written too, as vim does while editing.
func TestVimRenameSave(t *testing.T) {
	f := newFixture(t)
	f.write("src/main.go", "package main\n")
	f.start(Options{})

	f.write("src/.main.go.swp", "swap")
	f.write("src/4913", "")
	f.remove("src/4913")
	f.rename("src/main.go", "src/main.go~")
	f.write("src/main.go", "package main // saved\n")
	f.remove("src/main.go~")

	wantOneSave(f, "src/main.go", "package main // saved\n")
}

// TestJetBrainsSafeWrite replays IntelliJ's "safe write": write a temp file,
// move the original aside, move the temp file into place, remove the old.
func TestJetBrainsSafeWrite(t *testing.T) {
	f := newFixture(t)
	f.write("App.kt", "fun main() {}\n")
	f.start(Options{})

	f.write("App.kt___jb_tmp___", "fun main() { println() }\n")
	f.rename("App.kt", "App.kt___jb_old___")
	f.rename("App.kt___jb_tmp___", "App.kt")
	f.remove("App.kt___jb_old___")

	wantOneSave(f, "App.kt", "fun main() { println() }\n")
}

// TestSedInPlace runs the real sed -i, which writes a temp file named like
// "sedAbC123" next to the target and renames it over the target. The temp
// name matches no ignore rule: it drops out because it no longer exists
// when the batch settles.
func TestSedInPlace(t *testing.T) {
	sed, err := exec.LookPath("sed")
	if err != nil {
		t.Skip("sed is not installed (apt-get install sed)")
	}
	f := newFixture(t)
	f.write("config/app.conf", "port=8080\n")
	f.start(Options{})

	if out, err := exec.Command(sed, "-i", "s/8080/9090/", f.path("config/app.conf")).CombinedOutput(); err != nil {
		t.Fatalf("sed -i: %v: %s", err, out)
	}

	wantOneSave(f, "config/app.conf", "port=9090\n")
}

// TestGitCheckoutBurst writes what a branch switch writes: 300 files
// changed, added in new folders, or removed, as fast as possible. They
// arrive in one batch, or a few when the burst outlasts MaxWait.
func TestGitCheckoutBurst(t *testing.T) {
	f := newFixture(t)
	for i := range 150 {
		f.write(fmt.Sprintf("src/old%03d.go", i), "package src\n")
	}
	f.start(Options{MaxWait: DefaultMaxWait})

	var want, wantRemoved []string
	began := time.Now()
	for i := range 300 {
		rel := fmt.Sprintf("src/old%03d.go", i)
		switch {
		case i < 100:
			f.write(rel, "package src // new branch\n")
		case i < 150:
			f.remove(rel)
			wantRemoved = append(wantRemoved, rel)
		default:
			rel = fmt.Sprintf("pkg/m%d/new%03d.go", i%5, i)
			f.write(rel, "package m\n")
		}
		want = append(want, rel)
	}
	took := time.Since(began)

	bs := f.sync()
	paths, removed := union(bs)
	if diff := cmp.Diff(sortedSet(want), paths); diff != "" {
		t.Errorf("paths of all batches (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sortedSet(wantRemoved), removed); diff != "" {
		t.Errorf("removed paths of all batches (-want +got):\n%s", diff)
	}
	// The burst is coalesced. How many batches depends on how the writer
	// was scheduled (a pause longer than the quiet window closes one), so
	// the bound is loose: far fewer batches than changes.
	if limit := len(want) / 4; len(bs) > limit {
		t.Errorf("burst of %d changes in %v came as %d batches, want at most %d", len(want), took, len(bs), limit)
	}
}

// TestDeleteAndRecreate covers a file removed and written again (some
// editors, `go generate`, `cp` over a removed file), and a plain removal.
func TestDeleteAndRecreate(t *testing.T) {
	f := newFixture(t)
	f.write("gen.go", "v1")
	f.write("old.go", "old")
	f.start(Options{})

	f.remove("gen.go")
	f.write("gen.go", "v2")
	wantOneSave(f, "gen.go", "v2")

	f.remove("old.go")
	b := f.one(f.sync())
	if diff := cmp.Diff(Batch{Paths: []string{"old.go"}, Removed: []string{"old.go"}}, b, cmpBatch); diff != "" {
		t.Errorf("batch after removing old.go (-want +got):\n%s", diff)
	}
}

// cmpBatch compares batches without their times.
var cmpBatch = cmp.Comparer(func(a, b Batch) bool {
	return cmp.Equal(a.Paths, b.Paths) && cmp.Equal(a.Removed, b.Removed) && a.Rescan == b.Rescan
})

// TestFolderRenamed moves a folder: its files are removed under the old
// name and new under the new one, and later writes are reported under the
// new name (inotify keeps the watch of a moved folder; fsnotify would keep
// naming it after the old path).
func TestFolderRenamed(t *testing.T) {
	f := newFixture(t)
	f.write("a/x.txt", "x")
	f.write("a/deep/y.txt", "y")
	f.start(Options{})

	f.rename("a", "b")
	paths, removed := union(f.sync())
	want := []string{"a/deep/y.txt", "a/x.txt", "b/deep/y.txt", "b/x.txt"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("paths after mv a b (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a/deep/y.txt", "a/x.txt"}, removed); diff != "" {
		t.Errorf("removed after mv a b (-want +got):\n%s", diff)
	}

	f.write("b/deep/y.txt", "y2")
	wantOneSave(f, "b/deep/y.txt", "y2")
	if _, err := os.Stat(filepath.Join(f.root, "a")); !os.IsNotExist(err) {
		t.Fatalf("a still exists: %v", err)
	}
}
