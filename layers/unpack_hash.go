package layers

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// unpackHasher is an io.Writer that computes SHA-256 on its own goroutine,
// so hashing overlaps with the write syscalls of extraction instead of
// adding to them: measured on tmpfs it was a quarter of Unpack's CPU time.
// Bytes are copied into a few chunks that travel between the two
// goroutines; a full chunk is handed over, an empty one comes back.
type unpackHasher struct {
	h    hash.Hash
	work chan []byte // filled chunks, to hash
	free chan []byte // hashed chunks, to refill
	done chan struct{}
	cur  []byte
	sum  string
}

// Four 256 KiB chunks: enough for the reader to run ahead of the hash by
// one tar read (the copy buffer is 1 MiB) without much memory.
const (
	unpackHashChunks    = 4
	unpackHashChunkSize = 256 << 10
)

func newUnpackHasher() *unpackHasher {
	a := &unpackHasher{
		h:    sha256.New(),
		work: make(chan []byte, unpackHashChunks),
		free: make(chan []byte, unpackHashChunks),
		done: make(chan struct{}),
	}
	for range unpackHashChunks {
		a.free <- make([]byte, 0, unpackHashChunkSize)
	}
	go func() {
		defer close(a.done)
		for b := range a.work {
			a.h.Write(b)
			a.free <- b[:0]
		}
	}()
	return a
}

func (a *unpackHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if a.cur == nil {
			a.cur = <-a.free
		}
		k := copy(a.cur[len(a.cur):cap(a.cur)], p)
		a.cur, p = a.cur[:len(a.cur)+k], p[k:]
		if len(a.cur) == cap(a.cur) {
			a.work <- a.cur
			a.cur = nil
		}
	}
	return n, nil
}

// Sum stops the goroutine and returns "sha256:<hex>" of everything
// written. It is idempotent; no Write may follow it.
func (a *unpackHasher) Sum() string {
	if a.done == nil {
		return a.sum
	}
	if len(a.cur) > 0 {
		a.work <- a.cur
	}
	a.cur = nil
	close(a.work)
	<-a.done
	a.done = nil
	a.sum = "sha256:" + hex.EncodeToString(a.h.Sum(nil))
	return a.sum
}
