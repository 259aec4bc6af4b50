package rootless

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Namespaces are the namespaces a child gets besides its user and mount
// namespaces, which it always gets.
type Namespaces uintptr

const (
	PIDNS Namespaces = unix.CLONE_NEWPID // the child is pid 1 of a new PID namespace
	UTSNS Namespaces = unix.CLONE_NEWUTS // own hostname
	IPCNS Namespaces = unix.CLONE_NEWIPC // own System V IPC and POSIX message queues
	NetNS Namespaces = unix.CLONE_NEWNET // own network stack, with only a down lo
)

const allNamespaces = PIDNS | UTSNS | IPCNS | NetNS

// Cmd runs a registered entry point (see Register) in a new user namespace
// with nook's id mapping, as uid 0 inside. Like exec.Cmd, a Cmd is used
// once and is not safe for concurrent use.
type Cmd struct {
	Name       string     // registered entry point
	Args       []string   // the child sees os.Args = [parent's os.Args[0], Args...]
	Namespaces Namespaces // extra namespaces
	Env        []string   // nil means os.Environ()
	Dir        string     // working directory; "" means the caller's
	Stdin      io.Reader  // as in exec.Cmd
	Stdout     io.Writer  // as in exec.Cmd
	Stderr     io.Writer  // as in exec.Cmd
	ExtraFiles []*os.File // fd 3+i in the child

	// Detach starts the child in a session of its own that outlives the
	// caller, instead of one that gets SIGKILL when the caller dies.
	Detach bool

	// Mapping, if non-nil, is installed instead of HostMapping(): pass the
	// one value a session computed so all its processes share one mapping.
	Mapping *Mapping

	// ForwardSignals passes SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to
	// the caller on to the child until Wait returns. The child shares the
	// caller's process group: when that group is in the foreground of a
	// terminal, Ctrl-C and Ctrl-\ reach the child from the terminal itself
	// and are not passed on twice (a second Ctrl-C means "kill" to nook
	// up). Otherwise (a pipe, an IDE's stop button, kill -INT) they came
	// to the caller alone.
	ForwardSignals bool

	Process      *os.Process      // set by Start
	ProcessState *os.ProcessState // set by Wait

	cmd     *exec.Cmd
	done    chan error     // receives cmd.Wait's result
	sigs    chan os.Signal // with ForwardSignals
	started bool
}

// Command returns a Cmd that runs the entry point registered as name with
// args and nothing else set.
func Command(name string, args ...string) *Cmd {
	return &Cmd{Name: name, Args: args}
}

