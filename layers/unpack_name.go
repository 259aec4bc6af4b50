package layers

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Linux limits (PATH_MAX, NAME_MAX). Checking them up front turns a kernel
// ENAMETOOLONG deep inside a walk into an error that names the entry, and
// bounds how many components one entry can make os.Root walk.
const (
	unpackMaxPath = 4096
	unpackMaxName = 255
)

// Whiteout names from the OCI image spec (layer.md, "Whiteouts").
const (
	unpackWhiteoutPrefix = ".wh."
	unpackWhiteoutMeta   = ".wh..wh."     // reserved; AUFS kept hardlink and orphan dirs here
	unpackWhiteoutOpaque = ".wh..wh..opq" // the directory hides all lower-layer contents
)

// unpackCleanName turns a tar member name (or hardlink target) into a
// cleaned slash path relative to the layer root; "." is the root itself.
// It refuses what could leave the root instead of clamping it: absolute
// names and ".." components (GNU tar also refuses ".." members), NUL, and
// names over the kernel's limits.
func unpackCleanName(name string) (string, error) {
	switch {
	case strings.IndexByte(name, 0) >= 0:
		return "", fmt.Errorf("%w: name contains NUL", ErrUnsafeEntry)
	case len(name) > unpackMaxPath:
		return "", fmt.Errorf("%w: name longer than %d bytes", ErrUnsafeEntry, unpackMaxPath)
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("%w: absolute name", ErrUnsafeEntry)
	}
	for c := range strings.SplitSeq(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: name has a \"..\" component", ErrUnsafeEntry)
		}
		if len(c) > unpackMaxName {
			return "", fmt.Errorf("%w: name component longer than %d bytes", ErrUnsafeEntry, unpackMaxName)
		}
	}
	return path.Clean(name), nil // also maps "" and "./" to "."
}

// unpackWhiteout classifies a cleaned name. kind is "" for an ordinary
// entry, "opaque" for dir/.wh..wh..opq, "meta" for other reserved
// .wh..wh.* names (skipped, as Docker and containerd do), and "whiteout"
// with the hidden name in target.
func unpackWhiteout(name string) (kind, target string, err error) {
	if strings.HasPrefix(name, unpackWhiteoutMeta) && name != unpackWhiteoutOpaque {
		return "meta", "", nil // AUFS keeps .wh..wh.plnk/ and friends at the root
	}
	base := path.Base(name)
	switch {
	case !strings.HasPrefix(base, unpackWhiteoutPrefix):
		return "", "", nil
	case base == unpackWhiteoutOpaque:
		return "opaque", "", nil
	case strings.HasPrefix(base, unpackWhiteoutMeta):
		return "meta", "", nil
	}
	target = strings.TrimPrefix(base, unpackWhiteoutPrefix)
	if target == "" || target == "." || target == ".." {
		// ".wh..." would whiteout the parent and ".wh.." the directory
		// itself (containerd's WhiteoutParent/WhiteoutCurrentDirectory).
		return "", "", fmt.Errorf("%w: whiteout of %q", ErrUnsafeEntry, target)
	}
	return "whiteout", target, nil
}

// unpackDepth orders directories so children are finished before parents.
func unpackDepth(name string) int {
	if name == "." {
		return -1
	}
	return strings.Count(name, "/")
}

// unpackQuote quotes a name for an error message, cut to a readable length
// (hostile names run to 4 KiB).
func unpackQuote(name string) string {
	if len(name) > 200 {
		return strconv.Quote(name[:200]) + "..."
	}
	return strconv.Quote(name)
}
