package layers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// LayerDir is the folder unpacked layers live in, each at "sha256/HEX":
// overlay lowerdirs, shared by every container that uses the layer.
func (s *Store) LayerDir() string { return s.path("layers") }

// IsUnpacked reports whether layer d is unpacked already, and where (as
// Unpacked returns it): anyone may use it then, outside the namespace too.
func (s *Store) IsUnpacked(d v1.Hash) (string, bool) {
	rel := filepath.Join(d.Algorithm, d.Hex)
	_, err := os.Stat(filepath.Join(s.LayerDir(), rel))
	return rel, err == nil
}

// Unpacked returns the folder (relative to LayerDir) holding layer d
// unpacked in overlay's format, unpacking it first if needed. The caller
// must be uid 0 in nook's user namespace (or root) so files keep their
// owners; ignoreChown is for a single-id mapping, where they cannot.
// Concurrent callers may both unpack a layer; one folder wins, whole.
func (s *Store) Unpacked(d v1.Hash, ignoreChown bool) (string, error) {
	rel, ok := s.IsUnpacked(d)
	if ok {
		return rel, nil
	}
	final := filepath.Join(s.LayerDir(), rel)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return "", fmt.Errorf("unpack layer %s: %w", d, err)
	}
	blob, err := s.OpenBlob(d)
	if err != nil {
		return "", fmt.Errorf("unpack layer %s: %w", d, err)
	}
	defer blob.Close()
	tmp, err := os.MkdirTemp(s.path("tmp"), "unpack-*")
	if err != nil {
		return "", err
	}
	got, err := Unpack(blob, tmp, UnpackOptions{IgnoreChownErrors: ignoreChown})
	if err == nil && got != d.String() {
		err = fmt.Errorf("content has digest %s", got)
	}
	if err == nil {
		// Overlay lowers must be readable by the container's users.
		err = os.Chmod(tmp, 0o755)
	}
	if err == nil {
		err = os.Rename(tmp, final)
		if errors.Is(err, os.ErrExist) || errors.Is(err, errNotEmpty) {
			err = nil // another process won
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("unpack layer %s: %w", d, err)
	}
	os.RemoveAll(tmp)
	return rel, nil
}

var errNotEmpty = syscall.ENOTEMPTY
