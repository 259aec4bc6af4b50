package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesOrLeavesAlone(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	if err := WriteFile(name, []byte("old"), true); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(name, false, func(f *os.File) error {
		io.WriteString(f, "half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write with a failing writer = %v, want its error", err)
	}
	if got, _ := os.ReadFile(name); string(got) != "old" {
		t.Errorf("after a failed Write the file holds %q, want %q", got, "old")
	}
	if err := WriteFile(name, []byte("new"), false); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(name); string(got) != "new" {
		t.Errorf("after WriteFile the file holds %q, want %q", got, "new")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the folder holds %d files, want only the one written (no temporary left)", len(entries))
	}
}
