package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Flags that make rootless podman work on these machines (no systemd, so
// no systemd cgroup manager and no journald for events), and overlay
// storage: Debian 12's podman has no storage.conf and then defaults to
// vfs, which copies every layer; overlay is upstream's default and what
// nook uses.
var podmanFlags = []string{"--cgroup-manager=cgroupfs", "--events-backend=file", "--storage-driver=overlay"}

// podmanImage is the busybox rootfs, imported into podman's store.
const podmanImage = "localhost/nookbench-busybox:latest"

// bench is the measuring process's world: the work folder, the binaries in
// it, the environment the tools run with, and which peers work.
type bench struct {
	o       options
	work    string   // binaries and fixtures
	nook    string   // the nook binary built from this tree
	floor   string   // the floor binary
	proj    string   // the busybox project; its rootfs/ is every tool's root
	rootfs  string   // proj/rootfs
	env     []string // os.Environ() plus NOOK_ROOT
	skipped []string // "tool: why" for the table's notes
	broken  map[string]bool
	load    string   // the load average before bench added its own
	rowLoad []string // "ROW: LOAD": the 1-minute load average as each row began
	driver  string   // the storage driver podman uses
}

// measureAll prepares the fixtures in o.work, runs the selected rows and
// writes the table to w.
func measureAll(o options, w io.Writer) error {
	work, err := filepath.Abs(o.work)
	if err != nil {
		return err
	}
	b := &bench{
		o:      o,
		work:   work,
		nook:   filepath.Join(work, "nook"),
		floor:  filepath.Join(work, "floor"),
		proj:   filepath.Join(work, "proj"),
		rootfs: filepath.Join(work, "proj", "rootfs"),
		env:    append(os.Environ(), "NOOK_ROOT="+filepath.Join(work, "store")),
		broken: map[string]bool{},
		load:   loadAverage(),
	}
	if l, _ := strconv.ParseFloat(strings.Fields(b.load)[0], 64); l > 1.5 {
		logf("bench: the load average is %s: others are busy, and the numbers will show it", b.load)
	}
	if err := b.prepare(); err != nil {
		return err
	}
	var results []result
	for _, r := range rows {
		if !b.selected(r.num) {
			continue
		}
		load := strings.Fields(loadAverage())[0]
		b.rowLoad = append(b.rowLoad, fmt.Sprintf("%d: %s", r.num, load))
		logf("bench: row %d: %s (load %s)", r.num, r.name, load)
		if r.fn == nil {
			results = append(results, result{row: r.num, workload: r.name, note: "not yet"})
			continue
		}
		results = append(results, r.fn(b)...)
	}
	if err := writeTable(w, b, results); err != nil {
		return err
	}
	return nookFailures(results)
}

// nookFailures is an error naming the rows where nook itself failed: the
// bench then exits 1, which CI takes as a failure. A peer that fails (not
// installed, or broken on this machine) only shows in the table.
func nookFailures(results []result) error {
	var failed []string
	for _, r := range results {
		if r.tool == "nook" && len(r.samples) == 0 && strings.HasPrefix(r.note, "failed") {
			failed = append(failed, fmt.Sprintf("row %d (%s)", r.row, r.workload))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("nook failed in %s; see the table", strings.Join(failed, ", "))
	}
	return nil
}

func (b *bench) selected(row int) bool {
	if b.o.only == "" {
		return true
	}
	return slices.Contains(strings.Split(b.o.only, ","), fmt.Sprint(row))
}

// have says whether a peer is on PATH and passed its probe; the first
// time a peer is missing it is noted with why.
func (b *bench) have(tool string) bool {
	if b.broken[tool] {
		return false
	}
	if _, err := exec.LookPath(tool); err != nil {
		b.skip(tool, "not installed (run bench as root to install it)")
		return false
	}
	return true
}

// skip records that tool is left out, once, with why.
func (b *bench) skip(tool, why string) {
	if b.broken[tool] {
		return
	}
	b.broken[tool] = true
	if strings.Contains(why, "hybrid mode") && os.Getuid() != 0 {
		why += " (as root, bench measures in a mount namespace without /sys/fs/cgroup/unified, where crun works)"
	}
	b.skipped = append(b.skipped, tool+": "+why)
	logf("bench: skipping %s: %s", tool, why)
}

// cmd runs name with args in dir (the work folder when empty) and the
// bench environment; its output is kept only for the error.
func (b *bench) cmd(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, b.env
	if dir == "" {
		cmd.Dir = b.work
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLine(out.String()))
	}
	return nil
}

// output runs name like cmd and returns its stdout.
func (b *bench) output(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = b.work, b.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLine(stderr.String()))
	}
	return string(out), nil
}

func (b *bench) nookCmd(args ...string) error { return b.cmd(b.proj, b.nook, args...) }

func (b *bench) podman(args ...string) error {
	return b.cmd("", "podman", append(slices.Clone(podmanFlags), args...)...)
}

func (b *bench) podmanOutput(args ...string) (string, error) {
	return b.output("podman", append(slices.Clone(podmanFlags), args...)...)
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if fields := strings.Fields(string(data)); err == nil && len(fields) >= 3 {
		return strings.Join(fields[:3], " ")
	}
	return "? ? ?"
}

// timeIt runs fn and returns how long it took in milliseconds.
func timeIt(fn func() error) (float64, error) {
	start := time.Now()
	err := fn()
	return float64(time.Since(start).Microseconds()) / 1000, err
}
