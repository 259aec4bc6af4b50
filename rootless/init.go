package rootless

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// The container's init is nook itself, re-executed from a sealed form of
// its binary (a read-only overlay of it, else an in-memory copy: see
// sealedSelf) as PID 1 of the container's pid namespace. It
// builds the rootfs, starts the main process, reaps every zombie, forwards
// signals to the main process and exits with its status; when it exits the
// kernel kills whatever is left in the namespace.
const entryInit = "container-init"

func init() { Register(entryInit, initMain) }

// envAwaitMaps is "true" for an init whose starter writes its id maps
// after the clone: init then waits for the word that they are written.
const envAwaitMaps = "_NOOK_AWAIT_MAPS"

// Files init gets from its starter, after stdin, stdout and stderr.
const (
	initSpecFD    = 3 // the Spec as JSON; read to EOF
	initStatusFD  = 4 // init writes one line: "ok" once the main process runs, or the error
	initConsoleFD = 5 // a unix socket: with a terminal, init sends the pty master on it
)

// Exit statuses of a container that never ran its command, as Docker's.
const (
	exitSetup      = 125 // the container could not be built
	exitCannotRun  = 126 // the command exists but cannot run
	exitNotFound   = 127 // the command does not exist
	exitSignalBase = 128 // + signal number, for a main process killed by one
)

func initMain() int {
	status := os.NewFile(initStatusFD, "status")
	fail := func(code int, err error) int {
		fmt.Fprintf(status, "%d %v\n", code, err)
		return code
	}
	// Nothing the starter passed beyond stdio and our two pipes may reach
	// the container (CVE-2024-21626 leaked a host directory fd this way).
	if err := unix.CloseRange(initSpecFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fail(exitSetup, fmt.Errorf("close inherited files: %w", err))
	}
	// Forward signals from the start: one sent while we set up must not be
	// lost. PID 1 ignores what it has no handler for, so catch them all.
	// The Go runtime enables each signal with a round trip to a thread of
	// its own (about 0.7 ms for all 65), so that runs while we wait for
	// the spec (and our id maps), mount and start the main process.
	sigs := make(chan os.Signal, 32)
	notified := make(chan struct{})
	go func() { signal.Notify(sigs); close(notified) }()

	// The spec is one JSON line. A line "mapped" follows once our id maps
	// are written, if our starter writes them now (nothing may be made
	// before: overlayfs refuses a mounter whose ids are unmapped); with a
	// private network, a line "attached" once our starter has attached it.
	awaitMaps := os.Getenv(envAwaitMaps) == "true"
	os.Unsetenv(envAwaitMaps)
	specIn := bufio.NewReader(os.NewFile(initSpecFD, "spec"))
	var spec Spec
	line, err := specIn.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &spec)
	}
	if err != nil {
		return fail(exitSetup, fmt.Errorf("read spec: %w", err))
	}
	if awaitMaps {
		if line, _ := specIn.ReadString('\n'); line != "mapped\n" {
			return fail(exitSetup, errors.New("our id maps were not written"))
		}
	}
	r := &reaper{waiting: map[int]chan int{}}
	var execs *net.UnixListener
	if spec.ExecDir != "" {
		l, err := listenExec(spec.ExecDir)
		if err != nil {
			return fail(exitSetup, err)
		}
		defer l.Close()
		execs = l
	}
	if err := setupRootfs(&spec); err != nil {
		return fail(exitSetup, err)
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fail(exitSetup, fmt.Errorf("set hostname: %w", err))
		}
	}
	cmd, err := mainCommand(&spec.Process)
	if err != nil {
		return fail(exitCodeFor(err), err)
	}
	if spec.Network == NetworkPrivate {
		if line, _ := specIn.ReadString('\n'); line != "attached\n" {
			return fail(exitSetup, errors.New("the network was not attached"))
		}
	}
	// Servers want more open files than the usual soft limit of 1024:
	// raise it to the hard limit, as podman does. (Go restores the soft
	// limit it found at start in the processes it starts, unless the
	// limit is set through syscall.Setrlimit.)
	var nofile syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile) == nil {
		nofile.Cur = nofile.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nofile)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail(exitSetup, fmt.Errorf("set no_new_privs: %w", err))
	}
	if spec.Process.Terminal {
		slave, err := sendConsole()
		if err != nil {
			return fail(exitSetup, err)
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		defer slave.Close()
	}
	r.mu.Lock()
	err = startCleared(cmd)
	r.mu.Unlock()
	if err != nil {
		return fail(exitCodeFor(err), fmt.Errorf("start %s: %w", spec.Process.Args[0], err))
	}
	// Our starter forwards signals only once we say "ok", and exec'd
	// processes start only then, so neither can come before every
	// handler is in place; a SIGCHLD may have (reap looks first).
	<-notified
	if execs != nil {
		go serveExec(execs, &spec, r)
	}
	fmt.Fprintln(status, "ok")
	status.Close()
	return r.reap(cmd.Process.Pid, sigs)
}

