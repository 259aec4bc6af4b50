package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// storeCmd is the nook binary run in project folder dir (if set) with
// NOOK_ROOT=root: a store of its own, whatever the user running the tests
// has in theirs.
func storeCmd(root, dir string, args ...string) *exec.Cmd {
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command(nookBin, args...)
	cmd.Env = append(os.Environ(), "NOOK_ROOT="+root)
	return cmd
}

// nookIn runs nook with NOOK_ROOT=root and returns stdout, stderr and the
// exit code.
func nookIn(t *testing.T, root, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := storeCmd(root, dir, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), stderr.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run nook %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), 0
}

// mustNook runs nook and fails the test unless it exits 0.
func mustNook(t *testing.T, root, dir string, args ...string) (string, string) {
	t.Helper()
	out, errOut, code := nookIn(t, root, dir, args...)
	if code != 0 {
		t.Fatalf("nook %s = exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out, errOut
}

// writeFiles writes files (path -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// copyProject is a project named name with one scratch image "img" that
// copies each of files to /files/.
func copyProject(t *testing.T, name string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	toml := fmt.Sprintf("name = %q\n\n[images.img]\nfrom = \"scratch\"\ncmd = [\"/files/app\"]\n", name)
	for _, f := range files {
		toml += fmt.Sprintf("\n[[images.img.steps]]\ncopy = %q\nto = \"/files/\"\n", f)
	}
	writeFiles(t, dir, map[string]string{"nook.toml": toml})
	return dir
}

var builtLine = regexp.MustCompile(`^(\S+:\S+) (sha256:[0-9a-f]{64})$`)

// builds parses `nook build` output: tag -> digest.
func builds(t *testing.T, stdout string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		m := builtLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("nook build printed %q, want TAG sha256:DIGEST lines", stdout)
		}
		out[m[1]] = m[2]
	}
	return out
}

// stepOutcomes is the outcome (CACHED, ERROR or a duration) of every step
// line `nook build` printed on stderr.
func stepOutcomes(stderr string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "[") {
			out = append(out, line[strings.LastIndex(line, "  ")+2:])
		}
	}
	return out
}

// imageRow is one row of `nook images --json`.
type imageRow struct {
	Repository string
	Tag        string
	ID         string
	Created    time.Time
	Size       int64
	Current    bool
}

func images(t *testing.T, root string, args ...string) []imageRow {
	t.Helper()
	out, _ := mustNook(t, root, "", append([]string{"images", "--json"}, args...)...)
	var rows []imageRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("nook images --json printed invalid JSON: %v\n%s", err, out)
	}
	return rows
}

// rowsOf lists rows as "REPOSITORY TAG ID" for comparing.
func rowsOf(rows []imageRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Repository+" "+r.Tag+" "+r.ID)
	}
	return out
}

