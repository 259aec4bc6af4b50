package rootless

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nook-dev/nook/internal/atomicfile"
)

// Sync writes files into a running container without a rebuild or a
// restart, from the host side: the container's init, inside its mount
// namespace, copies each file from a descriptor nook sends it, so the image
// needs no shell, tar or cp (scratch images work). What is written goes to
// the container's writable layer and so survives a stop and start.

// SyncFile is one change: a file written (its content travels as a
// descriptor) or a path removed.
type SyncFile struct {
	Path   string `json:"path"` // absolute, in the container
	Remove bool   `json:"remove,omitempty"`
	Mode   uint32 `json:"mode,omitempty"` // permission bits of a written file
}

// maxSyncFiles bounds one sync request: the files travel as descriptors,
// and a message carries at most maxPassedFDs of them.
const maxSyncFiles = maxPassedFDs

// Sync applies changes in the running container, as its main process's
// user. sources holds the open host file for each written SyncFile, in
// order; Sync does not close them.
func (c *Container) Sync(changes []SyncFile, sources []*os.File) error {
	for len(changes) > 0 {
		n, files := 0, 0
		for n < len(changes) && (changes[n].Remove || files < maxSyncFiles) {
			if !changes[n].Remove {
				files++
			}
			n++
		}
		if err := c.syncBatch(changes[:n], sources[:files]); err != nil {
			return err
		}
		changes, sources = changes[n:], sources[files:]
	}
	return nil
}

func (c *Container) syncBatch(changes []SyncFile, sources []*os.File) error {
	if c.State.Status != StatusRunning {
		return fmt.Errorf("sync into %s: the container is not running", c.Name)
	}
	dir, err := os.Open(c.Dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	addr := filepath.Join("/proc/self/fd", strconv.Itoa(int(dir.Fd())), execSocket)
	conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: addr, Net: "unixpacket"})
	if err != nil {
		return fmt.Errorf("sync into %s: %w", c.Name, err)
	}
	defer conn.Close()
	if err := sendMsg(conn, ExecRequest{Files: changes}, sources...); err != nil {
		return fmt.Errorf("sync into %s: %w", c.Name, err)
	}
	var reply execReply
	if _, err := recvMsg(conn, &reply); err != nil {
		return fmt.Errorf("sync into %s: %w", c.Name, err)
	}
	if reply.Error != "" {
		return fmt.Errorf("sync into %s: %s", c.Name, reply.Error)
	}
	return nil
}

// applySync runs in init: it writes each file atomically (a temp file in
// the same folder, renamed over the old one, so the app never reads half a
// file) owned by the container's user, or removes it.
func applySync(spec *Spec, changes []SyncFile, sources []*os.File) error {
	cred, _, err := lookupUser(spec.Process.User, true)
	if err != nil {
		return err
	}
	uid, gid := int(cred.Uid), int(cred.Gid)
	next := 0
	for _, ch := range changes {
		target := filepath.Clean("/" + ch.Path)
		if ch.Remove {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
			continue
		}
		if next >= len(sources) {
			return errors.New("a file's content is missing")
		}
		src := sources[next]
		next++
		if err := mkdirOwned(filepath.Dir(target), uid, gid); err != nil {
			return err
		}
		if err := writeOwned(target, src, os.FileMode(ch.Mode&0o7777), uid, gid); err != nil {
			return fmt.Errorf("write %s: %w", target, err)
		}
	}
	return nil
}

// mkdirOwned creates dir and its missing parents, owned by uid:gid.
func mkdirOwned(dir string, uid, gid int) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := mkdirOwned(filepath.Dir(dir), uid, gid); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return os.Lchown(dir, uid, gid)
}

func writeOwned(target string, src *os.File, mode os.FileMode, uid, gid int) error {
	if mode == 0 {
		mode = 0o644
	}
	return atomicfile.Write(target, false, func(f *os.File) error {
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.Copy(f, src); err != nil {
			return err
		}
		if err := f.Chmod(mode); err != nil {
			return err
		}
		return unix.Fchown(int(f.Fd()), uid, gid)
	})
}
