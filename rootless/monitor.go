package rootless

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// The monitor is the small process that owns one running container, as
// conmon does for podman: it starts the container's init, records its
// state, writes its output to the log, waits for it to exit, records the
// exit status, and removes the container if asked. It runs in nook's user
// namespace. A detached monitor outlives the command that started it; if
// the monitor is killed, the container's init gets SIGKILL with it, so no
// container is left running that nook does not know about.
const entryMonitor = "container-monitor"

func init() { Register(entryMonitor, monitorMain) }

// Arguments: ROOT ID MODE [stdin]. MODE "detached" reports startup on fd 3;
// "attached" also copies the output to its own stdout and stderr.
const reportFD = 3

func monitorMain() int {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "nook: monitor: missing arguments")
		return exitSetup
	}
	cs := &Containers{Root: os.Args[1]}
	attached := os.Args[3] == "attached"
	withStdin := len(os.Args) > 4 && os.Args[4] == "stdin"
	report := func(string) {}
	if !attached {
		f := os.NewFile(reportFD, "report")
		report = func(s string) { fmt.Fprintln(f, s); f.Close() }
	}
	c, err := cs.load(os.Args[2])
	if err != nil {
		report(startReport(exitSetup, err))
		return exitSetup
	}
	return c.monitor(cs, attached, withStdin, nil, nil, report)
}

// monitor runs the container until it is done with it, as monitorMain
// describes. via is how a monitor outside nook's namespace starts init,
// and pre, if set, the init of its first start.
func (c *Container) monitor(cs *Containers, attached, withStdin bool, via *hostLaunch, pre *Prestarted, report func(string)) int {
	// Signals sent to the monitor are passed on to the container. When the
	// monitor is in the foreground of a terminal, Ctrl-C and Ctrl-\ reach
	// the container's init from the terminal itself: those are not passed
	// on twice (see forward).
	defer pre.Cancel() // unless runOnce took it
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	logFile, err := os.OpenFile(filepath.Join(c.Dir, "log.json"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return c.failed(exitSetup, fmt.Errorf("open log: %w", err), report)
	}
	defer logFile.Close()
	m := &monitor{c: c, log: &logSink{f: logFile}, attached: attached, withStdin: withStdin, sigs: sigs, via: via, pre: pre}
	if c.Spec.Network == NetworkPrivate {
		attach, release := c.connector()
		defer release()
		m.attach = attach
	}
	backoff := restartBackoffMin
	for {
		started := time.Now()
		code, err := m.runOnce(report)
		report = func(string) {} // only the first start is reported
		if err != nil {
			return c.failed(code, err, func(string) {})
		}
		if c.State.Status != StatusRestarting {
			break
		}
		// Docker's back-off: doubling from 100 ms up to a minute, back to
		// the start after a run of ten seconds or more.
		if time.Since(started) >= 10*time.Second {
			backoff = restartBackoffMin
		}
		m.update(func(s *State) { s.RestartCount++ })
		select {
		case <-time.After(backoff):
		case <-sigs:
			m.update(func(s *State) { s.Status = StatusExited })
			return code
		}
		backoff = min(2*backoff, restartBackoffMax)
		if c.stopRequested() {
			m.update(func(s *State) { s.Status = StatusExited })
			return code
		}
	}
	if c.Remove {
		cs.Remove(c)
	}
	return c.State.ExitCode
}

const (
	restartBackoffMin = 100 * time.Millisecond
	restartBackoffMax = time.Minute
)

// monitor is the state of one monitor process across restarts.
type monitor struct {
	c                   *Container
	log                 *logSink
	attached, withStdin bool
	sigs                chan os.Signal
	attach              func(pid int) error // connects a private network; nil otherwise
	via                 *hostLaunch         // set outside nook's namespace
	pre                 *Prestarted         // the first start's init, if Prestart made it
	mu                  sync.Mutex          // guards c.State against the healthcheck
}

func (m *monitor) update(change func(*State)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	change(&m.c.State)
	m.c.SaveState()
}

// runOnce runs the container from start to exit and returns its status.
// An error means it could not start; code is then Docker's status for it.
func (m *monitor) runOnce(report func(string)) (int, error) {
	c := m.c
	var stdoutCopy, stderrCopy io.Writer = io.Discard, io.Discard
	if m.attached {
		stdoutCopy, stderrCopy = os.Stdout, os.Stderr
	}
	// A start that fails reports Docker's status for it.
	failed := func(err error) (int, error) {
		code := exitSetup
		if ie, ok := err.(*InitError); ok {
			code = ie.Code
		}
		report(startReport(code, err))
		return code, err
	}
	s := m.spawn()
	if s.err != nil {
		return failed(s.err)
	}
	var copies sync.WaitGroup
	copies.Add(2)
	go m.log.copy("stdout", s.outR, stdoutCopy, &copies)
	go m.log.copy("stderr", s.errR, stderrCopy, &copies)
	ctr, err := s.p.start(&c.Spec, m.attach)
	if err != nil {
		copies.Wait()
		return failed(err)
	}
	if ctr.Console != nil {
		// With a terminal the container's output comes from the pty, all
		// of it on stdout, as with Docker.
		copies.Add(1)
		go m.log.copy("stdout", ctr.Console, stdoutCopy, &copies)
		if m.withStdin {
			go io.Copy(ctr.Console, os.Stdin)
		}
		if m.attached {
			go followWindowSize(ctr.Console)
		}
	}
	m.update(func(s *State) {
		restarts := s.RestartCount
		*s = State{
			Status: StatusRunning, Pid: ctr.Pid, PidStart: ProcessStart(ctr.Pid), BootID: bootID(),
			MonitorPid: os.Getpid(), MonitorStart: ProcessStart(os.Getpid()), StartedAt: time.Now().UTC(), RestartCount: restarts,
		}
		if c.Healthcheck != nil {
			s.Health = HealthStarting
		}
	})
	report("ok")
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-m.sigs:
				if (s == syscall.SIGINT || s == syscall.SIGQUIT) && ForegroundOfTerminal() {
					continue
				}
				ctr.Signal(s.(syscall.Signal))
			case <-done:
				return
			}
		}
	}()
	if c.Healthcheck != nil {
		go m.healthcheck(done)
	}
	code := ctr.Wait()
	c.tellSupervisor("detached")
	close(done)
	copies.Wait()
	// One write says both that it exited and whether it comes back, so no
	// reader sees an exited container that is about to restart.
	next := StatusExited
	if m.shouldRestart(code) {
		next = StatusRestarting
	}
	if !c.Remove || next != StatusExited { // a --rm log is deleted next: no fsync
		m.log.flush()
	}
	m.update(func(s *State) { s.Status, s.ExitCode, s.FinishedAt = next, code, time.Now().UTC() })
	return code, nil
}