func TestBuildImagesTagRollback(t *testing.T) {
	root := t.TempDir()
	proj := copyProject(t, "proj", "app", "conf/app.conf")
	writeFiles(t, proj, map[string]string{"app": "v1", "conf/app.conf": "port=80"})

	out, errOut := mustNook(t, root, proj, "build")
	first := builds(t, out)["proj/img:latest"]
	if first == "" {
		t.Fatalf("nook build printed %q, want proj/img:latest sha256:...", out)
	}
	if got := stepOutcomes(errOut); len(got) != 2 || slices.Contains(got, "CACHED") {
		t.Errorf("first build step outcomes %q, want two steps run", got)
	}

	out, errOut = mustNook(t, root, proj, "build")
	if again := builds(t, out)["proj/img:latest"]; again != first {
		t.Errorf("rebuild without changes: %s, want %s", again, first)
	}
	if diff := cmp.Diff([]string{"CACHED", "CACHED"}, stepOutcomes(errOut)); diff != "" {
		t.Errorf("rebuild without changes: step outcomes (-want +got):\n%s\n%s", diff, errOut)
	}

	writeFiles(t, proj, map[string]string{"conf/app.conf": "port=8080"})
	out, errOut = mustNook(t, root, proj, "build")
	second := builds(t, out)["proj/img:latest"]
	if second == first {
		t.Errorf("build after a change: same image %s", first)
	}
	if got := stepOutcomes(errOut); len(got) != 2 || got[0] != "CACHED" || got[1] == "CACHED" {
		t.Errorf("build after a change to the second step's file: step outcomes %q, want the first CACHED, the second run", got)
	}

	table, _ := mustNook(t, root, "", "images")
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 2 || !strings.Contains(lines[1], shortID(second)) {
		t.Errorf("nook images = %q, want a header and the current build %s", table, shortID(second))
	}
	want := []string{"proj/img latest " + second, "proj/img <earlier> " + first}
	if diff := cmp.Diff(want, rowsOf(images(t, root, "--all"))); diff != "" {
		t.Errorf("nook images --all (-want +got):\n%s", diff)
	}

	out, _ = mustNook(t, root, "", "rollback", "proj/img")
	if out != "proj/img:latest now points at "+first+"\n" {
		t.Errorf("nook rollback printed %q, want the earlier build %s", out, first)
	}
	if diff := cmp.Diff([]string{"proj/img latest " + first}, rowsOf(images(t, root))); diff != "" {
		t.Errorf("nook images after rollback (-want +got):\n%s", diff)
	}

	mustNook(t, root, "", "tag", "proj/img", "other/name:v1")
	rows := images(t, root)
	if diff := cmp.Diff([]string{"other/name v1 " + first, "proj/img latest " + first}, rowsOf(rows)); diff != "" {
		t.Errorf("nook images after tag (-want +got):\n%s", diff)
	}
	for _, r := range rows {
		if !r.Current || r.Size <= 0 || r.Created.IsZero() {
			t.Errorf("nook images --json row %+v: want current, a size and a creation time", r)
		}
	}

	out, _ = mustNook(t, root, "", "history", "other/name:v1")
	for _, want := range []string{"nook: copy app -> /files/", "nook: copy conf/app.conf -> /files/"} {
		if !strings.Contains(out, want) {
			t.Errorf("nook history = %q, want a line with %q", out, want)
		}
	}

	out, _ = mustNook(t, root, "", "rmi", "other/name:v1")
	if out != "Untagged: other/name:v1\n" {
		t.Errorf("nook rmi printed %q", out)
	}
	if diff := cmp.Diff([]string{"proj/img latest " + first}, rowsOf(images(t, root))); diff != "" {
		t.Errorf("nook images after rmi (-want +got):\n%s", diff)
	}
	// The image stays reachable by digest after its other name is gone.
	mustNook(t, root, "", "history", strings.TrimPrefix(first, "sha256:")[:12])

	for _, args := range [][]string{
		{"history", "nope"},
		{"history", "sha256:" + strings.Repeat("0", 64)},
		{"tag", "nope", "x"},
		{"rmi", "nope"},
		{"rmi", "other/name:v1"}, // already removed
		{"rollback", "nope"},
	} {
		out, errOut, code := nookIn(t, root, "", args...)
		if code != exitError || !strings.HasPrefix(errOut, "nook: error: ") || out != "" {
			t.Errorf("nook %s = exit %d, stdout %q, stderr %q; want exit 1 and nook: error: on stderr only", strings.Join(args, " "), code, out, errOut)
		}
	}
}

