package layers

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// writeTree writes files (path -> content) under dir; a path ending in "*"
// is made executable.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if name[len(name)-1] == '*' {
			name, mode = name[:len(name)-1], 0o755
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// steps counts what a build did, step by step.
type steps struct{ built, cached []int }

func build(t testing.TB, b *Builder, r Recipe) (v1.Hash, steps) {
	t.Helper()
	var got steps
	b.Progress = func(ev Event) {
		if !ev.Done {
			return
		}
		if ev.Cached {
			got.cached = append(got.cached, ev.Index)
		} else {
			got.built = append(got.built, ev.Index)
		}
	}
	res, err := b.Build(context.Background(), r)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return res.Digest, got
}

func appRecipe(dir string) Recipe {
	return Recipe{
		Tag:     "test/app",
		From:    "scratch",
		Context: dir,
		Steps: []Step{
			{Kind: StepEnv, Vars: map[string]string{"MODE": "dev"}},
			{Kind: StepCopy, Copy: CopySpec{Sources: []string{"bin/app"}, To: "/app/app"}},
			{Kind: StepCopy, Copy: CopySpec{Sources: []string{"static/"}, To: "/app/static/"}},
			{Kind: StepCopy, Copy: CopySpec{Sources: []string{"config/*.conf"}, To: "/etc/app/"}},
		},
		Config: v1.Config{Cmd: []string{"/app/app"}, WorkingDir: "/app"},
	}
}

func appTree(t testing.TB, dir string) {
	writeTree(t, dir, map[string]string{
		"bin/app*":            "#!binary v1",
		"static/index.html":   "<h1>hi</h1>",
		"static/css/site.css": "h1{}",
		"config/a.conf":       "a=1",
		"config/b.conf":       "b=2",
		"config/notes.txt":    "not copied",
	})
}

func TestBuildCachesByContent(t *testing.T) {
	dir := t.TempDir()
	appTree(t, dir)
	b := &Builder{Store: newStore(t), Stats: NewStatCache()}

	first, got := build(t, b, appRecipe(dir))
	if len(got.built) != 3 {
		t.Errorf("first build: built steps %v, want the three copy steps", got.built)
	}

	// Saving a file without changing it rebuilds nothing.
	writeTree(t, dir, map[string]string{"static/index.html": "<h1>hi</h1>"})
	again, got := build(t, b, appRecipe(dir))
	if len(got.built) != 0 || again != first {
		t.Errorf("unchanged save: built %v, digest %s -> %s; want nothing rebuilt, same image", got.built, first, again)
	}

	// Changing one file rebuilds its step and later ones only.
	writeTree(t, dir, map[string]string{"static/index.html": "<h1>hello</h1>"})
	changed, got := build(t, b, appRecipe(dir))
	if diff := cmp.Diff([]int{3, 4}, got.built); diff != "" || changed == first {
		t.Errorf("one changed file: built steps (-want +got):\n%s", diff)
	}

	// A file the copy does not read changes nothing.
	writeTree(t, dir, map[string]string{"config/notes.txt": "still not copied"})
	if _, got := build(t, b, appRecipe(dir)); len(got.built) != 0 {
		t.Errorf("unread file changed: built %v, want nothing", got.built)
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	var digests []v1.Hash
	for i := range 2 {
		dir := t.TempDir()
		appTree(t, dir)
		// Different mtimes and permissions beyond git's two modes must
		// not change the layers.
		mtime := unixTime(int64(1_000_000 * (i + 1)))
		os.Chtimes(filepath.Join(dir, "static", "index.html"), mtime, mtime)
		os.Chmod(filepath.Join(dir, "config", "a.conf"), 0o664)
		d, _ := build(t, &Builder{Store: newStore(t)}, appRecipe(dir))
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("two folders, two stores, same inputs: digests %s and %s differ", digests[0], digests[1])
	}
}

func TestBuiltImageIsValidOCI(t *testing.T) {
	dir := t.TempDir()
	appTree(t, dir)
	s := newStore(t)
	d, _ := build(t, &Builder{Store: s}, appRecipe(dir))

	p, err := layout.FromPath(s.LayoutDir())
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	validateStored(t, s, d, img)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"MODE=dev"}, cfg.Config.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if cfg.Config.WorkingDir != "/app" || len(cfg.History) != 4 {
		t.Errorf("config = %+v", cfg.Config)
	}
}

