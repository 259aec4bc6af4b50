package netns

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nook-dev/nook/rootless"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	rootless.Init() // in a child: runs the entry point and exits
	os.Exit(m.Run())
}

const (
	entryDriver = "netns.test.driver" // a supervisor in nook's user namespace
	entryAgent  = "netns.test.agent"  // a "container" in its own network namespace
)

func init() {
	rootless.Register(entryDriver, driverMain)
	rootless.Register(entryAgent, agentMain)
}

// driverMain plays the supervisor: it reads commands on stdin and answers
// each with one line, "ok ..." or "err ...".
func driverMain() int {
	var n *Network
	agents := map[string]*agent{}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		reply := func(err error, format string, args ...any) {
			if err != nil {
				msg := err.Error()
				if h, ok := err.(interface{ Hint() string }); ok && h.Hint() != "" {
					msg += " | hint: " + h.Hint()
				}
				fmt.Printf("err %s\n", strings.ReplaceAll(msg, "\n", " "))
				return
			}
			fmt.Printf("ok "+format+"\n", args...)
		}
		switch f[0] {
		case "create": // create OUTBOUND HOSTLOOPBACK
			var err error
			n, err = Create(Options{Outbound: Outbound(strings.TrimPrefix(f[1], "auto")), HostLoopback: f[2] == "1"})
			if err != nil {
				reply(err, "")
				continue
			}
			hl, _ := n.HostLoopback()
			reply(nil, "%d %d %s %s", n.HolderPid(), n.UplinkPid(), hl, n.Outbound())
		case "run": // run NAME
			a, err := startAgent(f[1])
			var ip netip.Addr
			if err == nil {
				agents[f[1]] = a
				ip, err = n.Attach(a.cmd.Process.Pid, f[1])
			}
			reply(err, "%s", ip)
		case "stop": // stop NAME
			a := agents[f[1]]
			a.cmd.Process.Kill()
			a.cmd.Wait()
			reply(n.Detach(f[1]), "")
		case "dial": // dial NAME PROTO ADDR
			reply(nil, "%s", agents[f[1]].call("dial "+f[2]+" "+f[3]))
		case "publish": // publish PROTO HOSTPORT NAME PORT
			hp, _ := strconv.Atoi(f[2])
			cp, _ := strconv.Atoi(f[4])
			_, err := n.Publish(PortSpec{Proto: f[1], HostPort: hp, Container: f[3], ContainerPort: cp})
			reply(err, "")
		case "hosts":
			reply(nil, "%v", n.Hosts())
		case "killholder":
			syscall.Kill(n.HolderPid(), syscall.SIGKILL)
			<-n.Done()
			reply(nil, "")
		case "close":
			reply(n.Close(), "")
		default:
			reply(fmt.Errorf("unknown command %q", f[0]), "")
		}
	}
	return 0
}

// agent is a running agentMain.
type agent struct {
	cmd *exec.Cmd
	in  io.Writer
	out *bufio.Reader
}

// startAgent starts agentMain in a new network namespace, as StartInit
// starts a container's init, and waits until it listens.
func startAgent(name string) (*agent, error) {
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{"agent", name},
		Env:         []string{rootless.SelfEnv(entryAgent)},
		Stderr:      os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL},
	}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	runtime.LockOSThread() // the driver's main thread lives as long as the agent
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &agent{cmd: cmd, in: in, out: bufio.NewReader(out)}
	if line := a.line(); line != "ready" {
		return nil, fmt.Errorf("agent %s: %q", name, line)
	}
	return a, nil
}

func (a *agent) line() string {
	s, _ := a.out.ReadString('\n')
	return strings.TrimSpace(s)
}

func (a *agent) call(cmd string) string {
	fmt.Fprintln(a.in, cmd)
	return a.line()
}

// agentMain serves its name on TCP and UDP port 80 and HTTP port 8000, then
// runs "dial PROTO ADDR" commands from stdin, answering with what came
// back or the error.
func agentMain() int {
	name := os.Args[1]
	tl, err := net.Listen("tcp", ":80")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	ul, err := net.ListenPacket("udp", ":80")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	hl, err := net.Listen("tcp", ":8000")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, name)
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			ul.WriteTo([]byte(name+"\n"), from)
		}
	}()
	go http.Serve(hl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		got, err := dialOnce(f[1], f[2])
		if err != nil {
			fmt.Printf("error: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		fmt.Println(got)
	}
	return 0
}

// dialOnce sends "hi" and returns the first line that comes back.
func dialOnce(proto, addr string) (string, error) {
	c, err := net.DialTimeout(proto, addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "hi\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}
