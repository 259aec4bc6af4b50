package layers

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/nook-dev/nook/internal/atomicfile"
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

// statCacheMagic starts a saved cache; a file without it (an older
// format, or garbage) is ignored.
const statCacheMagic = "nook statcache 1\n"

// LoadStatCache reads a cache saved by Save; a missing or unreadable file
// gives an empty cache.
func LoadStatCache(name string) *StatCache {
	c := NewStatCache()
	f, err := os.Open(name)
	if err != nil {
		return c
	}
	defer f.Close()
	if entries, err := readStatCache(bufio.NewReaderSize(f, 1<<16)); err == nil {
		c.entries = entries
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
	err := atomicfile.Write(name, false, func(f *os.File) error {
		w := bufio.NewWriterSize(f, 1<<16)
		writeStatCache(w, c.entries)
		return w.Flush()
	})
	if err != nil {
		return fmt.Errorf("save stat cache: %w", err)
	}
	c.dirty = false
	return nil
}

// The saved form: the magic, then per entry the path's length as a
// uvarint, the path, the five stat fields as little-endian 64-bit numbers
// and the digest. (It replaced encoding/gob, whose package set-up every
// nook process paid, a container's init too.)
func writeStatCache(w *bufio.Writer, entries map[string]statEntry) {
	w.WriteString(statCacheMagic)
	var buf [binary.MaxVarintLen64 + 5*8 + 32]byte
	for path, e := range entries {
		b := binary.AppendUvarint(buf[:0], uint64(len(path)))
		w.Write(b)
		w.WriteString(path)
		b = binary.LittleEndian.AppendUint64(buf[:0], uint64(e.Size))
		b = binary.LittleEndian.AppendUint64(b, uint64(e.Mtime))
		b = binary.LittleEndian.AppendUint64(b, uint64(e.Ctime))
		b = binary.LittleEndian.AppendUint64(b, e.Ino)
		b = binary.LittleEndian.AppendUint64(b, e.Dev)
		w.Write(append(b, e.Digest[:]...))
	}
}

func readStatCache(r *bufio.Reader) (map[string]statEntry, error) {
	magic := make([]byte, len(statCacheMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != statCacheMagic {
		return nil, errors.New("not a stat cache")
	}
	entries := map[string]statEntry{}
	var fixed [5*8 + 32]byte
	for {
		n, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			return entries, nil
		}
		if err != nil || n > 1<<16 {
			return nil, errors.New("corrupt stat cache")
		}
		path := make([]byte, n)
		if _, err := io.ReadFull(r, path); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(r, fixed[:]); err != nil {
			return nil, err
		}
		le := binary.LittleEndian
		e := statEntry{
			Size: int64(le.Uint64(fixed[0:])), Mtime: int64(le.Uint64(fixed[8:])), Ctime: int64(le.Uint64(fixed[16:])),
			Ino: le.Uint64(fixed[24:]), Dev: le.Uint64(fixed[32:]),
		}
		copy(e.Digest[:], fixed[40:])
		entries[string(path)] = e
	}
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