func TestConcurrentBuildsShareStore(t *testing.T) {
	root := t.TempDir()
	// Five projects whose first steps are the same (one layer, written by
	// several processes at once), and the first project built four times.
	var dirs []string
	for i := range 5 {
		dir := copyProject(t, fmt.Sprintf("p%d", i), "common.txt", "own.txt")
		writeFiles(t, dir, map[string]string{"common.txt": "shared by all", "own.txt": fmt.Sprintf("project %d", i)})
		dirs = append(dirs, dir)
	}
	dirs = append(dirs, dirs[0], dirs[0], dirs[0])

	type run struct {
		cmd            *exec.Cmd
		stdout, stderr bytes.Buffer
	}
	runs := make([]*run, len(dirs))
	for i, dir := range dirs {
		r := &run{cmd: storeCmd(root, dir, "build")}
		r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		runs[i] = r
	}
	digests := map[string]string{}
	for i, r := range runs {
		if err := r.cmd.Wait(); err != nil {
			t.Errorf("build %d of %s: %v\n%s", i, dirs[i], err, r.stderr.String())
			continue
		}
		for tag, d := range builds(t, r.stdout.String()) {
			if prev, ok := digests[tag]; ok && prev != d {
				t.Errorf("%s built as %s and %s from the same files", tag, prev, d)
			}
			digests[tag] = d
		}
	}

	var want []string
	for tag, d := range digests {
		want = append(want, strings.TrimSuffix(tag, ":latest")+" latest "+d)
	}
	slices.Sort(want)
	if len(want) != 5 {
		t.Errorf("builds printed %d images, want 5: %v", len(want), want)
	}
	if diff := cmp.Diff(want, rowsOf(images(t, root, "--all"))); diff != "" {
		t.Errorf("nook images --all after concurrent builds (-want +got):\n%s", diff)
	}
	checkStore(t, root)
}

// checkStore fails unless the store at root is consistent: index.json
// parses, every blob's content has the digest it is named by, and every
// image the index names has its manifest, config and layers.
func checkStore(t *testing.T, root string) {
	t.Helper()
	layout := filepath.Join(root, "oci")
	blobs := filepath.Join(layout, "blobs", "sha256")
	ents, err := os.ReadDir(blobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(blobs, e.Name()))
		if err != nil {
			t.Errorf("read blob %s: %v", e.Name(), err)
			continue
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != e.Name() {
			t.Errorf("blob %s holds content with digest %x (%d bytes)", e.Name(), sum, len(data))
		}
	}
	readJSON := func(name string, into any) bool {
		data, err := os.ReadFile(name)
		if err == nil {
			err = json.Unmarshal(data, into)
		}
		if err != nil {
			t.Errorf("read %s: %v", name, err)
		}
		return err == nil
	}
	blob := func(d v1.Hash) string { return filepath.Join(blobs, d.Hex) }
	var idx v1.IndexManifest
	if !readJSON(filepath.Join(layout, "index.json"), &idx) {
		return
	}
	for _, desc := range idx.Manifests {
		var m v1.Manifest
		if !readJSON(blob(desc.Digest), &m) {
			continue
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if _, err := os.Stat(blob(d.Digest)); err != nil {
				t.Errorf("index.json names image %s, whose blob %s is missing: %v", desc.Digest, d.Digest, err)
			}
		}
	}
}