// spawn clones the container's init, or takes the one Prestart cloned.
func (m *monitor) spawn() spawned {
	if pre := m.pre; pre != nil {
		m.pre = nil
		if s, ok := pre.take(); ok {
			return s
		}
	}
	return spawnWithPipes(shapeOf(&m.c.Spec), m.withStdin, m.via)
}

// connector returns how to attach the container's private network at
// each start, and what to release when the monitor is done: a project's
// supervisor does the work, or a network of the container's own. That one
// is made while init sets up the rootfs; attach waits for it.
func (c *Container) connector() (attach func(pid int) error, release func()) {
	if sock := c.supervisor(); sock != "" {
		return func(pid int) error {
			_, err := NetCall(sock, NetRequest{Op: "attach", Name: c.Name, Pid: pid})
			return err
		}, func() {}
	}
	type made struct {
		n   OwnNetwork
		err error
	}
	ready := make(chan made, 1)
	go func() {
		n, err := newOwnNetwork(c, io.Discard)
		ready <- made{n, err}
	}()
	var once sync.Once
	var own made
	wait := func() made {
		once.Do(func() { own = <-ready })
		return own
	}
	attach = func(pid int) error {
		m := wait()
		if m.err != nil {
			return m.err
		}
		return m.n.Attach(pid)
	}
	release = func() {
		if m := wait(); m.err == nil {
			m.n.Close()
		}
	}
	return attach, release
}

// shouldRestart applies the restart policy to an exit.
func (m *monitor) shouldRestart(code int) bool {
	c := m.c
	if c.stopRequested() {
		return false
	}
	switch c.Restart.Policy {
	case "always":
		return true
	case "on-failure":
		return code != 0 && (c.Restart.MaxRetries == 0 || c.State.RestartCount < c.Restart.MaxRetries)
	}
	return false
}

