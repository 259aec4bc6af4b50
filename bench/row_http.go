package main

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	// httpName is row 8's container, in nook and in podman.
	httpName = "nb-http"
	// httpWorkers is how many clients ask at once: a few, as a browser or
	// a small service would; the machines here have 2 cores.
	httpWorkers = 4
	// A run ends after httpRequests answers or httpLimit, whichever comes
	// first; -quick makes both a tenth. Guessed so that a run is 1–3 s at
	// the rates seen here (1,000–5,000 a second).
	httpRequests, httpLimit           = 10000, 3 * time.Second
	httpQuickRequests, httpQuickLimit = 1000, 300 * time.Millisecond
	// httpRuns and httpWarmups cap the row's rounds: a rate over
	// thousands of requests moves less from run to run than a start.
	httpRuns, httpWarmups = 5, 1
	// httpReady bounds the wait for a server's first answer.
	httpReady = 30 * time.Second
	httpBody  = "ok\n"
)

// httpCommand is what the containers run: busybox httpd in the
// foreground, serving one file it writes first. The host's server is the
// same binary serving the same file (hostHTTPD).
var httpCommand = []string{"sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8000 -h /www"}

// An httpServer is one way of serving httpCommand's file on a host port:
// start runs it on 127.0.0.1:port and says how, for the table; the stop
// it returns (non-nil even when start fails) removes whatever start left.
type httpServer struct {
	tool  string
	start func(port int) (stop func(), note string, err error)
}

// rowHTTP is row 8: requests per second a keep-alive Go client gets from
// busybox httpd through a published port of nook and of podman, and from
// the same server on the host's loopback. busybox httpd closes every
// connection after one answer, so each request is a new connection
// through the tool's port forwarder.
func rowHTTP(b *bench) []result {
	r := *b // fewer rounds: each one is thousands of requests
	r.o.runs, r.o.warmups = min(b.o.runs, httpRuns), min(b.o.warmups, httpWarmups)
	requests, limit := httpRequests, httpLimit
	if b.o.quick {
		requests, limit = httpQuickRequests, httpQuickLimit
	}
	workload := fmt.Sprintf("HTTP GET through a published port, %d clients (%d runs after %d warm-up(s), each %d requests or %s)",
		httpWorkers, r.o.runs, r.o.warmups, requests, limit)

	servers := []httpServer{{tool: "nook", start: b.nookHTTPD}}
	if b.have("podman") {
		servers = append(servers, httpServer{tool: "podman", start: b.podmanHTTPD})
	}
	servers = append(servers, httpServer{tool: "direct", start: b.hostHTTPD})

	var cs []contender
	notes := make(map[string]string)
	conns := make(map[string][2]int) // tool: connections opened, answers
	var taken []int
	for _, s := range servers {
		port, err := freePort(0, taken...)
		if err != nil {
			cs = append(cs, failing(s.tool, err))
			continue
		}
		taken = append(taken, port)
		stop, note, err := s.start(port)
		defer stop()
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		if err == nil {
			err = waitFor(url, func(body string) bool { return body == httpBody }, httpReady)
		}
		if err != nil {
			cs = append(cs, failing(s.tool, err)) // interleave logs it
			continue
		}
		notes[s.tool] = note
		l := load{url: url, want: httpBody, workers: httpWorkers, requests: requests, limit: limit}
		cs = append(cs, contender{tool: s.tool, unit: "req/s", timed: func() (float64, error) {
			run, err := l.run()
			if err != nil {
				return 0, err
			}
			c := conns[s.tool]
			conns[s.tool] = [2]int{c[0] + run.dials, c[1] + run.answers}
			return run.perSecond(), nil
		}})
	}
	res := r.interleave(8, workload, cs)
	for i, x := range res {
		if len(x.samples) == 0 {
			continue
		}
		c := conns[x.tool]
		per := fmt.Sprintf("%.2f connections per request", float64(c[0])/float64(c[1]))
		if n := notes[x.tool]; n != "" {
			per = n + "; " + per
		}
		res[i].note = per
	}
	return res
}

// failing is a contender whose server did not start: interleave drops it
// with err as its note, as it does a tool that fails while measured.
func failing(tool string, err error) contender {
	return contender{tool: tool, timed: func() (float64, error) { return 0, err }}
}

func (b *bench) nookHTTPD(port int) (func(), string, error) {
	b.nookCmd("rm", "-f", httpName) // what an interrupted run left
	stop := func() { b.nookCmd("rm", "-f", httpName) }
	args := append([]string{"run", "-d", "--name", httpName,
		"-p", fmt.Sprintf("127.0.0.1:%d:8000", port), "bench/busybox"}, httpCommand...)
	return stop, "", b.nookCmd(args...)
}

// podmanHTTPD runs the server with rootless podman's default network:
// slirp4netns, its ports forwarded by rootlessport (containers.conf's
// default port_handler, rootlesskit) on these machines; the note says
// what the container got.
func (b *bench) podmanHTTPD(port int) (func(), string, error) {
	b.podman("rm", "-f", "-t", "0", "-i", httpName)
	stop := func() { b.podman("rm", "-f", "-t", "0", "-i", httpName) }
	args := append([]string{"run", "-d", "--name", httpName,
		"-p", fmt.Sprintf("127.0.0.1:%d:8000", port), podmanImage}, httpCommand...)
	if err := b.podman(args...); err != nil {
		return stop, "", err
	}
	mode, _ := b.podmanOutput("inspect", "--format", "{{.HostConfig.NetworkMode}}", httpName)
	note := "network " + cmp.Or(strings.TrimSpace(mode), "?")
	if len(processesNamed("rootlessport")) > 0 {
		note += ", ports by rootlessport"
	}
	return stop, note, nil
}

// hostHTTPD runs the rootfs's busybox (the one the containers run) as
// httpd on the host, serving the same file from the work folder.
func (b *bench) hostHTTPD(port int) (func(), string, error) {
	const note = "the same httpd on the host's loopback"
	www := filepath.Join(b.work, "http-www")
	if err := writeFile(filepath.Join(www, "index.html"), httpBody); err != nil {
		return func() {}, note, err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(b.rootfs, "bin", "busybox"), "httpd", "-f",
		"-p", fmt.Sprintf("127.0.0.1:%d", port), "-h", www)
	cmd.Dir, cmd.Env, cmd.Stderr = b.work, b.env, &stderr
	// httpd forks a child per connection: stop kills the group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return func() {}, note, fmt.Errorf("start busybox httpd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	// Wait for the listener here, not only in rowHTTP, to see an httpd
	// that could not bind exit rather than poll its port until httpReady.
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(httpReady)
	for {
		select {
		case err := <-exited:
			exited <- err
			return stop, note, fmt.Errorf("busybox httpd exited: %w: %s", err, strings.TrimSpace(stderr.String()))
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return stop, note, nil
		}
		if time.Now().After(deadline) {
			return stop, note, fmt.Errorf("busybox httpd: %s not listening within %s: %w", addr, httpReady, err)
		}
		time.Sleep(pollInterval)
	}
}
