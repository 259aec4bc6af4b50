package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// These tests drive a project's life — up, ps, exec, stop, down — through
// the nook binary in the project's folder, as a user does. Their
// containers run t/busybox from the shared test store (see busyboxStore),
// each test in a project of its own name so none sees another's
// containers or volumes.

// projectUnderTest is a project folder and the store nook runs it in.
type projectUnderTest struct {
	t         *testing.T
	root, dir string
	name      string
	env       []string // added to nook's environment
}

// busyboxServices writes a project named after prefix (made unique) with
// the given containers and an empty folder ./shared for bind mounts, and
// takes it down when the test ends.
func busyboxServices(t *testing.T, prefix, containers string) *projectUnderTest {
	t.Helper()
	p := &projectUnderTest{t: t, root: busyboxStore(t), dir: t.TempDir(), name: uniq(prefix)}
	if err := os.Mkdir(filepath.Join(p.dir, "shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	p.writeConfig(containers)
	t.Cleanup(p.downAtEnd)
	return p
}

// writeConfig replaces the project's nook.toml.
func (p *projectUnderTest) writeConfig(rest string) {
	p.t.Helper()
	writeFiles(p.t, p.dir, map[string]string{"nook.toml": fmt.Sprintf("name = %q\n%s", p.name, rest)})
}

// downAtEnd takes the project down, whatever the test left running.
func (p *projectUnderTest) downAtEnd() {
	if _, errOut, code := p.runFor(2*time.Minute, "down", "-t", "0"); code != 0 {
		p.t.Errorf("cleanup: nook down = exit %d\n%s", code, errOut)
	}
}

// command is nook with -C dir, NOOK_ROOT=root and p.env.
func (p *projectUnderTest) command(args ...string) *exec.Cmd {
	cmd := storeCmd(p.root, p.dir, args...)
	cmd.Env = append(cmd.Env, p.env...)
	return cmd
}

func (p *projectUnderTest) run(args ...string) (string, string, int) {
	p.t.Helper()
	return p.runFor(2*time.Minute, args...)
}

// runFor runs nook in the project and returns stdout, stderr and the exit
// code. A nook still running after limit is hung: it is killed and the
// test fails with what it printed. The limit ends a hung test; it
// measures nothing.
func (p *projectUnderTest) runFor(limit time.Duration, args ...string) (string, string, int) {
	p.t.Helper()
	cmd := p.command(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("run nook %v: %v", args, err)
	}
	hung := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !hung.Stop() {
		p.t.Fatalf("nook %s did not exit within %s; stdout %q, stderr %q", strings.Join(args, " "), limit, stdout.String(), stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), stderr.String(), ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("run nook %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), 0
}

// must runs nook in the project, fails the test unless it exits 0, and
// returns stdout.
func (p *projectUnderTest) must(args ...string) string {
	p.t.Helper()
	out, errOut, code := p.run(args...)
	if code != 0 {
		p.t.Fatalf("nook %s (in project %s) = exit %d\n%s", strings.Join(args, " "), p.name, code, errOut)
	}
	return out
}

// projectContainer is what the tests read of `nook ps --json`.
type projectContainer struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	State  struct {
		Status       string `json:"status"`
		Pid          int    `json:"pid"`
		MonitorPid   int    `json:"monitor_pid"`
		ExitCode     int    `json:"exit_code"`
		Error        string `json:"error"`
		Health       string `json:"health"`
		RestartCount int    `json:"restart_count"`
	} `json:"state"`
	Status string `json:"status"` // as `nook ps` shows it: "Up 2 seconds", "Restarting (1) …"
}

// service is the container's name in its project: "web", "web-2".
func (c projectContainer) service() string {
	if n := c.Labels["nook.replica"]; n != "1" && n != "" {
		return c.Labels["nook.service"] + "-" + n
	}
	return c.Labels["nook.service"]
}

// containers returns the project's containers, by service name, as
// `nook ps -a --json` in the project folder lists them.
func (p *projectUnderTest) containers() map[string]projectContainer {
	p.t.Helper()
	out := p.must("ps", "-a", "--json")
	var list []projectContainer
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		p.t.Fatalf("nook ps -a --json printed invalid JSON: %v\n%s", err, out)
	}
	got := map[string]projectContainer{}
	for _, c := range list {
		got[c.service()] = c
	}
	return got
}

// services lists the project's containers' service names, sorted.
func (p *projectUnderTest) services() []string {
	p.t.Helper()
	var names []string
	for name := range p.containers() {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// waitFor polls `nook ps -a --json` until cond holds.
func (p *projectUnderTest) waitFor(what string, cond func(map[string]projectContainer) bool) map[string]projectContainer {
	p.t.Helper()
	var got map[string]projectContainer
	eventually(p.t, what, func() (bool, string) {
		got = p.containers()
		return cond(got), fmt.Sprintf("%+v", got)
	})
	return got
}

// lines returns the lines of a file in the project folder, none if it
// does not exist yet.
func (p *projectUnderTest) lines(name string) []string {
	p.t.Helper()
	data, err := os.ReadFile(filepath.Join(p.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		p.t.Fatal(err)
	}
	if len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// waitLines polls a file in the project folder until it has n lines.
func (p *projectUnderTest) waitLines(name string, n int) []string {
	p.t.Helper()
	var got []string
	eventually(p.t, fmt.Sprintf("%d lines in %s", n, name), func() (bool, string) {
		got = p.lines(name)
		return len(got) >= n, strings.Join(got, "\n")
	})
	return got
}

// waitFile polls until a file exists in the project folder and returns
// its lines.
func (p *projectUnderTest) waitFile(name string) []string {
	p.t.Helper()
	eventually(p.t, name+" to exist", func() (bool, string) {
		_, err := os.Stat(filepath.Join(p.dir, name))
		return err == nil, fmt.Sprint(err)
	})
	return p.lines(name)
}

// Processes, read from /proc.

// procStat returns a process's state letter and start time in clock ticks
// since boot, or "" and 0 if it does not exist.
func procStat(pid int) (string, uint64) {
	if pid <= 0 {
		return "", 0
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return "", 0
	}
	start, _ := strconv.ParseUint(f[19], 10, 64) // field 22 overall
	return f[0], start
}

// running reports whether pid is a live process (not a zombie) that
// started at start (any start time if start is 0).
func running(pid int, start uint64) bool {
	state, s := procStat(pid)
	return s != 0 && state != "Z" && (start == 0 || s == start)
}

func cmdline(pid string) string {
	data, _ := os.ReadFile("/proc/" + pid + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
}

// trace is what a running container is on the host: its init and monitor
// processes and the pid namespace its processes live in.
type trace struct {
	name, id                string
	initPid, monitorPid     int
	initStart, monitorStart uint64
	pidNS                   string // "" if it could not be read
}

func traceOf(t *testing.T, c projectContainer) trace {
	t.Helper()
	tr := trace{name: c.Name, id: c.ID, initPid: c.State.Pid, monitorPid: c.State.MonitorPid}
	_, tr.initStart = procStat(tr.initPid)
	_, tr.monitorStart = procStat(tr.monitorPid)
	if tr.initStart == 0 || tr.monitorStart == 0 {
		t.Fatalf("container %s is %q but its init (pid %d) or monitor (pid %d) does not run", c.Name, c.State.Status, tr.initPid, tr.monitorPid)
	}
	tr.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", tr.initPid))
	return tr
}

// leftovers describes every process of the container still running: its
// init or monitor, a process naming its id on its command line (a
// monitor), a process in its pid namespace.
func (tr trace) leftovers() []string {
	var out []string
	if running(tr.initPid, tr.initStart) {
		out = append(out, fmt.Sprintf("its init, pid %d (%s)", tr.initPid, cmdline(strconv.Itoa(tr.initPid))))
	}
	if running(tr.monitorPid, tr.monitorStart) {
		out = append(out, fmt.Sprintf("its monitor, pid %d (%s)", tr.monitorPid, cmdline(strconv.Itoa(tr.monitorPid))))
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == tr.initPid || pid == tr.monitorPid || !running(pid, 0) {
			continue
		}
		if cl := cmdline(e.Name()); strings.Contains(cl, tr.id) {
			out = append(out, fmt.Sprintf("pid %d with its id on the command line (%s)", pid, cl))
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && tr.pidNS != "" && ns == tr.pidNS {
			out = append(out, fmt.Sprintf("pid %d in its pid namespace %s (%s)", pid, ns, cmdline(e.Name())))
		}
	}
	return out
}

// checkNothingLeft fails the test if a container of traces still has a
// process.
func checkNothingLeft(t *testing.T, after string, traces ...trace) {
	t.Helper()
	for _, tr := range traces {
		if left := tr.leftovers(); len(left) > 0 {
			t.Errorf("after %s, container %s still has processes:\n  %s", after, tr.name, strings.Join(left, "\n  "))
		}
	}
}

// 1. The example project, end to end.

func TestHelloUpServesAndDownCleans(t *testing.T) {
	busyboxStore(t) // skips where containers cannot run
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH: examples/hello builds its binary with `go build` as a host step")
	}
	// hello publishes port 8080 on the host's loopback, as it stands.
	l, err := net.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		t.Skipf("port 8080 is busy (another test or program listens there), and examples/hello serves on it: %v", err)
	}
	l.Close()
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.MkdirTemp(filepath.Dir(nookBin), "hello-store") // removed by TestMain
	if err != nil {
		t.Fatal(err)
	}
	// GREETING set to empty means the default greeting.
	p := &projectUnderTest{t: t, root: root, dir: dir, name: "hello", env: []string{"GREETING="}}
	t.Cleanup(p.downAtEnd)

	// A cold Go build cache makes the host step slow: a generous limit.
	if _, errOut, code := p.runFor(10*time.Minute, "up", "-d"); code != 0 {
		if strings.Contains(errOut, "127.0.0.1:8080/tcp: port already in use") {
			t.Skipf("port 8080 was taken between the check and the start (another test?): %s", errOut)
		}
		t.Fatalf("nook -C examples/hello up -d = exit %d\n%s", code, errOut)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	eventually(t, "hello to answer on http://127.0.0.1:8080/", func() (bool, string) {
		resp, err := client.Get("http://127.0.0.1:8080/")
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(body) == "hello from nook\n", fmt.Sprintf("%s: %q", resp.Status, body)
	})

	out := p.must("ps")
	if row := rowOf(out, "hello-hello-1"); !strings.Contains(row, " Up ") {
		t.Errorf("nook -C examples/hello ps = \n%s\nwant a row for hello-hello-1 that says Up", out)
	}
	c, ok := p.containers()["hello"]
	if !ok {
		t.Fatalf("nook ps -a --json lists no hello container: %v", p.services())
	}
	tr := traceOf(t, c)

	p.must("down")
	if got := p.services(); len(got) != 0 {
		t.Errorf("nook ps -a after down lists %v, want no container", got)
	}
	checkNothingLeft(t, "nook down", tr)
}

// poll is eventually for checks that fail with their own message: it
// reports whether cond held before the 30 s guard ran out.
func poll(cond func() bool) bool {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not synchronisation
	}
	return true
}

// rowOf returns the line of a table whose first field is name, or "".
func rowOf(table, name string) string {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return line
		}
	}
	return ""
}

// 2–3. Dependencies.

func TestDependencyWaitsForHealthy(t *testing.T) {
	// db is healthy once /tmp/ready exists, a second after it starts (its
	// start period keeps the checks failing before that from making it
	// unhealthy); it notes "db-ready" before it makes the file, app notes
	// its start: the order of the lines is the order of the events.
	p := busyboxServices(t, "healthy", `
[containers.db]
image = "t/busybox"
command = ["sh", "-c", "echo db-start >> /shared/order; sleep 1; echo db-ready >> /shared/order; touch /tmp/ready; exec sleep 1000"]
healthcheck = { cmd = ["test", "-f", "/tmp/ready"], interval = "100ms", start_period = "30s" }
volumes = ["./shared:/shared"]

[containers.app]
image = "t/busybox"
command = ["sh", "-c", "echo app-start >> /shared/order; exec sleep 1000"]
depends_on = { db = "healthy" }
volumes = ["./shared:/shared"]
`)
	p.must("up", "-d")
	got := p.containers()
	if db := got["db"]; db.State.Health != "healthy" {
		t.Errorf("when nook up -d returned, db's health = %q (%s), want healthy: up must wait for it", db.State.Health, db.Status)
	}
	if app := got["app"]; app.State.Status != "running" {
		t.Errorf("when nook up -d returned, app is %q, want running", app.State.Status)
	}
	order := p.waitLines("shared/order", 3)
	if diff := cmp.Diff([]string{"db-start", "db-ready", "app-start"}, order); diff != "" {
		t.Errorf("order of events (-want +got): app must start after db is ready\n%s", diff)
	}
}

func TestCompletedDependency(t *testing.T) {
	t.Run("exit 0", func(t *testing.T) {
		p := busyboxServices(t, "completed", `
[containers.migrate]
image = "t/busybox"
command = ["sh", "-c", "echo migrated > /shared/schema"]
volumes = ["./shared:/shared"]

[containers.app]
image = "t/busybox"
command = ["sh", "-c", "cat /shared/schema > /shared/.app-saw; mv /shared/.app-saw /shared/app-saw; exec sleep 1000"]
depends_on = { migrate = "completed" }
volumes = ["./shared:/shared"]
`)
		p.must("up", "-d")
		if m := p.containers()["migrate"]; m.State.Status != "exited" || m.State.ExitCode != 0 {
			t.Errorf("when nook up -d returned, migrate was %q with status %d, want exited with 0", m.State.Status, m.State.ExitCode)
		}
		// app copies the file to app-saw and renames it into place.
		if saw := p.waitFile("shared/app-saw"); len(saw) != 1 || saw[0] != "migrated" {
			t.Errorf("app read %q from the file migrate writes, want \"migrated\": it started before migrate completed", saw)
		}
	})
	t.Run("exit 3", func(t *testing.T) {
		p := busyboxServices(t, "migrate-fails", `
[containers.migrate]
image = "t/busybox"
command = ["sh", "-c", "echo applying 0042_orders; echo cannot reach the database >&2; exit 3"]

[containers.app]
image = "t/busybox"
command = ["sleep", "1000"]
depends_on = { migrate = "completed" }
`)
		_, errOut, code := p.run("up", "-d")
		if code != exitError {
			t.Errorf("nook up -d with a migrate that exits 3 = exit %d, want %d", code, exitError)
		}
		for _, want := range []string{"migrate", "status 3", "applying 0042_orders", "cannot reach the database"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("nook up -d stderr = %q, want it to name the dependency, its status and its last lines: it lacks %q", errOut, want)
			}
		}
		if c, ok := p.containers()["app"]; ok {
			t.Errorf("app has a container (%s) although the migration it waits for failed", c.Status)
		}
	})
}

// 4. Restart policies.

func TestRestartPolicyOnFailure(t *testing.T) {
	t.Run("on-failure:3", func(t *testing.T) {
		p := busyboxServices(t, "on-failure", `
[containers.flaky]
image = "t/busybox"
command = ["sh", "-c", "echo run >> /shared/runs; exit 1"]
restart = "on-failure:3"
volumes = ["./shared:/shared"]
`)
		p.must("up", "-d")
		sawRestarting := false
		p.waitFor("flaky to give up: exited, 3 restarts, its monitor gone", func(cs map[string]projectContainer) bool {
			c := cs["flaky"]
			sawRestarting = sawRestarting || strings.HasPrefix(c.Status, "Restarting")
			return c.State.Status == "exited" && c.State.RestartCount >= 3 && !running(c.State.MonitorPid, 0)
		})
		// Read again: the state above may predate the monitor's last
		// record, and with the monitor gone nothing changes it any more.
		c := p.containers()["flaky"]
		if c.State.RestartCount != 3 || c.State.ExitCode != 1 {
			t.Errorf("flaky ended with %d restarts and status %d, want 3 restarts and status 1", c.State.RestartCount, c.State.ExitCode)
		}
		if runs := p.lines("shared/runs"); len(runs) != 4 {
			t.Errorf("flaky ran %d times, want 4 (the first run and 3 restarts)", len(runs))
		}
		// The back-off windows here are short (100, 200, 400 ms); the
		// "always" case below checks ps shows them, where they grow.
		t.Logf("ps showed Restarting during the back-off: %v", sawRestarting)
	})
	t.Run("always until stop", func(t *testing.T) {
		p := busyboxServices(t, "always", `
[containers.looper]
image = "t/busybox"
command = ["sh", "-c", "echo run >> /shared/runs; exit 0"]
restart = "always"
volumes = ["./shared:/shared"]
`)
		p.must("up", "-d")
		// The back-off doubles from 100 ms, so a few restarts in, the
		// container spends most of its time waiting to restart.
		got := p.waitFor("looper, exiting 0, to be restarted 3 times", func(cs map[string]projectContainer) bool {
			c := cs["looper"]
			return c.State.RestartCount >= 3 && strings.HasPrefix(c.Status, "Restarting") && len(p.lines("shared/runs")) >= 3
		})
		// A user watching `nook ps` sees the crash loop, as with `docker ps`.
		var out string
		if !poll(func() bool {
			out = p.must("ps")
			return strings.Contains(rowOf(out, p.name+"-looper-1"), "Restarting")
		}) {
			t.Errorf("nook ps never listed looper, restarting (restart_count %d):\n%s\nwant a row saying Restarting: a crash-looping container is not stopped", got["looper"].State.RestartCount, out)
		}
		monitor := got["looper"].State.MonitorPid
		p.must("stop", "looper")
		c := p.containers()["looper"]
		if c.State.Status != "exited" {
			t.Errorf("after nook stop, looper is %q (%s), want exited", c.State.Status, c.Status)
		}
		// Its monitor is what restarts it: gone, nothing starts it again.
		if running(monitor, 0) {
			t.Errorf("after nook stop, looper's monitor (pid %d: %s) still runs and would restart it", monitor, cmdline(strconv.Itoa(monitor)))
		}
	})
}

// 5–7. Reconciling the files with what runs.

func TestReconcileKeepsUnchanged(t *testing.T) {
	config := func(bEnv string) string {
		return `
[containers.a]
image = "t/busybox"
command = ["sleep", "1000"]
env = { MODE = "one" }

[containers.b]
image = "t/busybox"
command = ["sleep", "1000"]
env = { MODE = "` + bEnv + `" }
`
	}
	p := busyboxServices(t, "reconcile", config("one"))
	p.must("up", "-d")
	before := p.containers()
	p.writeConfig(config("two"))
	p.must("up", "-d")
	after := p.containers()

	if a, a2 := before["a"], after["a"]; a.ID != a2.ID || a.State.Pid != a2.State.Pid || a2.State.Status != "running" {
		t.Errorf("a, unchanged, went from %s pid %d to %s pid %d (%s); want it left running as it was", a.ID[:12], a.State.Pid, a2.ID[:12], a2.State.Pid, a2.State.Status)
	}
	if b, b2 := before["b"], after["b"]; b.ID == b2.ID || b.State.Pid == b2.State.Pid || b2.State.Status != "running" {
		t.Errorf("b, whose env changed, went from %s pid %d to %s pid %d (%s); want a new, running container", b.ID[:12], b.State.Pid, b2.ID[:12], b2.State.Pid, b2.State.Status)
	}
	if env := p.must("exec", "b", "sh", "-c", "echo $MODE"); env != "two\n" {
		t.Errorf("MODE in the recreated b = %q, want two", env)
	}
}

func TestReplicas(t *testing.T) {
	p := busyboxServices(t, "replicas", `
[containers.svc]
image = "t/busybox"
command = ["sleep", "1000"]
replicas = 3
`)
	p.must("up", "-d")
	got := p.containers()
	var names []string
	for _, c := range got {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{p.name + "-svc-1", p.name + "-svc-2", p.name + "-svc-3"}, names); diff != "" {
		t.Errorf("containers of replicas = 3 (-want +got):\n%s", diff)
	}
	// ps in the project folder shows each by its name in the project.
	out := p.must("ps")
	for n, svc := range []string{"svc", "svc-2", "svc-3"} {
		row := rowOf(out, fmt.Sprintf("%s-svc-%d", p.name, n+1))
		if f := strings.Fields(row); len(f) < 3 || f[2] != svc {
			t.Errorf("nook ps row for replica %d = %q, want SERVICE %s\n%s", n+1, row, svc, out)
		}
	}
	// exec reaches a replica by its name in the project; the hostname
	// defaults to the container's name there (docs/nook.toml.md).
	if host, errOut, code := p.run("exec", "svc-2", "hostname"); code != 0 || host != "svc-2\n" {
		t.Errorf("nook exec svc-2 hostname = %q, exit %d (%s), want svc-2: each replica is named, and reachable, as svc-N", host, code, errOut)
	}

	p.must("up", "-d", "--scale", "svc=1")
	after := p.containers()
	if diff := cmp.Diff([]string{"svc"}, p.services()); diff != "" {
		t.Errorf("services after --scale svc=1 (-want +got):\n%s", diff)
	}
	if after["svc"].ID != got["svc"].ID {
		t.Errorf("--scale svc=1 recreated the first replica (%s, was %s); want it kept", after["svc"].ID[:12], got["svc"].ID[:12])
	}
}

func TestProfiles(t *testing.T) {
	p := busyboxServices(t, "profiles", `
[containers.web]
image = "t/busybox"
command = ["sleep", "1000"]

[containers.debugger]
image = "t/busybox"
command = ["sleep", "1000"]
profiles = ["debug"]
`)
	p.must("up", "-d")
	if diff := cmp.Diff([]string{"web"}, p.services()); diff != "" {
		t.Errorf("containers after up -d without a profile (-want +got):\n%s", diff)
	}
	web := p.containers()["web"].ID
	p.must("--profile", "debug", "up", "-d")
	got := p.containers()
	if diff := cmp.Diff([]string{"debugger", "web"}, p.services()); diff != "" {
		t.Errorf("containers after --profile debug up -d (-want +got):\n%s", diff)
	}
	if got["debugger"].State.Status != "running" || got["web"].ID != web {
		t.Errorf("after --profile debug up -d: debugger %q, web %s (was %s); want debugger running, web untouched", got["debugger"].State.Status, got["web"].ID[:12], web[:12])
	}
}

// 8. Named volumes.

// volumeRuns is a container that notes each start in its named volume.
const volumeRuns = `
[containers.svc]
image = "t/busybox"
command = ["sh", "-c", "echo run >> /data/runs; exec sleep 1000"]
volumes = ["data:/data"]
`

// runsInVolume polls the volume through exec until it holds n runs.
func (p *projectUnderTest) runsInVolume(n int) {
	p.t.Helper()
	want := strings.Repeat("run\n", n)
	eventually(p.t, fmt.Sprintf("%d runs noted in the named volume of %s", n, p.name), func() (bool, string) {
		out, errOut, _ := p.run("exec", "svc", "cat", "/data/runs")
		return out == want, out + errOut
	})
}

func TestNamedVolumeSurvivesDownUp(t *testing.T) {
	p := busyboxServices(t, "volume", volumeRuns)
	p.must("up", "-d")
	p.runsInVolume(1)
	p.must("down")
	p.must("up", "-d")
	p.runsInVolume(2) // the first run's note survived down
	p.must("down", "--volumes")
	p.must("up", "-d")
	p.runsInVolume(1) // a fresh volume
}

// TestDownVolumesSparesOtherProjects: a project whose name extends
// another's ("shop" and "shop_staging") keeps its volumes when the other
// is taken down with --volumes.
func TestDownVolumesSparesOtherProjects(t *testing.T) {
	p := busyboxServices(t, "volume", volumeRuns)
	other := busyboxServices(t, "unused", volumeRuns)
	other.name = p.name + "_staging"
	other.writeConfig(volumeRuns)
	other.must("up", "-d")
	other.runsInVolume(1)
	p.must("up", "-d")
	p.runsInVolume(1)
	p.must("down", "--volumes")
	out, errOut, code := other.run("exec", "svc", "cat", "/data/runs")
	if out != "run\n" {
		t.Errorf("after nook down --volumes of project %s, project %s's volume holds %q (exit %d, %s), want its run noted: down removed another project's volume", p.name, other.name, out, code, errOut)
	}
}

// 9–11. Failures.

func TestKilledMonitorThenDownCleansUp(t *testing.T) {
	p := busyboxServices(t, "killed", `
[containers.a]
image = "t/busybox"
command = ["sleep", "1000"]

[containers.b]
image = "t/busybox"
command = ["sleep", "1000"]
`)
	p.must("up", "-d")
	var traces []trace
	for _, c := range p.containers() {
		tr := traceOf(t, c)
		traces = append(traces, tr)
		if err := syscall.Kill(tr.monitorPid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 the monitor of %s (pid %d): %v", c.Name, tr.monitorPid, err)
		}
	}
	// Their inits die with them (PDEATHSIG), and ps says so.
	got := p.waitFor("both containers to show as exited", func(cs map[string]projectContainer) bool {
		return cs["a"].State.Status == "exited" && cs["b"].State.Status == "exited"
	})
	for svc, c := range got {
		if !strings.HasPrefix(c.Status, "Exited (unknown)") {
			t.Errorf("ps shows %s, whose monitor was killed, as %q, want Exited (unknown)", svc, c.Status)
		}
	}
	eventually(t, "the containers' processes to die with their monitors", func() (bool, string) {
		var left []string
		for _, tr := range traces {
			left = append(left, tr.leftovers()...)
		}
		return len(left) == 0, strings.Join(left, "\n")
	})
	if out := p.must("ps"); rowOf(out, p.name+"-a-1") != "" || rowOf(out, p.name+"-b-1") != "" {
		t.Errorf("nook ps (running containers) after their monitors were killed:\n%s\nwant neither a nor b", out)
	}
	p.must("down")
	if got := p.services(); len(got) != 0 {
		t.Errorf("nook ps -a after down lists %v, want no container", got)
	}
	checkNothingLeft(t, "nook down", traces...)
}

func TestConcurrentUpIsRefused(t *testing.T) {
	p := busyboxServices(t, "concurrent", "")
	// The image's host step holds the first up until the test makes
	// ./gate; it makes ./building first so the test knows it runs. The
	// project's name in the step keeps the cache of an earlier run from
	// skipping it.
	p.writeConfig(fmt.Sprintf(`
[images.slow]
from = "t/busybox"

[[images.slow.steps]]
host = ": %s; touch building; while [ ! -e gate ]; do sleep 0.05; done"

[containers.app]
image = "slow"
command = ["sleep", "1000"]
`, p.name))
	first := p.command("up", "-d")
	var firstOut, firstErr bytes.Buffer
	first.Stdout, first.Stderr = &firstOut, &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan error, 1)
	go func() { firstDone <- first.Wait() }()
	opened := false
	t.Cleanup(func() {
		if !opened {
			os.WriteFile(filepath.Join(p.dir, "gate"), nil, 0o644)
			first.Process.Kill()
			<-firstDone
		}
	})
	eventually(t, "the first nook up to run its host step (./building)", func() (bool, string) {
		select {
		case err := <-firstDone:
			t.Fatalf("the first nook up -d ended (%v) before its host step ran:\n%s", err, firstErr.String())
		default:
		}
		_, err := os.Stat(filepath.Join(p.dir, "building"))
		return err == nil, firstErr.String()
	})

	_, errOut, code := p.run("up", "-d")
	if code != exitError || !strings.Contains(errOut, "already being brought up") {
		t.Errorf("a second nook up -d while the first runs = exit %d, stderr %q; want exit 1 and \"already being brought up\"", code, errOut)
	}

	if err := os.WriteFile(filepath.Join(p.dir, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opened = true
	select {
	case err := <-firstDone:
		if err != nil {
			t.Fatalf("the first nook up -d = %v\n%s", err, firstErr.String())
		}
	case <-time.After(2 * time.Minute): // ends a hung test, measures nothing
		first.Process.Kill()
		t.Fatalf("the first nook up -d did not finish after the gate opened:\n%s", firstErr.String())
	}
	if c := p.containers()["app"]; c.State.Status != "running" {
		t.Errorf("after the first up -d, app is %q, want running", c.State.Status)
	}
}

func TestUpFailsWithContainerError(t *testing.T) {
	p := busyboxServices(t, "bad-command", `
[containers.ok]
image = "t/busybox"
command = ["sleep", "1000"]

[containers.broken]
image = "t/busybox"
command = ["/no/such/program", "--serve"]
`)
	_, errOut, code := p.run("up", "-d")
	if code == 0 {
		t.Errorf("nook up -d with a command that does not exist = exit 0, want failure")
	}
	for _, want := range []string{"broken", "/no/such/program", "not found"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("nook up -d stderr = %q, want it to name the service and why it did not start: it lacks %q", errOut, want)
		}
	}
	p.must("down")
	if got := p.services(); len(got) != 0 {
		t.Errorf("nook ps -a after down lists %v, want no container", got)
	}
}

// 12. The foreground.

// loggers is a project of two containers that each print a line and wait.
const loggers = `
[containers.web]
image = "t/busybox"
command = ["sh", "-c", "echo web-says-hi; exec sleep 1000"]

[containers.worker]
image = "t/busybox"
command = ["sh", "-c", "echo worker-says-hi; exec sleep 1000"]
`

// Lines of `nook up` output, prefixed with the service padded to the
// longest name.
var (
	webLine    = regexp.MustCompile(`(?m)^web    \| web-says-hi\r?$`)
	workerLine = regexp.MustCompile(`(?m)^worker \| worker-says-hi\r?$`)
)

func TestForegroundUpStopsOnInterrupt(t *testing.T) {
	t.Run("ctrl-c on its terminal", func(t *testing.T) {
		p := busyboxServices(t, "fg-tty", loggers)
		p.env = append(p.env, "NO_COLOR=1")
		tm := startTerminal(t, p.command("up"))
		tm.expect("web-says-hi")
		tm.expect("worker-says-hi")
		tm.mu.Lock()
		out := string(tm.out)
		tm.mu.Unlock()
		if !webLine.MatchString(out) || !workerLine.MatchString(out) {
			t.Errorf("nook up output = %q, want \"web    | web-says-hi\" and \"worker | worker-says-hi\" lines", out)
		}
		tm.send("\x03")
		code := tm.exitCode()
		t.Logf("nook up exited %d after Ctrl-C", code)
		p.checkAllExited("Ctrl-C of nook up")
	})
	t.Run("sigint to the nook process", func(t *testing.T) {
		// A supervisor, an IDE's stop button or `kill -INT` signals the
		// process alone, not its group.
		p := busyboxServices(t, "fg-pipe", loggers)
		cmd := p.command("up")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
			done <- cmd.Wait()
		}()
		t.Cleanup(func() { cmd.Process.Kill() })
		var seen []string
		deadline := time.After(2 * time.Minute) // ends a hung test, measures nothing
		for !slices.ContainsFunc(seen, webLine.MatchString) || !slices.ContainsFunc(seen, workerLine.MatchString) {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("nook up ended before both services' lines; stdout %q, stderr %q", seen, stderr.String())
				}
				seen = append(seen, l)
			case <-deadline:
				t.Fatalf("waited 2m for \"web    | web-says-hi\" and \"worker | worker-says-hi\" from nook up; stdout %q, stderr %q", seen, stderr.String())
			}
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		go func() {
			for range lines {
			}
		}()
		select {
		case err := <-done:
			t.Logf("nook up ended with %v after SIGINT", err)
		case <-time.After(time.Minute): // ends a hung test, measures nothing
			t.Fatalf("nook up (as uid %d) did not exit within a minute of SIGINT sent to its process alone: "+
				"it still follows the logs, its containers still run; stderr %q", os.Geteuid(), stderr.String())
		}
		p.checkAllExited("SIGINT to nook up")
	})
}

// checkAllExited fails the test unless every container of the project
// has exited.
func (p *projectUnderTest) checkAllExited(after string) {
	p.t.Helper()
	got := p.containers()
	if len(got) == 0 {
		p.t.Errorf("after %s, the project has no containers; want them stopped, not removed", after)
	}
	for svc, c := range got {
		if c.State.Status != "exited" {
			p.t.Errorf("after %s, %s is %q (%s), want exited", after, svc, c.State.Status, c.Status)
		}
	}
}
