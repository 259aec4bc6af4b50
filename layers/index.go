package layers

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/nook-dev/nook/internal/atomicfile"
)

// Annotations nook keeps on index.json entries. Every build of a name is an
// entry carrying annName; the current one also carries the standard
// ref.name, which is what skopeo, umoci and podman look images up by.
const (
	annRefName = "org.opencontainers.image.ref.name"
	annCreated = "org.opencontainers.image.created"
	annName    = "dev.nook.name" // NAME:TAG this entry is (or was) a build of
)

// KeepBuilds is how many earlier builds of a name stay listed (and
// rollback-able) besides the current one. A guess: enough to step back
// through an afternoon's mistakes, few enough that prune frees space.
const KeepBuilds = 10

// ImageRef is one image entry of the store.
type ImageRef struct {
	Name    string    // NAME:TAG
	Digest  v1.Hash   // manifest digest: the image's identity
	Created time.Time // when nook recorded this build
	Current bool      // the tag points at it now; else an earlier build
}

// NormalizeName adds ":latest" to a reference without a tag.
func NormalizeName(ref string) string {
	if i := strings.LastIndex(ref, ":"); i < 0 || strings.Contains(ref[i:], "/") {
		return ref + ":latest"
	}
	return ref
}

func (s *Store) readIndex() (*v1.IndexManifest, error) {
	data, err := os.ReadFile(s.path("oci", "index.json"))
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	return &idx, nil
}

// updateIndex applies change to index.json under the index lock, then
// replaces the file atomically. Blobs written before are made durable
// first, so the index never names a blob a crash could lose.
func (s *Store) updateIndex(change func(*v1.IndexManifest) error) error {
	unlock, err := s.lock("oci/index.lock", unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	idx := &v1.IndexManifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json", Manifests: []v1.Descriptor{}}
	if _, err := os.Stat(s.path("oci", "index.json")); err == nil {
		if idx, err = s.readIndex(); err != nil {
			return err
		}
	}
	if err := change(idx); err != nil {
		return err
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := syncDir(s.path("oci", "blobs", "sha256")); err != nil {
		return fmt.Errorf("update index: %w", err)
	}
	if err := atomicfile.WriteFile(s.path("oci", "index.json"), data, true); err != nil {
		return fmt.Errorf("update index: %w", err)
	}
	return nil
}

// Images lists every image entry: current tags and earlier builds, newest
// first within a name, names in order.
func (s *Store) Images() ([]ImageRef, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []ImageRef
	for _, d := range idx.Manifests {
		name := d.Annotations[annName]
		ref := d.Annotations[annRefName]
		if name == "" {
			name = ref // written by another tool
		}
		if name == "" {
			continue
		}
		created, _ := time.Parse(time.RFC3339Nano, d.Annotations[annCreated])
		out = append(out, ImageRef{Name: name, Digest: d.Digest, Created: created, Current: ref != ""})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		if out[i].Current != out[j].Current {
			return out[i].Current
		}
		return out[i].Created.After(out[j].Created)
	})
	return out, nil
}

// Resolve finds the image a user names: NAME[:TAG], a digest, or a prefix
// of at least 4 hex digits of one. The error wraps ErrNotFound when
// nothing matches.
func (s *Store) Resolve(ref string) (v1.Hash, error) {
	imgs, err := s.Images()
	if err != nil {
		return v1.Hash{}, err
	}
	name := NormalizeName(ref)
	for _, im := range imgs {
		if im.Current && im.Name == name {
			return im.Digest, nil
		}
	}
	hexPart := strings.TrimPrefix(ref, "sha256:")
	if len(hexPart) >= 4 && strings.Trim(hexPart, "0123456789abcdef") == "" {
		var found []v1.Hash
		for _, im := range imgs {
			if strings.HasPrefix(im.Digest.Hex, hexPart) && !slices.Contains(found, im.Digest) {
				found = append(found, im.Digest)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
		default:
			return v1.Hash{}, fmt.Errorf("image %q is ambiguous: %d images start with it", ref, len(found))
		}
	}
	return v1.Hash{}, fmt.Errorf("image %q: %w", ref, ErrNotFound)
}

// Tag points name (NAME[:TAG]) at the image with manifest digest d. The
// build it pointed at before stays listed as an earlier build. Tagging the
// image a name already points at changes nothing.
func (s *Store) Tag(name string, d v1.Hash) error {
	name = NormalizeName(name)
	desc, err := s.manifestDescriptor(d)
	if err != nil {
		return fmt.Errorf("tag %s: %w", name, err)
	}
	// Fixed width, so that timestamps compare as strings.
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z")
	return s.updateIndex(func(idx *v1.IndexManifest) error {
		for _, m := range idx.Manifests {
			if m.Annotations[annRefName] != name {
				continue
			}
			if m.Digest == d {
				return nil // already current
			}
			delete(m.Annotations, annRefName)
			if m.Annotations[annName] == "" {
				m.Annotations[annName] = name // written by another tool
			}
		}
		isBuild := func(m v1.Descriptor) bool { return m.Annotations[annName] == name }
		// An earlier build tagged again becomes current: one entry, not two.
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m v1.Descriptor) bool { return isBuild(m) && m.Digest == d })
		// Keep the newest KeepBuilds earlier builds.
		var created []string
		for _, m := range idx.Manifests {
			if isBuild(m) {
				created = append(created, m.Annotations[annCreated])
			}
		}
		if len(created) > KeepBuilds {
			slices.Sort(created)
			oldestKept := created[len(created)-KeepBuilds]
			idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m v1.Descriptor) bool {
				return isBuild(m) && m.Annotations[annCreated] < oldestKept
			})
		}
		desc.Annotations = map[string]string{annRefName: name, annName: name, annCreated: now}
		idx.Manifests = append(idx.Manifests, desc)
		return nil
	})
}

