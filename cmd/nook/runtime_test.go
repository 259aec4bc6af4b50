package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/go-cmp/cmp"
)

// These tests drive the nook binary as a user does, against one busybox
// image built once per test process in a store of its own.

// runtimeStore is the store the tests of this file share, with t/busybox
// built in it.
var runtimeStore struct {
	once       sync.Once
	root       string
	skip, fail string
}

// busyboxStore returns the NOOK_ROOT holding t/busybox, building it the
// first time: a scratch image of the host's static busybox with a symlink
// per applet, a /tmp, an /etc/passwd with root, app (1000:1000) and nobody, and
// IMAGE_VAR=from-image in its environment.
func busyboxStore(t *testing.T) string {
	t.Helper()
	runtimeStore.once.Do(func() { runtimeStore.root, runtimeStore.skip, runtimeStore.fail = buildBusybox() })
	if runtimeStore.fail != "" {
		t.Fatal(runtimeStore.fail)
	}
	if runtimeStore.skip != "" {
		t.Skip(runtimeStore.skip)
	}
	return runtimeStore.root
}

// buildBusybox builds t/busybox under the folder TestMain removes at the
// end, and returns the store or why the tests cannot run.
func buildBusybox() (root, skip, fail string) {
	const bb = "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		msg := fmt.Sprintf("%s is missing: apt-get install busybox-static", bb)
		if os.Getenv("CI") != "" {
			return "", "", msg
		}
		return "", msg, ""
	}
	base := filepath.Dir(nookBin)
	proj := filepath.Join(base, "busybox-project")
	rootfs := filepath.Join(proj, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return "", "", err.Error()
		}
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777); err != nil {
		return "", "", err.Error()
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return "", "", err.Error()
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), data, 0o755); err != nil {
		return "", "", err.Error()
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return "", "", fmt.Sprintf("%s --list: %v", bb, err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", applet)); err != nil {
			return "", "", err.Error()
		}
	}
	files := map[string]string{
		"rootfs/etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"rootfs/etc/group":  "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
		"nook.toml": `name = "t"
[images.busybox]
from = "scratch"
cmd = ["sh"]
env = { IMAGE_VAR = "from-image" }
[[images.busybox.steps]]
copy = "rootfs/"
to = "/"
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(proj, name), []byte(content), 0o644); err != nil {
			return "", "", err.Error()
		}
	}
	root = filepath.Join(base, "runtime-store")
	// Built from the project folder rather than with -C (see
	// TestProjectDirBeforeCommand).
	cmd := storeCmd(root, "", "build")
	cmd.Dir = proj
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := fmt.Sprintf("nook build of the busybox image: %v\n%s", err, stderr.String())
		// Unprivileged, a machine without user namespaces or a subuid
		// range cannot run containers; that is a skip unless the run
		// says the rootless suite must run.
		if os.Geteuid() != 0 && os.Getenv("NOOK_REQUIRE_USERNS") != "1" && os.Getenv("CI") == "" {
			return "", msg, ""
		}
		return "", "", msg
	}
	return root, "", ""
}

// TestProjectDirBeforeCommand: global flags before the command name must
// reach the command also when nook re-executes itself into its user
// namespace (unprivileged), not only when it runs in place (root).
func TestProjectDirBeforeCommand(t *testing.T) {
	root := busyboxStore(t)
	proj := filepath.Join(filepath.Dir(nookBin), "busybox-project")
	elsewhere := t.TempDir()
	for _, args := range [][]string{
		{"-C", proj, "build"},
		{"--project-dir", proj, "build"},
		{"build", "--project-dir", proj},
	} {
		cmd := storeCmd(root, "", args...)
		cmd.Dir = elsewhere
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil || !strings.HasPrefix(stdout.String(), "t/busybox:latest sha256:") {
			t.Errorf("nook %s (as uid %d, from another folder) = %v, stdout %q, stderr %q; want the project in %s built", strings.Join(args, " "), os.Geteuid(), err, stdout.String(), stderr.String(), proj)
		}
	}
}

// ctr runs nook commands against the shared store.
type ctr struct {
	t    *testing.T
	root string
}

func newCtr(t *testing.T) *ctr { return &ctr{t: t, root: busyboxStore(t)} }

// run runs nook and returns stdout, stderr and the exit code. A nook
// that has not exited after a minute is hung (an exec whose reply never
// comes, a stop that never returns): it is killed and the test fails with
// what it printed, rather than the whole test binary timing out.
func (c *ctr) run(args ...string) (string, string, int) {
	c.t.Helper()
	cmd := storeCmd(c.root, "", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// After the kill, stop reading output the container may still hold
	// (an exec'd process keeps our stdout).
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("run nook %v: %v", args, err)
	}
	hung := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !hung.Stop() {
		c.t.Fatalf("nook %s did not exit within a minute; stdout %q, stderr %q", strings.Join(args, " "), stdout.String(), stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), stderr.String(), ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run nook %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), 0
}

// must runs nook and fails the test unless it exits 0; it returns stdout.
func (c *ctr) must(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("nook %s = exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// removeAtEnd removes the named containers when the test ends, whatever
// state they are in.
func (c *ctr) removeAtEnd(names ...string) {
	c.t.Cleanup(func() {
		for _, n := range names {
			cmd := storeCmd(c.root, "", "rm", "-f", n)
			cmd.Run() // may be gone already (--rm, or the test removed it)
		}
	})
}

// inspectedState is what the tests read of `nook inspect`.
type inspectedState struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image string `json:"image"`
	State struct {
		Status   string `json:"status"`
		Pid      int    `json:"pid"`
		ExitCode int    `json:"exit_code"`
		Error    string `json:"error"`
	} `json:"state"`
	Status string `json:"status"`
}

// inspect returns the container's record as `nook inspect` prints it.
func (c *ctr) inspect(name string) inspectedState {
	c.t.Helper()
	out := c.must("inspect", name)
	var got []inspectedState
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		c.t.Fatalf("nook inspect %s printed invalid JSON: %v\n%s", name, err, out)
	}
	if len(got) != 1 {
		c.t.Fatalf("nook inspect %s printed %d records, want 1\n%s", name, len(got), out)
	}
	return got[0]
}

// psRow returns the line of `nook ps -a` whose NAMES column is name, or "".
func (c *ctr) psRow(name string) string {
	c.t.Helper()
	out := c.must("ps", "-a")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == name {
			return line
		}
	}
	return ""
}

// eventually polls cond until it reports true or 30 seconds pass, then
// fails with cond's last description of what it saw. The deadline is
// generous: it is there to end a hung test, not to measure anything.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s; last saw:\n%s", what, saw)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not synchronisation
	}
}

// waitStatus polls inspect until the container's status is want.
func (c *ctr) waitStatus(name, want string) inspectedState {
	c.t.Helper()
	var got inspectedState
	eventually(c.t, fmt.Sprintf("container %s to be %s", name, want), func() (bool, string) {
		got = c.inspect(name)
		return got.State.Status == want, fmt.Sprintf("%+v", got)
	})
	return got
}

// uniq is a name no other run of the tests uses.
func uniq(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func TestRunEcho(t *testing.T) {
	c := newCtr(t)
	before := c.must("ps", "-a", "-q")
	name := uniq("echo")
	c.removeAtEnd(name)
	out, errOut, code := c.run("run", "--rm", "--name", name, "t/busybox", "echo", "hi")
	if out != "hi\n" || code != 0 {
		t.Errorf("nook run --rm t/busybox echo hi = %q, exit %d, want \"hi\\n\", exit 0\nstderr: %s", out, code, errOut)
	}
	if after := c.must("ps", "-a", "-q"); after != before {
		t.Errorf("nook ps -a -q after run --rm = %q, want it unchanged (%q): the container should have removed itself", after, before)
	}
	if _, _, code := c.run("inspect", name); code != exitError {
		t.Errorf("nook inspect %s after run --rm = exit %d, want 1: no such container", name, code)
	}
}

// A container whose state file is unreadable (a crash, a bug, a hand
// edit) still shows in ps -a, says why, and goes with rm: hidden, its
// writable layer would stay on disk for good.
func TestUnreadableStateShowsAndRemoves(t *testing.T) {
	c := newCtr(t)
	name := uniq("badstate")
	c.removeAtEnd(name)
	id := strings.TrimSpace(c.must("create", "--name", name, "t/busybox", "true"))
	state := filepath.Join(c.root, "containers", id, "state.json")
	if err := os.WriteFile(state, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if row := c.psRow(name); !strings.Contains(row, "Exited (unknown)") {
		t.Errorf("nook ps -a shows %s, whose state.json is cut short, as %q, want Exited (unknown)", name, row)
	}
	if got := c.inspect(name); !strings.Contains(got.State.Error, "state cannot be read") {
		t.Errorf("nook inspect %s: error %q, want it to say the state cannot be read", name, got.State.Error)
	}
	c.must("rm", name)
	if _, err := os.Stat(filepath.Dir(state)); !os.IsNotExist(err) {
		t.Errorf("after nook rm %s its folder is still there (%v)", name, err)
	}
}

func TestExitCodesPassThrough(t *testing.T) {
	c := newCtr(t)
	tests := []struct {
		name       string
		cmd        []string
		wantCode   int
		wantStderr string
	}{
		{"shell exits 3", []string{"sh", "-c", "exit 3"}, 3, ""},
		{"command not in the image", []string{"no-such-command"}, 127, "no-such-command"},
		{"killed by SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 143, ""},
		{"killed by SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 137, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &ctr{t: t, root: c.root}
			out, errOut, code := c.run(append([]string{"run", "--rm", "t/busybox"}, tt.cmd...)...)
			if code != tt.wantCode {
				t.Errorf("nook run --rm t/busybox %q = exit %d, want %d\nstdout: %s\nstderr: %s", tt.cmd, code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(errOut, tt.wantStderr) {
				t.Errorf("nook run --rm t/busybox %q: stderr = %q, want it to name %q", tt.cmd, errOut, tt.wantStderr)
			}
		})
	}
}

var idRE = regexp.MustCompile(`^[0-9a-f]{64}\n$`)

func TestCreateStartStopWaitRenameRm(t *testing.T) {
	c := newCtr(t)
	name, renamed := uniq("life"), uniq("life-renamed")
	c.removeAtEnd(name, renamed)

	id := c.must("create", "--name", name, "t/busybox", "sh", "-c", "echo one; echo two; echo three; sleep 1000")
	if !idRE.MatchString(id) {
		t.Fatalf("nook create printed %q, want a 64-hex-digit id", id)
	}
	id = strings.TrimSpace(id)
	if row := c.psRow(name); !strings.Contains(row, "Created") || !strings.HasPrefix(row, id[:12]) {
		t.Errorf("nook ps -a row for a created container = %q, want its short id %s and Created", row, id[:12])
	}
	if running := c.must("ps", "-q"); strings.Contains(running, id[:12]) {
		t.Errorf("nook ps -q = %q lists a container that was only created", running)
	}

	c.must("start", name)
	eventually(t, "the container's three lines in its log", func() (bool, string) {
		out := c.must("logs", name)
		return out == "one\ntwo\nthree\n", out
	})
	if row := c.psRow(name); !strings.Contains(row, "Up ") {
		t.Errorf("nook ps -a row for a started container = %q, want Up ...", row)
	}
	if out := c.must("logs", "-n", "1", name); out != "three\n" {
		t.Errorf("nook logs -n 1 = %q, want \"three\\n\"", out)
	}
	if running := c.must("ps", "-q"); !slices.Contains(strings.Fields(running), id[:12]) {
		t.Errorf("nook ps -q = %q, want it to list %s", running, id[:12])
	}
	var listed []inspectedState
	if out := c.must("ps", "--json"); json.Unmarshal([]byte(out), &listed) != nil {
		t.Errorf("nook ps --json printed invalid JSON:\n%s", out)
	}
	found := false
	for _, l := range listed {
		if l.ID == id {
			found = true
			if l.Name != name || l.State.Status != "running" || l.State.Pid <= 0 || l.Image != "t/busybox" {
				t.Errorf("nook ps --json entry = %+v, want name %s, image t/busybox, running with a pid", l, name)
			}
		}
	}
	if !found {
		t.Errorf("nook ps --json = %+v, want an entry for %s", listed, id)
	}
	first := c.inspect(name)
	if first.ID != id || first.State.Status != "running" || first.State.Pid <= 0 || !strings.HasPrefix(first.Status, "Up ") {
		t.Errorf("nook inspect %s = %+v, want id %s, running with a pid, Up ...", name, first, id)
	}

	// A running container is not removed without -f.
	out, errOut, code := c.run("rm", name)
	if code != exitError || !strings.Contains(errOut, "running") || !strings.Contains(errOut, "hint:") || !strings.Contains(errOut, "nook rm -f "+name) {
		t.Errorf("nook rm of a running container = exit %d, stdout %q, stderr %q; want exit 1, an error saying it runs and a hint naming nook rm -f %s", code, out, errOut, name)
	}
	if got := c.inspect(name); got.State.Status != "running" {
		t.Errorf("after a refused nook rm the container is %s, want running", got.State.Status)
	}

	c.must("rename", name, renamed)
	if row := c.psRow(renamed); !strings.HasPrefix(row, id[:12]) {
		t.Errorf("nook ps -a after rename: row for %s = %q, want the container %s", renamed, row, id[:12])
	}
	if row := c.psRow(name); row != "" {
		t.Errorf("nook ps -a after rename still lists the old name: %q", row)
	}
	if _, _, code := c.run("inspect", name); code != exitError {
		t.Errorf("nook inspect of the old name after rename = exit %d, want 1", code)
	}

	// stop: SIGTERM kills sh (no handler), so 128+15.
	c.must("stop", renamed)
	if got := c.inspect(renamed); got.State.Status != "exited" || got.State.ExitCode != 143 {
		t.Errorf("after nook stop: state %+v, want exited with 143", got.State)
	}
	if row := c.psRow(renamed); !strings.Contains(row, "Exited (143) ") {
		t.Errorf("nook ps -a after stop: row %q, want Exited (143) ...", row)
	}
	if out := c.must("wait", renamed); out != "143\n" {
		t.Errorf("nook wait on a stopped container printed %q, want \"143\\n\"", out)
	}

	// restart runs the same command again, in the same writable layer.
	c.must("restart", renamed)
	if again := c.waitStatus(renamed, "running"); again.State.Pid == first.State.Pid {
		t.Errorf("after nook restart the container runs as pid %d, as before the stop: not restarted", again.State.Pid)
	}
	eventually(t, "the restarted container's output in its log", func() (bool, string) {
		out := c.must("logs", renamed)
		return strings.Count(out, "three\n") == 2, out
	})

	// wait blocks until the container ends, then prints its status.
	waiter := storeCmd(c.root, "", "wait", renamed)
	var waitOut bytes.Buffer
	waiter.Stdout = &waitOut
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	c.must("kill", "-s", "TERM", renamed)
	if err := waiter.Wait(); err != nil {
		t.Errorf("nook wait: %v", err)
	}
	if waitOut.String() != "143\n" {
		t.Errorf("nook wait during kill -s TERM printed %q, want \"143\\n\"", waitOut.String())
	}
	if got := c.waitStatus(renamed, "exited"); got.State.ExitCode != 143 {
		t.Errorf("after nook kill -s TERM: state %+v, want exited with 143", got.State)
	}

	// rm -f removes a running container.
	c.must("start", renamed)
	c.waitStatus(renamed, "running")
	c.must("rm", "-f", renamed)
	if row := c.psRow(renamed); row != "" {
		t.Errorf("nook ps -a after rm -f: %q, want no row", row)
	}
	if _, _, code := c.run("logs", renamed); code != exitError {
		t.Errorf("nook logs of a removed container = exit %d, want 1", code)
	}
}

func TestStoppedContainerKeepsItsWrites(t *testing.T) {
	c := newCtr(t)
	name := uniq("keep")
	c.removeAtEnd(name)
	c.must("create", "--name", name, "t/busybox", "sh", "-c", "test -f /data.txt && cat /data.txt || (echo first > /data.txt; echo wrote)")
	if out := c.must("start", "-a", name); out != "wrote\n" {
		t.Errorf("first nook start -a printed %q, want \"wrote\\n\"", out)
	}
	if out := c.must("start", "-a", name); out != "first\n" {
		t.Errorf("second nook start -a printed %q, want \"first\\n\": the file written by the first run is gone", out)
	}
	other := uniq("keep-other")
	c.removeAtEnd(other)
	if out := c.must("run", "--rm", "--name", other, "t/busybox", "sh", "-c", "test -e /data.txt && echo present || echo absent"); out != "absent\n" {
		t.Errorf("another container of the same image sees /data.txt: printed %q, want \"absent\\n\"", out)
	}
}

func fileSHA256(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestProcOneExeIsSealed is CVE-2019-5736: a container that opens its
// init's executable through /proc/1/exe for writing must not reach the
// nook binary on the host. Both ways an init starts are probed: inside
// nook's namespace, through a monitor (a private network), it runs from
// a read-only overlay of nook or a sealed memfd; an ordinary user's CLI
// running a container without a network starts init itself, from the
// init copy, which the container's root does not own.
func TestProcOneExeIsSealed(t *testing.T) {
	c := newCtr(t)
	before, initSum := fileSHA256(t, nookBin), fileSHA256(t, nookInitBin)
	mode := func(name string) os.FileMode {
		t.Helper()
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode()
	}
	modeBefore := mode(nookBin)
	for _, network := range []string{"private", "none"} {
		// The container's root may remount, chmod or chown what it can
		// see; none of it may help.
		attack := "mount -o remount,rw /proc/1/exe 2>/dev/null; chmod 0777 /proc/1/exe 2>/dev/null; chown 0:0 /proc/1/exe 2>/dev/null; echo x > /proc/1/exe"
		out, errOut, code := c.run("run", "--rm", "--network", network, "t/busybox", "sh", "-c", attack)
		if code == 0 {
			t.Errorf("--network %s: writing /proc/1/exe from the container succeeded (stdout %q, stderr %q), want it refused", network, out, errOut)
		}
		if after := fileSHA256(t, nookBin); after != before {
			t.Fatalf("--network %s: the nook binary changed (sha256 %s, was %s) after a container wrote to /proc/1/exe", network, after, before)
		}
		if m := mode(nookBin); m != modeBefore {
			t.Errorf("--network %s: the nook binary's mode is %v after the container's chmod, was %v", network, m, modeBefore)
		}
		exe := strings.TrimSpace(c.must("run", "--rm", "--network", network, "t/busybox", "readlink", "/proc/1/exe"))
		if exe == nookBin {
			t.Errorf("--network %s: readlink /proc/1/exe in the container = %q: init runs from the nook file on disk", network, exe)
		}
		// The init copy is a file on the host, a copy of the nook-init
		// built with nook: it must be whole still.
		if filepath.IsAbs(exe) && strings.HasPrefix(exe, c.root) {
			if sum := fileSHA256(t, exe); sum != initSum {
				t.Errorf("--network %s: init's file %s has sha256 %s, want nook-init's %s", network, exe, sum, initSum)
			}
			if m := mode(exe); m != 0o555 {
				t.Errorf("--network %s: init's file %s has mode %v, want -r-xr-xr-x", network, exe, m)
			}
		}
	}
}

// An ordinary user's foreground container runs its init from a copy of
// the nook-init built with nook; from a copy of nook itself when the
// nook-init next to it is of another build, or missing.
func TestInitCopyIsOfNookInitOfTheSameBuild(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root's containers start through a monitor, from nook's own binary: the init copy is an ordinary user's")
	}
	c := newCtr(t)
	initFile := func(bin string) string { // the sha256 of what init runs from
		t.Helper()
		cmd := storeCmd(c.root, "", "run", "--rm", "--network", "none", "t/busybox", "readlink", "/proc/1/exe")
		cmd.Path = bin
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s run ... readlink /proc/1/exe: %v", bin, err)
		}
		exe := strings.TrimSpace(string(out))
		if !strings.HasPrefix(exe, c.root) {
			t.Fatalf("%s: init runs from %s, not from an init copy in the store", bin, exe)
		}
		return fileSHA256(t, exe)
	}
	if got, want := initFile(nookBin), fileSHA256(t, nookInitBin); got != want {
		t.Errorf("init's file has sha256 %s, want that of the nook-init built with nook (%s)", got, want)
	}

	// Copies of nook (each gets an init copy of its own: one is made per
	// nook file) next to a nook-init of another build, then next to none.
	dir := t.TempDir()
	copyBinary(t, nookBin, filepath.Join(dir, "nook"))
	if out, err := buildWithToken(filepath.Join(dir, "nook-init"), "../nook-init", otherToken); err != nil {
		t.Fatalf("build nook-init: %v\n%s", err, out)
	}
	if got, want := initFile(filepath.Join(dir, "nook")), fileSHA256(t, nookBin); got != want {
		t.Errorf("with a nook-init of another build, init's file has sha256 %s, want nook's own (%s)", got, want)
	}
	if err := os.Remove(filepath.Join(dir, "nook-init")); err != nil {
		t.Fatal(err)
	}
	copyBinary(t, nookBin, filepath.Join(dir, "nook2"))
	if got, want := initFile(filepath.Join(dir, "nook2")), fileSHA256(t, nookBin); got != want {
		t.Errorf("with no nook-init, init's file has sha256 %s, want nook's own (%s)", got, want)
	}
}

// copyBinary copies the executable src to dst.
func copyBinary(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, data, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestOnlyStdioFDs(t *testing.T) {
	c := newCtr(t)
	want := []string{"0", "1", "2", "3"} // 3 is the directory ls opened
	out := c.must("run", "--rm", "t/busybox", "ls", "/proc/self/fd")
	if diff := cmp.Diff(want, strings.Fields(out)); diff != "" {
		t.Errorf("ls /proc/self/fd in a container's main process (-want +got):\n%s", diff)
	}
	name := uniq("fds")
	c.removeAtEnd(name)
	c.must("run", "-d", "--name", name, "t/busybox", "sleep", "1000")
	out, errOut, code := c.run("exec", name, "ls", "/proc/self/fd")
	if code != 0 {
		t.Errorf("nook exec %s ls /proc/self/fd = exit %d\n%s", name, code, errOut)
	}
	if diff := cmp.Diff(want, strings.Fields(out)); diff != "" {
		t.Errorf("ls /proc/self/fd in nook exec (-want +got):\n%s", diff)
	}
}

// psEntry is one process as busybox `ps -o pid,ppid,stat,args` shows it.
type psEntry struct{ pid, ppid, stat, args string }

// processes lists the container's processes through nook exec. It is
// an observation for polls: a failed exec reports ok false and why.
func (c *ctr) processes(name string) (ps []psEntry, out string, ok bool) {
	c.t.Helper()
	out, errOut, code := c.run("exec", name, "ps", "-o", "pid,ppid,stat,args")
	if code != 0 {
		return nil, fmt.Sprintf("nook exec %s ps = exit %d\n%s%s", name, code, out, errOut), false
	}
	for _, line := range strings.Split(out, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 4 {
			ps = append(ps, psEntry{f[0], f[1], f[2], strings.Join(f[3:], " ")})
		}
	}
	return ps, out, true
}

// TestZombiesAreReaped: an orphan re-parented to the container's PID 1
// must be reaped when it exits, or zombies pile up for the container's
// lifetime.
func TestZombiesAreReaped(t *testing.T) {
	c := newCtr(t)
	name := uniq("zombies")
	c.removeAtEnd(name)
	// The outer subshell exits at once, orphaning `sleep 3600`.
	c.must("run", "-d", "--name", name, "t/busybox", "sh", "-c", "( (exec sleep 3600) & ); exec sleep 1000")
	var orphan string
	eventually(t, "the orphaned sleep 3600, child of PID 1", func() (bool, string) {
		ps, out, _ := c.processes(name)
		for _, p := range ps {
			if p.args == "sleep 3600" && p.ppid == "1" {
				orphan = p.pid
				return true, out
			}
		}
		return false, out
	})
	// Its exit status is not the point (see TestExec); the poll below
	// sees whether the orphan died and was reaped.
	c.run("exec", name, "kill", orphan)
	var zombies []psEntry
	eventually(t, "the killed orphan (pid "+orphan+") to be reaped", func() (bool, string) {
		ps, out, ok := c.processes(name)
		if !ok {
			return false, out
		}
		zombies = nil
		for _, p := range ps {
			if p.pid == orphan {
				return false, out
			}
			if strings.HasPrefix(p.stat, "Z") {
				zombies = append(zombies, p)
			}
		}
		return true, out
	})
	if len(zombies) > 0 {
		t.Errorf("zombies in the container: %+v", zombies)
	}
}

func TestSigtermReachesMainProcess(t *testing.T) {
	c := newCtr(t)
	name := uniq("trap")
	c.removeAtEnd(name)
	c.must("run", "-d", "--name", name, "t/busybox", "sh", "-c", `trap "echo got-term; exit 0" TERM; echo ready; while true; do sleep 0.1; done`)
	eventually(t, "the trap to be set (ready in the log)", func() (bool, string) {
		out := c.must("logs", name)
		return strings.Contains(out, "ready"), out
	})
	c.must("stop", name)
	if got := c.inspect(name); got.State.Status != "exited" || got.State.ExitCode != 0 {
		t.Errorf("after nook stop of a shell that traps TERM and exits 0: state %+v, want exited with 0", got.State)
	}
	if out := c.must("logs", name); !strings.Contains(out, "got-term") {
		t.Errorf("nook logs after stop = %q, want got-term from the trap", out)
	}
}

// treeState lists every path under dir with its type, size and, for
// regular files, content digest.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			state[p] = "error: " + err.Error()
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			state[p] = "error: " + err.Error()
			return nil
		}
		s := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				s += " unreadable: " + err.Error()
			} else {
				s += fmt.Sprintf(" %x", sha256.Sum256(data))
			}
		}
		state[p] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// TestSigtermToForegroundRunReachesContainer: a SIGTERM to a `nook run`
// in the foreground (an IDE's stop button, kill) stops the container
// gracefully, and --rm still removes it: with a network, through the
// monitor nook starts inside its namespace; without, nook itself is the
// monitor.
func TestSigtermToForegroundRunReachesContainer(t *testing.T) {
	c := newCtr(t)
	// A first run unpacks the image, so that the runs below start where
	// they were started rather than going inside to unpack.
	c.must("run", "--rm", "--network", "none", "t/busybox", "true")
	for _, network := range []string{"private", "none"} {
		name := uniq("fgterm")
		c.removeAtEnd(name)
		cmd := storeCmd(c.root, "", "run", "--rm", "--network", network, "--name", name, "t/busybox", "sh", "-c",
			`trap "echo got-term; exit 5" TERM; echo ready; while true; do sleep 0.1; done`)
		ready, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(ready).ReadString('\n')
		if line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("--network %s: the container printed %q, want ready", network, line)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		rest, _ := io.ReadAll(ready)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 5 {
			t.Errorf("--network %s: nook run after SIGTERM = %v, want exit status 5 from the trap", network, err)
		}
		if !strings.Contains(string(rest), "got-term") {
			t.Errorf("--network %s: output after SIGTERM = %q, want got-term", network, rest)
		}
		if out, _, code := c.run("inspect", name); code == 0 {
			t.Errorf("--network %s: the --rm container is still there:\n%s", network, out)
		}
	}
}

func TestWritesOutsideBindMountsStayInside(t *testing.T) {
	c := newCtr(t)
	parent := t.TempDir()
	shared := filepath.Join(parent, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	// Open to the container's root whatever host uid it maps to.
	os.Chmod(shared, 0o777)
	out := uniq("out") + ".txt"
	layers := filepath.Join(c.root, "layers")
	before := treeState(t, layers)

	script := fmt.Sprintf("echo in > /mnt/in.txt && echo out > /etc/%[1]s && echo out > /tmp/%[1]s && cat /etc/%[1]s /tmp/%[1]s", out)
	got, errOut, code := c.run("run", "--rm", "-v", shared+":/mnt", "t/busybox", "sh", "-c", script)
	if code != 0 || got != "out\nout\n" {
		t.Fatalf("container writing /mnt/in.txt, /etc/%[1]s and /tmp/%[1]s = exit %[2]d, stdout %[3]q\n%[4]s", out, code, got, errOut)
	}
	if data, err := os.ReadFile(filepath.Join(shared, "in.txt")); err != nil || string(data) != "in\n" {
		t.Errorf("host %s/in.txt = %q, %v; want \"in\\n\" written through the bind mount", shared, data, err)
	}
	err := filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != parent && p != shared && p != filepath.Join(shared, "in.txt") {
			t.Errorf("the container's write landed on the host at %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/" + out, "/tmp/" + out} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the container's write to %s reached the host's %s (lstat: %v)", p, p, err)
		}
	}
	if diff := cmp.Diff(before, treeState(t, layers)); diff != "" {
		t.Errorf("the image's unpacked layers under %s changed when a container wrote (-before +after):\n%s", layers, diff)
	}

	got, errOut, code = c.run("run", "--rm", "-v", shared+":/mnt:ro", "t/busybox", "sh", "-c", "echo x > /mnt/ro.txt")
	if code == 0 {
		t.Errorf("writing to a :ro bind mount succeeded (stdout %q)", got)
	}
	if !strings.Contains(errOut, "Read-only file system") {
		t.Errorf("writing to a :ro bind mount: stderr %q, want Read-only file system", errOut)
	}
	if _, err := os.Lstat(filepath.Join(shared, "ro.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a write through a :ro bind mount reached the host: lstat %s/ro.txt: %v", shared, err)
	}
}

func TestExec(t *testing.T) {
	c := newCtr(t)
	name := uniq("exec")
	c.removeAtEnd(name)
	c.must("run", "-d", "--name", name, "t/busybox", "sleep", "1000")

	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantOut    string
		wantCode   int
		wantStderr string
	}{
		{"output", []string{"echo", "hello"}, "", "hello\n", 0, ""},
		{"exit code", []string{"sh", "-c", "exit 7"}, "", "", 7, ""},
		{"stderr", []string{"sh", "-c", "echo oops >&2; exit 1"}, "", "", 1, "oops"},
		{"env", []string{"-e", "FOO=bar", name, "sh", "-c", "echo $FOO $IMAGE_VAR"}, "", "bar from-image\n", 0, ""},
		{"workdir", []string{"-w", "/tmp", name, "pwd"}, "", "/tmp\n", 0, ""},
		{"user by name", []string{"-u", "app", name, "id", "-u"}, "", "1000\n", 0, ""},
		{"piped stdin with -i", []string{"-i", name, "cat"}, "piped\n", "piped\n", 0, ""},
		{"no stdin without -i", []string{name, "cat"}, "piped\n", "", 0, ""},
		{"missing command", []string{"no-such-command"}, "", "", 127, "no-such-command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !slices.Contains(args, name) {
				args = append([]string{name}, args...)
			}
			cmd := storeCmd(c.root, "", append([]string{"exec"}, args...)...)
			cmd.Stdin = strings.NewReader(tt.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			code := 0
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if stdout.String() != tt.wantOut || code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("nook exec %q = %q, exit %d, stderr %q; want %q, exit %d, stderr with %q", args, stdout.String(), code, stderr.String(), tt.wantOut, tt.wantCode, tt.wantStderr)
			}
		})
	}

	// Each exec gets two replies from init, "started" and "exited"; a
	// command that ends at once sends both before the client reads the
	// first. Twenty in a row make that moment likely.
	t.Run("quick commands in a row", func(t *testing.T) {
		c := &ctr{t: t, root: c.root}
		for i := range 20 {
			if out, errOut, code := c.run("exec", name, "true"); code != 0 {
				t.Fatalf("nook exec %s true, run %d of 20 = exit %d, stdout %q, stderr %q; want exit 0", name, i+1, code, out, errOut)
			}
		}
	})

	c.must("stop", "-t", "0", name)
	out, errOut, code := c.run("exec", name, "echo", "hi")
	if code != exitError || out != "" || !strings.Contains(errOut, "not running") {
		t.Errorf("nook exec in a stopped container = exit %d, stdout %q, stderr %q; want exit 1 and a message that it is not running", code, out, errOut)
	}
}

// terminal is a nook command on a pty we hold the master of.
type terminal struct {
	t      *testing.T
	cmd    *exec.Cmd
	master *os.File
	mu     sync.Mutex
	out    []byte
	mark   int           // expect looks after here
	more   chan struct{} // signalled after each read
	closed chan struct{} // closed when the master reads EOF or EIO
	waited chan error
}

func startTerminal(t *testing.T, cmd *exec.Cmd) *terminal {
	t.Helper()
	master, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatalf("start %v on a pty: %v", cmd.Args, err)
	}
	tm := &terminal{t: t, cmd: cmd, master: master, more: make(chan struct{}, 1), closed: make(chan struct{}), waited: make(chan error, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			tm.mu.Lock()
			tm.out = append(tm.out, buf[:n]...)
			tm.mu.Unlock()
			select {
			case tm.more <- struct{}{}:
			default:
			}
			if err != nil {
				close(tm.closed)
				return
			}
		}
	}()
	go func() { tm.waited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		master.Close()
	})
	return tm
}

// send types s; expect only looks at what comes after it.
func (tm *terminal) send(s string) {
	tm.t.Helper()
	tm.mu.Lock()
	tm.mark = len(tm.out)
	tm.mu.Unlock()
	if _, err := tm.master.WriteString(s); err != nil {
		tm.t.Fatalf("type %q: %v", s, err)
	}
}

// expect waits until the output since the last send contains want.
func (tm *terminal) expect(want string) {
	tm.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		tm.mu.Lock()
		since := string(tm.out[tm.mark:])
		tm.mu.Unlock()
		if strings.Contains(since, want) {
			return
		}
		select {
		case <-tm.more:
		case <-tm.closed:
			tm.mu.Lock()
			since = string(tm.out[tm.mark:])
			tm.mu.Unlock()
			if !strings.Contains(since, want) {
				tm.t.Fatalf("the terminal closed before %q appeared; output since the last input:\n%q", want, since)
			}
		case <-deadline:
			tm.t.Fatalf("waited 30s for %q on the terminal; output since the last input:\n%q", want, since)
		}
	}
}

// exitCode waits for the command to end and returns its exit status.
func (tm *terminal) exitCode() int {
	tm.t.Helper()
	select {
	case err := <-tm.waited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			tm.t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		tm.mu.Lock()
		defer tm.mu.Unlock()
		tm.t.Fatalf("%v did not exit within 30s; output:\n%q", tm.cmd.Args, tm.out)
	}
	return -1
}

// shellSession drives an interactive busybox sh in container name, on
// tm: arithmetic, the terminal's name, Ctrl-C of a foreground sleep (seen
// running through nook exec first) and an exit status.
func shellSession(t *testing.T, c *ctr, tm *terminal, name string) {
	tm.expect("# ")
	tm.send("echo $((6*7))\r")
	tm.expect("42")
	tm.send("tty\r")
	tm.expect("/dev/pts/0")
	tm.send("sleep 100\r")
	eventually(t, "sleep 100 to run in the container", func() (bool, string) {
		ps, out, _ := c.processes(name)
		for _, p := range ps {
			if p.args == "sleep 100" {
				return true, out
			}
		}
		return false, out
	})
	tm.send("\x03")
	tm.expect("# ")
	tm.send("echo after-$((1+1))\r")
	tm.expect("after-2")
	tm.send("exit 5\r")
	if code := tm.exitCode(); code != 5 {
		t.Errorf("%v after `exit 5` = exit %d, want 5", tm.cmd.Args, code)
	}
}

func TestRunInteractiveTerminal(t *testing.T) {
	c := newCtr(t)
	t.Run("run -it", func(t *testing.T) {
		c := &ctr{t: t, root: c.root}
		name := uniq("tty-run")
		c.removeAtEnd(name)
		tm := startTerminal(t, storeCmd(c.root, "", "run", "--rm", "-it", "--name", name, "t/busybox", "sh"))
		shellSession(t, c, tm, name)
	})
	t.Run("exec -it", func(t *testing.T) {
		c := &ctr{t: t, root: c.root}
		name := uniq("tty-exec")
		c.removeAtEnd(name)
		c.must("run", "-d", "--name", name, "t/busybox", "sleep", "1000")
		tm := startTerminal(t, storeCmd(c.root, "", "exec", "-it", name, "sh"))
		shellSession(t, c, tm, name)
		if got := c.inspect(name); got.State.Status != "running" {
			t.Errorf("after the exec'd shell exited the container is %s, want running", got.State.Status)
		}
	})
}

func TestUserFromImage(t *testing.T) {
	c := newCtr(t)
	tests := []struct {
		name       string
		user       string
		cmd        string
		wantOut    string
		wantCode   int
		wantStderr string
	}{
		{"name from /etc/passwd", "app", "id", "uid=1000(app) gid=1000(app)", 0, ""},
		{"home from /etc/passwd", "app", "echo $HOME", "/home/app", 0, ""},
		{"ids without a passwd entry", "1234:5", "id -u; id -g", "1234\n5\n", 0, ""},
		{"unknown user", "nosuchuser", "id", "", -1, `"nosuchuser"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &ctr{t: t, root: c.root}
			out, errOut, code := c.run("run", "--rm", "-u", tt.user, "t/busybox", "sh", "-c", tt.cmd)
			if tt.wantCode < 0 {
				if code == 0 || !strings.Contains(errOut, tt.wantStderr) || !strings.Contains(errOut, "/etc/passwd") {
					t.Errorf("nook run -u %s = exit %d, stderr %q; want a failure naming %s and /etc/passwd", tt.user, code, errOut, tt.wantStderr)
				}
				return
			}
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Errorf("nook run -u %s sh -c %q = %q, exit %d, want %q, exit %d\n%s", tt.user, tt.cmd, out, code, tt.wantOut, tt.wantCode, errOut)
			}
		})
	}
}

