package layers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// The store promises a standard OCI image layout that other tools read
// and write. These tests hold it to that with the tools themselves.

// needTool skips the test when a tool is not installed, and fails it in
// CI, which installs every tool the suite uses.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed, and CI must run the interop tests: %v", name, err)
		}
		t.Skipf("%s is not installed (apt-get install %s): %v", name, name, err)
	}
}

// tool runs a command and returns its stdout, failing the test with its
// stderr if it exits non-zero.
func tool(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// skopeo runs skopeo without a signature policy: every copy here is
// between local layouts, and a test machine may have no policy.json.
func skopeo(t *testing.T, args ...string) []byte {
	t.Helper()
	return tool(t, "skopeo", append([]string{"--insecure-policy"}, args...)...)
}

// builtApp builds appRecipe into a fresh store, tagged test/app:latest.
func builtApp(t *testing.T) (*Store, *Image) {
	t.Helper()
	dir := t.TempDir()
	appTree(t, dir)
	s := newStore(t)
	d, _ := build(t, &Builder{Store: s}, appRecipe(dir))
	im, err := s.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	return s, im
}

func TestSkopeoReadsStore(t *testing.T) {
	needTool(t, "skopeo")
	s, im := builtApp(t)
	if err := s.Tag("interop:v1", im.Digest); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"test/app:latest", "interop:v1"} {
		t.Run(tag, func(t *testing.T) {
			ref := "oci:" + s.LayoutDir() + ":" + tag

			raw := skopeo(t, "inspect", "--raw", ref)
			if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != im.Digest.String() {
				t.Errorf("skopeo inspect --raw %s: manifest digest sha256:%x, want %s", ref, sum, im.Digest)
			}
			var m v1.Manifest
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("skopeo inspect --raw: %v\n%s", err, raw)
			}
			var rawLayers []v1.Hash
			for _, l := range m.Layers {
				rawLayers = append(rawLayers, l.Digest)
			}
			if diff := cmp.Diff(im.Layers(), rawLayers); diff != "" {
				t.Errorf("skopeo inspect --raw layers (-store +skopeo):\n%s", diff)
			}

			var info struct {
				Digest       string
				Architecture string
				Os           string
				Layers       []string
				Env          []string
			}
			if err := json.Unmarshal(skopeo(t, "inspect", ref), &info); err != nil {
				t.Fatalf("skopeo inspect: %v", err)
			}
			var want []string
			for _, l := range im.Layers() {
				want = append(want, l.String())
			}
			if info.Digest != im.Digest.String() || info.Os != "linux" || info.Architecture != im.Config.Architecture {
				t.Errorf("skopeo inspect = digest %s, %s/%s; want %s, linux/%s", info.Digest, info.Os, info.Architecture, im.Digest, im.Config.Architecture)
			}
			if diff := cmp.Diff(want, info.Layers); diff != "" {
				t.Errorf("skopeo inspect layers (-store +skopeo):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"MODE=dev"}, info.Env); diff != "" {
				t.Errorf("skopeo inspect env (-want +got):\n%s", diff)
			}
		})
	}

	// A copy out of the store is a valid image with the same content: its
	// layers may be compressed on the way, so compare diff IDs.
	dst := t.TempDir()
	skopeo(t, "copy", "oci:"+s.LayoutDir()+":test/app:latest", "oci:"+dst+":x")
	img := layoutImage(t, dst, "x")
	if err := validate.Image(img); err != nil {
		t.Errorf("validate.Image(skopeo's copy): %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(im.Layers(), cfg.RootFS.DiffIDs); diff != "" {
		t.Errorf("diff IDs of skopeo's copy (-store +copy):\n%s", diff)
	}
}

// layoutImage opens the image tagged tag in the OCI layout dir.
func layoutImage(t *testing.T, dir, tag string) v1.Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Annotations[annRefName] == tag {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("layout %s has no image tagged %q: %+v", dir, tag, im.Manifests)
	return nil
}

func TestUmociReadsStore(t *testing.T) {
	needTool(t, "umoci")
	s, im := builtApp(t)
	if err := s.Tag("interop:v1", im.Digest); err != nil {
		t.Fatal(err)
	}

	tags := strings.Fields(string(tool(t, "umoci", "ls", "--layout", s.LayoutDir())))
	slices.Sort(tags)
	if diff := cmp.Diff([]string{"interop:v1", "test/app:latest"}, tags); diff != "" {
		t.Errorf("umoci ls (-want +got):\n%s", diff)
	}

	bundle := filepath.Join(t.TempDir(), "bundle")
	args := []string{"unpack", "--image", s.LayoutDir() + ":interop:v1", bundle}
	if os.Geteuid() != 0 {
		args = slices.Insert(args, 1, "--rootless")
	}
	tool(t, "umoci", args...)
	rootfs := filepath.Join(bundle, "rootfs")
	for name, want := range map[string]string{
		"app/app":                 "#!binary v1",
		"app/static/index.html":   "<h1>hi</h1>",
		"app/static/css/site.css": "h1{}",
		"etc/app/a.conf":          "a=1",
		"etc/app/b.conf":          "b=2",
	} {
		got, err := os.ReadFile(filepath.Join(rootfs, name))
		if err != nil || string(got) != want {
			t.Errorf("unpacked %s = %q, %v; want %q", name, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "app", "app")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("unpacked app/app: %v, %v; want mode 0755", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "etc", "app", "notes.txt")); err == nil {
		t.Errorf("unpacked etc/app/notes.txt, which no copy step matches")
	}
	var spec struct {
		Process struct {
			Args []string
			Cwd  string
		}
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatalf("umoci's config.json: %v", err)
	}
	if !slices.Equal(spec.Process.Args, []string{"/app/app"}) || spec.Process.Cwd != "/app" {
		t.Errorf("umoci's runtime config: process %+v, want args [/app/app] in /app", spec.Process)
	}
}

// TestBuildFromSkopeoLayout builds on a base image that another tool
// wrote, with gzip layers: as a layout folder and as an archive.
func TestBuildFromSkopeoLayout(t *testing.T) {
	needTool(t, "skopeo")
	a, base := builtApp(t)
	src := "oci:" + a.LayoutDir() + ":test/app:latest"

	ctx := t.TempDir()
	writeTree(t, ctx, map[string]string{"extra/readme.txt": "added on top"})
	derived := func(from string) Recipe {
		return Recipe{
			Tag: "test/derived", From: from, Context: ctx,
			Steps: []Step{{Kind: StepCopy, Copy: CopySpec{Sources: []string{"extra/readme.txt"}, To: "/app/README"}}},
		}
	}
	// The same recipe on the base in its own store: what every import
	// must reproduce, since it stores the layers uncompressed again.
	direct, _ := build(t, &Builder{Store: a}, derived("test/app"))

	tests := []struct {
		name string
		// dest is skopeo's destination and from the recipe's base, for
		// a fresh folder dir.
		dest, from func(dir string) string
	}{
		{"oci-layout",
			func(dir string) string { return "oci:" + dir + ":base" },
			func(dir string) string { return "oci-layout:" + dir + ":base" }},
		{"oci-archive",
			func(dir string) string { return "oci-archive:" + filepath.Join(dir, "base.tar") + ":base" },
			func(dir string) string { return "oci-archive:" + filepath.Join(dir, "base.tar") + ":base" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			from := tt.from(dir)
			skopeo(t, "copy", "--dest-compress", src, tt.dest(dir))
			if tt.name == "oci-layout" {
				wantGzipLayers(t, dir, "base")
			}

			b := newStore(t)
			d, got := build(t, &Builder{Store: b}, derived(from))
			if len(got.built) != 1 {
				t.Errorf("built steps %v, want the copy step", got.built)
			}
			im, err := b.Image(d)
			if err != nil {
				t.Fatal(err)
			}
			n := len(base.Layers())
			if len(im.Layers()) != n+1 {
				t.Fatalf("image has %d layers, want the base's %d and one more", len(im.Layers()), n)
			}
			for i, l := range base.Layers() {
				if diff := cmp.Diff(tarListing(t, a, l), tarListing(t, b, im.Layers()[i])); diff != "" {
					t.Errorf("layer %d (-base +imported):\n%s", i, diff)
				}
			}
			want := []string{"dir app/ 0755 0:0", "file app/README 0644 0:0 12"}
			if diff := cmp.Diff(want, tarListing(t, b, im.Layers()[n])); diff != "" {
				t.Errorf("new layer (-want +got):\n%s", diff)
			}
			if !slices.Equal(im.Config.Config.Cmd, []string{"/app/app"}) || !slices.Contains(im.Config.Config.Env, "MODE=dev") {
				t.Errorf("config lost the base's: %+v", im.Config.Config)
			}
			if d != direct {
				t.Errorf("built on %s: %s; built on the same base in its store: %s", tt.name, d, direct)
			}

			validateStored(t, b, d, layoutImage(t, b.LayoutDir(), "test/derived:latest"))

			// Importing again is answered from the import cache.
			again, got := build(t, &Builder{Store: b}, derived(from))
			if again != d || len(got.built) != 0 {
				t.Errorf("second build: %s, built %v; want %s, nothing built", again, got.built, d)
			}
		})
	}
}

// wantGzipLayers fails unless every layer of the image tagged tag in the
// layout dir is gzip-compressed: the case the importer must decompress.
func wantGzipLayers(t *testing.T, dir, tag string) {
	t.Helper()
	m, err := layoutImage(t, dir, tag).Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		if !strings.HasSuffix(string(l.MediaType), "+gzip") {
			t.Errorf("skopeo --dest-compress wrote layer %s as %s, want gzip", l.Digest, l.MediaType)
		}
	}
}