// healthcheck runs the container's healthcheck until done is closed.
func (m *monitor) healthcheck(done chan struct{}) {
	hc := m.c.Healthcheck
	started := time.Now()
	tick := time.NewTicker(hc.Interval)
	defer tick.Stop()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer null.Close()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		m.mu.Lock()
		c := *m.c
		m.mu.Unlock()
		result := make(chan string, 1)
		go func() {
			code, err := c.Exec(ExecRequest{Args: hc.Cmd}, null, null, null, nil)
			switch {
			case err != nil:
				result <- err.Error()
			case code != 0:
				result <- fmt.Sprintf("exited with status %d", code)
			default:
				result <- ""
			}
		}()
		var failure string
		select {
		case failure = <-result:
		case <-time.After(hc.Timeout):
			failure = fmt.Sprintf("timed out after %s", hc.Timeout)
		case <-done:
			return
		}
		m.update(func(s *State) {
			s.HealthFailure = failure
			switch {
			case failure == "":
				s.Health, s.FailingStreak = HealthHealthy, 0
			case time.Since(started) < hc.StartPeriod:
			default:
				s.FailingStreak++
				if s.FailingStreak >= hc.Retries {
					s.Health = HealthUnhealthy
				}
			}
		})
	}
}

// stopRequested reports whether a stop asked the container to stay down.
func (c *Container) stopRequested() bool {
	_, err := os.Stat(filepath.Join(c.Dir, stopFlag))
	return err == nil
}

// stopFlag marks a container that was stopped on purpose: its restart
// policy does not apply until it is started again.
const stopFlag = "stop-requested"

// failed records a container that could not start and reports why.
func (c *Container) failed(code int, err error, report func(string)) int {
	now := time.Now().UTC()
	c.State = State{Status: StatusExited, ExitCode: code, Error: err.Error(), StartedAt: now, FinishedAt: now}
	c.SaveState()
	report(startReport(code, err))
	if c.Remove {
		(&Containers{Root: filepath.Dir(c.Dir)}).Remove(c)
	}
	fmt.Fprintf(os.Stderr, "nook: error: start %s: %v\n", c.Name, err)
	var h interface{ Hint() string }
	if errors.As(err, &h) && h.Hint() != "" {
		fmt.Fprintf(os.Stderr, "hint: %s\n", h.Hint())
	}
	return code
}

// LogEntry is one line of a container's output, as log.json stores it.
type LogEntry struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"` // stdout or stderr
	Log    string    `json:"log"`    // the line, with its newline if it had one
}

// logSink writes a container's output to its log, one JSON object per
// line, from both streams.
type logSink struct {
	mu sync.Mutex
	f  *os.File
}

func (l *logSink) write(stream, line string) {
	data, _ := json.Marshal(LogEntry{Time: time.Now().UTC(), Stream: stream, Log: line})
	l.mu.Lock()
	l.f.Write(append(data, '\n'))
	l.mu.Unlock()
}

// copy reads one stream to its end, passing it on to also and logging it
// line by line.
func (l *logSink) copy(stream string, r io.ReadCloser, also io.Writer, wg *sync.WaitGroup) {
	defer wg.Done()
	defer r.Close()
	buf := make([]byte, 32<<10)
	var partial []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			also.Write(buf[:n])
			partial = append(partial, buf[:n]...)
			for {
				i := indexByte(partial, '\n')
				if i < 0 {
					break
				}
				l.write(stream, string(partial[:i+1]))
				partial = partial[i+1:]
			}
			if len(partial) > 16<<10 { // a very long line is logged in pieces
				l.write(stream, string(partial))
				partial = partial[:0]
			}
		}
		if err != nil {
			break
		}
	}
	if len(partial) > 0 {
		l.write(stream, string(partial))
	}
}

func (l *logSink) flush() { l.f.Sync() }

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// followWindowSize gives the container's terminal the size of ours, now
// and whenever ours changes (SIGWINCH goes to the terminal's foreground
// process group, which the attached monitor is in).
func followWindowSize(console *os.File) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	for {
		if size, err := pty.GetsizeFull(os.Stdin); err == nil {
			pty.Setsize(console, size)
		}
		if _, ok := <-winch; !ok {
			return
		}
	}
}

// ForegroundOfTerminal reports whether stdin is a terminal whose
// foreground process group is ours: then the keys that send signals
// (Ctrl-C, Ctrl-\) reach every process of the group from the terminal.
func ForegroundOfTerminal() bool {
	pgrp, err := unix.IoctlGetInt(int(os.Stdin.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}
