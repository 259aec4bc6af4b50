package rootless

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nook-dev/nook/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestChildIsRootWithHostMapping(t *testing.T) {
	m := requireUserns(t)
	var info idInfo
	runJSON(t, Command("test.id"), &info)
	if info.UID != 0 || info.GID != 0 {
		t.Errorf("inside: uid %d gid %d, want 0 0", info.UID, info.GID)
	}
	if info.Caps == 0 {
		t.Errorf("inside: no effective capabilities")
	}
	if diff := cmp.Diff(m.UIDs, info.UIDMap); diff != "" {
		t.Errorf("uid_map inside differs from HostMapping() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(m.GIDs, info.GIDMap); diff != "" {
		t.Errorf("gid_map inside differs from HostMapping() (-want +got):\n%s", diff)
	}
	if want := map[MapKind]string{MapIdentity: "allow", MapSubIDs: "allow", MapSingle: "deny"}[m.Kind]; info.Setgroups != want {
		t.Errorf("setgroups = %q with %v mapping, want %q", info.Setgroups, m.Kind, want)
	}
	t.Logf("mapping %v", m)
}

func TestChownToContainerUserLandsOnSubordinateID(t *testing.T) {
	m := requireUserns(t)
	if m.Kind == MapSingle {
		testenv.Unavailable(t, "no subordinate id range for uid %d: container uid 1 does not exist (%s)", os.Getuid(), m.Warning())
	}
	dir := t.TempDir()
	var res struct{ Err string }
	runJSON(t, Command("test.chown", dir, "1", "1"), &res)
	if res.Err != "" {
		t.Fatalf("chown to 1:1 inside: %s", res.Err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir+"/file", &st); err != nil {
		t.Fatal(err)
	}
	wantUID, _ := m.HostUID(1)
	wantGID, _ := m.HostGID(1)
	if st.Uid != wantUID || st.Gid != wantGID {
		t.Errorf("file chowned to 1:1 inside is %d:%d on the host, want %d:%d (%v)", st.Uid, st.Gid, wantUID, wantGID, m)
	}
}

func TestSingleMappingWithoutSubIDs(t *testing.T) {
	requireUserns(t)
	m := userMapping("", uint32(os.Getuid()), uint32(os.Getgid()), nil, nil)
	var info idInfo
	c := Command("test.id")
	c.Mapping = &m
	runJSON(t, c, &info)
	if info.UID != 0 || info.Caps == 0 {
		t.Errorf("inside: uid %d caps %#x, want uid 0 with capabilities", info.UID, info.Caps)
	}
	if diff := cmp.Diff(m.UIDs, info.UIDMap); diff != "" {
		t.Errorf("uid_map (-want +got):\n%s", diff)
	}
	if info.Setgroups != "deny" {
		t.Errorf("setgroups = %q, want deny", info.Setgroups)
	}
	// What the Warning promises will not work.
	var res struct{ Err string }
	c = Command("test.chown", t.TempDir(), "1", "1")
	c.Mapping = &m
	runJSON(t, c, &res)
	if !strings.Contains(res.Err, "invalid argument") {
		t.Errorf("chown to unmapped uid 1 inside: err %q, want EINVAL", res.Err)
	}
}

func TestArgsEnvAndExitCodePassThrough(t *testing.T) {
	requireUserns(t)
	args := []string{"plain", "with space", "", "-test.run=X", "--", "ünï\tcode", "new\nline", "$HOME"}
	dir := t.TempDir()
	c := Command("test.echo", args...)
	c.Env = append(os.Environ(), "NOOK_TEST_FOO=bar baz", "NOOK_TEST_EXIT=7")
	c.Dir = dir
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 7 || c.ProcessState.ExitCode() != 7 {
		t.Fatalf("Run() = %v, want exit status 7; stderr: %s", err, stderr.String())
	}
	var info echoInfo
	if err := jsonUnmarshal(stdout.String(), &info); err != nil {
		t.Fatal(err)
	}
	want := echoInfo{Args: args, Foo: "bar baz", Dir: dir}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("child saw (-want +got):\n%s", diff)
	}
}

func TestExtraNamespaces(t *testing.T) {
	requireUserns(t)
	host := namespaces()
	hostname, _ := os.Hostname()
	tests := []struct {
		name     string
		ns       Namespaces
		newNS    []string // namespaces that must differ from the test's
		sameNS   []string
		wantPID1 bool
	}{
		{"default", 0, []string{"user", "mnt"}, []string{"pid", "uts", "ipc", "net"}, false},
		{"all", PIDNS | UTSNS | IPCNS | NetNS, []string{"user", "mnt", "pid", "uts", "ipc", "net"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Command("test.id")
			c.Namespaces = tt.ns
			if tt.ns&UTSNS != 0 {
				c.Args = []string{"nook-test-host"}
			}
			var info idInfo
			runJSON(t, c, &info)
			for _, n := range tt.newNS {
				if info.NS[n] == host[n] {
					t.Errorf("%s namespace %s is the test's, want a new one", n, info.NS[n])
				}
			}
			for _, n := range tt.sameNS {
				if info.NS[n] != host[n] {
					t.Errorf("%s namespace %s, want the test's %s", n, info.NS[n], host[n])
				}
			}
			if (info.PID == 1) != tt.wantPID1 {
				t.Errorf("pid inside = %d, want pid 1: %v", info.PID, tt.wantPID1)
			}
			if tt.ns&UTSNS != 0 && info.Hostname != "nook-test-host" {
				t.Errorf("hostname inside = %q after sethostname", info.Hostname)
			}
			if tt.ns&NetNS != 0 && !cmp.Equal(info.Ifaces, []string{"lo"}) {
				t.Errorf("interfaces in new netns = %q, want [lo]", info.Ifaces)
			}
		})
	}
	if h, _ := os.Hostname(); h != hostname {
		t.Errorf("host name changed from %q to %q", hostname, h)
	}
	if err := Command("test.true").Run(); err != nil {
		t.Fatal(err)
	}
	c := Command("test.true")
	c.Namespaces = 1 // CSIGNAL bits: not a namespace
	if err := c.Start(); err == nil {
		t.Errorf("Start with Namespaces=1 succeeded, want an error")
	}
}

func TestChildDiesWithParent(t *testing.T) {
	requireUserns(t)
	tests := []struct {
		name  string
		start func(t *testing.T) (pid int)
	}{
		// With a subids mapping this child went through newuidmap and the
		// re-exec, which clears PR_SET_PDEATHSIG: it must have been re-armed.
		{"parent on the host", func(t *testing.T) int {
			cmd := exec.Command("/proc/self/exe")
			cmd.Env = append(os.Environ(), "NOOK_TEST_ORPHANER=1")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("orphaner: %v", err)
			}
			var pid int
			if err := jsonUnmarshal(string(out), &pid); err != nil {
				t.Fatal(err)
			}
			return pid
		}},
		// The parent is itself a child: nested namespace, identity mapping.
		{"parent in the namespace", func(t *testing.T) int {
			var pid int
			runJSON(t, Command("test.orphan"), &pid)
			return pid
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid := tt.start(t) // its parent has exited
			fd, err := unix.PidfdOpen(pid, 0)
			if errors.Is(err, syscall.ESRCH) {
				return // already gone
			}
			if err != nil {
				t.Fatalf("pidfd_open(%d): %v", pid, err)
			}
			defer unix.Close(fd)
			// A pidfd becomes readable when the process exits.
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, int((10 * time.Second).Milliseconds()))
			if err != nil || n != 1 {
				unix.Kill(pid, unix.SIGKILL)
				t.Fatalf("child %d still runs 10s after its parent exited (poll = %d, %v): PR_SET_PDEATHSIG not armed", pid, n, err)
			}
		})
	}
}

