package layers

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	appTree(t, dir)
	a := newStore(t)
	d, _ := build(t, &Builder{Store: a}, appRecipe(dir))
	archive := filepath.Join(t.TempDir(), "app.tar")
	if err := a.Save(archive, []string{"test/app"}); err != nil {
		t.Fatal(err)
	}
	b := newStore(t)
	refs, err := b.Load(archive)
	if err != nil {
		t.Fatal(err)
	}
	want := []ImageRef{{Name: "test/app:latest", Digest: d, Current: true}}
	if diff := cmp.Diff(want, refs); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	// Layers travel compressed and come back uncompressed: the same image.
	if got, err := b.Resolve("test/app"); err != nil || got != d {
		t.Errorf("Resolve after load = %s, %v; want %s", got, err, d)
	}
}

func TestImportRootfs(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeReg, Mode: 0o755, Size: 2})
	tw.Write([]byte("#!"))
	tw.Close()
	zw.Close()
	s := newStore(t)
	d, err := s.ImportRootfs(&buf, "rootfs")
	if err != nil {
		t.Fatal(err)
	}
	im, err := s.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Layers()) != 1 {
		t.Fatalf("layers = %d, want 1", len(im.Layers()))
	}
	if got := tarListing(t, s, im.Layers()[0]); len(got) != 2 {
		t.Errorf("layer = %v, want bin/ and bin/sh, stored uncompressed", got)
	}
	if _, err := s.ImportRootfs(bytes.NewReader([]byte("not a tar at all, clearly")), "junk"); err == nil {
		t.Errorf("ImportRootfs of junk succeeded")
	}
}

func TestPruneKeepsWhatImagesUse(t *testing.T) {
	dir := t.TempDir()
	appTree(t, dir)
	s := newStore(t)
	b := &Builder{Store: s}
	first, _ := build(t, b, appRecipe(dir))
	writeTree(t, dir, map[string]string{"static/index.html": "v2"})
	second, _ := build(t, b, appRecipe(dir))
	os.WriteFile(filepath.Join(s.Root, "tmp", "blob-left-by-a-killed-build"), []byte("x"), 0o600)

	// Both builds are listed (second current, first earlier): nothing goes.
	if rep, err := s.Prune(nil); err != nil || rep.Blobs != 0 {
		t.Fatalf("Prune with both builds listed = %+v, %v; want nothing removed", rep, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root, "tmp")); len(ents) != 0 {
		t.Errorf("tmp after prune = %v, want empty", ents)
	}
	if err := s.Untag("test/app"); err != nil {
		t.Fatal(err)
	}
	// A container still uses the first image: keep it.
	rep, err := s.Prune([]v1.Hash{first})
	if err != nil || rep.Blobs == 0 {
		t.Fatalf("Prune after untag = %+v, %v; want the second image's own blobs removed", rep, err)
	}
	if _, err := s.Image(first); err != nil {
		t.Errorf("kept image: %v", err)
	}
	if _, err := s.Image(second); !errors.Is(err, ErrNotFound) {
		t.Errorf("unkept image: err = %v, want ErrNotFound", err)
	}
	// The cache forgets the removed layer; a rebuild writes it again.
	if d, got := build(t, b, appRecipe(dir)); d != second || len(got.built) == 0 {
		t.Errorf("rebuild after prune = %s (built %v), want %s rebuilt", d, got.built, second)
	}
}

func TestRollbackWalksBack(t *testing.T) {
	dir := t.TempDir()
	appTree(t, dir)
	s := newStore(t)
	b := &Builder{Store: s}
	var ds []v1.Hash
	for _, v := range []string{"v1", "v2", "v3"} {
		writeTree(t, dir, map[string]string{"static/index.html": v})
		d, _ := build(t, b, appRecipe(dir))
		ds = append(ds, d)
	}
	for _, want := range []v1.Hash{ds[1], ds[0]} {
		got, err := s.Rollback("test/app")
		if err != nil || got != want {
			t.Fatalf("Rollback = %s, %v; want %s", got, err, want)
		}
		if cur, _ := s.Resolve("test/app"); cur != want {
			t.Errorf("after rollback the tag points at %s, want %s", cur, want)
		}
	}
	if _, err := s.Rollback("test/app"); err == nil {
		t.Errorf("rollback past the oldest build succeeded")
	}
	imgs, _ := s.Images()
	if len(imgs) != 3 {
		t.Errorf("images --all after rollbacks = %d entries, want 3", len(imgs))
	}
}
