package watch

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"
)

// flush settles the pending paths into a batch once the window closed and
// queues it for delivery, merged into any batch not yet received.
func (w *Watcher) flush() {
	at := w.first
	w.first = time.Time{}
	var changed, gone []string
	rescan := w.rescan
	if rescan {
		w.rescan = false
		changed, gone = w.rescanAll()
	} else {
		changed, gone = w.settle()
	}
	clear(w.pending)
	if len(changed) == 0 && len(gone) == 0 {
		return
	}
	b := Batch{
		Paths:   sortedSet(changed, gone),
		Removed: sortedSet(gone),
		Rescan:  rescan,
		At:      at,
		Flushed: time.Now(),
	}
	w.log("batch", "paths", len(b.Paths), "removed", len(b.Removed), "rescan", rescan, "took", b.Flushed.Sub(at))
	w.merge(b)
}

// settle looks at each pending path as it is now and compares it with the
// snapshot, which it updates. Paths whose state did not change, such as a
// temp file created and renamed away within the window, drop out here.
func (w *Watcher) settle() (changed, gone []string) {
	start := time.Now()
	for rel := range w.pending {
		fi, err := os.Lstat(w.abs(rel))
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			gone = w.snap.remove(rel, gone)
		case err != nil:
			// Unreadable parent or similar: the state is unknown, so say it
			// changed and keep the old snapshot entry.
			w.log("stat failed", "path", rel, "err", err)
			changed = append(changed, rel)
		case fi.IsDir():
			if _, wasFile := w.snap.files[rel]; wasFile {
				gone = w.snap.remove(rel, gone)
			}
			w.snap.setDir(rel)
		default:
			if _, wasDir := w.snap.kids[rel]; wasDir {
				gone = w.snap.remove(rel, gone)
			}
			st := stateOf(fi, start)
			if old, ok := w.snap.files[rel]; ok && old.unchanged(st) {
				continue
			}
			w.snap.setFile(rel, st)
			changed = append(changed, rel)
		}
	}
	return changed, gone
}

// rescanAll re-walks the whole tree after lost events: it re-adds every
// watch (folders created meanwhile had none) and drops the watches of
// folders that are gone, then diffs a fresh snapshot against the old one.
func (w *Watcher) rescanAll() (changed, gone []string) {
	old := w.watched
	w.watched = map[string]bool{}
	now, err := w.scan(".")
	if err != nil {
		w.report(err) // the root itself is gone or unreadable
		for d := range w.watched {
			old[d] = true
		}
		w.watched = old
		return nil, nil
	}
	for d := range old {
		if !w.watched[d] {
			_ = w.fsw.Remove(w.abs(d))
		}
	}
	now.hashRacy(w.root)
	changed, gone = w.snap.diff(w.root, now)
	w.snap = now
	return changed, gone
}

// merge queues b for delivery. If the previous batch is still waiting for
// its receiver, b is folded into it: a path is removed if its latest batch
// says so.
func (w *Watcher) merge(b Batch) {
	r := w.ready
	if r == nil {
		w.ready = &b
		return
	}
	var removed []string
	for _, p := range r.Removed {
		if _, found := slices.BinarySearch(b.Paths, p); !found {
			removed = append(removed, p)
		}
	}
	r.Paths = sortedSet(r.Paths, b.Paths)
	r.Removed = sortedSet(removed, b.Removed)
	r.Rescan = r.Rescan || b.Rescan
	r.Flushed = b.Flushed
}

// sortedSet returns the sorted union of lists without duplicates.
func sortedSet(lists ...[]string) []string {
	var all []string
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}
