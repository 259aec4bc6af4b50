package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// A generated tree: dirs folders of files files each, sizes drawn between
// min and max bytes. The seed makes every run write the same tree.
type tree struct {
	dirs, files int
	min, max    int
}

var (
	bigTree  = tree{dirs: 100, files: 20, min: 4 << 10, max: 196 << 10} // ≈200 MB in 2,000 files
	manyTree = tree{dirs: 500, files: 100, min: 100, max: 2000}         // 50,000 small files
)

const treeProject = `name = "%s"

[images.tree]
from = "scratch"

[[images.tree.steps]]
copy = "tree/"
to = "/tree"
`

// rowLayers is row 7: how fast nook turns a folder into a layer, against
// reading the same folder into tar and hashing it; and what a no-op build
// of a 50,000-file context costs.
func rowLayers(b *bench) []result {
	big, bigMB, err := b.treeProject("nbbig", bigTree)
	if err != nil {
		return []result{{row: 7, workload: "layer creation", tool: "nook", note: "failed: " + err.Error()}}
	}
	workload := fmt.Sprintf("layer of a %.0f MB tree (build --no-cache)", bigMB)
	results := b.interleave(7, workload, []contender{
		{tool: "nook", run: func() error { return b.cmd(big, b.nook, "build", "--no-cache") }},
		{tool: "tar | sha256sum", run: func() error {
			return b.cmd(big, "sh", "-c", "tar -cf - tree | sha256sum >/dev/null")
		}},
	})
	for i := range results {
		results[i].mb = bigMB
	}

	many, _, err := b.treeProject("nbmany", manyTree)
	if err != nil {
		return append(results, result{row: 7, workload: "no-op build", tool: "nook", note: "failed: " + err.Error()})
	}
	if err := b.cmd(many, b.nook, "build"); err != nil {
		return append(results, result{row: 7, workload: "no-op build", tool: "nook", note: "failed: " + err.Error()})
	}
	cs := []contender{{tool: "nook", run: func() error { return b.cmd(many, b.nook, "build") }}}
	if b.have("podman") {
		// podman reads the whole context on every build: 15-40 s a run here.
		cs = append(cs, contender{tool: "podman", limit: max(1, min(3, b.o.runs/3)), run: func() error {
			return b.podman("build", "-q", "-t", "localhost/nbmany-tree", "-f", filepath.Join(many, "Containerfile"), many)
		}})
	}
	noop := b.interleave(7, "no-op build, 50,000-file context", cs)
	for i := range noop {
		if noop[i].tool == "podman" && len(noop[i].samples) > 0 {
			noop[i].note = fmt.Sprintf("%d run(s), no warm-up", len(noop[i].samples))
		}
	}
	return append(results, noop...)
}

// treeProject makes work/NAME with a nook.toml and a Containerfile that
// copy tree/, and the tree itself unless an earlier run left it; it
// returns the folder and the tree's size in MB.
func (b *bench) treeProject(name string, t tree) (string, float64, error) {
	dir := filepath.Join(b.work, name)
	if err := writeFile(filepath.Join(dir, "nook.toml"), fmt.Sprintf(treeProject, name)); err != nil {
		return "", 0, err
	}
	if err := writeFile(filepath.Join(dir, "Containerfile"), "FROM scratch\nCOPY tree/ /tree/\n"); err != nil {
		return "", 0, err
	}
	done := filepath.Join(dir, fmt.Sprintf(".tree-%d-%d-%d-%d", t.dirs, t.files, t.min, t.max))
	if size, err := os.ReadFile(done); err == nil {
		var n int64
		fmt.Sscan(string(size), &n)
		return dir, float64(n) / 1e6, nil
	}
	logf("bench: writing %d files in %s", t.dirs*t.files, filepath.Join(dir, "tree"))
	os.RemoveAll(filepath.Join(dir, "tree"))
	n, err := t.write(filepath.Join(dir, "tree"))
	if err != nil {
		return "", 0, err
	}
	return dir, float64(n) / 1e6, os.WriteFile(done, fmt.Append(nil, n), 0o644)
}

// write lays the tree out under root and returns how many bytes it wrote.
// Half the files are random (incompressible), half text.
func (t tree) write(root string) (int64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, t.max)
	var total int64
	for d := range t.dirs {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
		for f := range t.files {
			size := t.min + rng.IntN(t.max-t.min+1)
			data := buf[:size]
			if f%2 == 0 {
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
			} else {
				for i := range data {
					data[i] = "abcdefghij klmnopqrstuvwxyz\n"[(i*7+f)%28]
				}
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), data, 0o644); err != nil {
				return 0, err
			}
			total += int64(size)
		}
	}
	return total, nil
}
