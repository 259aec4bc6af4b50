package rootless

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// StartOptions say how to start a container.
type StartOptions struct {
	// Attach keeps the caller with the container: Start returns when it
	// exits, and its output goes to Stdout and Stderr as well as the log.
	// Otherwise Start returns once it runs.
	Attach         bool
	Stdin          io.Reader // attached only; nil gives the container no input
	Stdout, Stderr io.Writer // attached only
	// Mapping is the id mapping to run with; nil means HostMapping().
	Mapping *Mapping
	// Prestarted is the container's init, if Prestart cloned it already.
	// Start takes it, or cancels it when it does not fit.
	Prestarted *Prestarted
}

// Start starts a created or exited container through a monitor in nook's
// user namespace; attached, an ordinary user's process is the monitor
// itself and starts init in a namespace of its own, where it can (see
// hostLaunch). Attached, it returns the container's exit status.
// Detached, it returns 0 once the container runs. A container that cannot
// start gives an *InitError carrying Docker's status for it.
func (cs *Containers) Start(c *Container, opts StartOptions) (int, error) {
	defer opts.Prestarted.Cancel() // unless a monitor took it
	if c.State.Status == StatusRunning || c.State.Status == StatusRestarting {
		return 0, fmt.Errorf("start %s: it is already running", c.Name)
	}
	os.Remove(filepath.Join(c.Dir, stopFlag))
	if c.supervisor() != "" {
		if err := cs.startSupervised(c, opts); err != nil {
			code := exitSetup
			if ie, ok := err.(*InitError); ok {
				code = ie.Code
			}
			return code, err
		}
		return 0, nil
	}
	if opts.Attach && os.Geteuid() == 0 && !IsHostRoot() && !c.KeepID {
		// Already uid 0 in nook's namespace (the CLI re-executed itself
		// there): this process is the monitor, one process start saved.
		return c.monitor(cs, true, opts.Stdin != nil, nil, nil, func(string) {}), nil
	}
	if pre := opts.Prestarted; pre != nil && !pre.fits(c, opts) {
		pre.Cancel()
		opts.Prestarted = nil
	}
	if opts.Attach && !c.KeepID && c.Spec.Network != NetworkPrivate && os.Geteuid() != 0 {
		// Outside nook's namespace: this process is the monitor too, and
		// init's namespace comes with its clone (see hostLaunch).
		if pre := opts.Prestarted; pre != nil {
			return c.monitor(cs, true, opts.Stdin != nil, pre.via, pre, func(string) {}), nil
		}
		m := opts.Mapping
		if m == nil {
			hm, err := HostMapping()
			if err != nil {
				return exitSetup, fmt.Errorf("start %s: %w", c.Name, err)
			}
			m = &hm
		}
		if via := cs.hostLaunch(*m); via != nil {
			return c.monitor(cs, true, opts.Stdin != nil, via, nil, func(string) {}), nil
		}
	}
	opts.Prestarted.Cancel() // before a monitor of another kind starts
	mode := "detached"
	if opts.Attach {
		mode = "attached"
	}
	args := []string{cs.Root, c.ID, mode}
	if opts.Attach && opts.Stdin != nil {
		args = append(args, "stdin")
	}
	cmd := Command(entryMonitor, args...)
	cmd.Mapping = opts.Mapping
	if c.KeepID && !IsHostRoot() {
		m, err := keepIDMapping(opts.Mapping)
		if err != nil {
			return exitSetup, fmt.Errorf("start %s: %w", c.Name, err)
		}
		cmd.Mapping = &m
	}
	if opts.Attach {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = opts.Stdin, opts.Stdout, opts.Stderr
		cmd.ForwardSignals = true // a stop of ours stops the container
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		if err != nil && c.Remove {
			cs.Remove(c) // its monitor, which would have, never ran
		}
		return 0, err
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer reportR.Close()
	cmd.Detach = true
	cmd.ExtraFiles = []*os.File{reportW}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		if c.Remove {
			cs.Remove(c) // its monitor, which would have, never ran
		}
		return 0, fmt.Errorf("start %s: %w", c.Name, err)
	}
	line, _ := bufio.NewReader(reportR).ReadString('\n')
	if err := ParseReport(line, c.Name); err != nil {
		return err.(*InitError).Code, err
	}
	return 0, nil
}

// keepIDMapping is the namespace of a keep-id container's monitor:
// nested in nook's, or from outside it, the same ids in one namespace.
// nook is nil or the caller's mapping for nook's namespace.
func keepIDMapping(nook *Mapping) (Mapping, error) {
	if os.Geteuid() == 0 {
		m, _, _, err := KeepIDMapping()
		return m, err
	}
	if nook == nil {
		m, err := HostMapping()
		if err != nil {
			return Mapping{}, err
		}
		nook = &m
	}
	return HostKeepIDMapping(*nook)
}