// startCleared starts a process of the container's from a thread whose
// inheritable and ambient capabilities are empty. Init holds both in
// full on every thread when its starter had ambient capabilities (see
// spawnInit), and a non-root process would keep what they grant; each
// thread has its own sets, so the one that forks must be cleared.
func startCleared(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := ClearInheritedCaps(); err != nil {
		return err
	}
	return cmd.Start()
}

// sendConsole opens a pty in the container's devpts (we are past
// pivot_root), sends its master to the starter and returns the slave for
// the main process.
func sendConsole() (*os.File, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open a terminal: %w", err)
	}
	defer master.Close()
	sock, err := net.FileConn(os.NewFile(initConsoleFD, "console"))
	if err != nil {
		slave.Close()
		return nil, fmt.Errorf("send terminal: %w", err)
	}
	defer sock.Close()
	if err := sendMsg(sock.(*net.UnixConn), struct{}{}, master); err != nil {
		slave.Close()
		return nil, fmt.Errorf("send terminal: %w", err)
	}
	return slave, nil
}

// exitCodeFor maps a failure to start the main process to Docker's codes.
func exitCodeFor(err error) int {
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return exitNotFound
	case errors.Is(err, os.ErrPermission), errors.Is(err, unix.ENOEXEC):
		return exitCannotRun
	}
	return exitSetup
}

// mainCommand prepares the main process: its path found on the
// container's PATH, its user from the container's /etc/passwd, its
// working folder inside the rootfs (we are past pivot_root: every path is
// the container's).
func mainCommand(p *Process) (*exec.Cmd, error) {
	if len(p.Args) == 0 {
		return nil, errors.New("no command: the image has no cmd or entrypoint; give one")
	}
	path, err := lookPath(p.Args[0], p.Env)
	if err != nil {
		return nil, err
	}
	cred, home, err := lookupUser(p.User, p.NoSetGroups)
	if err != nil {
		return nil, err
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := os.MkdirAll(cwd, 0o755); err != nil {
		return nil, fmt.Errorf("working folder %s: %w", cwd, err)
	}
	env := p.Env
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+home)
	}
	if !hasEnv(env, "PATH") {
		env = append(env, "PATH="+defaultPath)
	}
	cmd := &exec.Cmd{Path: path, Args: p.Args, Env: env, Dir: cwd, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if p.Terminal {
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
	}
	return cmd, nil
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func hasEnv(env []string, k string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			return true
		}
	}
	return false
}

// lookPath finds a command on the container's PATH (not init's, which is
// the host's).
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		if _, err := os.Stat(file); err != nil {
			return "", fmt.Errorf("%s: not found (no such file or directory): %w", file, os.ErrNotExist)
		}
		return file, nil
	}
	path := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q: %w", file, exec.ErrNotFound)
}

// reap is PID 1's loop: it reaps every child that exits, hands the status
// of exec'd processes to their clients, forwards each signal to the main
// process, and returns the main process's status as an exit code once it
// has exited. It looks for exited children before the first signal: the
// main process starts before every handler is in place (see initMain).
func (r *reaper) reap(main int, sigs chan os.Signal) int {
	for sig := os.Signal(unix.SIGCHLD); ; sig = <-sigs {
		switch sig {
		case unix.SIGCHLD:
		case unix.SIGURG: // the Go runtime's own preemption signal
			continue
		default:
			unix.Kill(main, sig.(syscall.Signal))
			continue
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
			status := ws.ExitStatus()
			if ws.Signaled() {
				status = exitSignalBase + int(ws.Signal())
			}
			if pid == main {
				return status
			}
			r.exited(pid, status)
		}
	}
}

// readAllLimited reads at most n bytes of r.
func readAllLimited(r io.Reader, n int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, n+1))
	if err == nil && int64(len(data)) > n {
		err = fmt.Errorf("larger than %d bytes", n)
	}
	return data, err
}
