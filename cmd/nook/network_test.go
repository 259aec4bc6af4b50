package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nook-dev/nook/internal/testenv"
)

// These tests drive the private networks: a project's (service names,
// replicas, published ports, the host's loopback, cleanup) and a
// standalone container's (-p, UDP). Every address they use is on the
// host's loopback or inside namespaces nook made.

// serveName is a busybox command serving the container's hostname over
// HTTP on each port.
func serveName(ports ...int) string {
	cmd := "mkdir -p /www && hostname > /www/index.html"
	for _, p := range ports {
		cmd += fmt.Sprintf(" && httpd -p %d -h /www", p)
	}
	return fmt.Sprintf(`["sh", "-c", %q]`, cmd+" && exec sleep 100000")
}

// fetchIn GETs url from inside a container of the project (with
// netTool, mounted at /nettool) and returns the body, or "" and why not.
func (p *projectUnderTest) fetchIn(from, url string) (string, string) {
	p.t.Helper()
	out, errOut, code := p.run("exec", from, "/nettool", "get", url)
	if code != 0 {
		return "", fmt.Sprintf("exit %d: %s", code, strings.TrimSpace(errOut))
	}
	return strings.TrimSpace(out), ""
}

func TestProjectNetwork(t *testing.T) {
	hp := testenv.FreePort(t, "tcp")
	// a and b both listen on 80; a also on private, a port free on the
	// host that nothing publishes; web's three replicas all listen on
	// 8000.
	private := testenv.FreePort(t, "tcp")
	tool := netToolMount(t)
	p := busyboxServices(t, "net", fmt.Sprintf(`
[containers.a]
image = "t/busybox"
command = %s
ports = ["%d:80"]
volumes = [%q]

[containers.b]
image = "t/busybox"
command = %s
volumes = [%q]

[containers.web]
image = "t/busybox"
command = %s
replicas = 3
volumes = [%q]
`, serveName(80, private), hp, tool, serveName(80), tool, serveName(8000), tool))
	p.must("up", "-d")

	// From the host: the published port answers, with a's page; a's
	// unpublished port is not on the host's loopback (it would be on the
	// host's network).
	eventually(t, fmt.Sprintf("a to answer on published 127.0.0.1:%d", hp), func() (bool, string) {
		body := strings.TrimSpace(get(fmt.Sprintf("http://127.0.0.1:%d/", hp)))
		return body == "a", fmt.Sprintf("%q", body)
	})
	if got, why := p.fetchIn("b", fmt.Sprintf("http://a:%d/", private)); got != "a" {
		t.Fatalf("in b: a's unpublished port %d = %q %s, want a (it must listen for this test to mean anything)", private, got, why)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", private), time.Second); err == nil {
		c.Close()
		t.Errorf("the host reached a's unpublished port %d on its loopback; want it private to the project", private)
	}
	if out := p.must("port", "a"); out != fmt.Sprintf("80/tcp -> 127.0.0.1:%d\n", hp) {
		t.Errorf("nook port a = %q, want only 80/tcp -> 127.0.0.1:%d", out, hp)
	}
	if row := rowOf(p.must("ps"), p.name+"-a-1"); !strings.Contains(row, fmt.Sprintf("127.0.0.1:%d->80/tcp", hp)) {
		t.Errorf("nook ps row of a = %q, want PORTS 127.0.0.1:%d->80/tcp", row, hp)
	}

	// Inside: service names, the same port on two services, each replica
	// by its own name, and names with the project as a suffix.
	for _, c := range []struct{ from, url, want string }{
		{"b", "http://a/", "a"},
		{"a", "http://b/", "b"},
		{"a", "http://web:8000/", "web"},
		{"a", "http://web-2:8000/", "web-2"},
		{"a", "http://web-3:8000/", "web-3"},
		{"web-2", "http://web-3." + p.name + ":8000/", "web-3"},
		{"web-3", "http://b." + p.name + "/", "b"},
	} {
		got, why := p.fetchIn(c.from, c.url)
		if got != c.want {
			t.Errorf("in %s: GET %s = %q %s, want %q", c.from, c.url, got, why, c.want)
		}
	}
}

