package layers

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A saved cache loads back as it was; a damaged one loads empty, never
// half.
func TestStatCacheSaveLoad(t *testing.T) {
	name := filepath.Join(t.TempDir(), "stat.cache")
	c := NewStatCache()
	c.entries = map[string]statEntry{
		"a/b.go":       {Size: 12, Mtime: 1700000000123456789, Ctime: -1, Ino: 42, Dev: 2049, Digest: [32]byte{1, 2, 3}},
		"ünïcode file": {Size: 0, Digest: [32]byte{31: 9}},
	}
	c.dirty = true
	if err := c.Save(name); err != nil {
		t.Fatal(err)
	}
	got := LoadStatCache(name)
	if diff := cmp.Diff(c.entries, got.entries); diff != "" {
		t.Errorf("loaded cache (-saved +loaded):\n%s", diff)
	}

	data, _ := os.ReadFile(name)
	for _, damaged := range [][]byte{data[:len(data)-1], data[:len(statCacheMagic)+3], []byte("garbage"), nil} {
		os.WriteFile(name, damaged, 0o644)
		if n := len(LoadStatCache(name).entries); n != 0 {
			t.Errorf("a damaged cache of %d bytes loaded %d entries, want none", len(damaged), n)
		}
	}
}
