package layers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Benchmarks of the dev loop's builds. Run them with
//
//	go test -run '^$' -bench . -benchtime 5x ./layers/
//
// Each generates its tree once (b.Loop runs the function once) under
// b.TempDir(); the trees are in the page cache when timing starts, as a
// project being edited is.

// fileTree writes n files under dir/top, in nested folders, with sizes
// from size(i), and returns the bytes written. Contents differ per file so
// no two layers or digests coincide by accident.
func fileTree(b *testing.B, dir, top string, n int, folder func(i int) string, size func(i int) int) int64 {
	b.Helper()
	var total int64
	for i := range n {
		p := filepath.Join(dir, top, folder(i), fmt.Sprintf("f%05d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		data := make([]byte, size(i))
		seed := fmt.Appendf(nil, "%s %d\n", p, i)
		for j := 0; j < len(data); j += len(seed) {
			copy(data[j:], seed)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
	}
	return total
}

// bigTree is ~200 MB in 2,000 files of 100 KiB, 20 folders of 100.
func bigTree(b *testing.B) (string, int64) {
	dir := b.TempDir()
	n := fileTree(b, dir, "data", 2000,
		func(i int) string { return fmt.Sprintf("d%02d", i/100) },
		func(int) int { return 100 << 10 })
	return dir, n
}

// projectTree is a project of 50,000 small files (100 B to 2 KB, about
// 50 MB) in 25 modules of 20 packages, a third of each package's files a
// folder deeper, the shape of a source tree with its vendored code.
func projectTree(b *testing.B) string {
	dir := b.TempDir()
	fileTree(b, dir, "src", 50_000,
		func(i int) string {
			f := fmt.Sprintf("m%02d/p%02d", i/2000, i/100%20)
			if i%3 == 0 {
				f += "/internal"
			}
			return f
		},
		func(i int) int { return 100 + i*7919%1900 })
	waitOutRacyWindow()
	return dir
}

// waitOutRacyWindow lets files written just now age past racyWindow. The
// stat cache never remembers a file changed within it (git's racy-clean
// rule), so a tree written just now would be re-read on every build. A
// tree being edited is older than that but for the file just saved. (Not
// synchronisation: a benchmark's setup modelling the tree's age.)
func waitOutRacyWindow() { time.Sleep(racyWindow + 100*time.Millisecond) }

// copyAll is a recipe with one copy step of the context's folder top.
func copyAll(dir, top string) Recipe {
	return Recipe{
		Tag: "bench/app", From: "scratch", Context: dir,
		Steps: []Step{{Kind: StepCopy, Copy: CopySpec{Sources: []string{top}, To: "/app/"}}},
	}
}

func mustBuild(b *testing.B, bld *Builder, r Recipe, wantBuilt int) {
	b.Helper()
	res, err := bld.Build(context.Background(), r)
	if err != nil {
		b.Fatal(err)
	}
	if res.Built != wantBuilt {
		b.Fatalf("build ran %d steps, want %d", res.Built, wantBuilt)
	}
}

func reportMs(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
}

// BenchmarkLayerCreate writes a layer of ~200 MB in 2,000 files: a first
// build (the stat cache knows nothing, so every file is read to hash it
// and again to write it) and a rebuild with --no-cache (hashes known).
func BenchmarkLayerCreate(b *testing.B) {
	dir, size := bigTree(b)
	b.Run("first-build", func(b *testing.B) {
		bld := &Builder{Store: newStore(b), NoCache: true}
		b.SetBytes(size)
		for b.Loop() {
			mustBuild(b, bld, copyAll(dir, "data"), 1)
		}
	})
	b.Run("known-hashes", func(b *testing.B) {
		waitOutRacyWindow()
		bld := &Builder{Store: newStore(b), NoCache: true, Stats: NewStatCache()}
		mustBuild(b, bld, copyAll(dir, "data"), 1)
		b.SetBytes(size)
		for b.Loop() {
			mustBuild(b, bld, copyAll(dir, "data"), 1)
		}
	})
}

// BenchmarkTarSha256sum is the floor to compare BenchmarkLayerCreate
// with: tar the same tree and hash the stream, without writing it.
func BenchmarkTarSha256sum(b *testing.B) {
	dir, size := bigTree(b)
	b.SetBytes(size)
	for b.Loop() {
		out, err := exec.Command("sh", "-c", `tar -cf - -C "$1" data | sha256sum`, "sh", dir).CombinedOutput()
		if err != nil {
			b.Fatalf("tar | sha256sum: %v\n%s", err, out)
		}
	}
}

// BenchmarkNoopBuild50k is the dev loop's build with nothing changed: 50,000
// files, all known to the stat cache the loop keeps in memory.
func BenchmarkNoopBuild50k(b *testing.B) {
	dir := projectTree(b)
	bld := &Builder{Store: newStore(b), Stats: NewStatCache()}
	mustBuild(b, bld, copyAll(dir, "src"), 1)
	for b.Loop() {
		mustBuild(b, bld, copyAll(dir, "src"), 0)
	}
	reportMs(b)
}

// BenchmarkNoopBuild50kColdStatCache is `nook build` with nothing changed:
// each run loads the stat cache from disk and saves it, as project.Build
// does.
func BenchmarkNoopBuild50kColdStatCache(b *testing.B) {
	dir := projectTree(b)
	s := newStore(b)
	statFile := filepath.Join(s.Root, "cache", "stat.gob")
	build := func(wantBuilt int) {
		stats := LoadStatCache(statFile)
		mustBuild(b, &Builder{Store: s, Stats: stats}, copyAll(dir, "src"), wantBuilt)
		if err := stats.Save(statFile); err != nil {
			b.Fatal(err)
		}
	}
	build(1)
	for b.Loop() {
		build(0)
	}
	reportMs(b)
}

// BenchmarkOneFileChange50k is the dev loop's build after one file was
// saved with new content: the copy step's layer is written again.
func BenchmarkOneFileChange50k(b *testing.B) {
	dir := projectTree(b)
	bld := &Builder{Store: newStore(b), Stats: NewStatCache()}
	mustBuild(b, bld, copyAll(dir, "src"), 1)
	changed := filepath.Join(dir, "src", "m00", "p00", "internal", "f00000.txt")
	n := 0
	for b.Loop() {
		n++
		if err := os.WriteFile(changed, fmt.Appendf(nil, "edit %d\n", n), 0o644); err != nil {
			b.Fatal(err)
		}
		mustBuild(b, bld, copyAll(dir, "src"), 1)
	}
	reportMs(b)
}
