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
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// sealedSelf returns a sealed in-memory copy of the running binary. The
// container's init runs from it rather than from the nook file on disk,
// which the user (and so the container's root) can write: a container
// that opens /proc/1/exe for writing reaches only this copy, and the seals
// refuse the write (CVE-2019-5736).
//
// Copying 10 MB costs about 6 ms, a sixth of a start, and the copy stays
// in memory while a container runs from it. So a process makes one copy
// and starts every container it starts from it (a monitor restarting its
// container), and hands it down: a project's network supervisor passes
// its copy to every monitor it starts (see InheritSealed), and all of the
// project's containers run from one copy. Sharing is safe because the
// seals make it immutable.
func sealedSelf() (*os.File, error) {
	sealed.once.Do(func() {
		if f := inheritedSealed(); f != nil {
			sealed.f = f
			return
		}
		sealed.f, sealed.err = copySelf()
	})
	return sealed.f, sealed.err
}

var sealed struct {
	once sync.Once
	f    *os.File
	err  error
}

// envSealed names the fd of a sealed copy a child inherits.
const envSealed = "_NOOK_SEALED_FD"

// InheritSealed makes cmd (a nook started with Self) inherit this
// process's sealed copy of the binary, as its next extra file.
func InheritSealed(cmd *exec.Cmd) error {
	f, err := sealedSelf()
	if err != nil {
		return err
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	cmd.Env = append(cmd.Env, envSealed+"="+strconv.Itoa(2+len(cmd.ExtraFiles)))
	return nil
}

// inheritedSealed adopts the copy InheritSealed passed, if it is one: a
// memfd sealed against every change. Otherwise it returns nil, and the
// caller makes its own.
func inheritedSealed() *os.File {
	v, ok := os.LookupEnv(envSealed)
	if !ok {
		return nil
	}
	os.Unsetenv(envSealed)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	unix.CloseOnExec(fd)
	want := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0); err != nil || seals&want != want {
		return nil
	}
	return os.NewFile(uintptr(fd), "nook-init")
}

// copySelf makes a sealed copy of /proc/self/exe. sendfile copies inside
// the kernel, a fifth to a third faster than read and write through a
// buffer (BenchmarkSealedSelf). The pages sendfile moved through its pipe
// may still be referenced for a moment when the seals go on, and
// F_ADD_SEALS then fails with EBUSY: try again a few times, then fall back
// to plain reads and writes into a fresh memfd, which leave no such
// references.
func copySelf() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("seal nook binary: %w", err)
	}
	defer src.Close()
	mem, err := sealedCopy(src, sendfileAll)
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		mem, err = sealedCopy(src, copyPlain)
	}
	if err != nil {
		return nil, fmt.Errorf("seal nook binary: %w", err)
	}
	return mem, nil
}

// sealedCopy copies src from its start into a new memfd with copy and
// seals it against every change.
func sealedCopy(src *os.File, copy func(dst, src *os.File) error) (*os.File, error) {
	fd, err := unix.MemfdCreate("nook-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, err
	}
	mem := os.NewFile(uintptr(fd), "nook-init")
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		mem.Close()
		return nil, err
	}
	if err := copy(mem, src); err != nil {
		mem.Close()
		return nil, err
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	for try := 0; ; try++ {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals)
		if !errors.Is(err, unix.EBUSY) || try == 3 { // 3 is a guess; the kernel waits too
			break
		}
	}
	if err != nil {
		mem.Close()
		return nil, err
	}
	return mem, nil
}

// sendfileAll copies src to dst with sendfile(2).
func sendfileAll(dst, src *os.File) error {
	for {
		n, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), nil, 1<<30)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// copyPlain copies src to dst with read and write: hiding the types from
// io.Copy keeps it from choosing copy_file_range or splice.
func copyPlain(dst, src *os.File) error {
	_, err := io.Copy(struct{ io.Writer }{dst}, struct{ io.Reader }{src})
	return err
}

// RunningInit is a container's init, started by StartInit.
type RunningInit struct {
	Pid int // on the host (in the caller's pid namespace)
	// Console is the master of the main process's terminal, when the spec
	// asked for one; the caller copies between it and the user.
	Console *os.File
	cmd     *exec.Cmd
	done    chan error
}

// InitError is a container that could not start: Code is the exit status
// Docker would report (125 setup, 126 cannot run, 127 not found).
type InitError struct {
	Code int
	Msg  string
	hint string
}

func (e *InitError) Error() string { return e.Msg }

// Hint is the fix for the error, when there is one.
func (e *InitError) Hint() string { return e.hint }

// report is how a monitor tells its starter how the start went, in one
// line: "ok", or "CODE MESSAGE" with an optional tab and hint.
func startReport(code int, err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	var h interface{ Hint() string }
	if errors.As(err, &h) && h.Hint() != "" {
		msg += "\t" + h.Hint()
	}
	return strconv.Itoa(code) + " " + msg
}

// ParseReport reads a monitor's start report: nil for "ok", else an
// *InitError. name is the container's, for a report that never came.
func ParseReport(line, name string) error {
	line = strings.TrimSpace(line)
	if line == "ok" {
		return nil
	}
	code, msg, ok := strings.Cut(line, " ")
	n, err := strconv.Atoi(code)
	if !ok || err != nil {
		return &InitError{Code: exitSetup, Msg: fmt.Sprintf("start %s: its monitor died before the container started", name)}
	}
	msg, hint, _ := strings.Cut(msg, "\t")
	return &InitError{Code: n, Msg: msg, hint: hint}
}

