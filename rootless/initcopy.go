package rootless

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A process outside any user namespace (the CLI of an ordinary user,
// running a container in the foreground) can start a container's init
// itself, in a user namespace made for that container by the same clone,
// instead of through a monitor already inside nook's namespace: one Go
// process start fewer. But it cannot seal its own binary the way
// sealedSelf does, which needs a mount; and the nook file on disk is the
// user's, which is the container's root, which could write it through
// /proc/1/exe (CVE-2019-5736).
//
// So such inits run from the init copy: a copy of nook (of nook-init
// when it comes with nook: see initbinary.go) owned by the
// highest id of the user's subordinate ranges, mode 0555, which the
// container's namespace leaves out of its mapping (launchMapping). To the
// container's root that file belongs to nobody it can act for: it cannot
// write it, chmod it or chown it, whatever its capabilities. The copy is
// made once per nook binary, from inside nook's namespace, where that id
// is mapped (entryInitCopy).

// entryInitCopy makes the init copy: ARGS DIR UID GID, the ids being the
// namespace's names for its owner.
const entryInitCopy = "init-copy"

func init() { Register(entryInitCopy, initCopyMain) }

// hostLaunch is what a process outside any user namespace needs to start
// a container's init in a namespace of its own.
type hostLaunch struct {
	path                 string  // the init copy
	mapping              Mapping // the container's: nook's, without the copy's owner
	newuidmap, newgidmap string
}

// initCopyDir holds the init copy, named by initCopyKey.
func (cs *Containers) initCopyDir() string { return filepath.Join(cs.Root, "init") }

// hostLaunch returns how this process can start inits from outside nook's
// namespace with mapping m, making the init copy first if it is missing.
// It returns nil when it cannot: the caller is root or inside a
// namespace, m has no subordinate ranges to take an owner from, the store
// is on a noexec mount, or the copy cannot be made; the caller then
// starts a monitor inside instead.
func (cs *Containers) hostLaunch(m Mapping) *hostLaunch {
	if os.Geteuid() == 0 || m.Kind != MapSubIDs {
		return nil
	}
	mapping, uid, gid, ok := launchMapping(m)
	if !ok {
		return nil
	}
	key, err := initCopyKey()
	if err != nil {
		return nil
	}
	// A store on a noexec mount can hold the copy but not run it.
	var fs unix.Statfs_t
	if unix.Statfs(cs.Root, &fs) != nil || fs.Flags&unix.ST_NOEXEC != 0 {
		return nil
	}
	path := filepath.Join(cs.initCopyDir(), key)
	if !isInitCopy(path, uid, gid) {
		// A store where the copy cannot be made (a filesystem that
		// refuses the chown) says so once per build, not on every run.
		failed := filepath.Join(cs.initCopyDir(), ".failed-"+key)
		if _, err := os.Stat(failed); err == nil {
			return nil
		}
		ctrUID, ctrGID := lastID(m.UIDs), lastID(m.GIDs)
		c := Command(entryInitCopy, cs.initCopyDir(), strconv.FormatUint(uint64(ctrUID), 10), strconv.FormatUint(uint64(ctrGID), 10))
		c.Mapping = &m
		if c.Run() != nil || !isInitCopy(path, uid, gid) {
			if os.MkdirAll(cs.initCopyDir(), 0o700) == nil {
				os.WriteFile(failed, nil, 0o600)
			}
			return nil
		}
	}
	l := &hostLaunch{path: path, mapping: mapping}
	if l.newuidmap, err = lookHelper("newuidmap"); err != nil {
		return nil
	}
	if l.newgidmap, err = lookHelper("newgidmap"); err != nil {
		return nil
	}
	return l
}

// launchMapping returns m without its highest container uid and gid, and
// the host ids those were: the init copy's owner.
func launchMapping(m Mapping) (Mapping, uint32, uint32, bool) {
	uids, uid, okU := withoutLast(m.UIDs)
	gids, gid, okG := withoutLast(m.GIDs)
	if !okU || !okG {
		return Mapping{}, 0, 0, false
	}
	return Mapping{UIDs: uids, GIDs: gids, Kind: m.Kind}, uid, gid, true
}

// withoutLast drops the highest container id from maps and returns the
// host id it was. It refuses maps whose ranges would be left with no id
// but 0.
func withoutLast(maps []IDMap) ([]IDMap, uint32, bool) {
	if len(maps) < 2 {
		return nil, 0, false
	}
	last := 0
	for i, e := range maps {
		if e.ContainerID+e.Size-1 > maps[last].ContainerID+maps[last].Size-1 {
			last = i
		}
	}
	e := maps[last]
	host := e.HostID + e.Size - 1
	out := append([]IDMap(nil), maps...)
	if e.Size == 1 {
		out = append(out[:last], out[last+1:]...)
	} else {
		out[last].Size--
	}
	if len(out) < 2 {
		return nil, 0, false
	}
	return out, host, true
}

// lastID is the highest container id maps maps.
func lastID(maps []IDMap) uint32 {
	var id uint32
	for _, e := range maps {
		id = max(id, e.ContainerID+e.Size-1)
	}
	return id
}

// initCopyKey names the copy of the running binary: a new build, or any
// change to the file, gets a new name.
func initCopyKey() (string, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("nook-%x-%x-%x-%x", st.Dev, st.Ino, st.Size, st.Mtim.Nano()), nil
}

// isInitCopy reports whether path is a finished init copy owned by uid
// and gid, which nobody but that owner (and root) can change.
func isInitCopy(path string, uid, gid uint32) bool {
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o7777 == 0o555 && st.Uid == uid && st.Gid == gid
}

// initCopyMain makes the init copy, inside nook's namespace, and prunes
// the copies of other builds.
func initCopyMain() int {
	if err := makeInitCopy(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintf(os.Stderr, "nook: make the init copy in %s: %v\n", os.Args[1], err)
		return 1
	}
	return 0
}

func makeInitCopy(dir, uidArg, gidArg string) error {
	uid, err := strconv.Atoi(uidArg)
	if err != nil {
		return err
	}
	gid, err := strconv.Atoi(gidArg)
	if err != nil {
		return err
	}
	key, err := initCopyKey()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // nothing left after the rename
	if data := sameBuildInit(); data != nil {
		_, err = tmp.Write(data)
	} else {
		err = copySelfTo(tmp)
	}
	// Owner and mode before the name: no one may ever find a copy that
	// its container's root could still change.
	err = cmp.Or(err, tmp.Chown(uid, gid), tmp.Chmod(0o555), tmp.Sync(), tmp.Close())
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, key)); err != nil {
		return err
	}
	return pruneInitCopies(dir, key)
}

