package rootless

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nook-dev/nook/internal/testenv"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	Init() // in a child: runs the entry point and exits
	if os.Getenv("NOOK_TEST_ORPHANER") == "1" {
		// TestChildDiesWithParent's parent on the host: start a child with
		// HostMapping and exit without waiting.
		os.Exit(childOrphan())
	}
	os.Exit(m.Run())
}

// Entry points the tests run inside the namespace. Each prints JSON on
// stdout; a setup failure goes to stderr with exit status 1.
func init() {
	Register("test.true", func() int { return 0 })
	Register("test.id", childID)
	Register("test.echo", childEcho)
	Register("test.chown", childChown)
	Register("test.overlay", func() int {
		if err := checkOverlay(os.Args[1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	})
	Register("test.rmtree", func() int { return printJSON(0, os.RemoveAll(os.Args[1])) })
	Register("test.sleep", func() int {
		fmt.Println("running")
		time.Sleep(time.Hour)
		return 0
	})
	Register("test.orphan", childOrphan)
}

// idInfo is what test.id reports about the process it runs in.
type idInfo struct {
	UID, GID, PID  int
	Caps           uint32
	UIDMap, GIDMap []IDMap
	Setgroups      string
	NS             map[string]string // /proc/self/ns/NAME link targets
	Hostname       string            // after sethostname, if an argument asked for it
	Ifaces         []string
}

func childID() int {
	info := idInfo{UID: os.Getuid(), GID: os.Getgid(), PID: os.Getpid(), NS: namespaces()}
	var err error
	info.Caps, err = effectiveCaps()
	if err == nil {
		info.UIDMap, err = readIDMapFile("/proc/self/uid_map")
	}
	if err == nil {
		info.GIDMap, err = readIDMapFile("/proc/self/gid_map")
	}
	if err == nil {
		var b []byte
		b, err = os.ReadFile("/proc/self/setgroups")
		info.Setgroups = strings.TrimSpace(string(b))
	}
	if err == nil && len(os.Args) > 1 {
		err = unix.Sethostname([]byte(os.Args[1]))
		info.Hostname, _ = os.Hostname()
	}
	if err == nil {
		var ifs []net.Interface
		ifs, err = net.Interfaces()
		for _, i := range ifs {
			info.Ifaces = append(info.Ifaces, i.Name)
		}
	}
	return printJSON(info, err)
}

type echoInfo struct {
	Args   []string
	Foo    string
	Dir    string
	Leaked []string // our marker variables, which the entry point must not see
}

func childEcho() int {
	info := echoInfo{Args: os.Args[1:], Foo: os.Getenv("NOOK_TEST_FOO")}
	info.Dir, _ = os.Getwd()
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "_NOOK_") {
			info.Leaked = append(info.Leaked, kv)
		}
	}
	if code := printJSON(info, nil); code != 0 {
		return code
	}
	code, _ := strconv.Atoi(os.Getenv("NOOK_TEST_EXIT"))
	return code
}

// childChown creates DIR/file and chowns it to UID:GID (the arguments).
func childChown() int {
	uid, _ := strconv.Atoi(os.Args[2])
	gid, _ := strconv.Atoi(os.Args[3])
	path := filepath.Join(os.Args[1], "file")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return printJSON(nil, err)
	}
	var res struct{ Err string }
	if err := os.Lchown(path, uid, gid); err != nil {
		res.Err = err.Error()
	}
	return printJSON(res, nil)
}

// childOrphan starts test.sleep, waits until its entry point runs (so the
// bootstrap, including the PR_SET_PDEATHSIG re-arm, is over), prints its pid
// and exits without waiting for it: the sleeper must die with it.
func childOrphan() int {
	r, w, err := os.Pipe()
	if err != nil {
		return printJSON(nil, err)
	}
	c := Command("test.sleep")
	c.Stdout = w
	if err := c.Start(); err != nil {
		return printJSON(nil, err)
	}
	w.Close()
	if line, err := bufio.NewReader(r).ReadString('\n'); line != "running\n" {
		return printJSON(nil, fmt.Errorf("test.sleep said %q, %v", line, err))
	}
	return printJSON(c.Process.Pid, nil)
}

func printJSON(v any, err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func namespaces() map[string]string {
	ns := map[string]string{}
	for _, n := range []string{"user", "mnt", "pid", "uts", "ipc", "net"} {
		ns[n], _ = os.Readlink("/proc/self/ns/" + n)
	}
	return ns
}

var (
	usernsOnce sync.Once
	usernsErr  error
)

// requireUserns returns the host mapping, or skips the test with the
// reason if this machine cannot enter a user namespace. With
// NOOK_REQUIRE_USERNS=1 the test fails instead of skipping.
func requireUserns(t testing.TB) Mapping {
	t.Helper()
	m, err := HostMapping()
	if err != nil {
		t.Fatalf("HostMapping() error: %v", err)
	}
	usernsOnce.Do(func() { usernsErr = Command("test.true").Run() })
	if usernsErr != nil {
		testenv.Unavailable(t, "cannot enter a user namespace: %v (hint: %s)", usernsErr, hintOf(usernsErr))
	}
	return m
}

func hintOf(err error) string {
	if e := (*Error)(nil); errors.As(err, &e) {
		return e.Hint()
	}
	return ""
}

// runJSON runs c, fails the test if it does not exit 0, and decodes its
// stdout into v.
func runJSON(t *testing.T, c *Cmd, v any) {
	t.Helper()
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("run %q %q: %v (hint: %q); stderr: %s", c.Name, c.Args, err, hintOf(err), stderr.String())
	}
	if err := json.Unmarshal([]byte(stdout.String()), v); err != nil {
		t.Fatalf("run %q: decode %q: %v", c.Name, stdout.String(), err)
	}
}

func jsonUnmarshal(s string, v any) error {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("decode %q: %w", s, err)
	}
	return nil
}