// Run starts c and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// Start creates the namespaces with the child in them and returns once the
// child's id maps are installed; the entry point runs after that. The child
// gets SIGKILL when the calling process exits. An error from the namespace
// setup is an *Error and may carry a Hint.
func (c *Cmd) Start() error {
	if c.started {
		return errors.New("rootless: Start called twice")
	}
	c.started = true
	if lookupEntry(c.Name) == nil {
		return fmt.Errorf("start %q: no entry point registered with that name", c.Name)
	}
	if c.Namespaces&^allNamespaces != 0 {
		return fmt.Errorf("start %q: unsupported namespaces %#x", c.Name, uintptr(c.Namespaces&^allNamespaces))
	}
	m := c.Mapping
	if m == nil {
		hm, err := HostMapping()
		if err != nil {
			return fmt.Errorf("start %q: %w", c.Name, err)
		}
		m = &hm
	}
	var newuidmap, newgidmap string
	if m.Kind == MapSubIDs {
		var err error
		if newuidmap, err = lookHelper("newuidmap"); err != nil {
			return err
		}
		if newgidmap, err = lookHelper("newgidmap"); err != nil {
			return err
		}
	}

	cmd := exec.Command("/proc/self/exe", c.Args...)
	cmd.Args[0] = os.Args[0]
	cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr = c.Dir, c.Stdin, c.Stdout, c.Stderr
	cmd.ExtraFiles = append([]*os.File(nil), c.ExtraFiles...)
	ppid := strconv.Itoa(os.Getpid())
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | uintptr(c.Namespaces),
		Pdeathsig:  syscall.SIGKILL,
	}
	if c.Detach {
		ppid = ppidDetached
		cmd.SysProcAttr.Pdeathsig, cmd.SysProcAttr.Setsid = 0, true
	}
	cmd.Env = childEnv(c.Env, envEntry+"="+c.Name, envPPID+"="+ppid)
	var syncR, syncW *os.File
	if m.Kind == MapSubIDs {
		// Go can only write maps the kernel lets us write ourselves; the
		// ranges need the setuid helpers, which must run after clone. The
		// child waits on this pipe until they did.
		var err error
		if syncR, syncW, err = os.Pipe(); err != nil {
			return fmt.Errorf("start %q: %w", c.Name, err)
		}
		defer syncW.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, syncR)
		cmd.Env = append(cmd.Env, envSync+"="+strconv.Itoa(2+len(cmd.ExtraFiles)))

		// The clone holds every capability in the new namespace, but its
		// execve happens before the maps exist, as an unmapped uid, which
		// would lose them all; ambient capabilities survive that execve,
		// so the child need not execute itself again once mapped (a Go
		// process start saved), and keeps them when its uid there is not
		// 0 (a keep-id namespace, seen from outside nook's). The child's
		// descendants inherit them, and a full inheritable set, until
		// something clears them (ClearInheritedCaps): a container's init,
		// before it starts the container's processes, and the network
		// holder. What else the child runs is nook's, acting for the user
		// in the namespace.
		cmd.SysProcAttr.AmbientCaps = allCaps()
	} else {
		cmd.SysProcAttr.UidMappings = sysMaps(m.UIDs)
		cmd.SysProcAttr.GidMappings = sysMaps(m.GIDs)
		// An unprivileged process may map its own gid only after denying
		// setgroups(2), or it could drop groups that restrict it.
		cmd.SysProcAttr.GidMappingsEnableSetgroups = m.Kind == MapIdentity || m.Kind == MapKeepID
		if m.Kind == MapKeepID {
			// Our uid is the user, whom keep-id maps to the user's own
			// non-zero id: the child stays that id, so that what it writes
			// (a container's state, its log) stays the user's, and keeps
			// its capabilities through execve as ambient ones.
			cmd.SysProcAttr.AmbientCaps = allCaps()
		}
	}

	if err := c.startLocked(cmd); err != nil {
		if syncR != nil {
			syncR.Close()
		}
		return startError(err)
	}
	if syncR == nil {
		return nil
	}
	syncR.Close()
	if err := writeMaps(newuidmap, newgidmap, cmd.Process.Pid, m); err != nil {
		c.abort()
		return err
	}
	// An error here means the child is gone already; Wait reports how.
	syncW.Write([]byte{1})
	return nil
}

// allCaps lists every capability the running kernel knows; nil if it
// cannot tell (the child then executes itself again to gain them).
func allCaps() []uintptr {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return nil
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || last < 0 || last > 63 {
		return nil
	}
	caps := make([]uintptr, last+1)
	for c := range caps {
		caps[c] = uintptr(c)
	}
	return caps
}

