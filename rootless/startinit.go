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
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// sealedSelf returns the running binary in a form the container's init
// can run from but no one can write, rather than the nook file on disk,
// which the user (and so the container's root) can write: a container
// that opens /proc/1/exe for writing must not reach nook (CVE-2019-5736).
//
// The first choice is runc's since 1.2: the binary seen through a private
// overlayfs mount with only lower layers, which refuses every write and
// cannot be made writable (overlaySelf). It costs a mount, about a
// millisecond. Where that fails, a sealed in-memory copy, which costs
// about 6 ms for 10 MB and stays in memory while a container runs from it
// (copySelf).
//
// A process makes one and starts every container it starts from it (a
// monitor restarting its container), and hands it down: a project's
// network supervisor passes its own to every monitor it starts (see
// InheritSealed).
func sealedSelf() (*os.File, error) {
	sealed.once.Do(func() {
		if f := inheritedSealed(); f != nil {
			sealed.f = f
			return
		}
		if f, err := overlaySelf(); err == nil {
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

// envSealed names the fd of a sealed binary a child inherits.
const envSealed = "_NOOK_SEALED_FD"

// InheritSealed makes cmd (a nook started with Self) inherit this
// process's sealed binary, as its next extra file.
func InheritSealed(cmd *exec.Cmd) error {
	f, err := sealedSelf()
	if err != nil {
		return err
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	cmd.Env = append(cmd.Env, envSealed+"="+strconv.Itoa(2+len(cmd.ExtraFiles)))
	return nil
}

// inheritedSealed adopts the file InheritSealed passed, if it is sealed:
// a memfd sealed against every change, or a file on a read-only
// overlayfs. Otherwise it returns nil, and the caller makes its own.
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
	if seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0); err == nil && seals&want == want {
		return os.NewFile(uintptr(fd), "nook-init")
	}
	var st unix.Statfs_t
	if unix.Fstatfs(fd, &st) == nil && st.Type == unix.OVERLAYFS_SUPER_MAGIC && st.Flags&unix.ST_RDONLY != 0 {
		return os.NewFile(uintptr(fd), "nook-init")
	}
	unix.Close(fd)
	return nil
}

// overlaySelf opens the running binary through a new overlayfs mount
// whose only layers are the binary's folder and an empty tmpfs. With no
// upper layer overlayfs takes no writes at all, whatever the mount's
// flags, and the mount is attached nowhere, so nothing can reach the
// folder through it but this file. It returns an O_PATH file.
//
// Making the mount needs CAP_SYS_ADMIN over the mount namespace, so a
// thread of our own enters a new one and is thrown away after (it cannot
// go back to the host's).
func overlaySelf() (*os.File, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	dir, name := filepath.Split(exe)
	empty, err := os.MkdirTemp("", "nook-lower-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(empty) // in the host's namespace, nothing is mounted on it
	escape := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := func() (*os.File, error) {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return nil, err
			}
			// Nothing mounted here may reach the host's namespace.
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return nil, err
			}
			// overlayfs refuses layers that nest (ELOOP), and the binary's
			// folder may hold the temporary folder: a tmpfs of its own
			// nests in nothing.
			if err := unix.Mount("tmpfs", empty, "tmpfs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, "size=4k"); err != nil {
				return nil, err
			}
			ctx, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
			if err != nil {
				return nil, err
			}
			defer unix.Close(ctx)
			// The binary's folder on top, so a file of its name in the
			// empty one could not mask it (it has none anyway).
			if err := unix.FsconfigSetString(ctx, "lowerdir", escape.Replace(dir)+":"+escape.Replace(empty)); err != nil {
				return nil, err
			}
			unix.FsconfigSetString(ctx, "xino", "off") // only to keep dmesg quiet
			if err := unix.FsconfigCreate(ctx); err != nil {
				return nil, err
			}
			mnt, err := unix.Fsmount(ctx, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
			if err != nil {
				return nil, err
			}
			defer unix.Close(mnt)
			fd, err := unix.Openat(mnt, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, err
			}
			return os.NewFile(uintptr(fd), "nook-init"), nil
		}()
		done <- result{f, err}
	}()
	r := <-done
	if r.err != nil {
		return nil, fmt.Errorf("open nook through a read-only overlay: %w", r.err)
	}
	return r.f, nil
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
	p, err := spawnInit(shapeOf(spec), stdin, stdout, stderr, nil)
	if err != nil {
		return nil, err
	}
	return p.start(spec, nil)
}

// initShape is what the clone of a container's init depends on; the
// rest comes with its spec.
type initShape struct {
	hostNetwork bool // it shares the caller's network namespace
	terminal    bool // it sends back the master of the main process's pty
}

func shapeOf(spec *Spec) initShape {
	return initShape{hostNetwork: spec.Network == NetworkHost, terminal: spec.Process.Terminal}
}

// pendingInit is a container's init that runs and waits for its spec.
type pendingInit struct {
	in                            *RunningInit
	shape                         initShape
	specW, statusR, consoleParent *os.File
	// mapped, for an init in a user namespace of its own, says whether
	// its id maps are written; nil once read.
	mapped chan error
}

// spawnInit clones a container's init and returns once it waits for its
// spec. via, for a caller outside any user namespace, makes init's user
// namespace in the same clone and runs init from the init copy; its id
// maps are written meanwhile, and start waits for them.
func spawnInit(shape initShape, stdin io.Reader, stdout, stderr io.Writer, via *hostLaunch) (_ *pendingInit, err error) {
	path := "/proc/self/fd/" + strconv.Itoa(initConsoleFD+1)
	var self *os.File
	if via != nil {
		path = via.path
	} else if self, err = sealedSelf(); err != nil {
		return nil, err
	}
	p := &pendingInit{shape: shape}
	var files []*os.File // what to close, with p's, on failure
	defer func() {
		if err != nil {
			closeAll(files)
			p.closeFiles()
		}
	}()
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.specW, files = specW, append(files, specR)
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.statusR, files = statusR, append(files, statusW)
	var consoleChild *os.File
	if shape.terminal {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("start container init: %w", err)
		}
		p.consoleParent, consoleChild = os.NewFile(uintptr(fds[0]), "console"), os.NewFile(uintptr(fds[1]), "console")
		files = append(files, consoleChild)
	}

	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if !shape.hostNetwork {
		flags |= unix.CLONE_NEWNET
	}
	// A sealed copy travels last, as fd 6, so that the dup2s onto 3 to 5
	// cannot clobber it before execve opens it.
	cmd := &exec.Cmd{
		Path:       path,
		Args:       []string{"nook-init"},
		Env:        []string{envSelf + "=" + entryInit, envAwaitMaps + "=" + strconv.FormatBool(via != nil)},
		Stdin:      stdin,
		Stdout:     stdout,
		Stderr:     stderr,
		ExtraFiles: []*os.File{specR, statusW, consoleChild},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: flags,
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	if self != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, self)
	}
	if via != nil {
		// As in Cmd.Start: the execve comes before the maps exist, and
		// ambient capabilities carry the clone's full set through it.
		// Init clears them before it starts anything (startCleared).
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER
		cmd.SysProcAttr.AmbientCaps = allCaps()
	}
	p.in = &RunningInit{cmd: cmd}
	// Init keeps any ambient capabilities its starter has: a monitor
	// that is the user's own id in a keep-id namespace has no others to
	// give it. It clears them before it starts the container's processes.
	p.in.done, err = startOnLockedThread(cmd)
	closeAll(files) // the child's ends
	files = nil
	if err != nil {
		return nil, fmt.Errorf("start container init: %w", err)
	}
	p.in.Pid = cmd.Process.Pid
	if via != nil {
		// Init reads its spec meanwhile, and waits for the word that they
		// are written before it mounts anything.
		p.mapped = make(chan error, 1)
		go func() { p.mapped <- writeMaps(via.newuidmap, via.newgidmap, p.in.Pid, &via.mapping) }()
	}
	return p, nil
}