// startSupervised has a project network's supervisor start the container,
// so that its monitor runs in the supervisor's user namespace, where the
// supervisor can attach it.
func (cs *Containers) startSupervised(c *Container, opts StartOptions) error {
	if opts.Attach {
		return fmt.Errorf("start %s attached: it is on a project network, whose supervisor runs it; start it detached and follow it with nook logs -f", c.Name)
	}
	_, err := NetCall(c.supervisor(), NetRequest{Op: "start", Root: cs.Root, ID: c.ID})
	var ne *NetError
	switch {
	case errors.As(err, &ne):
		return &InitError{Code: max(ne.Code, 1), Msg: ne.Msg, hint: ne.hint}
	case errors.Is(err, ErrNoSupervisor):
		return &InitError{Code: exitSetup, Msg: fmt.Sprintf("start %s: its project's network is not running", c.Name), hint: "run nook up in the project, which starts it"}
	case err != nil:
		return &InitError{Code: exitSetup, Msg: fmt.Sprintf("start %s: %v", c.Name, err)}
	}
	return nil
}

// Signal sends sig to a running container's init, which passes it on to
// the main process; SIGKILL ends the whole container at once.
func (c *Container) Signal(sig syscall.Signal) error {
	if c.State.Status != StatusRunning {
		return fmt.Errorf("signal %s: the container is not running", c.Name)
	}
	if err := unix.Kill(c.State.Pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal %s: %w", c.Name, err)
	}
	return nil
}

// Stop sends the container's stop signal, waits up to timeout for it to
// exit, then kills it. Stopping a container that is not running is not an
// error.
func (cs *Containers) Stop(c *Container, sig syscall.Signal, timeout time.Duration) error {
	switch c.State.Status {
	case StatusRunning:
	case StatusRestarting:
		// Waiting to restart: tell the monitor to give up.
		os.WriteFile(filepath.Join(c.Dir, stopFlag), nil, 0o600)
		unix.Kill(c.State.MonitorPid, unix.SIGTERM)
		waitExit(c.State.MonitorPid, timeout+10*time.Second)
		return nil
	default:
		return nil
	}
	if err := os.WriteFile(filepath.Join(c.Dir, stopFlag), nil, 0o600); err != nil {
		return fmt.Errorf("stop %s: %w", c.Name, err)
	}
	// Its ports close first: a connection that comes while it stops, or
	// before it is back, is refused at once instead of waiting on an
	// address that nobody holds for a while.
	c.tellSupervisor("detached")
	if err := c.Signal(sig); err != nil {
		return err
	}
	if waitExit(c.State.MonitorPid, timeout) {
		return nil
	}
	if err := c.Signal(unix.SIGKILL); err != nil {
		return err
	}
	if !waitExit(c.State.MonitorPid, 10*time.Second) {
		return fmt.Errorf("stop %s: it did not exit after SIGKILL", c.Name)
	}
	return nil
}

// Wait blocks until a running container has exited and its monitor has
// recorded it, then returns its record (nil if it removed itself).
func (cs *Containers) Wait(c *Container) (*Container, error) {
	if c.State.Status == StatusRunning || c.State.Status == StatusRestarting {
		waitExit(c.State.MonitorPid, -1)
	}
	got, err := cs.load(c.ID)
	if errors.Is(err, ErrNoContainer) {
		return nil, nil
	}
	return got, err
}

// waitExit waits for a process that is not our child to exit, with a
// pidfd; a negative timeout waits forever. It reports whether it exited.
func waitExit(pid int, timeout time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return true // ESRCH: gone already
	}
	defer unix.Close(fd)
	ms := -1
	if timeout >= 0 {
		ms = int(timeout / time.Millisecond)
	}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if errors.Is(err, unix.EINTR) {
			if timeout >= 0 {
				ms = int(time.Until(deadline) / time.Millisecond)
				if ms < 0 {
					return false
				}
			}
			continue
		}
		return err == nil && n > 0
	}
}

// IsHostRoot reports whether this process is root on the host (not merely
// uid 0 in nook's user namespace).
func IsHostRoot() bool {
	if os.Geteuid() != 0 {
		return false // an ordinary user's process, outside any namespace
	}
	uids, err := readIDMapFile("/proc/self/uid_map")
	return err == nil && len(uids) > 0 && uids[0].ContainerID == 0 && uids[0].HostID == 0
}
