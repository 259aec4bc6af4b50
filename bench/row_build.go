package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The build project: a copy of src/ and a run step that reads it, as nook
// and as podman write it. Both start from the shared busybox image.
const (
	buildProject = `name = "nbbuild"

[images.app]
from = "bench/busybox"

[[images.app.steps]]
copy = "src/"
to = "/src"

[[images.app.steps]]
run = "cat /src/* | wc -c > /size"
`
	buildContainerfile = `FROM ` + podmanImage + `
COPY src/ /src/
RUN cat /src/* | wc -c > /size
`
	buildFiles = 100 // files in src/, 4 KiB each: a small service's sources (guessed)
)

// rowBuild is row 3: a no-op build, then a build after one file of the
// copied folder changed, which reruns the copy and the run step after it.
func rowBuild(b *bench) []result {
	dir := filepath.Join(b.work, "buildproj")
	if err := makeBuildProject(dir); err != nil {
		return []result{{row: 3, workload: "build", tool: "nook", note: "failed: " + err.Error()}}
	}
	nookBuild := func() error { return b.cmd(dir, b.nook, "build") }
	podmanBuild := func() error {
		return b.cmd(dir, "podman", append(slices.Clone(podmanFlags), "build", "-q", "-t", "localhost/nbbuild-app", "-f", "Containerfile", ".")...)
	}
	noop := []contender{{tool: "nook", run: nookBuild}}
	if b.have("podman") {
		noop = append(noop, contender{tool: "podman", run: podmanBuild})
	}
	results := b.interleave(3, "build, no-op", noop)

	// A new content per run, never seen before (the nonce), so no cache
	// of an earlier run can answer.
	nonce, n := time.Now().UnixNano(), 0
	touch := func() error {
		n++
		return writeFile(filepath.Join(dir, "src", "f000.txt"), fmt.Sprintf("change %d %d\n", nonce, n))
	}
	changed := []contender{{tool: "nook", prep: touch, run: nookBuild}}
	if b.have("podman") {
		changed = append(changed, contender{tool: "podman", prep: touch, run: podmanBuild})
	}
	return append(results, b.interleave(3, "build, one changed file (copy + run after it)", changed)...)
}

func makeBuildProject(dir string) error {
	if err := writeFile(filepath.Join(dir, "nook.toml"), buildProject); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "Containerfile"), buildContainerfile); err != nil {
		return err
	}
	// Neither tool needs to send the other's file.
	if err := writeFile(filepath.Join(dir, ".dockerignore"), "nook.toml\nContainerfile\n"); err != nil {
		return err
	}
	line := []byte("the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz\n")
	for i := range buildFiles {
		var data []byte
		for len(data) < 4096 {
			data = append(data, line...)
		}
		if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "src", fmt.Sprintf("f%03d.txt", i)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
