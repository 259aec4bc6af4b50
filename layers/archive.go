package layers

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"golang.org/x/sys/unix"

	"github.com/nook-dev/nook/internal/atomicfile"
)

// Save writes the named images to file as an OCI archive (a tar of an OCI
// image layout), with gzip-compressed layers as other tools expect, each
// image tagged by its name. The file appears whole or not at all.
func (s *Store) Save(file string, names []string) error {
	tmp, err := os.MkdirTemp(s.path("tmp"), "save-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	for _, n := range names {
		d, err := s.Resolve(n)
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		img, err := s.V1Image(d)
		if err != nil {
			return fmt.Errorf("save %s: %w", n, err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{annRefName: NormalizeName(n)})); err != nil {
			return fmt.Errorf("save %s: %w", n, err)
		}
	}
	if err := atomicfile.Write(file, false, func(f *os.File) error { return tarDir(f, tmp) }); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// tarDir writes the regular files under dir as a tar, sorted, with fixed
// times and owners.
func tarDir(w io.Writer, dir string) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: fi.Size(), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg})
		}
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// Load imports every image of an OCI archive and tags each with its
// ref.name annotation. It returns the images as tagged.
func (s *Store) Load(file string) ([]ImageRef, error) {
	unlock, err := s.lock("gc.lock", unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []ImageRef
	err = s.withArchive(file, func(dir string) error {
		p, err := layout.FromPath(dir)
		if err != nil {
			return err
		}
		idx, err := p.ImageIndex()
		if err != nil {
			return err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, desc := range im.Manifests {
			name := desc.Annotations[annRefName]
			if name == "" {
				continue
			}
			img, err := idx.Image(desc.Digest)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			d, err := s.WriteImage(img)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := s.Tag(name, d); err != nil {
				return err
			}
			out = append(out, ImageRef{Name: NormalizeName(name), Digest: d, Current: true})
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("load %s: %w", file, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load %s: no tagged image in the archive", file)
	}
	return out, nil
}

// ImportRootfs makes a one-layer image of a root filesystem tarball
// (plain or gzip-compressed), as `docker import` does, and tags it name.
// The tar is stored as it is; unpacking it later is what defends against
// hostile entries.
func (s *Store) ImportRootfs(r io.Reader, name string) (v1.Hash, error) {
	unlock, err := s.lock("gc.lock", unix.LOCK_SH)
	if err != nil {
		return v1.Hash{}, err
	}
	defer unlock()
	br := bufio.NewReaderSize(r, 1<<16)
	var src io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("import %s: %w", name, err)
		}
		defer zr.Close()
		src = zr
	}
	// Check it is a tar at all before storing it.
	b, err := s.NewBlob()
	if err != nil {
		return v1.Hash{}, err
	}
	tr := tar.NewReader(io.TeeReader(src, b))
	entries := 0
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Abort()
			return v1.Hash{}, fmt.Errorf("import %s: not a tar archive: %w", name, err)
		}
		entries++
	}
	if _, err := io.Copy(b, src); err != nil { // the tar's trailing padding
		b.Abort()
		return v1.Hash{}, fmt.Errorf("import %s: %w", name, err)
	}
	if entries == 0 {
		b.Abort()
		return v1.Hash{}, fmt.Errorf("import %s: the archive holds no files", name)
	}
	d, n, err := b.Commit()
	if err != nil {
		return v1.Hash{}, err
	}
	cfg := v1.ConfigFile{Architecture: runtime.GOARCH, OS: "linux", Created: v1.Time{Time: unixTime(sourceDateEpoch())}, History: []v1.History{{CreatedBy: "nook import"}}}
	img, err := s.PutImage(cfg, []LayerDesc{{Digest: d, Size: n}})
	if err != nil {
		return v1.Hash{}, err
	}
	return img, s.Tag(name, img)
}
