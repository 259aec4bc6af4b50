package rootless

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A volatile overlay mount leaves work/work/incompat/volatile behind, each
// folder mode 000; removeOwn opens them up as it goes. (As root the modes
// stop nothing, and the test shows only that the tree goes.)
func TestRemoveOwnOpensNestedClosedFolders(t *testing.T) {
	top := filepath.Join(t.TempDir(), "c")
	deep := filepath.Join(top, "work", "work", "incompat", "volatile")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deep, "dirty"), nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(top, "state.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for d := deep; d != filepath.Join(top, "work"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeOwn(top); err != nil {
		t.Fatalf("removeOwn: %v", err)
	}
	if _, err := os.Lstat(top); !os.IsNotExist(err) {
		t.Fatalf("%s is still there (%v)", top, err)
	}
}

// What a removal cut short leaves (a folder without config.json) goes
// once it is old enough; a container being created, and a whole one, stay.
func TestRemoveLeftoversSparesTheYoungAndTheWhole(t *testing.T) {
	cs := &Containers{Root: t.TempDir()}
	folder := func(id string, config bool, age time.Duration) string {
		t.Helper()
		dir := filepath.Join(cs.Root, id)
		if err := os.MkdirAll(filepath.Join(dir, "upper", "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if config {
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(dir, at, at); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	id := func(c byte) string { return strings.Repeat(string(c), 64) }
	leftover := folder(id('a'), false, 2*time.Minute)
	young := folder(id('b'), false, 0)
	whole := folder(id('c'), true, 2*time.Minute)
	other := folder("init", false, 2*time.Minute) // not a container's

	n, err := cs.RemoveLeftovers(time.Minute)
	if err != nil || n != 1 {
		t.Errorf("RemoveLeftovers = %d, %v; want 1, nil", n, err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("the leftover %s is still there (%v)", leftover, err)
	}
	for _, dir := range []string{young, whole, other} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s is gone (%v), want it kept", dir, err)
		}
	}
}
