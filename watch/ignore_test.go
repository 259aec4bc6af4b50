package watch

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNookignore checks that .nookignore lines, "!" exceptions and extra
// patterns decide what is reported, and that Explain names the deciding
// line.
func TestNookignore(t *testing.T) {
	f := newFixture(t)
	f.write(".nookignore", `# build outputs and logs
*.log
!keep.log

build
!build/keep.txt
`)
	f.write(".dockerignore", "src\n") // not read: .nookignore wins
	f.write("build/keep.txt", "k")
	f.start(Options{Ignore: []string{"**/*.tmp"}})

	for _, rel := range []string{"app.log", "keep.log", "build/out.o", "build/keep.txt", "src/main.go", "src/x.tmp", "src/.main.go.swp"} {
		f.write(rel, "changed")
	}
	b := f.one(f.sync())
	if diff := cmp.Diff([]string{"build/keep.txt", "keep.log", "src/main.go"}, b.Paths); diff != "" {
		t.Errorf("Batch.Paths (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		path    string
		ignored bool
		rule    string
	}{
		{"app.log", true, ".nookignore:2"},
		{"keep.log", false, ".nookignore:3"},
		{"logs/app.log", false, ""}, // "*.log" is anchored at the root, as in Docker
		{"build", true, ".nookignore:5"},
		{"build/out.o", true, ".nookignore:5"},
		{"build/keep.txt", false, ".nookignore:6"},
		{f.path("build/out.o"), true, ".nookignore:5"},
		{"src/x.tmp", true, `option "**/*.tmp"`},
		{"src/main.go", false, ""},
		{".git/config", true, "default (.git)"},
		{"web/node_modules/react/index.js", true, "default (node_modules)"},
		{"src/4913", true, "editor temp file (vim)"},
		{"src/.#main.go", true, "editor temp file (emacs)"},
		{"src/Main.kt___jb_old___", true, "editor temp file (JetBrains)"},
	} {
		ignored, rule := f.w.Explain(tc.path)
		if ignored != tc.ignored || rule != tc.rule {
			t.Errorf("Explain(%q) = %v, %q; want %v, %q", tc.path, ignored, rule, tc.ignored, tc.rule)
		}
	}
}

// TestDockerignoreFallback checks that .dockerignore is read when there is
// no .nookignore.
func TestDockerignoreFallback(t *testing.T) {
	f := newFixture(t)
	f.write(".dockerignore", "\ufeff/dist\n")
	f.start(Options{})
	if ignored, rule := f.w.Explain("dist/app.js"); !ignored || rule != ".dockerignore:1" {
		t.Errorf(`Explain("dist/app.js") = %v, %q; want true, ".dockerignore:1"`, ignored, rule)
	}
	if got := f.w.fsw.WatchList(); len(got) != 1 {
		t.Errorf("fsnotify watches %q, want the root only", got)
	}
}

func TestEditorTemp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		editor string
	}{
		{"4913", "vim"},
		{"main.go~", "vim"},
		{".main.go.swp", "vim"},
		{".main.go.swx", "vim"},
		{".main.go.swo", "vim"},
		{".#main.go", "emacs"},
		{"#main.go#", "emacs"},
		{"Main.kt___jb_tmp___", "JetBrains"},
		{"Main.kt___jb_old___", "JetBrains"},
		{"main.go", ""},
		{"49130", ""},
		{"#", ""},
		{"sedAbC123", ""}, // sed's temp is renamed away; it needs no rule
	} {
		if got, _ := editorTemp(tc.name); got != tc.editor {
			t.Errorf("editorTemp(%q) = %q, want %q", tc.name, got, tc.editor)
		}
	}
}

func TestMayMatchBelow(t *testing.T) {
	for _, tc := range []struct {
		pattern, dir string
		want         bool
	}{
		{"build/keep.txt", "build", true},
		{"build/keep.txt", "dist", false},
		{"build/*/keep.txt", "build/x", true},
		{"**/keep.txt", "anything/at/all", true},
		{"b*/keep.txt", "build", true},
		{"build", "build", false},
		{"build", "build/sub", false},
		{"[", "build", true}, // a malformed pattern might match: watch
	} {
		if got := mayMatchBelow(tc.pattern, tc.dir); got != tc.want {
			t.Errorf("mayMatchBelow(%q, %q) = %v, want %v", tc.pattern, tc.dir, got, tc.want)
		}
	}
}