// initError is err as an *InitError of status 125, keeping its hint.
func initError(op string, err error) *InitError {
	ie := &InitError{Code: exitSetup, Msg: op + ": " + err.Error()}
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		ie.hint = h.Hint()
	}
	return ie
}

func (p *pendingInit) closeFiles() {
	for _, f := range []*os.File{p.specW, p.statusR, p.consoleParent} {
		if f != nil {
			f.Close()
		}
	}
}

// cancel kills a pending init, waits for it and releases its files.
func (p *pendingInit) cancel() {
	p.in.cmd.Process.Kill() // first: init must not see EOF and report that instead
	p.closeFiles()
	if p.mapped != nil {
		<-p.mapped // its pid stays init's (a zombie's) until Wait
	}
	p.in.Wait()
}

// awaitMaps waits for init's id maps, if it has some coming.
func (p *pendingInit) awaitMaps() error {
	if p.mapped == nil {
		return nil
	}
	err := <-p.mapped
	p.mapped = nil
	return err
}

// start sends init its spec and returns once the main process runs. For
// a private network, attach connects init's network namespace while init
// sets up the rootfs; the command starts only after it returned nil.
func (p *pendingInit) start(spec *Spec, attach func(pid int) error) (*RunningInit, error) {
	in := p.in
	defer p.closeFiles()
	if spec.Network == NetworkPrivate && attach == nil {
		p.cancel()
		return nil, errors.New("start container init: a private network needs the monitor to attach it")
	}
	if shapeOf(spec) != p.shape {
		p.cancel()
		return nil, errors.New("start container init: it was cloned for another spec")
	}
	err := json.NewEncoder(p.specW).Encode(spec)
	if p.mapped != nil {
		// Whatever happened to the spec: nothing may wait for init (and
		// free its pid) while the helpers still write to it.
		if merr := p.awaitMaps(); merr != nil {
			p.cancel()
			return nil, initError("start container init", merr)
		}
		if err == nil {
			_, err = io.WriteString(p.specW, "mapped\n")
		}
	}
	if err == nil && spec.Network == NetworkPrivate {
		if aerr := attach(in.Pid); aerr != nil {
			in.cmd.Process.Kill() // first: init must not see EOF and report that instead
			p.specW.Close()
			in.Wait()
			// Init may have failed first (a command not found), taking its
			// namespace with it: then its reason is the one to give.
			if line, _ := bufio.NewReader(p.statusR).ReadString('\n'); line != "" {
				if err := ParseReport(line, "container"); err != nil {
					return nil, err
				}
			}
			return nil, initError("connect the container's network", aerr)
		}
		_, err = io.WriteString(p.specW, "attached\n")
	}
	p.specW.Close()
	line, _ := bufio.NewReader(p.statusR).ReadString('\n')
	line = strings.TrimSpace(line)
	if err == nil && line == "ok" && p.consoleParent != nil {
		in.Console, err = recvConsole(p.consoleParent)
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
