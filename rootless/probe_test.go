package rootless

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOverlayWritesLandInUpper(t *testing.T) {
	requireUserns(t)
	dir := filepath.Join(t.TempDir(), "ovl")
	t.Cleanup(func() { removeInside(t, dir) })
	var stderr strings.Builder
	c := Command("test.overlay", dir)
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("overlay with userxattr inside the namespace: %v: %s", err, stderr.String())
	}
	// Seen from the host, after the child and its mount namespace are gone.
	if b, err := os.ReadFile(filepath.Join(dir, "u", "new")); err != nil || string(b) != "upper" {
		t.Errorf("upper/new = %q, %v; want the file written through the merged dir", b, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "l", "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lower/new: %v, want it not to exist", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "l", "old")); err != nil || string(b) != "lower" {
		t.Errorf("lower/old = %q, %v; a delete through the merged dir must not touch lower", b, err)
	}
	if err := isWhiteout(filepath.Join(dir, "u", "old")); err != nil {
		t.Errorf("upper/old after deleting it through the merged dir: %v", err)
	}
}

func TestProbe(t *testing.T) {
	requireUserns(t)
	r := ProbeDir(t.TempDir())
	for _, c := range r.Checks {
		t.Logf("%-8s ok=%v %s %s", c.Name, c.OK, c.Message, c.Hint)
	}
	if !r.OK() {
		t.Fatalf("ProbeDir() reports failures: %+v", r.Checks)
	}
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name)
	}
	if got, want := strings.Join(names, " "), "userns uid idmap overlay whiteout"; got != want {
		t.Errorf("checks = %q, want %q", got, want)
	}
	if len(r.UIDMap) == 0 || len(r.GIDMap) == 0 {
		t.Errorf("report has no maps: %+v", r)
	}
}

func TestProbeReportsStartFailureWithHint(t *testing.T) {
	if hostMappingKind(t) != MapSubIDs {
		t.Skip("only a subids mapping needs newuidmap, whose absence this test simulates")
	}
	t.Setenv("PATH", t.TempDir())
	r := ProbeDir(t.TempDir())
	if r.OK() || len(r.Checks) != 1 || r.Checks[0].Name != "userns" || !strings.Contains(r.Checks[0].Hint, "uidmap") {
		t.Errorf("ProbeDir() without newuidmap = %+v, want one failed userns check with the install hint", r.Checks)
	}
}

func hostMappingKind(t *testing.T) MapKind {
	m, err := HostMapping()
	if err != nil {
		t.Fatal(err)
	}
	return m.Kind
}

// removeInside removes dir from inside the namespace, where root may
// remove what the kernel and subordinate ids left (overlay's work/work is
// mode 000).
func removeInside(t *testing.T, dir string) {
	t.Helper()
	var stderr strings.Builder
	c := Command("test.rmtree", dir)
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		t.Errorf("remove %s inside the namespace: %v: %s", dir, err, stderr.String())
	}
}
