package rootless

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// probeEntry is the child that Probe runs in the namespace.
const probeEntry = "rootless.probe"

func init() { Register(probeEntry, probeMain) }

// Check is the outcome of one probe step.
type Check struct {
	Name    string // "userns", "uid", "idmap", "overlay" or "whiteout"
	OK      bool
	Message string // what was seen, or the error
	Hint    string // for a failure: what to do about it, when known
}

// Report is what Probe found.
type Report struct {
	Mapping        Mapping // what HostMapping chose; see its Warning
	UIDMap, GIDMap []IDMap // /proc/self/uid_map and gid_map as the child saw them
	Checks         []Check // in the order run; a failed "userns" ends the probe
}

// OK reports whether every check passed.
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// ProbeDir enters nook's user namespace in a child and checks, in order:
// that it can be created ("userns"), that the child is uid and gid 0
// ("uid") with the maps of HostMapping ("idmap"), that overlayfs mounts
// there with userxattr, takes writes into its upper dir and records
// deletions as whiteouts ("overlay"), and that a whiteout (char device 0/0)
// can be made without CAP_MKNOD ("whiteout"). Overlay and whiteout depend on
// the filesystem, so dir should be on the one nook's storage will use. The
// probe works in a fresh subdirectory of dir and removes it. Safe for
// concurrent use.
//
// The probe child removes its own files: the overlay work dir holds a
// directory and a whiteout that only root inside the namespace can remove.
func ProbeDir(dir string) Report {
	var r Report
	m, err := HostMapping()
	if err != nil {
		return r.add("userns", err, "")
	}
	r.Mapping = m
	scratch, err := os.MkdirTemp(dir, "nook-probe-")
	if err != nil {
		return r.add("userns", fmt.Errorf("create probe dir: %w", err), "")
	}
	defer os.RemoveAll(scratch) // in case the child could not

	var stdout, stderr bytes.Buffer
	cmd := Command(probeEntry, scratch)
	cmd.Mapping, cmd.Stdout, cmd.Stderr = &m, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		var hint string
		if e := (*Error)(nil); errors.As(err, &e) {
			hint = e.Hint()
		}
		return r.add("userns", err, hint)
	}
	r = r.add("userns", nil, "")
	var res probeResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return r.add("uid", fmt.Errorf("decode probe output %q: %w", stdout.String(), err), "")
	}
	r.UIDMap, r.GIDMap = res.UIDMap, res.GIDMap

	var idErr error
	if res.UID != 0 || res.GID != 0 {
		idErr = fmt.Errorf("uid %d, gid %d inside, want 0 and 0", res.UID, res.GID)
	}
	r = r.add("uid", idErr, "this is a nook bug: please report it with the output of nook doctor")
	var mapErr error
	switch {
	case res.MapErr != "":
		mapErr = errors.New(res.MapErr)
	case !slices.Equal(res.UIDMap, m.UIDs) || !slices.Equal(res.GIDMap, m.GIDs):
		mapErr = fmt.Errorf("got uid_map %v gid_map %v, want %v %v", res.UIDMap, res.GIDMap, m.UIDs, m.GIDs)
	}
	r = r.add("idmap", mapErr, "this is a nook bug: please report it with the output of nook doctor")
	r = r.add("overlay", errorOrNil(res.Overlay), kernelHint(5, 11, "overlayfs in a user namespace",
		"the filesystem of "+dir+" must support user.* xattrs (ext4, xfs and btrfs do; tmpfs since Linux 6.6)"))
	r = r.add("whiteout", errorOrNil(res.Whiteout), kernelHint(5, 8, "unprivileged whiteouts",
		"the filesystem of "+dir+" refused a 0/0 character device; use ext4, xfs or btrfs"))
	return r
}

// add appends a check named name that failed with err, or passed if err is nil.
func (r Report) add(name string, err error, hint string) Report {
	c := Check{Name: name, OK: err == nil}
	if err != nil {
		c.Message, c.Hint = err.Error(), hint
	} else if name == "userns" {
		c.Message = r.Mapping.String()
	}
	r.Checks = append(r.Checks, c)
	return r
}

func errorOrNil(msg string) error {
	if msg == "" {
		return nil
	}
	return errors.New(msg)
}

// kernelHint says to upgrade when the running kernel is older than
// major.minor, and otherwise returns other.
func kernelHint(major, minor int, feature, other string) string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return other
	}
	release := unix.ByteSliceToString(u.Release[:])
	var maj, min int
	if _, err := fmt.Sscanf(release, "%d.%d", &maj, &min); err != nil {
		return other
	}
	if maj < major || (maj == major && min < minor) {
		return fmt.Sprintf("%s needs Linux %d.%d or later and this is %s: upgrade the kernel", feature, major, minor, release)
	}
	return other
}

// probeResult is what the probe child prints as JSON.
type probeResult struct {
	UID, GID       int
	UIDMap, GIDMap []IDMap
	MapErr         string `json:",omitempty"`
	Overlay        string `json:",omitempty"`
	Whiteout       string `json:",omitempty"`
}

// probeMain runs inside the namespace with os.Args[1] the scratch dir.
func probeMain() int {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: probe DIR")
		return 2
	}
	dir := os.Args[1]
	res := probeResult{UID: os.Getuid(), GID: os.Getgid()}
	var err error
	if res.UIDMap, err = readIDMapFile("/proc/self/uid_map"); err == nil {
		res.GIDMap, err = readIDMapFile("/proc/self/gid_map")
	}
	if err != nil {
		res.MapErr = err.Error()
	}
	if err := checkOverlay(filepath.Join(dir, "overlay")); err != nil {
		res.Overlay = err.Error()
	}
	if err := checkWhiteout(filepath.Join(dir, "whiteout")); err != nil {
		res.Whiteout = err.Error()
	}
	// Only root inside can remove what overlay leaves in the work dir: a
	// mode 000 directory work/work holding a whiteout it keeps for reuse.
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(os.Stderr, "remove probe dir: %v\n", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "write probe result: %v\n", err)
		return 1
	}
	return 0
}
