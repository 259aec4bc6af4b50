package watch

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/nook-dev/nook/internal/testenv"

	"github.com/google/go-cmp/cmp"
)

// inUserNS marks the copy of the test binary that runs inside a new user
// namespace, where it may lower its own inotify limit.
const inUserNS = "NOOK_WATCH_TEST_IN_USERNS"

// TestWatchLimitKeepsWorking hits a real ENOSPC from inotify_add_watch: in a
// user namespace of its own the test lowers user.max_inotify_watches to 3
// (a per-namespace limit; the host's fs.inotify.max_user_watches is not
// touched), watches a project of six folders, and expects one LimitError
// and changes still reported in the folders that got a watch.
func TestWatchLimitKeepsWorking(t *testing.T) {
	if os.Getenv(inUserNS) == "" {
		reexecInUserNS(t)
		return
	}
	if err := os.WriteFile("/proc/sys/user/max_inotify_watches", []byte("3"), 0o644); err != nil {
		t.Fatalf("lower the limit: %v", err)
	}
	f := newFixture(t)
	for _, d := range []string{"d1", "d2", "d3", "d4", "d5"} {
		f.write(d+"/f.txt", d)
	}
	w, err := New(f.root, Options{Quiet: testQuiet})
	if err != nil {
		t.Fatalf("New = %v, want a watcher for what fits", err)
	}
	f.w = w
	defer w.Close()

	var le *LimitError
	if err := <-w.Errors(); !errors.As(err, &le) || le.Sysctl != sysctlWatches || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Errors() gave %v, want a *LimitError for %s wrapping ENOSPC", err, sysctlWatches)
	}
	if len(w.Errors()) != 0 {
		t.Errorf("%d more errors queued; the limit must be reported once", len(w.Errors()))
	}
	// The walk goes in lexical order: the root, d1 and d2 fit.
	f.write("d1/f.txt", "changed")
	f.write("d5/f.txt", "changed, unseen")
	paths, _ := union(f.sync())
	if diff := cmp.Diff([]string{"d1/f.txt"}, paths); diff != "" {
		t.Errorf("paths with the limit hit (-want +got):\n%s", diff)
	}
}

// reexecInUserNS runs this test again in a new user namespace that maps
// the current user to root, and fails if the copy fails.
func reexecInUserNS(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchLimitKeepsWorking$", "-test.v")
	cmd.Env = append(os.Environ(), inUserNS+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		testenv.Unavailable(t, "cannot create a user namespace (unprivileged user namespaces disabled?): %v", err)
	}
	if err != nil {
		t.Fatalf("in a user namespace: %v\n%s", err, out)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "%s", out)
	}
}
