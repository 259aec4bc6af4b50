package netns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nook-dev/nook/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/nook-dev/nook/rootless"
)

// driver drives driverMain in nook's user namespace.
type driver struct {
	t   testing.TB
	cmd *rootless.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

var (
	usernsOnce sync.Once
	usernsErr  error
)

// startSupervisor starts the driver and creates a network with outbound
// ("auto", "pasta", "slirp4netns", "none") and hostLoopback.
func startSupervisor(t testing.TB, outbound string, hostLoopback bool) (*driver, []string) {
	t.Helper()
	usernsOnce.Do(func() {
		c := rootless.Command(entryDriver)
		c.Stdin = strings.NewReader("")
		usernsErr = c.Run()
	})
	if usernsErr != nil {
		testenv.Unavailable(t, "cannot enter a user namespace: %v", usernsErr)
	}
	if outbound != "none" {
		if _, err := rootless.LookSbin(exec.LookPath, "nft"); err != nil {
			testenv.Unavailable(t, "outbound needs nft(8): %v", err)
		}
		if outbound != "auto" {
			if _, err := exec.LookPath(outbound); err != nil {
				testenv.Unavailable(t, "%s is not installed: %v", outbound, err)
			}
		}
		if f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0); err != nil {
			testenv.Unavailable(t, "pasta and slirp4netns need /dev/net/tun (chmod 0666 /dev/net/tun as root): %v", err)
		} else {
			f.Close()
		}
	}
	c := rootless.Command(entryDriver)
	in, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r, out, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stdin, c.Stdout, c.Stderr = in, out, os.Stderr
	err = c.Start()
	in.Close()
	out.Close()
	if err != nil {
		t.Fatalf("start driver: %v", err)
	}
	s := &driver{t: t, cmd: c, in: w, out: bufio.NewReader(r)}
	t.Cleanup(func() {
		w.Close()
		r.Close()
		c.Process.Kill()
		c.Wait()
	})
	hl := "0"
	if hostLoopback {
		hl = "1"
	}
	return s, s.must("create", outbound, hl)
}

// do sends a command and returns the reply without "ok "/"err ".
func (s *driver) do(args ...string) (string, error) {
	s.t.Helper()
	if _, err := fmt.Fprintln(s.in, strings.Join(args, " ")); err != nil {
		s.t.Fatalf("%v: %v", args, err)
	}
	line, err := s.out.ReadString('\n')
	if err != nil {
		s.t.Fatalf("%v: driver died: %v", args, err)
	}
	line = strings.TrimSpace(line)
	if rest, ok := strings.CutPrefix(line, "err "); ok {
		return "", errors.New(rest)
	}
	return strings.TrimPrefix(strings.TrimPrefix(line, "ok"), " "), nil
}

func (s *driver) must(args ...string) []string {
	s.t.Helper()
	out, err := s.do(args...)
	if err != nil {
		s.t.Fatalf("%v: %v", args, err)
	}
	return strings.Fields(out)
}

func TestTwoServicesOnOnePort(t *testing.T) {
	s, _ := startSupervisor(t, "none", false)
	webIP := s.must("run", "web")[0]
	dbIP := s.must("run", "db")[0]
	if webIP == dbIP {
		t.Fatalf("web and db both got %s", webIP)
	}
	for _, c := range []struct{ from, to, want string }{
		{"web", dbIP, "db"}, {"db", webIP, "web"}, {"web", webIP, "web"},
	} {
		if got := s.must("dial", c.from, "tcp", c.to+":80"); len(got) != 1 || got[0] != c.want {
			t.Errorf("%s dials %s:80 = %q, want %q", c.from, c.to, got, c.want)
		}
	}
	if got := s.must("dial", "web", "udp", dbIP+":80"); got[0] != "db" {
		t.Errorf("web sends UDP to %s:80: got %q, want db", dbIP, got)
	}
	if got := strings.Join(s.must("hosts"), " "); !strings.Contains(got, "web:"+webIP) || !strings.Contains(got, "db:"+dbIP) {
		t.Errorf("Hosts() = %s, want web:%s and db:%s", got, webIP, dbIP)
	}
	// A replica that goes away frees its address for the next one.
	s.must("stop", "db")
	if got := s.must("run", "db-2")[0]; got != dbIP {
		t.Errorf("after db stopped, db-2 got %s, want its address %s", got, dbIP)
	}
}

