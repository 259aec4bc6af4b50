// Package depcheck holds the test that keeps nook's import arrows pointing
// down: cmd -> project -> {layers, rootless, watch}. The lower three never
// import each other or project, and nothing imports cmd.
package depcheck

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/nook-dev/nook"

// layer returns the top-level package a nook package belongs to ("project",
// "layers", ...), or "" for packages outside the module.
func layer(pkg string) string {
	rest, ok := strings.CutPrefix(pkg, module+"/")
	if !ok {
		return ""
	}
	top, _, _ := strings.Cut(rest, "/")
	if top == "cmd" {
		return "cmd"
	}
	return top
}

// allowed says which of nook's own layers each layer may import.
var allowed = map[string][]string{
	"cmd":      {"project", "layers", "rootless", "watch", "internal"},
	"project":  {"layers", "rootless", "watch", "internal"},
	"layers":   {"internal"},
	"rootless": {"internal"},
	"watch":    {"internal"},
	"internal": {"internal"},
	"examples": {},
	"bench":    {"project", "layers", "rootless", "watch", "internal"}, // a program beside cmd, measuring it
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		from := layer(p.ImportPath)
		ok, known := allowed[from]
		if !known {
			t.Errorf("package %s is in no known layer: add it to depcheck's table", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			to := layer(imp)
			if to == "" || to == from && from != "cmd" {
				continue
			}
			if !contains(ok, to) {
				t.Errorf("%s imports %s: %s may not import %s (arrows point down: cmd -> project -> layers | rootless | watch)", p.ImportPath, imp, from, to)
			}
		}
	}
	if seen < 5 {
		t.Fatalf("go list saw %d packages; the check is not looking at the module", seen)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
