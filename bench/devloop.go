package main

import (
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
	"sync"
	"syscall"
	"time"
)

// Helpers of rows 4 and 5: copies of the examples with their ports moved,
// an HTTP poll on loopback, and a `nook watch` whose reports are read.

// An edit is one replacement in a copied example's file; each must match.
type edit struct{ file, old, new string }

// example copies examples/name (from the work folder, copied there from
// the tree at bench start) to dir afresh and applies edits in order.
func (b *bench) example(name, dir string, edits ...edit) error {
	src := filepath.Join(b.work, "examples", name)
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("examples/%s: %w", name, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := copyExamples(src, dir); err != nil {
		return err
	}
	for _, e := range edits {
		path := filepath.Join(dir, e.file)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !strings.Contains(string(data), e.old) {
			return fmt.Errorf("examples/%s/%s has no %q, which bench edits: bench/devloop.go needs updating", name, e.file, e.old)
		}
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(data), e.old, e.new)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// loopbackOnly makes a copied Go service of the examples listen on
// 127.0.0.1 only (they listen on ":PORT"), for podman's copies, which
// run on the host's network.
func loopbackOnly(file string) edit {
	return edit{file, "http.ListenAndServe(addr,", `http.ListenAndServe("127.0.0.1"+addr,`}
}

// dropLines removes from file in dir the lines that start with prefix
// and contain word (none is fine).
func dropLines(path, prefix, word string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var keep []string
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, prefix) && strings.Contains(t, word) {
			continue
		}
		keep = append(keep, line)
	}
	return os.WriteFile(path, []byte(strings.Join(keep, "")), 0o644)
}

var hostStepRe = regexp.MustCompile(`(?m)^\s*host\s*=\s*("(?:[^"\\]|\\.)*")`)

// hostStep returns the command of the host step in a nook.toml that
// writes output: what the podman peers run to build the same binary.
func hostStep(tomlPath, output string) (string, error) {
	data, err := os.ReadFile(tomlPath)
	if err != nil {
		return "", err
	}
	for _, m := range hostStepRe.FindAllStringSubmatch(string(data), -1) {
		cmd, err := strconv.Unquote(m[1])
		if err == nil && strings.Contains(cmd, output) {
			return cmd, nil
		}
	}
	return "", fmt.Errorf("%s: no host step writes %s", tomlPath, output)
}

// freePort returns prefer if 127.0.0.1 has it free, else a free port the
// kernel picks; never one of taken.
func freePort(prefer int, taken ...int) (int, error) {
	if prefer > 0 && !slices.Contains(taken, prefer) {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", prefer)); err == nil {
			l.Close()
			return prefer, nil
		}
	}
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !slices.Contains(taken, p) {
			return p, nil
		}
	}
	return 0, errors.New("no free port on 127.0.0.1")
}

// httpClient asks loopback only: no proxy from the environment, and a
// new connection per request (the server behind it restarts).
var httpClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// pollInterval is the pause between two GETs while waiting for a change.
const pollInterval = 2 * time.Millisecond

// waitFor GETs url every pollInterval until ok accepts the body, for at
// most limit.
func waitFor(url string, ok func(string) bool, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last := ""
	for {
		resp, err := httpClient.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && ok(string(body)) {
				return nil
			}
			last = fmt.Sprintf("%s %.60q", resp.Status, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s: no expected answer within %s (last: %s)", url, limit, last)
		}
		time.Sleep(pollInterval)
	}
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// nookEdits is nook's line of an edit → response workload under w. Its
// run n writes edit n (write) and is timed until the answer at url shows
// it (shows); the watch's report of every measured edit goes to *reports.
func (b *bench) nookEdits(w *watchProc, url string, reports *[]watchReport, write func(n int) error, shows func(n int, body string) bool) contender {
	n := 0
	return contender{tool: "nook", timed: func() (float64, error) {
		n++
		w.drain()
		start := time.Now()
		if err := write(n); err != nil {
			return 0, err
		}
		if err := waitFor(url, func(body string) bool { return shows(n, body) }, editLimit); err != nil {
			return 0, fmt.Errorf("%w; nook watch said: %s", err, w.said())
		}
		ms := msSince(start)
		r, err := w.next(10 * time.Second)
		if err != nil {
			return 0, err
		}
		if n > b.o.warmups {
			*reports = append(*reports, r)
		}
		return ms, nil
	}}
}

// A watchReport is what `nook watch --explain` says about one batch:
// "watch: restarted hello (594ms; nook 114ms)" and, on the next line,
// "detect 15ms, sync 0ms, build 505ms (host steps 480ms), start 72ms,
// ready at 594ms".
type watchReport struct {
	action                         string
	total, nook                    float64
	detect, sync, build, host, run float64
	explained                      bool
}

var (
	watchSummaryRe = regexp.MustCompile(`^watch: (.+) \((-?\d+)ms; nook (-?\d+)ms\)$`)
	watchExplainRe = regexp.MustCompile(`^\s*detect (\d+)ms, sync (\d+)ms, build (\d+)ms \(host steps (\d+)ms\), start (\d+)ms`)
)

// watchProc is a running `nook watch --explain` and its output, a line at
// a time.
type watchProc struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	tail  []string // its last lines, for errors
}

