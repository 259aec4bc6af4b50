package layers

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// PruneReport says what Prune removed.
type PruneReport struct {
	Blobs        int   // blobs no image references
	Bytes        int64 // their size
	CacheEntries int   // build cache entries whose layer is gone
	Unpacked     int   // unpacked layer folders no image references
}

// Prune removes what no image in the index (and none of keep, e.g. the
// images of existing containers) references: blobs, unpacked layers,
// build cache entries and temp files. It takes the gc lock exclusively, so
// it waits for running builds and they wait for it: a blob a build has
// written but not yet tagged is never removed.
func (s *Store) Prune(keep []v1.Hash) (PruneReport, error) {
	var rep PruneReport
	unlock, err := s.lock("gc.lock", unix.LOCK_EX)
	if err != nil {
		return rep, err
	}
	defer unlock()

	live, err := s.liveBlobs(keep)
	if err != nil {
		return rep, err
	}
	blobDir := s.path("oci", "blobs", "sha256")
	ents, err := os.ReadDir(blobDir)
	if err != nil {
		return rep, err
	}
	for _, e := range ents {
		if live[e.Name()] {
			continue
		}
		if fi, err := e.Info(); err == nil {
			rep.Bytes += fi.Size()
		}
		if os.Remove(filepath.Join(blobDir, e.Name())) == nil {
			rep.Blobs++
		}
	}
	rep.CacheEntries = s.pruneCache()
	if ents, err := os.ReadDir(s.path("layers", "sha256")); err == nil {
		for _, e := range ents {
			if !live[e.Name()] && os.RemoveAll(filepath.Join(s.path("layers", "sha256"), e.Name())) == nil {
				rep.Unpacked++
			}
		}
	}
	// With the lock held exclusively no build is running: everything in
	// tmp is left over from a killed one.
	if ents, err := os.ReadDir(s.path("tmp")); err == nil {
		for _, e := range ents {
			os.RemoveAll(filepath.Join(s.path("tmp"), e.Name()))
		}
	}
	return rep, nil
}

// liveBlobs returns the hex digests of every blob reachable from the index
// and from keep.
func (s *Store) liveBlobs(keep []v1.Hash) (map[string]bool, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	roots := keep
	for _, d := range idx.Manifests {
		roots = append(roots, d.Digest)
	}
	live := map[string]bool{}
	for _, d := range roots {
		if live[d.Hex] {
			continue
		}
		live[d.Hex] = true
		m, err := s.Manifest(d)
		if err != nil {
			continue // not an image manifest we can read: keep just it
		}
		live[m.Config.Digest.Hex] = true
		for _, l := range m.Layers {
			live[l.Digest.Hex] = true
		}
	}
	return live, nil
}

// pruneCache removes build cache entries that name a missing blob.
func (s *Store) pruneCache() int {
	dir := s.path("cache", "steps")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var target v1.Hash
		if strings.HasPrefix(e.Name(), "import-") {
			target, err = v1.NewHash(string(data))
		} else {
			var ce cacheEntry
			if err = json.Unmarshal(data, &ce); err == nil && ce.Layer != nil {
				target = ce.Layer.Digest
			}
		}
		if err != nil || target != (v1.Hash{}) && !s.HasBlob(target) {
			if os.Remove(p) == nil {
				n++
			}
		}
	}
	return n
}
