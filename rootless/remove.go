package rootless

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// entryRemove removes its arguments from inside the user namespace.
const entryRemove = "remove-all"

func init() {
	Register(entryRemove, func() int {
		for _, p := range os.Args[1:] {
			if err := os.RemoveAll(p); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return 0
	})
}

// RemoveAll removes paths that may hold files only nook's user namespace
// can remove: a container's writable layer holds files owned by the
// image's users (subordinate ids outside), and overlay leaves a mode-000
// work folder behind. Every caller first tries itself: root, or a process
// already uid 0 in the namespace, can; outside, the container's root's
// files are the user's, and a container often makes no others. What is
// left after that goes through the namespace.
func RemoveAll(paths ...string) error {
	var err error
	for _, p := range paths {
		if err = removeOwn(p); err != nil {
			break
		}
	}
	if err == nil || os.Geteuid() == 0 {
		return err
	}
	c := Command(entryRemove, paths...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("remove %s: %s", strings.Join(paths, " "), msg)
		}
		return fmt.Errorf("remove %s: %w", strings.Join(paths, " "), err)
	}
	return nil
}

// removeOwn is os.RemoveAll that also opens up folders this process owns
// but may not read: overlay makes its work folder mode 000, and on a
// volatile mount nests two more such folders in it. It empties each
// folder it opened up from there, so that no pass walks the tree above
// it again.
func removeOwn(p string) error {
	for {
		err := os.RemoveAll(p)
		var pe *os.PathError
		if !errors.As(err, &pe) || pe.Op != "openfdat" || !errors.Is(err, os.ErrPermission) {
			return err
		}
		var st unix.Stat_t
		if unix.Lstat(pe.Path, &st) != nil || st.Uid != uint32(os.Geteuid()) || st.Mode&0o700 == 0o700 {
			return err // not ours to open, or open already: no progress to make
		}
		if os.Chmod(pe.Path, 0o700) != nil {
			return err
		}
		if pe.Path != p {
			if err := removeOwn(pe.Path); err != nil {
				return err
			}
		}
	}
}
