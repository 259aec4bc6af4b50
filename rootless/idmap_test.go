package rootless

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUserMapping(t *testing.T) {
	tests := []struct {
		name      string
		sub, subg []IDRange
		wantUIDs  []IDMap
		wantGIDs  []IDMap
		wantKind  MapKind
	}{
		{"one range each, like rootlesskit", []IDRange{{100000, 65536}}, []IDRange{{200000, 65536}},
			[]IDMap{{0, 1000, 1}, {1, 100000, 65536}}, []IDMap{{0, 1001, 1}, {1, 200000, 65536}}, MapSubIDs},
		{"several ranges sorted and stacked", []IDRange{{300000, 10}, {100000, 65536}}, []IDRange{{100000, 5}},
			[]IDMap{{0, 1000, 1}, {1, 100000, 65536}, {65537, 300000, 10}}, []IDMap{{0, 1001, 1}, {1, 100000, 5}}, MapSubIDs},
		{"overlapping and adjacent ranges merged", []IDRange{{100000, 100}, {100050, 100}, {100150, 50}}, []IDRange{{5, 5}},
			[]IDMap{{0, 1000, 1}, {1, 100000, 200}}, []IDMap{{0, 1001, 1}, {1, 5, 5}}, MapSubIDs},
		{"own uid cut out of a range", []IDRange{{990, 20}}, []IDRange{{1001, 10}},
			[]IDMap{{0, 1000, 1}, {1, 990, 10}, {11, 1001, 9}}, []IDMap{{0, 1001, 1}, {1, 1002, 9}}, MapSubIDs},
		{"no ranges", nil, nil, []IDMap{{0, 1000, 1}}, []IDMap{{0, 1001, 1}}, MapSingle},
		{"subuid only", []IDRange{{100000, 65536}}, nil, []IDMap{{0, 1000, 1}}, []IDMap{{0, 1001, 1}}, MapSingle},
		{"subgid only", nil, []IDRange{{100000, 65536}}, []IDMap{{0, 1000, 1}}, []IDMap{{0, 1001, 1}}, MapSingle},
		{"range is only the own uid", []IDRange{{1000, 1}}, []IDRange{{5, 5}}, []IDMap{{0, 1000, 1}}, []IDMap{{0, 1001, 1}}, MapSingle},
		{"every host id but the own one", []IDRange{{0, 4294967295}}, []IDRange{{2000, 1}},
			[]IDMap{{0, 1000, 1}, {1, 0, 1000}, {1001, 1001, 4294966294}},
			[]IDMap{{0, 1001, 1}, {1, 2000, 1}}, MapSubIDs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := userMapping("alice", 1000, 1001, tt.sub, tt.subg)
			if m.Kind != tt.wantKind {
				t.Errorf("Kind = %v, want %v", m.Kind, tt.wantKind)
			}
			if diff := cmp.Diff(tt.wantUIDs, m.UIDs); diff != "" {
				t.Errorf("UIDs mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantGIDs, m.GIDs); diff != "" {
				t.Errorf("GIDs mismatch (-want +got):\n%s", diff)
			}
			if w := m.Warning(); (w != "") != (tt.wantKind == MapSingle) {
				t.Errorf("Warning() = %q for kind %v", w, m.Kind)
			}
		})
	}
}

func TestSingleMappingWarningNamesTheFix(t *testing.T) {
	w := userMapping("alice", 1000, 1000, nil, []IDRange{{1, 2}}).Warning()
	for _, want := range []string{"/etc/subuid", "chown", "package managers", "sudo usermod --add-subuids", "--add-subgids", " alice"} {
		if !strings.Contains(w, want) {
			t.Errorf("Warning() = %q, missing %q", w, want)
		}
	}
	if strings.Contains(w, "/etc/subgid") {
		t.Errorf("Warning() = %q names /etc/subgid, which has a range", w)
	}
}

