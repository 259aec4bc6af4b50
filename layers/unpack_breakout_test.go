package layers

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// errAny marks a breakout case that must fail, for any reason.
var errAny = errors.New("any error")

// TestUnpackBreakouts ports containerd's TestBreakouts (pkg/archive/
// tar_test.go; 33 cases) plus umoci/GNU tar shapes and the reliability
// notes' L1-L8. containerd applies onto an existing tree; here the "already
// there" state is earlier entries of the same tar. containerd resolves
// absolute names and symlinks as if chrooted and expects success; nook
// refuses absolute member names and os.Root refuses to walk through
// absolute or escaping symlinks, so those cases expect an error instead.
// Either way the sentinel next to the layer dir must be untouched and
// nothing may appear outside it (arena.checkOutside).
//
// In the entries, S is the sentinel directory's absolute path (top/etc)
// and the layer dir is top/root, so "../etc" from the root is S as well.
func TestUnpackBreakouts(t *testing.T) {
	type tc struct {
		name    string
		entries func(S string) []utEntry
		err     error // nil: must succeed; errAny: must fail; else errors.Is
		check   func(t *testing.T, root, S string)
	}
	up := func(n int) string { return strings.Repeat("../", n) }
	abs := func(S string) string { return up(12) + strings.TrimPrefix(S, "/") } // S, via too many ".."
	cases := []tc{
		// containerd TestBreakouts
		{name: "SymlinkAbsolute", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utSymlink("localetc", S), utFile("localetc/unbroken", "broken", 0o644)}
		}},
		{name: "SymlinkUpAndOut", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utDir("dummy", 0o755), utSymlink("localetc", "dummy/../../etc"), utFile("localetc/unbroken", "broken", 0o644)}
		}},
		{name: "SymlinkMultipleAbsolute", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utDir("dummy", 0o755), utSymlink("dummy/etc", S), utSymlink("localetc", "/dummy/etc"), utFile("dummy/etc/unbroken", "broken", 0o644)}
		}},
		{name: "SymlinkMultipleRelative", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utDir("dummy", 0o755), utSymlink("dummy/etc", "../../etc"), utSymlink("localetc", "./dummy/etc"), utFile("localetc/unbroken", "broken", 0o644)}
		}},
		{name: "SymlinkEmptyFile", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/emptied", "notempty", 0o644), utSymlink("localetc", S), utFile("localetc/emptied", "", 0o644)}
		}},
		{name: "HardlinkRelative", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utDir("breakouts", 0o755), utSymlink("breakouts/d1", "../../etc"), utLink("breakouts/mypasswd", "breakouts/d1/passwd")}
		}},
		{name: "HardlinkDownAndOut", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utDir("breakouts", 0o755), utDir("downandout", 0o755), utSymlink("breakouts/d1", "../downandout/../../etc"), utLink("breakouts/mypasswd", "breakouts/d1/passwd")}
		}},
		{name: "HardlinkAbsolute", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utSymlink("localetc", S), utLink("localpasswd", "localetc/passwd")}
		}},
		{name: "HardlinkRelativeLong", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utSymlink("localetc", abs(S)), utLink("localpasswd", "localetc/passwd")}
		}},
		{name: "HardlinkRelativeUpAndOut", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utSymlink("localetc", "upandout/../../etc"), utLink("localpasswd", "localetc/passwd")}
		}},
		{name: "HardlinkDirectRelative", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utLink("localpasswd", "../etc/passwd")}
		}},
		{name: "HardlinkDirectAbsolute", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utLink("localpasswd", S+"/passwd")}
		}},
		{name: "SymlinkParentDirectory", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utSymlink("..", S), utLink("localpasswd", "etc/passwd")}
		}},
		{name: "SymlinkEmptyFilename", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utSymlink("", S), utLink("localpasswd", "etc/passwd")}
		}},
		{name: "SymlinkParentRelative", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utSymlink("localetc/sub/..", S), utLink("localetc/localpasswd", "etc/passwd")}
		}},
		{name: "SymlinkSlashEnded", entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utDir("localetc/", 0o770), utLink("localetc/localpasswd", "etc/passwd")}
		}, check: utSame("localetc/localpasswd", "etc/passwd", true)},
		{name: "SymlinkOverrideDirectory", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "inside", 0o644), utDir("localetc", 0o755), utSymlink("localetc", S), utLink("localetc/localpasswd", "etc/passwd")}
		}},
		{name: "SymlinkOverrideDirectoryRelative", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "inside", 0o644), utDir("localetc", 0o755), utSymlink("localetc", "../etc"), utLink("localetc/localpasswd", "etc/passwd")}
		}},
		{name: "DirectoryOverrideSymlink", entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "inside", 0o644), utSymlink("localetc", S), utDir("localetc", 0o755), utLink("localetc/localpasswd", "etc/passwd")}
		}, check: func(t *testing.T, root, S string) {
			utWant("localetc", fs.ModeDir|0o755, "")(t, root)
			utSame("localetc/localpasswd", "etc/passwd", true)(t, root, S)
		}},
		{name: "DirectoryOverrideSymlinkAndHardlink", entries: func(S string) []utEntry {
			return []utEntry{
				utDir("etc", 0o755), utFile("etc/passwd", "inside", 0o644), utSymlink("localetc", "etc"),
				utLink("localetc/localpasswd", "etc/passwd"), // through an in-layer symlink: lands in etc/
				utDir("localetc", 0o755), utFile("localetc/localpasswd", "different", 0o644),
			}
		}, check: func(t *testing.T, root, S string) {
			utSame("localetc/localpasswd", "etc/passwd", false)(t, root, S)
			utWant("etc/passwd", 0o644, "inside")(t, root)
			utWant("etc/localpasswd", 0o644, "inside")(t, root)
		}},
		{name: "WhiteoutRootParent", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "inside", 0o644), utFile(".wh...", "", 0o644)}
		}},
		{name: "WhiteoutParent", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "inside", 0o644), utFile("etc/.wh...", "", 0o644)}
		}},
		{name: "WhiteoutRoot", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "inside", 0o644), utFile(".wh..", "", 0o644)}
		}},
		{name: "WhiteoutCurrentDirectory", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "inside", 0o644), utFile("etc/.wh..", "", 0o644)}
		}},
		{name: "WhiteoutSymlink", entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "all users", 0o644), utSymlink("localetc", S), utFile(".wh.localetc", "", 0o644)}
		}, check: func(t *testing.T, root, S string) {
			utWant("localetc", fs.ModeSymlink|0o777, "")(t, root) // same layer: survives
			utWant("etc/passwd", 0o644, "all users")(t, root)
		}},
		{name: "WhiteoutSymlinkPath", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "all users", 0o644), utSymlink("localetc", S), utFile("localetc/.wh.whitedout", "", 0o644)}
		}},
		{name: "WhiteoutDirectoryName", entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "all users", 0o644), utFile(".wh.etc/somefile", "non-empty", 0o644)}
		}, check: func(t *testing.T, root, S string) {
			utWant("etc/passwd", 0o644, "all users")(t, root)
			utWant(".wh.etc/somefile", 0o644, "non-empty")(t, root)
		}},
		{name: "WhiteoutDeadSymlinkParent", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "all users", 0o644), utSymlink("localetc", "/dne"), utFile("localetc/.wh.etc", "", 0o644)}
		}},
		{name: "WhiteoutRelativePath", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utFile("etc/passwd", "all users", 0o644), utSymlink("localetc", "/dne"), utFile("dne/../.wh.etc", "", 0o644)}
		}},
		{name: "HardlinkSymlinkBeforeCreateTarget", entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utSymlink("localpasswd", S+"/passwd"), utLink("localpasswd-dup", "localpasswd"), utFile("etc/passwd", "after", 0o644)}
		}, check: func(t *testing.T, root, S string) {
			utSameSymlink("localpasswd-dup", S+"/passwd")(t, root, S)
		}},
		{name: "HardlinkSymlinkRelative", entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utSymlink("passwdlink", "../etc/passwd"), utLink("localpasswd", "passwdlink")}
		}, check: func(t *testing.T, root, S string) {
			utSameSymlink("localpasswd", "../etc/passwd")(t, root, S)
			utSame("localpasswd", "passwdlink", true)(t, root, S) // the symlink itself, linked
		}},
		{name: "HardlinkSymlinkAbsolute", entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o770), utFile("etc/passwd", "inside", 0o644), utSymlink("passwdlink", S+"/passwd"), utLink("localpasswd", "passwdlink")}
		}, check: func(t *testing.T, root, S string) {
			utSameSymlink("localpasswd", S+"/passwd")(t, root, S)
		}},
		{name: "HardlinkSymlinkChmod", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			top := filepath.Dir(S) // containerd's names are host paths
			link := utLink("sketchylink", top+"/also-exists-outside-root")
			link.hdr.Mode = 0o777
			return []utEntry{utSymlink(top+"/also-exists-outside-root", top+"/perm400"), link}
		}},

		// More shapes: GNU tar, umoci, the reliability notes (L1-L8).
		{name: "HardlinkSymlinkChmodRelativeNames", entries: func(S string) []utEntry {
			link := utLink("sketchylink", "ep")
			link.hdr.Mode = 0o777 // a link's mode must not be applied through the symlink
			return []utEntry{utSymlink("ep", filepath.Dir(S)+"/perm400"), link}
		}, check: func(t *testing.T, root, S string) {
			utSameSymlink("sketchylink", filepath.Dir(S)+"/perm400")(t, root, S)
		}},
		{name: "DotDotName", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utFile("../etc/unbroken", "broken", 0o644)}
		}},
		{name: "DotDotDeepName", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utFile("a/b/../../../etc/unbroken", "broken", 0o644)}
		}},
		{name: "DotDotInsideName", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utFile("a/../b", "lexically inside, still refused", 0o644)}
		}},
		{name: "AbsoluteName", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utFile(S+"/unbroken", "broken", 0o644)}
		}},
		{name: "AbsoluteDirName", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utDir(S, 0o777)}
		}},
		{name: "WhiteoutEscape", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utFile("../etc/.wh.unbroken", "", 0o644)}
		}},
		{name: "WhiteoutAbsolute", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utFile(S+"/.wh.unbroken", "", 0o644)}
		}},
		{name: "OpaqueThroughSymlink", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utSymlink("o", "../etc"), utFile("o/.wh..wh..opq", "", 0o644)}
		}},
		{name: "WhiteoutEmptyName", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utFile("etc/.wh.", "", 0o644)}
		}},
		{name: "SymlinkParentSwap", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("d", 0o755), utFile("d/ok", "ok", 0o644), utSymlink("d", "../etc"), utFile("d/unbroken", "broken", 0o644)}
		}},
		{name: "SymlinkParentSwapAbsolute", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("d", 0o755), utFile("d/ok", "ok", 0o644), utSymlink("d", S), utDir("d/sub", 0o777)}
		}},
		{name: "SymlinkChainOut", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utSymlink("a", "b"), utSymlink("b", "c/../.."), utDir("c", 0o755), utFile("a/etc/unbroken", "broken", 0o644)}
		}},
		{name: "SymlinkToDotDot", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utSymlink("up", ".."), utFile("up/etc/unbroken", "broken", 0o644)}
		}},
		{name: "SymlinkLoop", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utSymlink("a", "b"), utSymlink("b", "a"), utFile("a/x", "x", 0o644)}
		}},
		{name: "SymlinkInsideIsFollowed", entries: func(S string) []utEntry {
			return []utEntry{utDir("etc", 0o755), utSymlink("in", "etc"), utFile("in/x", "contained", 0o644)}
		}, check: func(t *testing.T, root, S string) {
			utWant("etc/x", 0o644, "contained")(t, root)
		}},
		{name: "SymlinkThenFileSameName", entries: func(S string) []utEntry {
			return []utEntry{utSymlink("x", S+"/unbroken"), utFile("x", "broken", 0o644)}
		}, check: func(t *testing.T, root, S string) { utWant("x", 0o644, "broken")(t, root) }},
		{name: "SymlinkThenHardlinkSameName", entries: func(S string) []utEntry {
			return []utEntry{utFile("y", "data", 0o644), utSymlink("x", S+"/passwd"), utLink("x", "y")}
		}, check: utSame("x", "y", true)},
		{name: "SymlinkThenFifoSameName", entries: func(S string) []utEntry {
			return []utEntry{utSymlink("x", S+"/unbroken"), utFifo("x", 0o600)}
		}, check: func(t *testing.T, root, S string) { utWant("x", fs.ModeNamedPipe|0o600, "")(t, root) }},
		{name: "SymlinkThenDirChmod", entries: func(S string) []utEntry {
			return []utEntry{utSymlink("x", S), utDir("x", 0o777)} // must not chmod S
		}, check: func(t *testing.T, root, S string) { utWant("x", fs.ModeDir|0o777, "")(t, root) }},
		{name: "HardlinkToDirectory", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utDir("d", 0o755), utLink("l", "d")}
		}},
		{name: "HardlinkMissingTarget", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utLink("l", "nope")}
		}},
		{name: "HardlinkToRoot", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utLink("l", "./")}
		}},
		{name: "HardlinkViaDotDotSymlinkTarget", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utSymlink("up", ".."), utLink("l", "up/etc/passwd")}
		}},
		{name: "FileReplacesRoot", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utFile(".", "x", 0o644)}
		}},
		{name: "LongComponent", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utFile(strings.Repeat("n", 300), "x", 0o644)}
		}},
		{name: "LongPath", err: ErrUnsafeEntry, entries: func(S string) []utEntry {
			return []utEntry{utFile(strings.Repeat("d/", 2100)+"f", "x", 0o644)}
		}},
		{name: "LongSymlinkTarget", err: errAny, entries: func(S string) []utEntry {
			return []utEntry{utSymlink("l", strings.Repeat("x/", 3000))}
		}},
		{name: "DeviceNodes", entries: func(S string) []utEntry {
			return []utEntry{utDev("sda", tar.TypeBlock, 8, 0), utDev("mem", tar.TypeChar, 1, 1), utLink("mem2", "mem")}
		}, check: func(t *testing.T, root, S string) {
			for _, n := range []string{"sda", "mem", "mem2"} {
				utMissing(n)(t, root)
			}
		}},
		{name: "SetuidStripped", entries: func(S string) []utEntry {
			return []utEntry{utFile("su", "x", 0o6755), utFifo("p", 0o6644)}
		}, check: func(t *testing.T, root, S string) {
			utWant("su", 0o755, "x")(t, root)
			utWant("p", fs.ModeNamedPipe|0o644, "")(t, root)
		}},
		{name: "OverlayXattrForgery", entries: func(S string) []utEntry {
			return []utEntry{
				utXattrs(utDir("o", 0o755), "user.overlay.opaque", "y", "trusted.overlay.opaque", "y"),
				utXattrs(utFile("o/f", "x", 0o644), "user.overlay.redirect", "/etc", "user.overlay.metacopy", "", "trusted.overlay.origin", "x"),
			}
		}, check: func(t *testing.T, root, S string) {
			for _, p := range []string{"o", "o/f"} {
				for _, x := range []string{"user.overlay.opaque", "user.overlay.redirect", "user.overlay.metacopy", "trusted.overlay.opaque", "trusted.overlay.origin"} {
					if v, err := utLgetxattr(filepath.Join(root, p), x); !errors.Is(err, unix.ENODATA) {
						t.Errorf("xattr %s on %q = %q, %v; want none", x, p, v, err)
					}
				}
			}
		}},
		{name: "UnknownType", err: errAny, entries: func(S string) []utEntry {
			e := utFile("x", "", 0o644)
			e.hdr.Typeflag = 'Z'
			return []utEntry{e}
		}},
	}
	if len(cases) < 34 {
		t.Fatalf("only %d breakout cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newUTArena(t)
			tarball := utTar(t, c.entries(a.etc)...)
			_, err := Unpack(bytes.NewReader(tarball), a.root, utOpts())
			switch {
			case c.err == nil && err != nil:
				t.Errorf("Unpack = %v, want success", err)
			case c.err == errAny && err == nil, c.err != nil && c.err != errAny && !errors.Is(err, c.err):
				t.Errorf("Unpack = %v, want %v", err, c.err)
			}
			t.Logf("Unpack = %.300v", err)
			a.checkOutside(t)
			if c.check != nil && err == nil {
				c.check(t, a.root, a.etc)
			}
		})
	}
}

func utSame(p1, p2 string, want bool) func(*testing.T, string, string) {
	return func(t *testing.T, root, _ string) {
		t.Helper()
		f1, err1 := os.Lstat(filepath.Join(root, p1))
		f2, err2 := os.Lstat(filepath.Join(root, p2))
		if err1 != nil || err2 != nil {
			t.Errorf("Lstat(%q), Lstat(%q) = %v, %v", p1, p2, err1, err2)
			return
		}
		if got := os.SameFile(f1, f2); got != want {
			t.Errorf("SameFile(%q, %q) = %v, want %v", p1, p2, got, want)
		}
	}
}

func utSameSymlink(p, target string) func(*testing.T, string, string) {
	return func(t *testing.T, root, _ string) {
		t.Helper()
		if got, err := os.Readlink(filepath.Join(root, p)); err != nil || got != target {
			t.Errorf("Readlink(%q) = %q, %v; want %q", p, got, err, target)
		}
	}
}