// copySelfTo copies this process's binary to dst.
func copySelfTo(dst *os.File) error {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = io.Copy(dst, src)
	return err
}

// keepCopies is how many init copies a store keeps, the newest: two nook
// builds used in turn on one store (an installed one and one being
// worked on) must not remove each other's every time.
const keepCopies = 3

// pruneInitCopies removes from dir all copies but key and the newest
// others, up to keepCopies in all, and the temporary files of makers
// killed halfway: those a minute old, as one at work now is younger.
func pruneInitCopies(dir, key string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	type made struct {
		name string
		at   time.Time
	}
	var others []made
	var errs []error
	for _, e := range entries {
		info, err := e.Info()
		switch {
		case err != nil || e.Name() == key:
		case strings.HasPrefix(e.Name(), ".tmp-"):
			if time.Since(info.ModTime()) > time.Minute {
				errs = append(errs, os.Remove(filepath.Join(dir, e.Name())))
			}
		case strings.HasPrefix(e.Name(), ".failed-"):
			errs = append(errs, os.Remove(filepath.Join(dir, e.Name()))) // the copy worked here
		default:
			others = append(others, made{e.Name(), info.ModTime()})
		}
	}
	slices.SortFunc(others, func(a, b made) int { return b.at.Compare(a.at) })
	for _, m := range others[min(len(others), keepCopies-1):] {
		errs = append(errs, os.Remove(filepath.Join(dir, m.name)))
	}
	return errors.Join(errs...)
}