func TestHostnameAndEnv(t *testing.T) {
	c := newCtr(t)
	name := uniq("host")
	c.removeAtEnd(name)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"hostname is the container's name", []string{"--name", name, "t/busybox", "hostname"}, name + "\n"},
		{"--hostname overrides it", []string{"--hostname", "box.example", "t/busybox", "sh", "-c", "hostname; cat /etc/hostname"}, "box.example\nbox.example\n"},
		{"-e and the image's env", []string{"-e", "A=1", "t/busybox", "sh", "-c", "echo $A $IMAGE_VAR"}, "1 from-image\n"},
		{"-e overrides the image's env", []string{"-e", "IMAGE_VAR=mine", "t/busybox", "sh", "-c", "echo $IMAGE_VAR"}, "mine\n"},
		{"--entrypoint with args", []string{"--entrypoint", "echo", "t/busybox", "via", "entrypoint"}, "via entrypoint\n"},
		// Docker: --entrypoint drops the image's cmd (sh), so echo prints
		// an empty line.
		{"--entrypoint drops the image's cmd", []string{"--entrypoint", "echo", "t/busybox"}, "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &ctr{t: t, root: c.root}
			out, errOut, code := c.run(append([]string{"run", "--rm"}, tt.args...)...)
			if out != tt.want || code != 0 {
				t.Errorf("nook run --rm %q = %q, exit %d, want %q, exit 0\n%s", tt.args, out, code, tt.want, errOut)
			}
		})
	}
}