func TestCopyLayerContents(t *testing.T) {
	dir := t.TempDir()
	appTree(t, dir)
	s := newStore(t)
	d, _ := build(t, &Builder{Store: s}, appRecipe(dir))
	im, err := s.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range im.Layers() {
		got = append(got, tarListing(t, s, l)...)
	}
	want := []string{
		"dir app/ 0755 0:0", "file app/app 0755 0:0 11",
		"dir app/ 0755 0:0", "dir app/static/ 0755 0:0", "dir app/static/css/ 0755 0:0", "file app/static/css/site.css 0644 0:0 4", "file app/static/index.html 0644 0:0 11",
		"dir etc/ 0755 0:0", "dir etc/app/ 0755 0:0", "file etc/app/a.conf 0644 0:0 3", "file etc/app/b.conf 0644 0:0 3",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer contents (-want +got):\n%s", diff)
	}
}

func tarListing(t *testing.T, s *Store, d v1.Hash) []string {
	t.Helper()
	f, err := s.OpenBlob(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out, names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.ModTime.Unix() != 0 {
			t.Errorf("%s: mtime %v, want the epoch", h.Name, h.ModTime)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			out = append(out, sprintf("dir %s %04o %d:%d", h.Name, h.Mode, h.Uid, h.Gid))
		default:
			out = append(out, sprintf("file %s %04o %d:%d %d", h.Name, h.Mode, h.Uid, h.Gid, h.Size))
		}
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("layer %s entries are not sorted: %v", d, names)
	}
	return out
}

func TestCopyRefusesToLeaveContext(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret": "s3cret"})
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"ok": "fine"})
	os.Symlink(outside, filepath.Join(dir, "link"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "direct"))
	s := newStore(t)
	for _, src := range []string{"../" + filepath.Base(outside) + "/secret", "link/secret", "direct", "/etc/passwd"} {
		r := Recipe{From: "scratch", Context: dir, Steps: []Step{{Kind: StepCopy, Copy: CopySpec{Sources: []string{src}, To: "/x"}}}}
		if _, err := (&Builder{Store: s}).Build(context.Background(), r); err == nil {
			t.Errorf("copy %q out of the context succeeded", src)
		}
	}
}

func TestHostStepRunsOnlyWhenInputsChange(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"src/main.txt": "v1"})
	recipe := Recipe{
		Tag: "test/host", From: "scratch", Context: dir,
		Steps: []Step{
			{Kind: StepHost, Command: "mkdir -p out && cat src/main.txt > out/bin && echo ran >> runs", Inputs: []string{"src/**"}, Outputs: []string{"out/bin"}},
			{Kind: StepCopy, Copy: CopySpec{Sources: []string{"out/bin"}, To: "/bin/app"}},
		},
	}
	b := &Builder{Store: newStore(t), Stats: NewStatCache()}
	runs := func() int {
		data, _ := os.ReadFile(filepath.Join(dir, "runs"))
		return len(data) / len("ran\n")
	}
	first, _ := build(t, b, recipe)
	build(t, b, recipe)
	if runs() != 1 {
		t.Errorf("host step ran %d times for unchanged inputs, want 1", runs())
	}
	os.Remove(filepath.Join(dir, "out", "bin"))
	if d, _ := build(t, b, recipe); runs() != 2 || d != first {
		t.Errorf("deleted output: ran %d times (want 2), image %s (want %s, same content)", runs(), d, first)
	}
	writeTree(t, dir, map[string]string{"src/main.txt": "v2"})
	if d, got := build(t, b, recipe); runs() != 3 || d == first || len(got.built) != 2 {
		t.Errorf("changed input: ran %d times (want 3), built %v", runs(), got.built)
	}
}

func TestCopyWholeContextKeepsHiddenFiles(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{".env": "A=1", "env": "plain", "sub/.hidden": "h"})
	s := newStore(t)
	r := Recipe{From: "scratch", Context: dir, Steps: []Step{{Kind: StepCopy, Copy: CopySpec{Sources: []string{"."}, To: "/app/"}}}}
	d, _ := build(t, &Builder{Store: s}, r)
	im, _ := s.Image(d)
	got := tarListing(t, s, im.Layers()[0])
	want := []string{"dir app/ 0755 0:0", "file app/.env 0644 0:0 3", "file app/env 0644 0:0 5", "dir app/sub/ 0755 0:0", "file app/sub/.hidden 0644 0:0 1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("copy . (-want +got):\n%s", diff)
	}
}

// validateStored checks image d of s, read back as img, with ggcr's
// validate. Its full validation gunzips every layer, and the store keeps
// them uncompressed: the stored manifest and config are checked fast, and
// the compressed form that leaves the store (push, save) in full.
func validateStored(t *testing.T, s *Store, d v1.Hash, img v1.Image) {
	t.Helper()
	if err := validate.Image(img, validate.Fast); err != nil {
		t.Errorf("validate.Image(stored, Fast): %v", err)
	}
	out, err := s.V1Image(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(out); err != nil {
		t.Errorf("validate.Image(as pushed): %v", err)
	}
}
