package watch

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Default debounce settings. Editors write a file in several syscalls a few
// milliseconds apart (vim: probe file, rename to backup, write, remove
// backup); `git checkout` writes hundreds of files within tens of
// milliseconds. A 15 ms quiet window joins each of those into one batch
// while keeping nook's edit-to-ready budget of 150 ms: the window is paid
// once per save, before the rebuild starts. The 500 ms cap keeps a steady
// stream of writes (a build writing into the tree, a long checkout) from
// postponing every batch forever. Both numbers are judgement, checked with
// BenchmarkEditToBatch, not the result of a study; Compose waits 500 ms of
// quiet and tilt 200 ms, which would eat the budget on their own.
const (
	DefaultQuiet   = 15 * time.Millisecond
	DefaultMaxWait = 500 * time.Millisecond
)

// Options tunes a Watcher. The zero value is ready to use.
type Options struct {
	// Quiet is how long no event may arrive before a batch is delivered;
	// 0 means DefaultQuiet.
	Quiet time.Duration
	// MaxWait caps how long the first event of a batch waits while events
	// keep coming; 0 means DefaultMaxWait.
	MaxWait time.Duration
	// Ignore holds extra patterns in .dockerignore syntax, applied after the
	// lines of .nookignore (or .dockerignore): a container's watch.ignore,
	// the outputs of host steps.
	Ignore []string
	// Logger receives debug-level internals as key/value pairs; nil is silent.
	Logger func(msg string, kv ...any)
}

// Batch is one burst of changes, settled. Paths are relative to the root,
// slash-separated, sorted and unique; ignored paths never appear. A path is
// in Paths when its final state at flush time differs from the state last
// reported (or seen at start): a file that is created and removed within
// one batch is not reported at all. Folders are not reported; the files in
// them are (a new folder's files as changed, a removed or renamed folder's
// files as removed).
type Batch struct {
	Paths   []string
	Removed []string  // the subset of Paths that no longer exist (as files)
	Rescan  bool      // events were lost and the batch comes from a full rescan
	At      time.Time // when the first event of the batch arrived
	Flushed time.Time // when the batch was settled
}

// Watcher watches a project folder recursively. Its methods are safe for
// concurrent use.
type Watcher struct {
	root    string
	opts    Options
	ign     *matcher
	fsw     *fsnotify.Watcher
	batches chan Batch
	errs    chan error
	done    chan struct{} // closed by Close
	exited  chan struct{} // closed when loop returns
	once    sync.Once

	// Owned by the loop goroutine after New returns.
	watched  map[string]bool // folders with an inotify watch
	snap     *snapshot
	pending  map[string]bool
	first    time.Time // arrival of the first pending event
	rescan   bool      // events were lost; the next flush rescans
	ready    *Batch    // settled but not yet received
	limitHit bool      // a LimitError was reported; do not repeat it
}

// New watches root and every folder below it that is not ignored, and
// returns once the watches are in place: any change made after New returns
// is reported. Ignore rules come from root/.nookignore, or root/.dockerignore
// when there is none, plus opts.Ignore. If an inotify limit stops the walk,
// New still succeeds and the LimitError waits on Errors; if no watcher can
// be created at all, New returns the LimitError.
func New(root string, opts Options) (*Watcher, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("watch %q: %w", root, err)
	}
	opts.Quiet = orDefault(opts.Quiet, DefaultQuiet)
	opts.MaxWait = orDefault(opts.MaxWait, DefaultMaxWait)
	ign, err := loadMatcher(root, opts.Ignore)
	if err != nil {
		return nil, fmt.Errorf("watch %q: %w", root, err)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, limitError(root, err)
	}
	w := &Watcher{
		root: root, opts: opts, ign: ign, fsw: fsw,
		batches: make(chan Batch),
		errs:    make(chan error, 8),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		watched: map[string]bool{},
		pending: map[string]bool{},
	}
	start := time.Now()
	w.snap, err = w.scan(".")
	if err != nil {
		fsw.Close()
		return nil, err
	}
	w.snap.hashRacy(root)
	w.log("watching", "path", root, "dirs", len(w.watched), "files", len(w.snap.files), "took", time.Since(start))
	go w.loop()
	return w, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Batches delivers one Batch per burst of changes. It is unbuffered, and a
// slow receiver loses nothing: changes settled while a batch waits are
// merged into it. It is closed by Close.
func (w *Watcher) Batches() <-chan Batch { return w.batches }

// Errors delivers problems that do not stop the watcher, such as a
// *LimitError (which has a Hint) or a folder that could not be read.
// Reading it is optional: it holds the last few errors and drops the rest
// (they are logged). It is closed by Close.
func (w *Watcher) Errors() <-chan error { return w.errs }

// Close stops watching and closes Batches and Errors; a batch not yet
// received is dropped. It is idempotent.
func (w *Watcher) Close() error {
	var err error
	w.once.Do(func() {
		close(w.done)
		err = w.fsw.Close()
		<-w.exited
	})
	return err
}

// Explain reports whether path (absolute, or relative to the root) is
// ignored and which rule decided it: ".nookignore:12", `option "**/*.tmp"`,
// "default (node_modules)", "editor temp file (vim)". A path no rule
// matched gives (false, ""); a "!" line that re-included it gives (false,
// ".nookignore:13").
func (w *Watcher) Explain(path string) (ignored bool, rule string) {
	rel, ok := w.rel(path)
	if !ok || rel == "." {
		return false, ""
	}
	return w.ign.explain(rel)
}

// rel turns an absolute or root-relative path into a slash-separated path
// relative to the root; ok is false for paths outside it.
func (w *Watcher) rel(p string) (string, bool) {
	if !filepath.IsAbs(p) {
		p = filepath.Join(w.root, p)
	}
	rel, err := filepath.Rel(w.root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

func (w *Watcher) abs(rel string) string { return filepath.Join(w.root, filepath.FromSlash(rel)) }

func (w *Watcher) log(msg string, kv ...any) {
	if w.opts.Logger != nil {
		w.opts.Logger(msg, kv...)
	}
}

// report hands a non-fatal error to Errors without ever blocking the loop.
func (w *Watcher) report(err error) {
	var le *LimitError
	if errors.As(err, &le) {
		if w.limitHit {
			return
		}
		w.limitHit = true
	}
	select {
	case w.errs <- err:
	default:
		w.log("error dropped: nobody reads Errors", "err", err)
	}
}