// TestNoInheritableOrAmbientCaps: a container's processes, root or not,
// start with empty inheritable and ambient capability sets, whatever
// nook's own processes held (runc's CVE-2022-29162: a full inheritable
// set lets a non-root process gain a file's inheritable capabilities),
// and a non-root user has no capabilities at all.
func TestNoInheritableOrAmbientCaps(t *testing.T) {
	c := newCtr(t)
	// Unpacked first, so that an ordinary user's runs below start init
	// from the CLI, with ambient capabilities to clear.
	c.must("run", "--rm", "--network", "none", "t/busybox", "true")
	for _, user := range []string{"0", "1000"} {
		out := c.must("run", "--rm", "--network", "none", "-u", user, "t/busybox", "grep", "^Cap", "/proc/self/status")
		caps := map[string]string{}
		for line := range strings.Lines(out) {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
				caps[k] = strings.TrimSpace(v)
			}
		}
		for _, k := range []string{"CapInh", "CapAmb"} {
			if caps[k] != "0000000000000000" {
				t.Errorf("as user %s, %s = %q, want none:\n%s", user, k, caps[k], out)
			}
		}
		if user != "0" && caps["CapEff"] != "0000000000000000" {
			t.Errorf("as user %s, CapEff = %q, want none:\n%s", user, caps["CapEff"], out)
		}
	}
	// A process nook exec starts comes from the same init, which an
	// ordinary user's CLI started with ambient capabilities.
	name := uniq("caps")
	c.removeAtEnd(name)
	fg := storeCmd(c.root, "", "run", "--rm", "--network", "none", "--name", name, "t/busybox", "sleep", "100")
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	defer fg.Wait()
	defer fg.Process.Signal(syscall.SIGTERM)
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		o, _, code := c.run("exec", name, "grep", "^Cap[IA]", "/proc/self/status")
		if code == 0 {
			out = o
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nook exec %s never succeeded (exit %d)", name, code)
		}
	}
	for line := range strings.Lines(out) {
		if k, v, _ := strings.Cut(strings.TrimSpace(line), ":"); strings.TrimSpace(v) != "0000000000000000" {
			t.Errorf("nook exec: %s = %q, want none", k, strings.TrimSpace(v))
		}
	}
}
