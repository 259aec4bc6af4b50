package layers

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/nook-dev/nook/internal/atomicfile"
)

// ResolveBase finds the image a build starts from: a stored image (name or
// digest), "oci-layout:DIR[:TAG]" or "oci-archive:FILE[:TAG]", the last two
// imported into the store first.
func (s *Store) ResolveBase(from string) (v1.Hash, error) {
	switch {
	case strings.HasPrefix(from, "oci-layout:"):
		dir, tag := splitTag(strings.TrimPrefix(from, "oci-layout:"))
		return s.ImportLayout(dir, tag)
	case strings.HasPrefix(from, "oci-archive:"):
		file, tag := splitTag(strings.TrimPrefix(from, "oci-archive:"))
		return s.ImportArchive(file, tag)
	}
	return s.Resolve(from)
}

// splitTag splits "PATH:TAG"; a colon followed by a slash belongs to the path.
func splitTag(s string) (string, string) {
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.Contains(s[i:], "/") {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// ImportLayout copies one image of the OCI image layout in dir into the
// store and returns its digest here. tag picks the image by its ref.name
// annotation; empty picks the only image. Layers are stored uncompressed,
// so the digest differs from the layout's when its layers are compressed.
// Importing the same image again is answered from the cache.
func (s *Store) ImportLayout(dir, tag string) (v1.Hash, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("import %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("import %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("import %s: %w", dir, err)
	}
	var pick *v1.Descriptor
	var names []string
	for i, d := range im.Manifests {
		ref := d.Annotations[annRefName]
		names = append(names, ref)
		if tag == "" && len(im.Manifests) == 1 || tag != "" && (ref == tag || ref == NormalizeName(tag)) {
			pick = &im.Manifests[i]
		}
	}
	if pick == nil {
		if tag == "" {
			return v1.Hash{}, fmt.Errorf("import %s: it holds %d images (%s): name one as oci-layout:DIR:TAG", dir, len(names), strings.Join(names, ", "))
		}
		return v1.Hash{}, fmt.Errorf("import %s: no image tagged %q (it has %s): %w", dir, tag, strings.Join(names, ", "), ErrNotFound)
	}
	memo := s.path("cache", "steps", "import-"+pick.Digest.Hex)
	if data, err := os.ReadFile(memo); err == nil {
		if d, err := v1.NewHash(string(data)); err == nil && s.HasBlob(d) {
			return d, nil
		}
	}
	img, err := idx.Image(pick.Digest)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("import %s: %w", dir, err)
	}
	d, err := s.WriteImage(img)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("import %s: %w", dir, err)
	}
	return d, atomicfile.WriteFile(memo, []byte(d.String()), true)
}

// WriteImage stores img: its layers uncompressed, its config, a manifest.
func (s *Store) WriteImage(img v1.Image) (v1.Hash, error) {
	ls, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	var descs []LayerDesc
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			return v1.Hash{}, err
		}
		d, n, err := s.WriteBlob(rc)
		rc.Close()
		if err != nil {
			return v1.Hash{}, err
		}
		if want, err := l.DiffID(); err == nil && want != d {
			return v1.Hash{}, fmt.Errorf("layer %s: its content has digest %s", want, d)
		}
		descs = append(descs, LayerDesc{Digest: d, Size: n})
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	return s.PutImage(*cfg, descs)
}

// blobName is the only kind of path an OCI archive may hold besides
// index.json and oci-layout.
var blobName = regexp.MustCompile(`^blobs/sha256/[a-f0-9]{64}$`)

// ImportArchive imports an image from an OCI archive (a tar of an OCI
// image layout, as `nook save` and `skopeo copy ... oci-archive:` write).
func (s *Store) ImportArchive(file, tag string) (v1.Hash, error) {
	var d v1.Hash
	err := s.withArchive(file, func(dir string) (err error) {
		d, err = s.ImportLayout(dir, tag)
		return err
	})
	return d, err
}

// withArchive unpacks the OCI layout inside an archive to a temp folder
// and calls fn with it. Only the layout's own files are read from the tar;
// any other entry, link or path is ignored, so a hostile archive cannot
// write anywhere.
func (s *Store) withArchive(file string, fn func(dir string) error) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("import %s: %w", file, err)
	}
	defer f.Close()
	tmp, err := os.MkdirTemp(s.path("tmp"), "archive-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Join(tmp, "blobs", "sha256"), 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("import %s: %w", file, err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if hdr.Typeflag != tar.TypeReg || !(name == "index.json" || name == "oci-layout" || blobName.MatchString(name)) {
			continue
		}
		out, err := os.OpenFile(filepath.Join(tmp, filepath.FromSlash(name)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("import %s: %s: %w", file, name, err)
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("import %s: %s: %w", file, name, err)
		}
	}
	return fn(tmp)
}
