package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// loop is the only goroutine that touches the watcher's state after New.
func (w *Watcher) loop() {
	defer close(w.exited)
	defer close(w.errs)
	defer close(w.batches)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var out chan Batch
		var next Batch
		if w.ready != nil {
			out, next = w.batches, *w.ready
		}
		select {
		case <-w.done:
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if w.handle(ev) {
				w.arm(timer)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// The kernel queue (fs.inotify.max_queued_events) filled up
				// and events were dropped: only a full rescan can tell what
				// changed. It waits for quiet like any batch, so a storm
				// costs one rescan per window rather than one per overflow.
				w.log("events lost, rescanning", "path", w.root)
				w.rescan = true
				w.arm(timer)
				continue
			}
			w.report(fmt.Errorf("watch %q: %w", w.root, err))
		case <-timer.C:
			w.flush()
		case out <- next:
			w.ready = nil
		}
	}
}

// arm (re)starts the debounce timer: Quiet after this event, but never
// later than MaxWait after the first event of the batch.
func (w *Watcher) arm(timer *time.Timer) {
	now := time.Now()
	if w.first.IsZero() {
		w.first = now
	}
	timer.Reset(min(w.opts.Quiet, w.first.Add(w.opts.MaxWait).Sub(now)))
}

// handle records one event and reports whether anything became pending.
// The event's kind only decides which watches to add or drop; what is
// reported comes from the path's state at flush time, because editors and
// git produce every mix of Create, Write, Rename and Remove for one save.
func (w *Watcher) handle(ev fsnotify.Event) bool {
	rel, ok := w.rel(ev.Name)
	if !ok || rel == "." {
		return false
	}
	before := len(w.pending)
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.forget(rel)
	}
	if ev.Has(fsnotify.Create) {
		// A new folder, or one renamed into place: watch it and everything
		// below, and report the files already inside, which were written
		// before the watch existed and sent no events (mkdir -p a/b && touch
		// a/b/f, git checkout, tar -x).
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() && !w.ign.skipDir(rel) {
			if sub, err := w.scan(rel); err == nil {
				for f := range sub.files {
					w.pending[f] = true
				}
			}
		}
	}
	if !w.ign.ignored(rel) {
		w.pending[rel] = true
	}
	return len(w.pending) > before
}

// forget drops the watches on a removed or renamed folder and below. The
// kernel drops them itself on removal, but a renamed folder keeps its
// watches under fsnotify's old names; they must go before the new name is
// walked, or inotify hands back the same watch, still named after the old
// path.
func (w *Watcher) forget(rel string) {
	if !w.watched[rel] {
		return
	}
	for d := range w.watched {
		if d == rel || strings.HasPrefix(d, rel+"/") {
			_ = w.fsw.Remove(w.abs(d)) // ErrNonExistentWatch if the kernel dropped it first
			delete(w.watched, d)
		}
	}
}

// scan walks the folder top, watches every folder in it that is not
// skipped, and returns a snapshot of the files in it that are not ignored.
// Folders that vanish or cannot be read are left out; the second is
// reported. A folder that cannot be watched is still listed. An error means
// top could not be walked, or the root could not be watched.
func (w *Watcher) scan(top string) (*snapshot, error) {
	s, start := newSnapshot(), time.Now()
	err := filepath.WalkDir(w.abs(top), func(p string, d fs.DirEntry, err error) error {
		rel, _ := w.rel(p)
		if err != nil {
			switch {
			case rel == top:
				return err
			case !errors.Is(err, fs.ErrNotExist):
				w.report(fmt.Errorf("watch %q: %w", p, err))
			}
			return nil
		}
		if d.IsDir() {
			if rel != "." && w.ign.skipDir(rel) {
				return fs.SkipDir
			}
			if err := w.addWatch(rel); err != nil && rel == "." {
				return err // without the root nothing is watched
			}
			s.setDir(rel)
			return nil
		}
		if w.ign.ignored(rel) {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			s.setFile(rel, stateOf(fi, start))
		}
		return nil
	})
	return s, err
}

// addWatch adds an inotify watch on the folder rel. The watch is added
// before the folder is read, so a file created meanwhile is either listed
// or sends an event. A folder that vanished is no error; an inotify limit
// is reported once and the walk goes on, keeping what is already watched.
func (w *Watcher) addWatch(rel string) error {
	err := w.fsw.Add(w.abs(rel))
	switch {
	case err == nil:
		w.watched[rel] = true
		return nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return nil // gone, or replaced by a file, since it was listed
	}
	err = limitError(w.abs(rel), err)
	w.report(err)
	return err
}