// TestProjectNetworkReachesHostLoopback: with host_loopback, containers
// reach a server on the host's 127.0.0.1 through the network helper, at
// host.nook.internal; without it, they do not.
func TestProjectNetworkReachesHostLoopback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "from the host\n") })}
	go srv.Serve(l)
	defer srv.Close()
	url := fmt.Sprintf("http://%s:%d/", "host.nook.internal", l.Addr().(*net.TCPAddr).Port)

	config := func(network string) string {
		return fmt.Sprintf(`%s
[containers.c]
image = "t/busybox"
command = ["sleep", "100000"]
volumes = [%q]
`, network, netToolMount(t))
	}
	p := busyboxServices(t, "hostlo", config("[network]\nhost_loopback = true\n"))
	p.must("up", "-d")
	if got, why := p.fetchIn("c", url); got != "from the host" {
		t.Errorf("GET %s with host_loopback = %q %s, want the host's server to answer", url, got, why)
	}

	// Off (the default), the name does not exist and the gateway maps
	// nothing to the host's loopback.
	p.writeConfig(config(""))
	p.must("up", "-d")
	if got, _ := p.fetchIn("c", url); got != "" {
		t.Errorf("GET %s without host_loopback = %q, want no answer", url, got)
	}
}

// supervisorOf returns the pid of the project's network supervisor and of
// its helpers (the namespace holder, pasta or slirp4netns; not the
// container monitors it started); 0 if none.
func (p *projectUnderTest) supervisorOf() (int, []int) {
	dir := filepath.Join(p.root, "projects", p.name+".net")
	entries, _ := os.ReadDir("/proc")
	sup := 0
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if strings.Contains(cmdline(e.Name()), `"Dir":"`+dir+`"`) {
			sup = pid
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
			cmd := cmdline(e.Name())
			isHelper := strings.HasPrefix(cmd, "nook-netns") || strings.HasPrefix(cmd, "pasta") || strings.Contains(cmd, "passt") || strings.Contains(cmd, "slirp4netns")
			if ppid, err := strconv.Atoi(f[1]); err == nil && isHelper {
				children[ppid] = append(children[ppid], pid)
			}
		}
	}
	if sup == 0 {
		return 0, nil
	}
	return sup, children[sup]
}

func TestProjectNetworkCleanup(t *testing.T) {
	hp := testenv.FreePort(t, "tcp")
	p := busyboxServices(t, "netclean", fmt.Sprintf(`
[containers.a]
image = "t/busybox"
command = %s
ports = ["%d:80"]

[containers.b]
image = "t/busybox"
command = ["sleep", "100000"]
volumes = [%q]
`, serveName(80), hp, netToolMount(t)))
	url := fmt.Sprintf("http://127.0.0.1:%d/", hp)
	answers := func() {
		t.Helper()
		eventually(t, "a to answer on "+url, func() (bool, string) {
			body := strings.TrimSpace(get(url))
			return body == "a", fmt.Sprintf("%q", body)
		})
		if got, why := p.fetchIn("b", "http://a/"); got != "a" {
			t.Errorf("in b: GET http://a/ = %q %s, want a", got, why)
		}
	}
	released := func(after string, procs []int) {
		t.Helper()
		eventually(t, "port "+strconv.Itoa(hp)+" to be released "+after, func() (bool, string) {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", hp))
			if err != nil {
				return false, err.Error()
			}
			l.Close()
			return true, ""
		})
		eventually(t, "the network's processes to be gone "+after, func() (bool, string) {
			for _, pid := range procs {
				if syscall.Kill(pid, 0) == nil && !strings.HasPrefix(procState(pid), "Z") {
					return false, fmt.Sprintf("pid %d (%s) still runs", pid, cmdline(strconv.Itoa(pid)))
				}
			}
			return true, ""
		})
	}

	p.must("up", "-d")
	answers()

	// Removing a container releases its ports.
	p.must("rm", "-f", "a")
	released("after rm -f a", nil)
	p.must("up", "-d")
	answers()

	sup, children := p.supervisorOf()
	if sup == 0 || len(children) == 0 {
		t.Fatalf("found no network supervisor (pid %d) with children %v for the project", sup, children)
	}

	// A SIGKILL of the supervisor releases the port and its helpers; the
	// next up makes a new network and moves the containers onto it.
	syscall.Kill(sup, syscall.SIGKILL)
	released("after the supervisor's SIGKILL", append(children, sup))
	if row := rowOf(p.must("ps"), p.name+"-a-1"); strings.Contains(row, "->80/tcp") {
		t.Errorf("nook ps row of a with its network gone = %q, want no ports", row)
	}
	// A container cannot start without its network, and says how to
	// get it back.
	if _, errOut, code := p.run("restart", "b"); code == 0 || !strings.Contains(errOut, "hint: run nook up") {
		t.Errorf("nook restart b with its network gone = exit %d\n%s\nwant an error with the hint to run nook up", code, errOut)
	}
	p.must("up", "-d")
	answers()

	// down releases everything.
	sup, children = p.supervisorOf()
	p.must("down")
	released("after down", append(children, sup))
	if _, err := os.Stat(filepath.Join(p.root, "projects", p.name+".net", "net.sock")); err == nil {
		t.Errorf("the supervisor's socket is still there after down")
	}
}

