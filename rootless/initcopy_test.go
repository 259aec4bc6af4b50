package rootless

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLaunchMappingLeavesOutTheCopysOwner(t *testing.T) {
	for _, tc := range []struct {
		name             string
		in               Mapping
		want             Mapping
		wantUID, wantGID uint32
		ok               bool
	}{{
		name:    "one range",
		in:      Mapping{Kind: MapSubIDs, UIDs: []IDMap{{0, 1000, 1}, {1, 100000, 65536}}, GIDs: []IDMap{{0, 1000, 1}, {1, 200000, 65536}}},
		want:    Mapping{Kind: MapSubIDs, UIDs: []IDMap{{0, 1000, 1}, {1, 100000, 65535}}, GIDs: []IDMap{{0, 1000, 1}, {1, 200000, 65535}}},
		wantUID: 165535, wantGID: 265535, ok: true,
	}, {
		name:    "the last range has one id",
		in:      Mapping{Kind: MapSubIDs, UIDs: []IDMap{{0, 1000, 1}, {1, 100000, 10}, {11, 300000, 1}}, GIDs: []IDMap{{0, 1000, 1}, {1, 100000, 11}}},
		want:    Mapping{Kind: MapSubIDs, UIDs: []IDMap{{0, 1000, 1}, {1, 100000, 10}}, GIDs: []IDMap{{0, 1000, 1}, {1, 100000, 10}}},
		wantUID: 300000, wantGID: 100010, ok: true,
	}, {
		name: "nothing but root would be left",
		in:   Mapping{Kind: MapSubIDs, UIDs: []IDMap{{0, 1000, 1}, {1, 100000, 1}}, GIDs: []IDMap{{0, 1000, 1}, {1, 100000, 65536}}},
	}, {
		name: "a single id",
		in:   Mapping{Kind: MapSingle, UIDs: []IDMap{{0, 1000, 1}}, GIDs: []IDMap{{0, 1000, 1}}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, uid, gid, ok := launchMapping(tc.in)
			if ok != tc.ok {
				t.Fatalf("launchMapping(%v) ok = %v, want %v", tc.in, ok, tc.ok)
			}
			if !ok {
				return
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(Mapping{})); diff != "" {
				t.Errorf("launchMapping(%v) mapping (-want +got):\n%s", tc.in, diff)
			}
			if uid != tc.wantUID || gid != tc.wantGID {
				t.Errorf("launchMapping(%v) owner = %d:%d, want %d:%d", tc.in, uid, gid, tc.wantUID, tc.wantGID)
			}
			// The owner is mapped in the full mapping and not in the
			// container's.
			if _, mapped := tc.in.HostUID(lastID(tc.in.UIDs)); !mapped {
				t.Errorf("the owner's uid is not mapped in nook's own mapping")
			}
			for id := uint32(0); id <= lastID(tc.in.UIDs); id++ {
				if h, ok := got.HostUID(id); ok && h == uid {
					t.Errorf("the container maps uid %d to the copy's owner %d", id, uid)
				}
			}
		})
	}
}

func TestPruneInitCopiesKeepsTheNewest(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for i, name := range []string{"nook-a", "nook-b", "nook-c", "nook-d", "nook-mine", ".tmp-old", ".tmp-fresh"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, nil, 0o555); err != nil {
			t.Fatal(err)
		}
		at := now.Add(-time.Duration(10-i) * time.Minute) // a oldest, mine newest
		if name == ".tmp-fresh" {
			at = now
		}
		os.Chtimes(path, at, at)
	}
	if err := pruneInitCopies(dir, "nook-mine"); err != nil {
		t.Fatal(err)
	}
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{".tmp-fresh", "nook-c", "nook-d", "nook-mine"}
	if diff := cmp.Diff(want, left); diff != "" {
		t.Errorf("after pruning (-want +got):\n%s", diff)
	}
}