// startWatch runs `nook watch --explain` in dir and waits until it
// watches.
// upWatched brings the project in dir up (after taking down what an
// interrupted run left), waits until url answers and starts a watch on
// it. down stops the watch and takes the project down.
func (b *bench) upWatched(dir, url string) (w *watchProc, down func(), err error) {
	b.cmd(dir, b.nook, "down")
	if err := b.cmd(dir, b.nook, "up", "-d"); err != nil {
		return nil, nil, err
	}
	undo := func() { b.cmd(dir, b.nook, "down") }
	if err := waitFor(url, func(string) bool { return true }, editLimit); err != nil {
		undo()
		return nil, nil, err
	}
	if w, err = b.startWatch(dir); err != nil {
		undo()
		return nil, nil, err
	}
	return w, func() { w.stop(); undo() }, nil
}

func (b *bench) startWatch(dir string) (*watchProc, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.nook, "watch", "--explain")
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, b.env, w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	p := &watchProc{cmd: cmd, lines: make(chan string, 1024)}
	go p.read(r)
	for {
		line, err := p.line(15 * time.Second)
		if err != nil {
			p.stop()
			return nil, err
		}
		if strings.HasPrefix(line, "watching ") {
			return p, nil
		}
	}
}

func (p *watchProc) read(r *os.File) {
	defer r.Close()
	defer close(p.lines)
	buf := make([]byte, 64<<10)
	var rest string
	for {
		n, err := r.Read(buf)
		rest += string(buf[:n])
		for {
			i := strings.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			line := rest[:i]
			rest = rest[i+1:]
			p.mu.Lock()
			p.tail = append(p.tail, line)
			if len(p.tail) > 8 {
				p.tail = p.tail[1:]
			}
			p.mu.Unlock()
			select {
			case p.lines <- line:
			default: // nobody reads: the tail keeps it
			}
		}
		if err != nil {
			return
		}
	}
}

// said returns its last lines, for an error.
func (p *watchProc) said() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, " / ")
}

func (p *watchProc) line(limit time.Duration) (string, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return "", fmt.Errorf("nook watch exited; it said: %s", p.said())
		}
		return line, nil
	case <-time.After(limit):
		return "", fmt.Errorf("nook watch said nothing new in %s; it said: %s", limit, p.said())
	}
}

// drain drops lines not read yet.
func (p *watchProc) drain() {
	for {
		select {
		case _, ok := <-p.lines:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// next waits at most limit for the report of the next batch, and a little
// for its explanation.
func (p *watchProc) next(limit time.Duration) (watchReport, error) {
	var r watchReport
	deadline := time.Now().Add(limit)
	for {
		line, err := p.line(time.Until(deadline))
		if err != nil {
			return r, err
		}
		if m := watchSummaryRe.FindStringSubmatch(line); m != nil {
			r.action = m[1]
			r.total, _ = strconv.ParseFloat(m[2], 64)
			r.nook, _ = strconv.ParseFloat(m[3], 64)
			break
		}
		if strings.HasPrefix(line, "watch: ") && !strings.Contains(line, "nothing changed") {
			return r, fmt.Errorf("nook %s", line)
		}
	}
	line, err := p.line(2 * time.Second)
	if err != nil {
		return r, nil // a report without its explanation
	}
	if m := watchExplainRe.FindStringSubmatch(line); m != nil {
		v := make([]float64, 5)
		for i := range v {
			v[i], _ = strconv.ParseFloat(m[i+1], 64)
		}
		r.detect, r.sync, r.build, r.host, r.run = v[0], v[1], v[2], v[3], v[4]
		r.explained = true
	}
	return r, nil
}

// stop ends the watch (SIGTERM; SIGKILL to its process group after 5 s).
func (p *watchProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// phases collects named times of a contender's measured runs, for the
// medians in its note.
type phases map[string][]float64

func (ph phases) add(name string, ms float64) { ph[name] = append(ph[name], ms) }

func (ph phases) med(name string) string {
	if len(ph[name]) == 0 {
		return "?"
	}
	return formatValue(median(slices.Clone(ph[name])), "ms", 0)
}