func TestPublishedPortAnswersOnLoopback(t *testing.T) {
	s, _ := startSupervisor(t, "none", false)
	s.must("run", "web")
	tcpPort, udpPort, unpublished := testenv.FreePort(t, "tcp"), testenv.FreePort(t, "udp"), testenv.FreePort(t, "tcp")
	s.must("publish", "tcp", strconv.Itoa(tcpPort), "web", "80")
	s.must("publish", "udp", strconv.Itoa(udpPort), "web", "80")

	if got, err := dialOnce("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort))); err != nil || got != "web" {
		t.Errorf("TCP 127.0.0.1:%d = %q, %v; want web", tcpPort, got, err)
	}
	if got, err := dialOnce("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(udpPort))); err != nil || got != "web" {
		t.Errorf("UDP 127.0.0.1:%d = %q, %v; want web", udpPort, got, err)
	}
	if got, err := dialOnce("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(unpublished))); err == nil {
		t.Errorf("unpublished 127.0.0.1:%d answered %q", unpublished, got)
	}

	s.must("close")
	for _, p := range []struct {
		proto string
		port  int
	}{{"tcp", tcpPort}, {"udp", udpPort}} {
		if err := listen(p.proto, p.port); err != nil {
			t.Errorf("after Close, %s port %d: %v", p.proto, p.port, err)
		}
	}
}

func listen(proto string, port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if proto == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err == nil {
		l.Close()
	}
	return err
}

func TestPublishPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	s, _ := startSupervisor(t, "none", false)
	// Before the container runs: nook up refuses before starting anything.
	_, err = s.do("publish", "tcp", port, "web", "80")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+port+"/tcp: port already in use") {
		t.Errorf("publish taken port %s: %v, want an error naming it", port, err)
	}
}

func TestPublishPrivilegedPort(t *testing.T) {
	start := unprivilegedPortStart()
	if start <= 1 {
		t.Skipf("net.ipv4.ip_unprivileged_port_start is %d: every port is unprivileged", start)
	}
	s, _ := startSupervisor(t, "none", false)
	port := strconv.Itoa(start - 1)
	// Even host root cannot bind it from inside a user namespace: the
	// check is CAP_NET_BIND_SERVICE in the host netns's user namespace.
	_, err := s.do("publish", "tcp", port, "web", "80")
	want := "sysctl -w net.ipv4.ip_unprivileged_port_start=" + port
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("publish port %s: %v, want a hint with %q", port, err, want)
	}
}

func TestOutboundToHostLoopback(t *testing.T) {
	for _, outbound := range []string{"pasta", "slirp4netns"} {
		t.Run(outbound, func(t *testing.T) {
			srv, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			go func() {
				for {
					c, err := srv.Accept()
					if err != nil {
						return
					}
					// Read the client's line before answering: closing a
					// socket with unread data sends a reset, which can
					// reach the client before the answer does.
					bufio.NewReader(c).ReadString('\n')
					fmt.Fprintln(c, "host")
					c.Close()
				}
			}()
			s, info := startSupervisor(t, outbound, true)
			if len(info) != 4 || info[3] != outbound {
				t.Fatalf("create = %q, want 4 fields ending in %s", info, outbound)
			}
			s.must("run", "web")
			target := net.JoinHostPort(info[2], strconv.Itoa(srv.Addr().(*net.TCPAddr).Port))
			if got := s.must("dial", "web", "tcp", target); len(got) != 1 || got[0] != "host" {
				t.Errorf("web dials the host's loopback at %s: %q, want host", target, got)
			}
		})
	}
}

func TestHolderKilledReleasesPorts(t *testing.T) {
	s, _ := startSupervisor(t, "auto", false)
	s.must("run", "web")
	port := testenv.FreePort(t, "tcp")
	s.must("publish", "tcp", strconv.Itoa(port), "web", "80")
	s.must("killholder")
	if err := listen("tcp", port); err != nil {
		t.Errorf("after the holder died, port %d: %v", port, err)
	}
}

func TestSupervisorKilledReleasesEverything(t *testing.T) {
	s, info := startSupervisor(t, "auto", false)
	s.must("run", "web")
	port := testenv.FreePort(t, "tcp")
	s.must("publish", "tcp", strconv.Itoa(port), "web", "80")
	var fds []int
	for _, p := range info[:2] {
		pid, _ := strconv.Atoi(p)
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			t.Fatalf("pidfd_open(%d): %v", pid, err)
		}
		defer unix.Close(fd)
		fds = append(fds, fd)
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	for i, fd := range fds {
		// A pidfd turns readable when its process exits.
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, int((10 * time.Second).Milliseconds())); n != 1 {
			t.Errorf("process %s (holder, uplink) still runs 10s after the supervisor's SIGKILL: %v", info[i], err)
		}
	}
	if err := listen("tcp", port); err != nil {
		t.Errorf("after the supervisor's SIGKILL, port %d: %v", port, err)
	}
}

// Without pasta or slirp4netns, creating a network says which to install.
func TestNoUplinkHelperHint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := pickOutbound(OutboundAuto)
	var h interface{ Hint() string }
	if err == nil || !errors.As(err, &h) || !strings.Contains(h.Hint(), "apt-get install passt") {
		t.Errorf("pickOutbound with neither helper on PATH = %v, want an error with a hint to install passt", err)
	}
}
