package project

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes through the whole loader: parse,
// interpolate, decode and check. It must never panic or hang; every input
// is either a project or an error.
func FuzzLoad(f *testing.F) {
	for _, ex := range []string{"hello", "shop"} {
		data, err := os.ReadFile(filepath.Join("..", "examples", ex, FileName))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a = " + strings.Repeat("[", 40)))
	f.Add([]byte("[containers.a]\ndepends_on = { b = \"healthy\" }\n[containers.b]\ndepends_on = [\"a\"]\n"))
	f.Add([]byte("[[images.x.steps]]\ncopy = '../x'\n[images.x]\nfrom = \"${A:?}\"\n"))
	f.Add([]byte("x = \"\"\"\n[[[\n\"\"\"\ny = '''[{'''\n"))
	dir := f.TempDir()
	env := func(string) (string, bool) { return "", false }
	f.Fuzz(func(t *testing.T, data []byte) {
		tree, err := parseFile(FileName, data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("parseFile returned %T, want *Error", err)
			}
			return
		}
		p := &Project{Dir: dir}
		if err := resolve(p, []*value{tree}, env); err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("resolve returned %T, want Errors", err)
			}
		}
	})
}
