package layers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/nook-dev/nook/internal/atomicfile"
)

// ErrNotFound is returned (wrapped) when an image, tag or blob does not exist.
var ErrNotFound = errors.New("not found")

// Store is nook's image store: a standard OCI image layout under Root/oci,
// readable by skopeo, umoci and podman, plus nook's own caches beside it.
//
//	Root/oci/            the OCI image layout (oci-layout, index.json, blobs/)
//	Root/oci/index.lock  serialises index.json updates (flock)
//	Root/cache/          the build cache (step key -> layer)
//	Root/tmp/            temp files, renamed into place once complete
//	Root/gc.lock         builds hold it shared, prune exclusive
//
// Every blob is written under a temp name, fsynced, and renamed to its
// digest, so a SIGKILL at any moment leaves either the whole blob or none.
// index.json is replaced by rename under a lock, and only after the blobs
// it references are durable. A Store is safe for concurrent use by several
// processes.
type Store struct {
	Root string
}

// Open opens the store at root, creating its layout if needed.
func Open(root string) (*Store, error) {
	s := &Store{Root: root}
	for _, d := range []string{s.path("oci", "blobs", "sha256"), s.path("cache", "steps"), s.path("tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open store %s: %w", root, err)
		}
	}
	if err := s.initLayout(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	return s, nil
}

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.Root}, elem...)...)
}

// LayoutDir is the OCI image layout, for tools that read one
// (`skopeo inspect oci:DIR:NAME`).
func (s *Store) LayoutDir() string { return s.path("oci") }

// initLayout writes oci-layout and an empty index.json if they are missing.
func (s *Store) initLayout() error {
	if _, err := os.Stat(s.path("oci", "index.json")); err == nil {
		return nil
	}
	if err := atomicfile.WriteFile(s.path("oci", "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), true); err != nil {
		return err
	}
	return s.updateIndex(func(*v1.IndexManifest) error { return nil })
}

// blobPath is where the blob with digest d lives.
func (s *Store) blobPath(d v1.Hash) string {
	return s.path("oci", "blobs", d.Algorithm, d.Hex)
}

// HasBlob reports whether the blob is in the store.
func (s *Store) HasBlob(d v1.Hash) bool {
	_, err := os.Stat(s.blobPath(d))
	return err == nil
}

// OpenBlob opens a blob for reading; the caller closes it. A missing blob
// is an error wrapping ErrNotFound.
func (s *Store) OpenBlob(d v1.Hash) (*os.File, error) {
	f, err := os.Open(s.blobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open blob %s: %w", d, ErrNotFound)
	}
	return f, err
}

// BlobWriter writes one blob. The store computes its digest; Commit makes
// it visible under that digest, Abort (or a crash) leaves nothing.
type BlobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	size int64
	w    io.Writer
}

// NewBlob starts a blob. Write to it, then Commit or Abort.
func (s *Store) NewBlob() (*BlobWriter, error) {
	f, err := os.CreateTemp(s.path("tmp"), "blob-*")
	if err != nil {
		return nil, fmt.Errorf("create blob: %w", err)
	}
	h := sha256.New()
	return &BlobWriter{s: s, f: f, h: h, w: io.MultiWriter(f, h)}, nil
}

func (b *BlobWriter) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	b.size += int64(n)
	return n, err
}

// Commit syncs the blob and renames it to its digest. Committing content
// that is already stored is not an error. Commit is not idempotent: call
// it once.
func (b *BlobWriter) Commit() (v1.Hash, int64, error) {
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(b.h.Sum(nil))}
	defer os.Remove(b.f.Name()) // no-op after a successful rename
	if err := b.f.Sync(); err != nil {
		b.f.Close()
		return v1.Hash{}, 0, fmt.Errorf("write blob %s: %w", d, err)
	}
	if err := b.f.Close(); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("write blob %s: %w", d, err)
	}
	if b.s.HasBlob(d) {
		return d, b.size, nil
	}
	if err := os.Rename(b.f.Name(), b.s.blobPath(d)); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("write blob %s: %w", d, err)
	}
	return d, b.size, nil
}

// Abort discards the blob.
func (b *BlobWriter) Abort() {
	b.f.Close()
	os.Remove(b.f.Name())
}

// WriteBlob stores everything r yields as one blob.
func (s *Store) WriteBlob(r io.Reader) (v1.Hash, int64, error) {
	b, err := s.NewBlob()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	if _, err := io.Copy(b, r); err != nil {
		b.Abort()
		return v1.Hash{}, 0, fmt.Errorf("write blob: %w", err)
	}
	return b.Commit()
}

// syncDir makes renames into dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// lock takes a flock on a file in the store; shared or exclusive. The
// returned func releases it. Locks die with the process, so a SIGKILL never
// leaves one held.
func (s *Store) lock(name string, how int) (func(), error) {
	f, err := os.OpenFile(s.path(name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}
