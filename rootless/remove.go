package rootless

import (
	"bytes"
	"fmt"
	"os"
	"strings"
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
// work folder behind. Root, or a process already uid 0 in the namespace,
// removes them directly; anyone else does it through the namespace.
func RemoveAll(paths ...string) error {
	if os.Geteuid() == 0 {
		for _, p := range paths {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
		return nil
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