func (c *Cmd) startLocked(cmd *exec.Cmd) error {
	if c.ForwardSignals {
		// Before the child exists, so that no signal is missed.
		c.sigs = make(chan os.Signal, 4)
		signal.Notify(c.sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	}
	done, err := startOnLockedThread(cmd)
	if err != nil {
		c.stopForwarding()
		return err
	}
	c.done, c.cmd, c.Process = done, cmd, cmd.Process
	if c.sigs != nil {
		fromTerminal := ForegroundOfTerminal()
		go func(p *os.Process, sigs chan os.Signal) {
			for s := range sigs {
				if !fromTerminal || s != syscall.SIGINT && s != syscall.SIGQUIT {
					p.Signal(s)
				}
			}
		}(c.Process, c.sigs)
	}
	return nil
}

func (c *Cmd) stopForwarding() {
	if c.sigs != nil {
		signal.Stop(c.sigs)
		close(c.sigs)
		c.sigs = nil
	}
}

// startOnLockedThread starts cmd from a goroutine locked to its OS thread
// and keeps that goroutine (and thread) in cmd.Wait, whose result arrives
// on the returned channel. Pdeathsig fires when the thread that forked the
// child exits, not the process (golang/go#27505), and the Go runtime may
// retire an idle unlocked thread at any time.
func startOnLockedThread(cmd *exec.Cmd) (chan error, error) {
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

// ClearInheritedCaps empties the calling thread's inheritable and ambient
// capability sets, which a child that Cmd.Start gave ambient capabilities
// holds in full. Processes that must not keep capabilities through an
// execve clear them first, on the thread that executes: a container's
// init before it starts the container's processes (with a full
// inheritable set, a non-root process gains a file's inheritable
// capabilities on execve: runc's CVE-2022-29162), and a process that
// drops its bounding set to exec without capabilities.
func ClearInheritedCaps() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	if data[0].Inheritable == 0 && data[1].Inheritable == 0 {
		return nil
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear inheritable capabilities: %w", err)
	}
	return nil
}

// abort kills a child whose setup failed and reaps it.
func (c *Cmd) abort() {
	c.Process.Kill()
	<-c.done
	c.done = nil
	c.ProcessState = c.cmd.ProcessState
	c.stopForwarding()
}

// Wait waits for the child to exit, like exec.Cmd.Wait: nil for status 0,
// an *exec.ExitError otherwise. Status 125 with "nook: enter user
// namespace" on the child's stderr means the bootstrap inside failed.
func (c *Cmd) Wait() error {
	if c.done == nil {
		return errors.New("rootless: Wait without a successful Start, or called twice")
	}
	err := <-c.done
	c.done = nil
	c.ProcessState = c.cmd.ProcessState
	c.stopForwarding()
	return err
}

// writeMaps installs m for the process pid with newuidmap and newgidmap.
// The two maps are independent files: it writes them at once (each helper
// is a setuid process start, about a millisecond).
func writeMaps(newuidmap, newgidmap string, pid int, m *Mapping) error {
	gidErr := make(chan error, 1)
	go func() { gidErr <- runHelper(newgidmap, pid, m.GIDs) }()
	return cmp.Or(runHelper(newuidmap, pid, m.UIDs), <-gidErr)
}

// runHelper runs newuidmap or newgidmap PID (CONTAINER HOST SIZE)...
func runHelper(path string, pid int, maps []IDMap) error {
	args := []string{strconv.Itoa(pid)}
	for _, e := range maps {
		args = append(args, strconv.FormatUint(uint64(e.ContainerID), 10),
			strconv.FormatUint(uint64(e.HostID), 10), strconv.FormatUint(uint64(e.Size), 10))
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err == nil {
		return nil
	}
	tool := path[strings.LastIndexByte(path, '/')+1:]
	if msg := strings.TrimSpace(string(out)); msg != "" {
		err = fmt.Errorf("%w: %s", err, msg)
	}
	file := subUIDFile
	if tool == "newgidmap" {
		file = subGIDFile
	}
	return &Error{
		Op:  "run " + tool + " " + strings.Join(args, " "),
		Err: err,
		hint: fmt.Sprintf("%s must be setuid root or have file capabilities (ls -l %s; getcap %s), "+
			"and %s must grant these ranges to you", tool, path, path, file),
	}
}

// childEnv returns env (os.Environ() if nil) without our own variables, plus add.
func childEnv(env []string, add ...string) []string {
	if env == nil {
		env = os.Environ()
	}
	out := make([]string, 0, len(env)+len(add)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, envEntry+"=") && !strings.HasPrefix(kv, envEntry+"_") {
			out = append(out, kv)
		}
	}
	return append(out, add...)
}

func sysMaps(maps []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(maps))
	for i, e := range maps {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
	}
	return out
}
