package watch

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// LimitError reports that an inotify limit of the user was reached. The
// watcher keeps working for the folders it already watches; changes in the
// others are not seen until the limit is raised and watching restarts.
type LimitError struct {
	Path    string // the folder that could not be watched, or the root
	Sysctl  string // "fs.inotify.max_user_watches" or "fs.inotify.max_user_instances"
	Current int    // the limit when it was hit; 0 if unknown
	Err     error  // the errno from inotify
}

func (e *LimitError) Error() string {
	limit := e.Sysctl
	if e.Current > 0 {
		limit = fmt.Sprintf("%s=%d", e.Sysctl, e.Current)
	}
	return fmt.Sprintf("watch %q: inotify limit reached (%s): %v", e.Path, limit, e.Err)
}

func (e *LimitError) Unwrap() error { return e.Err }

// Hint says how to raise the limit, with the exact commands: one for now,
// one that survives a reboot.
func (e *LimitError) Hint() string {
	floor, what := 524288, "folders"
	if e.Sysctl == sysctlInstances {
		floor, what = 512, "programs watching files"
	}
	want := max(floor, 2*e.Current)
	var b strings.Builder
	fmt.Fprintf(&b, "too many %s for the inotify limit; raise it:\n", what)
	fmt.Fprintf(&b, "  sudo sysctl -w %s=%d\n", e.Sysctl, want)
	fmt.Fprintf(&b, "and to keep it after a reboot:\n")
	fmt.Fprintf(&b, "  echo %s=%d | sudo tee /etc/sysctl.d/90-nook-inotify.conf", e.Sysctl, want)
	if e.Sysctl == sysctlWatches {
		b.WriteString("\nor add large folders (build outputs, caches) to .nookignore")
	}
	return b.String()
}

const (
	sysctlWatches   = "fs.inotify.max_user_watches"
	sysctlInstances = "fs.inotify.max_user_instances"
)

// limitError turns the errnos inotify uses for its per-user limits into a
// LimitError and returns any other error unchanged, with path added.
//
// inotify_add_watch fails with ENOSPC ("no space left on device") when
// max_user_watches is used up; inotify_init1 fails with EMFILE ("too many
// open files") when max_user_instances is (or, rarely, RLIMIT_NOFILE, which Go
// raises to the hard limit at start).
func limitError(path string, err error) error {
	var name string
	switch {
	case errors.Is(err, syscall.ENOSPC):
		name = sysctlWatches
	case errors.Is(err, syscall.EMFILE):
		name = sysctlInstances
	default:
		return fmt.Errorf("watch %q: %w", path, err)
	}
	return &LimitError{Path: path, Sysctl: name, Current: readSysctl(name), Err: err}
}

// readSysctl returns the value of an integer sysctl, or 0 when unreadable.
func readSysctl(name string) int {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}
