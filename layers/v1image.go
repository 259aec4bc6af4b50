package layers

import (
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// V1Image returns a stored image as a go-containerregistry image for the
// doors out of the store (push, save): the same config and layers, with
// layers gzip-compressed on the fly as registries and archives expect, so
// its manifest digest differs from the store's uncompressed one.
func (s *Store) V1Image(d v1.Hash) (v1.Image, error) {
	im, err := s.Image(d)
	if err != nil {
		return nil, err
	}
	f, err := s.OpenBlob(im.Manifest.Config.Digest)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxJSON))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", d, err)
	}
	img, err := partial.UncompressedToImage(&uncompressedImage{s: s, im: im, rawConfig: raw})
	if err != nil {
		return nil, err
	}
	// ggcr builds a Docker manifest from an uncompressed core; nook's
	// images are OCI images wherever they go.
	return mutate.ConfigMediaType(mutate.MediaType(img, MediaManifest), MediaConfig), nil
}

// uncompressedImage implements partial.UncompressedImageCore over the store.
type uncompressedImage struct {
	s         *Store
	im        *Image
	rawConfig []byte
}

func (u *uncompressedImage) RawConfigFile() ([]byte, error) { return u.rawConfig, nil }

func (u *uncompressedImage) MediaType() (types.MediaType, error) { return MediaManifest, nil }

func (u *uncompressedImage) LayerByDiffID(h v1.Hash) (partial.UncompressedLayer, error) {
	for _, l := range u.im.Manifest.Layers {
		if l.Digest == h {
			return &storedLayer{s: u.s, d: h}, nil
		}
	}
	return nil, fmt.Errorf("image %s: layer %s: %w", u.im.Digest, h, ErrNotFound)
}

// storedLayer is an uncompressed layer blob of the store.
type storedLayer struct {
	s *Store
	d v1.Hash
}

func (l *storedLayer) DiffID() (v1.Hash, error)             { return l.d, nil }
func (l *storedLayer) Uncompressed() (io.ReadCloser, error) { return l.s.OpenBlob(l.d) }
func (l *storedLayer) MediaType() (types.MediaType, error)  { return types.OCILayer, nil }