// TestKilledBuildLeavesStoreUsable kills builds (with every process they
// started, as closing a terminal or the OOM killer does) at the moments a
// build writes something, and checks that the store stays consistent and
// the next build works.
func TestKilledBuildLeavesStoreUsable(t *testing.T) {
	root := t.TempDir()
	proj := t.TempDir()
	writeFiles(t, proj, map[string]string{
		"nook.toml": `name = "big"

[images.img]
from = "scratch"

# Waits for the file "gate" so the test can kill the build while it runs.
[[images.img.steps]]
host = "touch started; while [ ! -e gate ]; do sleep 0.01; done; cp small.txt out.txt"
outputs = ["out.txt"]

[[images.img.steps]]
copy = ["out.txt", "big1", "big2"]
to = "/data/"
`,
		"small.txt": "small",
	})
	bigFiles := func(version string) {
		// 2 x 25 MB: big enough that writing the layer takes a while.
		chunk := bytes.Repeat([]byte(version), 25<<20/len(version))
		for _, name := range []string{"big1", "big2"} {
			if err := os.WriteFile(filepath.Join(proj, name), chunk, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	bigFiles("v1")
	mustNook(t, root, "", "images") // creates the store, so tmp/ can be watched

	// killAt starts a build, waits for the moment waitFor names (given
	// a channel closed when the build exits on its own), and kills it.
	killAt := func(point string, waitFor func(exited <-chan struct{}) error) {
		t.Helper()
		os.Remove(filepath.Join(proj, "started"))
		build := storeCmd(root, proj, "build")
		// Its own process group, so the kill reaches the host step's
		// shell and, unprivileged, nook's re-executed child too.
		build.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var stderr bytes.Buffer
		build.Stderr = &stderr
		if err := build.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		var waitErr error
		go func() { waitErr = build.Wait(); close(exited) }()
		if err := waitFor(exited); err != nil {
			syscall.Kill(-build.Process.Pid, syscall.SIGKILL)
			<-exited
			t.Fatalf("kill build %s: %v\n%s", point, err, stderr.String())
		}
		syscall.Kill(-build.Process.Pid, syscall.SIGKILL) // fails only if it exited: see below
		<-exited
		if waitErr == nil {
			t.Fatalf("build killed %s exited 0: it finished before the kill\n%s", point, stderr.String())
		}
		if _, errOut, code := nookIn(t, root, "", "images"); code != 0 {
			t.Errorf("nook images after a build killed %s = exit %d\n%s", point, code, errOut)
		}
		checkStore(t, root)
	}
	hostStarted := func(exited <-chan struct{}) error {
		return waitEvent(proj, unix.IN_CREATE, "started", exited)
	}
	layerWriting := func(exited <-chan struct{}) error {
		return waitEvent(filepath.Join(root, "tmp"), unix.IN_MODIFY, "blob-", exited)
	}

	killAt("right after start", func(<-chan struct{}) error { return nil })
	killAt("during the host step", hostStarted)
	writeFiles(t, proj, map[string]string{"gate": ""})
	killAt("while writing the layer", layerWriting)

	out, _ := mustNook(t, root, proj, "build")
	first := builds(t, out)["big/img:latest"]
	checkStore(t, root)

	// Killed while replacing an image: the tag keeps the complete one.
	bigFiles("v2")
	killAt("while writing the next build's layer", layerWriting)
	if diff := cmp.Diff([]string{"big/img latest " + first}, rowsOf(images(t, root, "--all"))); diff != "" {
		t.Errorf("nook images --all after a killed rebuild (-want +got):\n%s", diff)
	}
	out, _ = mustNook(t, root, proj, "build")
	if second := builds(t, out)["big/img:latest"]; second == first {
		t.Errorf("rebuild after changing big1 and big2: same image %s", first)
	}
	checkStore(t, root)
}

// waitEvent blocks until inotify reports an event in mask for a file in
// dir whose name starts with prefix, or until stop is closed, which is an
// error. The watch is set before looking, so a file cannot be created
// between a check and the wait unseen.
func waitEvent(dir string, mask uint32, prefix string, stop <-chan struct{}) error {
	// Non-blocking, so the runtime poller reads it and Close ends a Read.
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	if mask&unix.IN_CREATE != 0 {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix) {
				return nil // created before the watch was set
			}
		}
	}
	found := make(chan error, 1)
	go func() { found <- readEvents(f, mask, prefix) }()
	select {
	case err := <-found:
		return err
	case <-stop:
		return fmt.Errorf("the build exited before an event for %s* in %s", prefix, dir)
	}
}

// readEvents reads inotify events from f until one in mask names a file
// starting with prefix.
func readEvents(f *os.File, mask uint32, prefix string) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return fmt.Errorf("read inotify events: %w", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			if ev.Mask&mask != 0 && strings.HasPrefix(string(bytes.TrimRight(name, "\x00")), prefix) {
				return nil
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}
