package rootless

import (
	"os"
	"path/filepath"
	"testing"
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
