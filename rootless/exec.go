package rootless

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/creack/pty"
)

// exec runs a process in a running container. A multithreaded Go program
// cannot setns(2) into a user namespace, so nook does not join the
// container from outside: the container's init, already inside every
// namespace and the rootfs, serves requests on a unix socket in the
// container's folder and starts the process itself. The caller's stdin,
// stdout and stderr travel with the request (SCM_RIGHTS), so the process
// reads and writes them directly; with a terminal, init opens a pty in the
// container and sends the master back.

// ExecRequest is a process to run in a container.
type ExecRequest struct {
	Args []string `json:"args"`
	Env  []string `json:"env,omitempty"`  // added to the container's
	Cwd  string   `json:"cwd,omitempty"`  // default: the container's
	User string   `json:"user,omitempty"` // default: the container's
	Tty  bool     `json:"tty,omitempty"`
	// Files, if set, makes this a sync request instead: write or remove
	// files in the container (see Container.Sync); Args is ignored.
	Files []SyncFile `json:"files,omitempty"`
}

type execReply struct {
	Pid   int    `json:"pid,omitempty"`
	Exit  *int   `json:"exit,omitempty"`
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"`
}

// execSocket is the socket's name in the container's folder; paths are
// built relative to that folder, since an absolute one may pass the
// 108-byte limit of a socket address. It is a SOCK_SEQPACKET socket, so
// each message arrives whole and alone.
const execSocket = "exec.sock"

// reaper is PID 1's record of the processes it waits for on behalf of
// exec clients. The lock is held while such a process starts, so the
// reaper cannot reap it before it is registered.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan int
}

// exited delivers a reaped process's status to its exec client, if any.
func (r *reaper) exited(pid, status int) {
	r.mu.Lock()
	ch := r.waiting[pid]
	delete(r.waiting, pid)
	r.mu.Unlock()
	if ch != nil {
		ch <- status
	}
}

// listenExec opens the exec socket in dir (on the host, before
// pivot_root: the listening socket keeps working afterwards, and its path
// is not reachable from inside the container).
func listenExec(dir string) (*net.UnixListener, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if err := os.Chdir(dir); err != nil {
		return nil, fmt.Errorf("exec socket: %w", err)
	}
	defer os.Chdir(wd)
	os.Remove(execSocket)
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: execSocket, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("exec socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	return l, nil
}

// serveExec answers exec requests until the listener is closed.
func serveExec(l *net.UnixListener, spec *Spec, r *reaper) {
	for {
		conn, err := l.AcceptUnix()
		if err != nil {
			return
		}
		go handleExec(conn, spec, r)
	}
}

func handleExec(conn *net.UnixConn, spec *Spec, r *reaper) {
	defer conn.Close()
	var req ExecRequest
	files, err := recvMsg(conn, &req)
	defer closeAll(files)
	if err != nil {
		return
	}
	fail := func(code int, err error) { sendMsg(conn, execReply{Error: err.Error(), Code: code}) }
	if len(req.Files) > 0 {
		if err := applySync(spec, req.Files, files); err != nil {
			fail(1, err)
			return
		}
		zero := 0
		sendMsg(conn, execReply{Exit: &zero})
		return
	}
	p := spec.Process
	p.Args = req.Args
	p.Env = mergeEnvList(p.Env, req.Env)
	if req.Cwd != "" {
		p.Cwd = req.Cwd
	}
	if req.User != "" {
		p.User = req.User
	}
	p.Terminal = req.Tty
	cmd, err := mainCommand(&p)
	if err != nil {
		fail(exitCodeFor(err), err)
		return
	}
	var master, slave *os.File
	if req.Tty {
		if master, slave, err = pty.Open(); err != nil {
			fail(exitSetup, fmt.Errorf("open a terminal: %w", err))
			return
		}
		defer master.Close()
		defer slave.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	} else if len(files) == 3 {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = files[0], files[1], files[2]
	} else {
		fail(exitSetup, errors.New("exec without a terminal needs stdin, stdout and stderr"))
		return
	}
	ch := make(chan int, 1)
	r.mu.Lock()
	err = startCleared(cmd)
	if err == nil {
		r.waiting[cmd.Process.Pid] = ch
	}
	r.mu.Unlock()
	if err != nil {
		fail(exitCodeFor(err), err)
		return
	}
	if slave != nil {
		// Only the process keeps the slave open now, so the client's reads
		// of the master end (EIO) as soon as it exits.
		slave.Close()
	}
	if master != nil {
		err = sendMsg(conn, execReply{Pid: cmd.Process.Pid}, master)
	} else {
		err = sendMsg(conn, execReply{Pid: cmd.Process.Pid})
	}
	if err != nil {
		cmd.Process.Kill()
	}
	status := <-ch
	sendMsg(conn, execReply{Exit: &status})
}

func mergeEnvList(base, add []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range add {
		k := kv
		if i := indexByte([]byte(kv), '='); i >= 0 {
			k = kv[:i]
		}
		kept := out[:0]
		for _, e := range out {
			if len(e) <= len(k) || e[:len(k)+1] != k+"=" {
				kept = append(kept, e)
			}
		}
		out = append(kept, kv)
	}
	return out
}

// Exec runs req in the running container and returns its exit status.
// Without a terminal the process uses stdin, stdout and stderr directly;
// with one, Exec returns after onTerminal, which gets the pty's master and
// should copy between it and the user's terminal until it is done.
func (c *Container) Exec(req ExecRequest, stdin, stdout, stderr *os.File, onTerminal func(master *os.File)) (int, error) {
	if c.State.Status != StatusRunning {
		return 0, fmt.Errorf("exec in %s: the container is not running", c.Name)
	}
	dir, err := os.Open(c.Dir)
	if err != nil {
		return 0, err
	}
	defer dir.Close()
	addr := filepath.Join("/proc/self/fd", strconv.Itoa(int(dir.Fd())), execSocket)
	conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: addr, Net: "unixpacket"})
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", c.Name, err)
	}
	defer conn.Close()
	if req.Tty {
		err = sendMsg(conn, req)
	} else {
		err = sendMsg(conn, req, stdin, stdout, stderr)
	}
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", c.Name, err)
	}
	var started execReply
	files, err := recvMsg(conn, &started)
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", c.Name, err)
	}
	if started.Error != "" {
		closeAll(files)
		return started.Code, &InitError{Code: started.Code, Msg: started.Error}
	}
	if req.Tty {
		if len(files) != 1 {
			closeAll(files)
			return exitSetup, errors.New("exec: no terminal came back")
		}
		copied := make(chan struct{})
		go func() {
			onTerminal(files[0])
			files[0].Close()
			close(copied)
		}()
		defer func() { <-copied }() // the last output, then return
	}
	var done execReply
	if _, err := recvMsg(conn, &done); err != nil || done.Exit == nil {
		return exitSetup, fmt.Errorf("exec in %s: lost the process (the container stopped?)", c.Name)
	}
	return *done.Exit, nil
}
