package rootless

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSubIDs(t *testing.T) {
	tests := []struct {
		name string
		file string
		user string
		uid  uint32
		want []IDRange
	}{
		{"by name", "alice:100000:65536\n", "alice", 1000, []IDRange{{100000, 65536}}},
		{"by uid", "1000:100000:65536\n", "alice", 1000, []IDRange{{100000, 65536}}},
		{"no entry", "bob:100000:65536\n", "alice", 1000, nil},
		{"empty file", "", "alice", 1000, nil},
		{"several ranges in file order, by name and uid",
			"alice:200000:10\nbob:300000:65536\n1000:100000:65536\n", "alice", 1000,
			[]IDRange{{200000, 10}, {100000, 65536}}},
		{"comments, blank lines, CRLF, no final newline",
			"# managed by usermod\n\n   \r\nalice:100000:65536\r\nalice:300000:5", "alice", 1000,
			[]IDRange{{100000, 65536}, {300000, 5}}},
		{"prefixes do not match", "alic:1:2\nalice2:3:4\n10000:5:6\n", "alice", 1000, nil},
		{"unknown name matches uid only", "1000:5:6\n:7:8\n", "", 1000, []IDRange{{5, 6}}},
		{"malformed lines skipped like newuidmap does",
			"alice:1\nalice:x:2\nalice:1:2:3\nalice:-1:2\nalice:+1:2\nalice:0x10:2\nalice: 1:2\n" +
				"alice:1:0\nalice:4294967295:1\nalice:4294967200:96\nalice:99999999999:1\n# alice:1:1\nalice:4294967200:95\n",
			"alice", 1000, []IDRange{{4294967200, 95}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSubIDs(strings.NewReader(tt.file), tt.user, tt.uid)
			if err != nil {
				t.Fatalf("ParseSubIDs(%q) error: %v", tt.file, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseSubIDs(%q, %q, %d) mismatch (-want +got):\n%s", tt.file, tt.user, tt.uid, diff)
			}
		})
	}
}

func FuzzParseSubIDs(f *testing.F) {
	f.Add("alice:100000:65536\n1000:1:2\n# c\n", "alice", uint32(1000))
	f.Add("alice:4294967294:1\n", "alice", uint32(0))
	f.Fuzz(func(t *testing.T, file, user string, uid uint32) {
		got, err := ParseSubIDs(strings.NewReader(file), user, uid)
		if err != nil {
			t.Fatalf("ParseSubIDs error on an in-memory reader: %v", err)
		}
		for _, r := range got {
			if r.Count == 0 || uint64(r.Start)+uint64(r.Count) > maxID+1 {
				t.Errorf("ParseSubIDs returned invalid range %+v", r)
			}
		}
	})
}

func TestReadSubIDsMissingFileIsEmpty(t *testing.T) {
	got, err := readSubIDs(filepath.Join(t.TempDir(), "subuid"), "alice", 1000)
	if err != nil || got != nil {
		t.Errorf("readSubIDs(missing) = %v, %v; want nil, nil", got, err)
	}
}

func TestFreeSubIDStart(t *testing.T) {
	tests := []struct {
		name           string
		subuid, subgid string
		want           uint32
	}{
		{"empty files", "", "", 100000},
		{"other ranges below", "bob:10000:5000\n", "", 100000},
		{"100000 taken", "bob:100000:65536\n", "", 196608},
		{"taken in subgid only", "", "bob:100000:65536\ncarol:165536:65536\n", 262144},
		{"overlapping the default block", "bob:150000:10\n", "", 196608},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			u, g := filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")
			os.WriteFile(u, []byte(tt.subuid), 0o644)
			os.WriteFile(g, []byte(tt.subgid), 0o644)
			if got := freeSubIDStart(u, g); got != tt.want {
				t.Errorf("freeSubIDStart(%q, %q) = %d, want %d", tt.subuid, tt.subgid, got, tt.want)
			}
		})
	}
}