func TestMissingNewuidmapHasHint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	m := userMapping("", 1000, 1000, []IDRange{{100000, 65536}}, []IDRange{{100000, 65536}})
	c := Command("test.true")
	c.Mapping = &m
	err := c.Run()
	if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(hintOf(err), "apt-get install uidmap") {
		t.Errorf("Run() without newuidmap = %v, hint %q; want ErrNotFound with the apt-get hint", err, hintOf(err))
	}
}

func TestNewuidmapRefusalShowsItsStderr(t *testing.T) {
	m := requireUserns(t)
	if m.Kind != MapSubIDs {
		t.Skipf("needs a %v mapping to ask newuidmap for more; this user has %v", MapSubIDs, m.Kind)
	}
	bad := m
	bad.UIDs = append(append([]IDMap(nil), m.UIDs...), IDMap{ContainerID: 1 << 30, HostID: 1 << 30, Size: 10})
	c := Command("test.true")
	c.Mapping = &bad
	err := c.Run()
	var e *Error
	if !errors.As(err, &e) || !strings.HasPrefix(e.Op, "run newuidmap ") || !strings.Contains(err.Error(), "newuidmap: ") {
		t.Fatalf("Run() with an ungranted range = %v, want an *Error quoting newuidmap's stderr", err)
	}
	if e.Hint() == "" {
		t.Errorf("no hint for %v", err)
	}
	t.Logf("error: %v\nhint: %s", err, e.Hint())
}

func TestUnknownEntryPoint(t *testing.T) {
	if err := Command("no.such.entry").Run(); err == nil || !strings.Contains(err.Error(), `"no.such.entry"`) {
		t.Errorf("Run() of an unregistered entry = %v, want an error naming it", err)
	}
}

// BenchmarkEnterUserns times one Command("test.true").Run(): clone, the
// maps, the child's Go runtime start (twice with newuidmap) and exit.
func BenchmarkEnterUserns(b *testing.B) {
	host := requireUserns(b)
	mappings := []Mapping{host}
	if host.Kind != MapSingle {
		mappings = append(mappings, userMapping("", uint32(os.Getuid()), uint32(os.Getgid()), nil, nil))
	}
	for _, m := range mappings {
		b.Run(m.Kind.String(), func(b *testing.B) {
			for b.Loop() {
				c := Command("test.true")
				c.Mapping = &m
				if err := c.Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