// StartInit starts a container's init for spec in new mount, pid, uts and
// ipc namespaces (and a network namespace unless spec.Network is "host").
// The caller must already be uid 0 in a user namespace (or root). It
// returns once the main process runs, or with an *InitError saying why it
// could not. The init gets SIGKILL if the calling process dies.
func StartInit(spec *Spec, stdin io.Reader, stdout, stderr io.Writer) (*RunningInit, error) {
	return startInit(spec, stdin, stdout, stderr, nil)
}

// startInit is StartInit for a spec with a private network: attach
// connects init's network namespace while init sets up the rootfs, and the
// command starts only after it returned nil.
func startInit(spec *Spec, stdin io.Reader, stdout, stderr io.Writer, attach func(pid int) error) (*RunningInit, error) {
	if spec.Network == NetworkPrivate && attach == nil {
		return nil, errors.New("start container init: a private network needs the monitor to attach it")
	}
	self, err := sealedSelf()
	if err != nil {
		return nil, err
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer specR.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		specW.Close()
		return nil, err
	}
	defer statusR.Close()

	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if spec.Network != "host" {
		flags |= unix.CLONE_NEWNET
	}
	var consoleParent, consoleChild *os.File
	if spec.Process.Terminal {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			specW.Close()
			statusW.Close()
			return nil, fmt.Errorf("start container init: %w", err)
		}
		consoleParent, consoleChild = os.NewFile(uintptr(fds[0]), "console"), os.NewFile(uintptr(fds[1]), "console")
		defer consoleParent.Close()
		defer consoleChild.Close()
	}
	// The sealed copy travels last, as fd 6, so that the dup2s onto 3 to 5
	// cannot clobber it before execve opens it.
	cmd := &exec.Cmd{
		Path:       "/proc/self/fd/" + strconv.Itoa(initConsoleFD+1),
		Args:       []string{"nook-init"},
		Env:        []string{envSelf + "=" + entryInit},
		Stdin:      stdin,
		Stdout:     stdout,
		Stderr:     stderr,
		ExtraFiles: []*os.File{specR, statusW, consoleChild, self},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: flags,
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	in := &RunningInit{cmd: cmd}
	in.done, err = startOnLockedThread(cmd)
	statusW.Close()
	if err != nil {
		specW.Close()
		return nil, fmt.Errorf("start container init: %w", err)
	}
	in.Pid = cmd.Process.Pid
	err = json.NewEncoder(specW).Encode(spec)
	if err == nil && spec.Network == NetworkPrivate {
		if aerr := attach(in.Pid); aerr != nil {
			in.cmd.Process.Kill() // first: init must not see EOF and report that instead
			specW.Close()
			in.Wait()
			// Init may have failed first (a command not found), taking its
			// namespace with it: then its reason is the one to give.
			if line, _ := bufio.NewReader(statusR).ReadString('\n'); line != "" {
				if err := ParseReport(line, "container"); err != nil {
					return nil, err
				}
			}
			var h interface{ Hint() string }
			ie := &InitError{Code: exitSetup, Msg: "connect the container's network: " + aerr.Error()}
			if errors.As(aerr, &h) {
				ie.hint = h.Hint()
			}
			return nil, ie
		}
		_, err = io.WriteString(specW, "attached\n")
	}
	specW.Close()
	line, _ := bufio.NewReader(statusR).ReadString('\n')
	line = strings.TrimSpace(line)
	if err == nil && line == "ok" && consoleParent != nil {
		in.Console, err = recvConsole(consoleParent)
	}
	if err == nil && line == "ok" {
		return in, nil
	}
	in.Wait()
	code, msg, ok := strings.Cut(line, " ")
	n, convErr := strconv.Atoi(code)
	if !ok || convErr != nil {
		n, msg = exitSetup, "container init died before starting the command"
		if err != nil {
			msg += ": " + err.Error()
		}
	}
	return nil, &InitError{Code: n, Msg: msg}
}

// Wait waits for init to exit and returns the container's exit status:
// the main process's, or 128+N if it was killed by signal N.
func (in *RunningInit) Wait() int {
	err := <-in.done
	in.done <- err // Wait may be called again
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return exitSignalBase + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return exitSetup
}

// Signal sends sig to init, which forwards it to the main process (SIGKILL
// kills the whole container).
func (in *RunningInit) Signal(sig syscall.Signal) error {
	return in.cmd.Process.Signal(sig)
}

// recvConsole receives the pty master init sent.
func recvConsole(sock *os.File) (*os.File, error) {
	c, err := net.FileConn(sock)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var none struct{}
	files, err := recvMsg(c.(*net.UnixConn), &none)
	if err != nil {
		return nil, fmt.Errorf("receive the container's terminal: %w", err)
	}
	if len(files) != 1 {
		closeAll(files)
		return nil, errors.New("receive the container's terminal: no file came")
	}
	return files[0], nil
}

// RunOnce runs a container for spec to completion and returns its exit
// status: a build step's container, which keeps nothing but its upper
// folder.
func RunOnce(spec *Spec, stdout, stderr io.Writer) (int, error) {
	c, err := StartInit(spec, nil, stdout, stderr)
	if err != nil {
		return 0, err
	}
	return c.Wait(), nil
}