// Untag removes name and its earlier builds from the index. The blobs stay
// until prune.
func (s *Store) Untag(name string) error {
	name = NormalizeName(name)
	found := false
	err := s.updateIndex(func(idx *v1.IndexManifest) error {
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m v1.Descriptor) bool {
			drop := m.Annotations[annRefName] == name || m.Annotations[annName] == name
			found = found || drop
			return drop
		})
		return nil
	})
	if err == nil && !found {
		return fmt.Errorf("untag %s: %w", name, ErrNotFound)
	}
	return err
}

// Rollback moves name back to the newest build older than the current one
// and returns that build's digest. The build rolled back from stays listed.
func (s *Store) Rollback(name string) (v1.Hash, error) {
	name = NormalizeName(name)
	var to v1.Hash
	err := s.updateIndex(func(idx *v1.IndexManifest) error {
		cur := slices.IndexFunc(idx.Manifests, func(m v1.Descriptor) bool { return m.Annotations[annRefName] == name })
		if cur < 0 {
			return fmt.Errorf("roll back %s: %w", name, ErrNotFound)
		}
		curCreated := idx.Manifests[cur].Annotations[annCreated]
		prev := -1
		for i, m := range idx.Manifests {
			c := m.Annotations[annCreated]
			if i != cur && m.Annotations[annName] == name && c < curCreated && (prev < 0 || c > idx.Manifests[prev].Annotations[annCreated]) {
				prev = i
			}
		}
		if prev < 0 {
			return fmt.Errorf("roll back %s: no earlier build is kept", name)
		}
		delete(idx.Manifests[cur].Annotations, annRefName)
		idx.Manifests[prev].Annotations[annRefName] = name
		to = idx.Manifests[prev].Digest
		return nil
	})
	return to, err
}

// manifestDescriptor describes the stored manifest with digest d.
func (s *Store) manifestDescriptor(d v1.Hash) (v1.Descriptor, error) {
	st, err := os.Stat(s.blobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return v1.Descriptor{}, fmt.Errorf("image %s: %w", d, ErrNotFound)
	} else if err != nil {
		return v1.Descriptor{}, err
	}
	m, err := s.Manifest(d)
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt := m.MediaType
	if mt == "" {
		mt = "application/vnd.oci.image.manifest.v1+json"
	}
	return v1.Descriptor{MediaType: mt, Size: st.Size(), Digest: d}, nil
}
