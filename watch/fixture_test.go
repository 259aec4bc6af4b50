package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testQuiet is generous on purpose: these tests check what lands in one
// batch, and a test goroutine descheduled for a few milliseconds under -race
// must not split a burst. What the default window costs is
// BenchmarkEditToBatch's business.
const testQuiet = 150 * time.Millisecond

// deadline only guards against a hang; no test waits for it to pass.
const deadline = 20 * time.Second

// fixture is a project folder on the real filesystem with a real watcher.
type fixture struct {
	t    *testing.T
	root string
	w    *Watcher
	n    int // sentinels written
}

func newFixture(t *testing.T) *fixture {
	return &fixture{t: t, root: t.TempDir()}
}

// start watches the folder; files written before start are the baseline.
func (f *fixture) start(opts Options) {
	f.t.Helper()
	if opts.Quiet == 0 {
		opts.Quiet = testQuiet
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = deadline
	}
	w, err := New(f.root, opts)
	if err != nil {
		f.t.Fatalf("New(%q) = %v", f.root, err)
	}
	f.w = w
	f.t.Cleanup(func() {
		if err := w.Close(); err != nil {
			f.t.Errorf("Close() = %v", err)
		}
		for err := range w.Errors() {
			f.t.Errorf("unexpected error from Errors(): %v", err)
		}
	})
}

func (f *fixture) path(rel string) string { return filepath.Join(f.root, filepath.FromSlash(rel)) }

func (f *fixture) write(rel, content string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(f.path(rel)), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.path(rel), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) rename(from, to string) {
	f.t.Helper()
	if err := os.Rename(f.path(from), f.path(to)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) remove(rel string) {
	f.t.Helper()
	if err := os.RemoveAll(f.path(rel)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) read(rel string) string {
	f.t.Helper()
	b, err := os.ReadFile(f.path(rel))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// sync writes a sentinel file and returns every batch up to the one that
// holds it, with sentinels left out and batches left empty by that dropped.
// inotify delivers events in order, so every change made before sync is in
// one of the returned batches (tilt's fsync trick).
func (f *fixture) sync() []Batch {
	f.t.Helper()
	f.n++
	name := fmt.Sprintf("sentinel-%d", f.n)
	f.write(name, name)
	var got []Batch
	for {
		b := f.next()
		seen := slices.Contains(b.Paths, name)
		b.Paths = withoutSentinels(b.Paths)
		b.Removed = withoutSentinels(b.Removed)
		if len(b.Paths) > 0 {
			got = append(got, b)
		}
		if seen {
			return got
		}
	}
}

// next returns the next batch.
func (f *fixture) next() Batch {
	f.t.Helper()
	select {
	case b, ok := <-f.w.Batches():
		if !ok {
			f.t.Fatal("Batches() closed")
		}
		return b
	case <-time.After(deadline):
		f.t.Fatalf("no batch within %v", deadline)
		return Batch{}
	}
}

// one returns the only batch in bs, failing the test if there is not
// exactly one.
func (f *fixture) one(bs []Batch) Batch {
	f.t.Helper()
	if len(bs) != 1 {
		f.t.Fatalf("got %d batches, want 1: %+v", len(bs), bs)
	}
	return bs[0]
}

func withoutSentinels(paths []string) []string {
	return slices.DeleteFunc(slices.Clone(paths), func(p string) bool {
		return strings.HasPrefix(p, "sentinel-")
	})
}

// union is every path of bs, sorted.
func union(bs []Batch) (paths, removed []string) {
	for _, b := range bs {
		paths = append(paths, b.Paths...)
		removed = append(removed, b.Removed...)
	}
	return sortedSet(paths), sortedSet(removed)
}