func TestIdentityMapping(t *testing.T) {
	host := []IDMap{{0, 0, 4294967295}}
	m := identityMapping(host, host)
	want := []IDMap{{0, 0, 1}, {1, 1, 4294967294}}
	if diff := cmp.Diff(want, m.UIDs); diff != "" {
		t.Errorf("identity of the initial namespace (-want +got):\n%s", diff)
	}
	nested := identityMapping([]IDMap{{0, 1000, 1}, {1, 100000, 65536}}, []IDMap{{0, 1000, 1}})
	if diff := cmp.Diff([]IDMap{{0, 0, 1}, {1, 1, 65536}}, nested.UIDs); diff != "" {
		t.Errorf("identity inside a subids namespace (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]IDMap{{0, 0, 1}}, nested.GIDs); diff != "" {
		t.Errorf("identity inside a single namespace (-want +got):\n%s", diff)
	}
}

func TestParseIDMap(t *testing.T) {
	in := "         0       1000          1\n         1     100000      65536\n"
	got, err := parseIDMap(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]IDMap{{0, 1000, 1}, {1, 100000, 65536}}, got); diff != "" {
		t.Errorf("parseIDMap(%q) (-want +got):\n%s", in, diff)
	}
	for _, bad := range []string{"0 1000\n", "0 x 1\n", "0 1 4294967296\n"} {
		if _, err := parseIDMap(strings.NewReader(bad)); err == nil {
			t.Errorf("parseIDMap(%q) = nil error", bad)
		}
	}
}

func TestHostMappingIsStable(t *testing.T) {
	a, err := HostMapping()
	if err != nil {
		t.Fatalf("HostMapping() error: %v", err)
	}
	b, err := HostMapping()
	if err != nil {
		t.Fatalf("second HostMapping() error: %v", err)
	}
	if diff := cmp.Diff(a, b, cmp.AllowUnexported(Mapping{})); diff != "" {
		t.Errorf("HostMapping() changed between calls (-first +second):\n%s", diff)
	}
	own, ok := a.HostUID(0)
	if want := uint32(os.Getuid()); !ok || own != want {
		t.Errorf("HostUID(0) = %d, %v; want %d (container root is the caller)", own, ok, want)
	}
	if (a.Kind == MapIdentity) != (os.Geteuid() == 0) {
		t.Errorf("Kind = %v with euid %d", a.Kind, os.Geteuid())
	}
	t.Logf("HostMapping() = %v", a)
}

// TestHostKeepIDMappingIsTheNestedOne: from outside, keep-id is one
// namespace with the ids the nested one would have.
func TestHostKeepIDMappingIsTheNestedOne(t *testing.T) {
	nook := Mapping{Kind: MapSubIDs,
		UIDs: []IDMap{{0, 1002, 1}, {1, 100000, 65536}},
		GIDs: []IDMap{{0, 1003, 1}, {1, 200000, 1000}, {1001, 300000, 64536}}}
	got, err := HostKeepIDMapping(nook)
	if err != nil {
		t.Fatal(err)
	}
	want := Mapping{Kind: MapSubIDs,
		// 0..1001 -> nook's 1..1002 -> the range; 1002 -> nook's 0, the
		// user; 1003.. -> nook's 1003.. -> the range after 1002 of it.
		UIDs: []IDMap{{0, 100000, 1002}, {1002, 1002, 1}, {1003, 101002, 64534}},
		// The gid's keep-id range crosses from one subordinate range to
		// the next.
		GIDs: []IDMap{{0, 200000, 1000}, {1000, 300000, 3}, {1003, 1003, 1}, {1004, 300003, 64533}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(Mapping{})); diff != "" {
		t.Errorf("HostKeepIDMapping (-want +got):\n%s", diff)
	}
	if _, err := HostKeepIDMapping(Mapping{Kind: MapSingle, UIDs: []IDMap{{0, 1002, 1}}, GIDs: []IDMap{{0, 1002, 1}}}); err == nil {
		t.Error("HostKeepIDMapping of a single-id mapping succeeded, want an error")
	}
}
