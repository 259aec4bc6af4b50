package layers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of what nook writes. Local layers are stored uncompressed:
// the dev loop never waits for gzip; compression happens on push and save.
const (
	MediaManifest = types.OCIManifestSchema1
	MediaConfig   = types.OCIConfigJSON
	MediaLayer    = types.OCIUncompressedLayer
)

// maxJSON caps manifests and configs read from the store: they are small,
// and a store written by another tool is input like any other. (containerd
// caps manifests at 4 MiB.)
const maxJSON = 8 << 20

// Image is a stored image: its manifest and config.
type Image struct {
	Digest   v1.Hash // of the manifest
	Manifest *v1.Manifest
	Config   *v1.ConfigFile
}

// Layers returns the digests of the image's layers, bottom first.
func (im *Image) Layers() []v1.Hash {
	out := make([]v1.Hash, len(im.Manifest.Layers))
	for i, l := range im.Manifest.Layers {
		out[i] = l.Digest
	}
	return out
}

// Size is the stored size of the image's layers and config.
func (im *Image) Size() int64 {
	n := im.Manifest.Config.Size
	for _, l := range im.Manifest.Layers {
		n += l.Size
	}
	return n
}

func (s *Store) readJSON(d v1.Hash, into any) error {
	f, err := s.OpenBlob(d)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJSON+1))
	if err != nil {
		return fmt.Errorf("read blob %s: %w", d, err)
	}
	if len(data) > maxJSON {
		return fmt.Errorf("read blob %s: larger than %d bytes", d, maxJSON)
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("read blob %s: %w", d, err)
	}
	return nil
}

// Manifest reads the manifest with digest d.
func (s *Store) Manifest(d v1.Hash) (*v1.Manifest, error) {
	var m v1.Manifest
	if err := s.readJSON(d, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Image reads the image whose manifest has digest d.
func (s *Store) Image(d v1.Hash) (*Image, error) {
	m, err := s.Manifest(d)
	if err != nil {
		return nil, err
	}
	var cfg v1.ConfigFile
	if err := s.readJSON(m.Config.Digest, &cfg); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", d, err)
	}
	return &Image{Digest: d, Manifest: m, Config: &cfg}, nil
}

// LayerDesc is a stored layer: its digest (of the uncompressed tar, so it is
// also the diff ID) and size.
type LayerDesc struct {
	Digest v1.Hash
	Size   int64
}

// PutImage writes cfg and a manifest over layers (all already stored) and
// returns the manifest digest. cfg.RootFS is filled in from layers. The
// same config and layers always give the same digest: nothing here depends
// on the time or the machine.
func (s *Store) PutImage(cfg v1.ConfigFile, layers []LayerDesc) (v1.Hash, error) {
	cfg.RootFS = v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{}}
	m := v1.Manifest{SchemaVersion: 2, MediaType: MediaManifest, Layers: []v1.Descriptor{}}
	for _, l := range layers {
		if !s.HasBlob(l.Digest) {
			return v1.Hash{}, fmt.Errorf("put image: layer %s: %w", l.Digest, ErrNotFound)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: MediaLayer, Size: l.Size, Digest: l.Digest})
	}
	if cfg.OS == "" {
		cfg.OS = "linux"
	}
	cd, cn, err := s.writeJSONBlob(cfg)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("put image: config: %w", err)
	}
	m.Config = v1.Descriptor{MediaType: MediaConfig, Size: cn, Digest: cd}
	md, _, err := s.writeJSONBlob(m)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("put image: manifest: %w", err)
	}
	return md, nil
}

// writeJSONBlob stores v as a JSON blob.
func (s *Store) writeJSONBlob(v any) (v1.Hash, int64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	return s.WriteBlob(bytes.NewReader(data))
}
