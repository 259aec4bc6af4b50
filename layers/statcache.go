package layers

import (
	"crypto/sha256"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// StatCache remembers the content digest of files by their stat data
// (size, mtime, ctime, inode, device), so a build reads only the files
// that changed. Content decides, never mtimes: a cached digest is used only
// when every stat field still matches, and a touched file is re-read and
// found unchanged.
//
// A StatCache is safe for concurrent use. Load and Save persist it; a lost
// or corrupt cache file only costs re-reading.
type StatCache struct {
	mu      sync.Mutex
	entries map[string]statEntry
	dirty   bool
}

type statEntry struct {
	Size, Mtime, Ctime int64
	Ino, Dev           uint64
	Digest             [32]byte
}

// racyWindow: a file modified this recently may change again within the
// same timestamp tick without its stat data changing (git's "racy clean"
// problem), so its digest is not remembered. Two seconds covers
// filesystems with coarse timestamps.
const racyWindow = 2 * time.Second

// NewStatCache returns an empty cache.
func NewStatCache() *StatCache { return &StatCache{entries: map[string]statEntry{}} }

// LoadStatCache reads a cache saved by Save; a missing or unreadable file
// gives an empty cache.
func LoadStatCache(name string) *StatCache {
	c := NewStatCache()
	f, err := os.Open(name)
	if err != nil {
		return c
	}
	defer f.Close()
	if err := gob.NewDecoder(f).Decode(&c.entries); err != nil || c.entries == nil {
		c.entries = map[string]statEntry{}
	}
	return c
}

// Save writes the cache to name atomically, if anything changed.
func (c *StatCache) Save(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".statcache-*")
	if err != nil {
		return fmt.Errorf("save stat cache: %w", err)
	}
	defer os.Remove(f.Name())
	if err := gob.NewEncoder(f).Encode(c.entries); err != nil {
		f.Close()
		return fmt.Errorf("save stat cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save stat cache: %w", err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("save stat cache: %w", err)
	}
	c.dirty = false
	return nil
}

// Digest returns the sha256 of the regular file at path, whose Lstat
// result is fi, reading it through open when the cache cannot answer.
func (c *StatCache) Digest(path string, fi os.FileInfo, open func() (io.ReadCloser, error)) ([32]byte, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return hashFile(open)
	}
	key := statEntry{Size: fi.Size(), Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Ino: st.Ino, Dev: st.Dev}
	c.mu.Lock()
	e, hit := c.entries[path]
	c.mu.Unlock()
	if hit && e.Size == key.Size && e.Mtime == key.Mtime && e.Ctime == key.Ctime && e.Ino == key.Ino && e.Dev == key.Dev {
		return e.Digest, nil
	}
	d, err := hashFile(open)
	if err != nil {
		return d, err
	}
	changed := max(key.Mtime, key.Ctime)
	if time.Since(time.Unix(0, changed)) > racyWindow {
		key.Digest = d
		c.mu.Lock()
		c.entries[path] = key
		c.dirty = true
		c.mu.Unlock()
	}
	return d, nil
}

func hashFile(open func() (io.ReadCloser, error)) ([32]byte, error) {
	var d [32]byte
	f, err := open()
	if err != nil {
		return d, err
	}
	defer f.Close()
	h := sha256.New()
	buf := copyBuf.Get().(*[]byte)
	defer copyBuf.Put(buf)
	if _, err := io.CopyBuffer(h, f, *buf); err != nil {
		return d, err
	}
	copy(d[:], h.Sum(nil))
	return d, nil
}

// copyBuf pools the buffers files are read through.
var copyBuf = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// errChanged means a file's content changed while a layer was being
// written from it; the build step is retried.
var errChanged = errors.New("file changed during the build")

func unixTime(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
