package watch

import (
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"
)

// fileState is what a flush or a rescan compares to decide that a file
// changed. A write always moves mtime and ctime, and a rename over the file
// changes the inode, so equal states mean equal content; ctime cannot be set
// from user space, which catches `touch -r` and tar's mtime restores that
// leave size and mtime as they were.
//
// Except within one tick of the kernel's coarse clock (1-10 ms): a second
// write of the same size in the same tick moves nothing. Like git's "racily
// clean" index entries, a state taken that close to its ctime is marked
// racy and never trusted to be unchanged.
type fileState struct {
	size  int64
	mtime int64 // ns since the epoch
	ctime int64
	ino   uint64
	mode  fs.FileMode
	racy  bool
}

// racyWindow is two ticks of the slowest kernel clock (HZ=100), guessed
// generous rather than measured.
const racyWindow = 20 * time.Millisecond

// stateOf reads fi, which was taken after start.
func stateOf(fi fs.FileInfo, start time.Time) fileState {
	st := fileState{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ctime = sys.Ctim.Nano()
		st.ino = sys.Ino
	}
	st.racy = st.ctime > start.Add(-racyWindow).UnixNano()
	return st
}

// unchanged reports whether s, an earlier state, proves that now is the
// same file with the same content.
func (s fileState) unchanged(now fileState) bool {
	if s.racy {
		return false
	}
	s.racy = now.racy
	return s == now
}

// metaEqual reports whether everything but ctime is equal: the case where
// only the content can tell whether the file changed.
func (s fileState) metaEqual(o fileState) bool {
	o.ctime, o.racy = s.ctime, s.racy
	return s == o
}

// snapshot is the last known state of every file that is not ignored, with
// paths relative to the root. It lets a flush drop paths that end as they
// began (a temp file created and renamed away), expand a removed or renamed
// folder into the files it held, and a rescan find what changed while
// events were lost. It is owned by the event loop.
type snapshot struct {
	files map[string]fileState
	kids  map[string]map[string]bool // folder -> names of children below it
	sums  map[string][sha256.Size]byte
}

func newSnapshot() *snapshot {
	return &snapshot{
		files: map[string]fileState{},
		kids:  map[string]map[string]bool{".": {}},
		sums:  map[string][sha256.Size]byte{},
	}
}

func (s *snapshot) setFile(rel string, st fileState) {
	if old, ok := s.files[rel]; !ok || !old.unchanged(st) {
		delete(s.sums, rel)
	}
	s.files[rel] = st
	s.link(rel)
}

func (s *snapshot) setDir(rel string) {
	if s.kids[rel] == nil {
		s.kids[rel] = map[string]bool{}
		s.link(rel)
	}
}

// link records rel in its parent's children, creating parents as needed.
func (s *snapshot) link(rel string) {
	for rel != "." {
		dir := path.Dir(rel)
		k := s.kids[dir]
		known := k != nil
		if !known {
			k = map[string]bool{}
			s.kids[dir] = k
		}
		k[path.Base(rel)] = true
		if known {
			return
		}
		rel = dir
	}
}

// remove forgets rel and, for a folder, everything below it, returning the
// files that were forgotten.
func (s *snapshot) remove(rel string, gone []string) []string {
	if _, ok := s.files[rel]; ok {
		delete(s.files, rel)
		delete(s.sums, rel)
		gone = append(gone, rel)
	}
	if k, ok := s.kids[rel]; ok {
		for name := range k {
			gone = s.remove(path.Join(rel, name), gone)
		}
		delete(s.kids, rel)
	}
	if k := s.kids[path.Dir(rel)]; k != nil && rel != "." {
		delete(k, path.Base(rel))
	}
	return gone
}

// diff compares s, the state before events were lost, with now, a fresh
// scan, and returns the files that changed and those that are gone. When
// only ctime moved (or the old state was racy), the content decides: the
// file is hashed and compared with the hash taken when it was recorded. A
// file without an earlier hash counts as changed, since a false change
// costs a build-cache hit downstream and a missed one a stale container.
// Hashing every file up front would make startup read the whole project;
// only racy files are hashed when recorded (see hashRacy).
func (s *snapshot) diff(root string, now *snapshot) (changed, gone []string) {
	for rel, st := range now.files {
		old, ok := s.files[rel]
		switch {
		case ok && old.unchanged(st):
			if sum, ok := s.sums[rel]; ok {
				now.sums[rel] = sum
			}
			continue
		case ok && old.metaEqual(st) && st.mode.IsRegular():
			prev, had := s.sums[rel]
			sum, ok := now.sums[rel]
			if !ok {
				var err error
				if sum, err = hashFile(root + "/" + rel); err == nil {
					now.sums[rel], ok = sum, true
				}
			}
			if had && ok && prev == sum {
				continue
			}
		}
		changed = append(changed, rel)
	}
	for rel := range s.files {
		if _, ok := now.files[rel]; !ok {
			gone = append(gone, rel)
		}
	}
	return changed, gone
}

// hashRacy hashes the racy regular files of a snapshot that is about to
// become the reference for a later rescan, so the rescan can tell whether
// they changed. Racy files are the ones written in the last few
// milliseconds, so this is usually none.
func (s *snapshot) hashRacy(root string) {
	for rel, st := range s.files {
		if st.racy && st.mode.IsRegular() && st.size <= maxRacyHash {
			if sum, err := hashFile(root + "/" + rel); err == nil {
				s.sums[rel] = sum
			}
		}
	}
}

// maxRacyHash bounds what hashRacy reads: a database being written when
// nook starts is not worth the wait. Guessed.
const maxRacyHash = 4 << 20

func hashFile(name string) (sum [sha256.Size]byte, err error) {
	f, err := os.Open(name)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
