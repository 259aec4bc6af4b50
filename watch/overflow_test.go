package watch

import (
	"crypto/sha256"
	"os"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/google/go-cmp/cmp"
)

// loseEvents makes the kernel drop every event from now on, as a queue
// overflow does, by removing all inotify watches behind the watcher's back.
// The rescan must put them back.
func (f *fixture) loseEvents() {
	f.t.Helper()
	for _, p := range f.w.fsw.WatchList() {
		if err := f.w.fsw.Remove(p); err != nil {
			f.t.Fatalf("remove watch %q: %v", p, err)
		}
	}
}

// overflow reports a queue overflow through fsnotify's own Errors channel,
// the path a real IN_Q_OVERFLOW takes, and returns the next batch. No
// sentinel is possible here: the rescan itself is the batch.
func (f *fixture) overflow() Batch {
	f.t.Helper()
	f.w.fsw.Errors <- fsnotify.ErrEventOverflow
	return f.next()
}

// TestOverflowRescan loses events, reports an overflow and expects a Rescan
// batch with exactly the files that changed meanwhile, then checks that
// watching works again, in folders created while events were lost too.
func TestOverflowRescan(t *testing.T) {
	f := newFixture(t)
	f.write("a.txt", "a")
	f.write("b.txt", "b")
	f.write("same.txt", "same")
	f.write("sub/c.txt", "c")
	f.start(Options{})

	f.loseEvents()
	f.write("a.txt", "aa")
	f.remove("b.txt")
	f.write("sub/new.txt", "new")
	f.write("newdir/deep/x.txt", "x")
	got := f.overflow()
	want := Batch{
		Paths:   []string{"a.txt", "b.txt", "newdir/deep/x.txt", "sub/new.txt"},
		Removed: []string{"b.txt"},
		Rescan:  true,
	}
	if diff := cmp.Diff(want, got, cmpBatch); diff != "" {
		t.Errorf("first rescan (-want +got):\n%s", diff)
	}

	f.loseEvents()
	f.write("sub/c.txt", "cc")
	got = f.overflow()
	want = Batch{Paths: []string{"sub/c.txt"}, Rescan: true}
	if diff := cmp.Diff(want, got, cmpBatch); diff != "" {
		t.Errorf("second rescan (-want +got):\n%s", diff)
	}

	f.write("newdir/deep/y.txt", "y")
	f.write("a.txt", "aaa")
	paths, _ := union(f.sync())
	if diff := cmp.Diff([]string{"a.txt", "newdir/deep/y.txt"}, paths); diff != "" {
		t.Errorf("paths after the rescans (-want +got):\n%s", diff)
	}
}

// TestRescanHashesCtimeOnlyChanges checks the rule for a file whose ctime
// moved while size, mtime, mode and inode stayed (touch -r, a tar extract
// restoring mtime, or a racy state): the content decides, against the hash
// taken when it was recorded, and without one the file counts as changed.
func TestRescanHashesCtimeOnlyChanges(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(root+"/f", []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(root + "/f")
	if err != nil {
		t.Fatal(err)
	}
	now := stateOf(fi, time.Now().Add(time.Hour)) // as seen an hour later: not racy
	was := now
	was.ctime--
	racy := now
	racy.racy = true

	for _, tc := range []struct {
		name    string
		old     fileState
		sum     []byte // hash recorded with old; nil for none
		changed bool
	}{
		{"same stat", now, nil, false},
		{"ctime moved, same content", was, []byte("content"), false},
		{"ctime moved, other content", was, []byte("other"), true},
		{"ctime moved, no earlier hash", was, nil, true},
		{"racy, same content", racy, []byte("content"), false},
		{"racy, no earlier hash", racy, nil, true},
		{"size changed", fileState{size: 1, mtime: now.mtime, ctime: now.ctime, ino: now.ino, mode: now.mode}, []byte("content"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, after := newSnapshot(), newSnapshot()
			before.setFile("f", tc.old)
			if tc.sum != nil {
				before.sums["f"] = sha256.Sum256(tc.sum)
			}
			after.setFile("f", now)
			changed, gone := before.diff(root, after)
			if got := len(changed) == 1; got != tc.changed || len(gone) != 0 {
				t.Errorf("diff = %q, %q; want changed %v", changed, gone, tc.changed)
			}
		})
	}
}