// procState is the state letter of pid ("R", "S", "Z", ...); "" if gone.
func procState(pid int) string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return f[0]
}

func TestPortErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().(*net.TCPAddr).Port

	p := busyboxServices(t, "porterr", fmt.Sprintf(`
[containers.first]
image = "t/busybox"
command = ["sleep", "100000"]

[containers.second]
image = "t/busybox"
command = ["sleep", "100000"]
ports = ["%d:80"]
`, busy))
	_, errOut, code := p.run("up", "-d")
	if code == 0 || !strings.Contains(errOut, fmt.Sprintf("127.0.0.1:%d/tcp: port already in use", busy)) || !strings.Contains(errOut, "hint:") {
		t.Errorf("nook up with port %d taken = exit %d\n%s\nwant an error naming the port, with a hint", busy, code, errOut)
	}
	if got := p.services(); len(got) != 0 {
		t.Errorf("after the port error, containers %v exist; want none started (the ports are checked first)", got)
	}

	c := newCtr(t)
	_, errOut, code = c.run("run", "--rm", "-p", fmt.Sprintf("%d:80", busy), "t/busybox", "true")
	if code != 125 || !strings.Contains(errOut, fmt.Sprintf("127.0.0.1:%d/tcp: port already in use", busy)) {
		t.Errorf("nook run -p %d:80 with the port taken = exit %d\n%s\nwant 125 and an error naming the port", busy, code, errOut)
	}

	start, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if n, _ := strconv.Atoi(strings.TrimSpace(string(start))); err != nil || n <= 80 || os.Geteuid() == 0 {
		t.Logf("skip the privileged-port case: euid %d, ip_unprivileged_port_start %q", os.Geteuid(), start)
		return
	}
	_, errOut, code = c.run("run", "--rm", "-p", "80:80", "t/busybox", "true")
	if code == 0 || !strings.Contains(errOut, "ip_unprivileged_port_start") || !strings.Contains(errOut, "hint: sudo sysctl -w net.ipv4.ip_unprivileged_port_start=80") {
		t.Errorf("nook run -p 80:80 unprivileged = exit %d\n%s\nwant an error naming the sysctl, with the command that allows it", code, errOut)
	}
}

// netTool builds a static program for inside containers: "udpecho PORT"
// answers each datagram with "echo: " and the datagram; "get URL" prints
// the body. Busybox's static wget and nc cannot look names up (glibc's
// NSS needs shared libraries the image does not have); Go's resolver
// reads /etc/hosts itself.
var netTool = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(filepath.Dir(nookBin), "nettool")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(dir, "main.go")
	err := os.WriteFile(src, []byte(`package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	switch os.Args[1] {
	case "udpecho":
		c, err := net.ListenPacket("udp", ":"+os.Args[2])
		if err != nil {
			panic(err)
		}
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				panic(err)
			}
			c.WriteTo(append([]byte("echo: "), buf[:n]...), from)
		}
	case "get":
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		io.Copy(os.Stdout, resp.Body)
	}
}
`), 0o644)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nettool")
	cmd := exec.Command("go", "build", "-o", bin, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build nettool: %v\n%s", err, out)
	}
	// Readable by the unprivileged suite's container root too.
	return bin, os.Chmod(filepath.Dir(nookBin), 0o755)
})

// netToolMount is the -v or volumes entry that puts netTool at /nettool.
func netToolMount(t *testing.T) string {
	t.Helper()
	bin, err := netTool()
	if err != nil {
		t.Fatal(err)
	}
	return bin + ":/nettool:ro"
}

