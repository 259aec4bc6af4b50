package rootless

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Environment variables that tell a re-executed binary what it is. They are
// removed before the entry point runs, so its own children never see them.
const (
	envEntry = "_NOOK_REEXEC"       // name of the registered entry point; marks a child
	envSync  = "_NOOK_REEXEC_SYNC"  // fd to read one byte from once newuidmap ran (MapSubIDs only)
	envExecs = "_NOOK_REEXEC_EXECS" // self re-execs done so far
	envPPID  = "_NOOK_REEXEC_PPID"  // host pid of the parent, to detect an early parent death
	envSelf  = "_NOOK_SELF"         // an entry point started by Self: no namespace bootstrap
)

// ppidDetached in envPPID marks a child that must outlive its parent.
const ppidDetached = "detached"

// maxExecs bounds the self re-exec: one is always enough, because a
// process whose uid is mapped to 0 gains every capability on execve.
const maxExecs = 1

// exitBootstrap is the exit status of a child that could not finish
// entering the namespace; the reason is on its stderr. 125 is what podman
// and env(1) use for "the tool failed, not the command".
const exitBootstrap = 125

var (
	entriesMu sync.Mutex
	entries   = map[string]func() int{}
)

// Register makes main runnable as a child named name in nook's user
// namespace (see Command). Call it from an init function, or at least
// before Init, in every binary that starts or is started as that child.
// main runs as uid 0 inside with full capabilities there; its return value
// is the child's exit status. Register panics if name is empty or already
// registered: that is a programming error.
func Register(name string, main func() int) {
	if name == "" || main == nil {
		panic("rootless: Register with an empty name or nil main")
	}
	entriesMu.Lock()
	defer entriesMu.Unlock()
	if _, dup := entries[name]; dup {
		panic("rootless: Register called twice for " + strconv.Quote(name))
	}
	entries[name] = main
}

func lookupEntry(name string) func() int {
	entriesMu.Lock()
	defer entriesMu.Unlock()
	return entries[name]
}

// Init must be the first call in main (and in TestMain), before flags are
// parsed. When this process was started by Cmd.Start, Init finishes
// entering the namespace, runs the registered entry point and exits the
// process with its status: it never returns. Otherwise it returns false at
// once, without side effects. (It returns a bool so main can read
// "if rootless.Init() { return }" in the style of moby's reexec.Init.)
//
// When the bootstrap fails, the child prints "nook: enter user namespace:
// CAUSE" to its stderr and exits with status 125.
func Init() bool {
	if name, ok := os.LookupEnv(envSelf); ok {
		os.Unsetenv(envSelf)
		main := lookupEntry(name)
		if main == nil {
			fmt.Fprintf(os.Stderr, "nook: no entry point %q registered in %s\n", name, os.Args[0])
			os.Exit(exitBootstrap)
		}
		os.Exit(main())
	}
	name, ok := os.LookupEnv(envEntry)
	if !ok {
		return false
	}
	main, err := bootstrap(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nook: enter user namespace: %v\n", err)
		os.Exit(exitBootstrap)
	}
	os.Exit(main())
	return true
}

// bootstrap runs in the child. With MapSubIDs it first waits for the parent
// to install the maps (and, without ambient capabilities, re-executes
// itself: it does not return then).
func bootstrap(name string) (func() int, error) {
	main := lookupEntry(name)
	if main == nil {
		return nil, fmt.Errorf("no entry point %q registered in %s", name, os.Args[0])
	}
	if fd, ok := os.LookupEnv(envSync); ok {
		if err := waitMapped(fd); err != nil {
			return nil, err
		}
		if caps, err := effectiveCaps(); err == nil && caps == 0 {
			return nil, reexecMapped() // no ambient capabilities came
		}
	}
	if err := rearmPdeathsig(); err != nil {
		return nil, err
	}
	caps, err := effectiveCaps()
	if err != nil {
		return nil, err
	}
	if caps == 0 {
		return nil, fmt.Errorf("no capabilities inside the namespace (uid %d)", os.Getuid())
	}
	for _, k := range []string{envEntry, envSync, envExecs, envPPID} {
		os.Unsetenv(k)
	}
	return main, nil
}

// waitMapped waits until the parent has run newuidmap and newgidmap.
func waitMapped(fdStr string) error {
	fd, err := strconv.Atoi(fdStr)
	if err != nil {
		return fmt.Errorf("parse %s=%q: %w", envSync, fdStr, err)
	}
	f := os.NewFile(uintptr(fd), "nook-sync")
	var b [1]byte
	_, err = io.ReadFull(f, b[:])
	f.Close()
	os.Unsetenv(envSync)
	if err != nil {
		// The parent closed the pipe without writing: it failed and says why.
		return fmt.Errorf("wait for id maps: %w", err)
	}
	return nil
}

// reexecMapped executes /proc/self/exe again with the same arguments, for
// a child that came without ambient capabilities (see Cmd.Start): its
// first execve happened before uid_map existed, when its uid was
// unmapped, so the kernel gave it no capabilities; now its uid is 0
// inside, and an execve as uid 0 grants the full set. The pid, and with
// it the maps, stays the same.
func reexecMapped() error {
	n, _ := strconv.Atoi(os.Getenv(envExecs))
	if n >= maxExecs {
		return fmt.Errorf("re-exec loop: already re-executed %d times", n)
	}
	os.Setenv(envExecs, strconv.Itoa(n+1))
	err := unix.Exec("/proc/self/exe", os.Args, os.Environ())
	return fmt.Errorf("re-exec /proc/self/exe: %w", err)
}

// rearmPdeathsig sets PR_SET_PDEATHSIG to SIGKILL again. The kernel clears
// it whenever a process's capabilities grow (commit_creds), which the
// re-exec in reexecMapped does, when it happens; rootlesskit#65 is the
// same bug. Then it
// checks that the parent is still the one that started us: if it died
// before the prctl, no signal will ever come. In a new PID namespace
// getppid returns 0 and that window cannot be closed.
func rearmPdeathsig() error {
	if os.Getenv(envPPID) == ppidDetached {
		return nil
	}
	ppid, err := strconv.Atoi(os.Getenv(envPPID))
	if err != nil {
		return fmt.Errorf("started without rootless.Command: %s=%q", envPPID, os.Getenv(envPPID))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("set parent death signal: %w", err)
	}
	if got := unix.Getppid(); got != 0 && got != ppid {
		return fmt.Errorf("parent %d exited before the child started", ppid)
	}
	return nil
}

// effectiveCaps returns the low 32 bits of the effective capability set.
func effectiveCaps() (uint32, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData // version 3 fills two structs
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	return data[0].Effective, nil
}
