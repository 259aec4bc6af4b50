package rootless

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// Error is a failure to create nook's user namespace or to install its id
// mapping. Callers print Error() and then Hint() as "hint: ...".
type Error struct {
	Op   string // what failed: "create user namespace", "run newuidmap 4242 0 1000 1"
	Err  error  // the cause; for the setuid helpers it includes their stderr
	hint string
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Hint returns the command or step that fixes the error, or "" if nook
// does not know one.
func (e *Error) Hint() string { return e.hint }

// WithHint returns err with hint, the command that fixes it, as its
// Hint method says it: what the CLI prints after "hint:".
func WithHint(err error, hint string) error { return &hinted{err, hint} }

type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }
func (e *hinted) Hint() string  { return e.hint }

// startError explains why clone(CLONE_NEWUSER) (or, for Go-installed maps,
// the uid_map write right after it) failed.
func startError(err error) error {
	e := &Error{Op: "create user namespace", Err: err}
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.ENOSPC):
		e.hint = usernsHint(err)
	}
	return e
}

// usernsHint names the sysctl that blocks unprivileged user namespaces on
// this machine, or lists all candidates when none is obviously set.
func usernsHint(err error) string {
	var fixes []string
	// Debian and Ubuntu kernels before 6.x carried this out-of-tree knob.
	if sysctl("kernel/unprivileged_userns_clone") == "0" {
		fixes = append(fixes, "sudo sysctl -w kernel.unprivileged_userns_clone=1")
	}
	switch max := sysctl("user/max_user_namespaces"); {
	case max == "0":
		// Any positive number works; 28633 is the default of a machine with
		// about 4 GB of memory (the kernel derives it from RAM).
		fixes = append(fixes, "sudo sysctl -w user.max_user_namespaces=28633")
	case errors.Is(err, syscall.ENOSPC) && max != "":
		if n, convErr := strconv.Atoi(max); convErr == nil {
			fixes = append(fixes, fmt.Sprintf("all %d user namespaces allowed by user.max_user_namespaces are in use; "+
				"raise the limit: sudo sysctl -w user.max_user_namespaces=%d", n, 2*n))
		}
	}
	// Ubuntu 24.04 and later (AppArmor); clone fails with EACCES.
	if sysctl("kernel/apparmor_restrict_unprivileged_userns") == "1" {
		fixes = append(fixes, "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 "+
			"(or load an AppArmor profile for nook with the \"userns,\" rule)")
	}
	if len(fixes) == 0 {
		return "unprivileged user namespaces look disabled: check that kernel.unprivileged_userns_clone is 1 " +
			"(if it exists), user.max_user_namespaces is above 0, and on Ubuntu " +
			"kernel.apparmor_restrict_unprivileged_userns is 0 (sysctl NAME shows each)"
	}
	return strings.Join(fixes, "; ")
}

// sysctl reads /proc/sys/name, returning "" if it does not exist.
func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

const installUidmapHint = "sudo apt-get install uidmap (Debian, Ubuntu; the package is shadow-utils on Fedora)"

// lookHelper finds newuidmap or newgidmap.
func lookHelper(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", &Error{Op: "find " + name, Err: err, hint: installUidmapHint}
	}
	return path, nil
}

// LookSbin finds an administration tool such as nft(8) with look (as
// exec.LookPath): in $PATH, else in /usr/sbin or /sbin, which Debian
// leaves out of ordinary users' $PATH.
func LookSbin(look func(string) (string, error), name string) (string, error) {
	p, err := look(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p, err2 := look(dir + "/" + name); err2 == nil {
			return p, nil
		}
	}
	return "", err
}