func TestRunPublishUDP(t *testing.T) {
	c := newCtr(t)
	name := uniq("udp")
	c.removeAtEnd(name)
	hp := testenv.FreePort(t, "udp")
	c.must("run", "-d", "--name", name, "-p", fmt.Sprintf("%d:5353/udp", hp), "-v", netToolMount(t), "t/busybox", "/nettool", "udpecho", "5353")
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", hp))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, "the container to echo a datagram sent to the published udp port", func() (bool, string) {
		conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := conn.Write([]byte("ping")); err != nil {
			return false, err.Error()
		}
		buf := make([]byte, 100)
		n, err := conn.Read(buf)
		if err != nil {
			return false, err.Error()
		}
		return string(buf[:n]) == "echo: ping", fmt.Sprintf("%q", buf[:n])
	})
	if out := c.must("port", name); out != fmt.Sprintf("5353/udp -> 127.0.0.1:%d\n", hp) {
		t.Errorf("nook port %s = %q", name, out)
	}
}

// TestRunPrivateNetworkByDefault: a standalone container gets a network
// namespace of its own with an address, where nothing of the host's
// loopback is reachable; --network host shares the host's.
func TestRunPrivateNetworkByDefault(t *testing.T) {
	c := newCtr(t)
	out := c.must("run", "--rm", "t/busybox", "ip", "-4", "-o", "addr")
	if !strings.Contains(out, " eth0 ") || !strings.Contains(out, "inet 10.") {
		t.Errorf("ip addr in a default container:\n%s\nwant eth0 with a private address", out)
	}
	hostLo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLo.Close()
	go func() {
		for {
			c, err := hostLo.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "host\n")
			c.Close()
		}
	}()
	addr := hostLo.Addr().String()
	if out, _, _ := c.run("run", "--rm", "t/busybox", "nc", "-w", "1", strings.Split(addr, ":")[0], strings.Split(addr, ":")[1]); strings.Contains(out, "host") {
		t.Errorf("a default container reached the host's %s; want its own loopback", addr)
	}
	if out, errOut, _ := c.run("run", "--rm", "--network", "host", "t/busybox", "nc", "-w", "2", strings.Split(addr, ":")[0], strings.Split(addr, ":")[1]); !strings.Contains(out, "host") {
		t.Errorf("--network host: nc %s = %q (%s), want the host's listener", addr, out, errOut)
	}
}

// TestShopOnItsNetwork: examples/shop as written, but for web's host
// port: web reaches api by its service name on the project network, web's
// published port answers from the host, and api's port, published
// nowhere, is not on the host.
func TestShopOnItsNetwork(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH: the shop's host steps compile with it")
	}
	dir := filepath.Join(t.TempDir(), "shop")
	if out, err := exec.Command("cp", "-r", filepath.Join("..", "..", "examples", "shop"), dir).CombinedOutput(); err != nil {
		t.Fatalf("copy shop: %v\n%s", err, out)
	}
	os.RemoveAll(filepath.Join(dir, ".nook"))
	hp := freePort(t)
	toml, _ := os.ReadFile(filepath.Join(dir, "nook.toml"))
	os.WriteFile(filepath.Join(dir, "nook.toml"), []byte(strings.Replace(string(toml), `"8080:8080"`, `"`+hp+`:8080"`, 1)), 0o644)
	root := t.TempDir()
	mustNook(t, root, dir, "up", "-d")
	t.Cleanup(func() { nookIn(t, root, dir, "down") })

	eventually(t, "web to pass /api/items on to api by name", func() (bool, string) {
		body := get("http://127.0.0.1:" + hp + "/api/items")
		return strings.Contains(body, "teapot"), body
	})
	if body := get("http://127.0.0.1:8081/api/items"); strings.Contains(body, "teapot") {
		t.Errorf("api answered on the host's 127.0.0.1:8081, which the shop does not publish")
	}
	if out, _ := mustNook(t, root, dir, "port", "web"); out != "8080/tcp -> 127.0.0.1:"+hp+"\n" {
		t.Errorf("nook port web = %q, want 8080/tcp -> 127.0.0.1:%s", out, hp)
	}
	if out, _ := mustNook(t, root, dir, "port", "api"); out != "" {
		t.Errorf("nook port api = %q, want nothing", out)
	}
}
