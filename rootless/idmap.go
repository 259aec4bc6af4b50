package rootless

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
)

// maxID is the highest id a namespace can map: (uint32)-1 is the kernel's
// "invalid id" and is never mapped, so ids 0..maxID make maxID+1 ids.
const maxID = 1<<32 - 2

// IDMap is one line of /proc/PID/uid_map or gid_map: container ids
// ContainerID..ContainerID+Size-1 are host ids HostID..HostID+Size-1.
type IDMap struct {
	ContainerID, HostID, Size uint32
}

// MapKind says how a Mapping was chosen and therefore how Command installs it.
type MapKind int

const (
	// MapIdentity: the caller is root (euid 0) and maps every id it can
	// see to itself. The kernel lets root write uid_map directly.
	MapIdentity MapKind = iota
	// MapSubIDs: container root is the caller's uid and container ids 1..
	// are the caller's subordinate ranges, installed by the setuid helpers
	// newuidmap and newgidmap (what rootlesskit and podman do).
	MapSubIDs
	// MapSingle: no subordinate ranges, so only the caller's own uid and
	// gid exist inside, as container root. See Mapping.Warning.
	MapSingle
	// MapKeepID: a keep-id container's namespace, nested in nook's and
	// written by its uid 0 (see KeepIDMapping).
	MapKeepID
)

func (k MapKind) String() string {
	switch k {
	case MapIdentity:
		return "identity"
	case MapSubIDs:
		return "subids"
	case MapSingle:
		return "single"
	case MapKeepID:
		return "keep-id"
	}
	return "MapKind(" + strconv.Itoa(int(k)) + ")"
}

// Mapping is the id mapping of nook's user namespace.
type Mapping struct {
	UIDs, GIDs []IDMap
	Kind       MapKind
	warning    string
}

// Warning describes what will not work under this mapping and the command
// that fixes it, or returns "" when nothing is degraded.
func (m Mapping) Warning() string { return m.warning }

// HostUID returns the host uid that container uid id is, and false when id
// is not mapped.
func (m Mapping) HostUID(id uint32) (uint32, bool) { return toHost(m.UIDs, id) }

// HostGID returns the host gid that container gid id is, and false when id
// is not mapped.
func (m Mapping) HostGID(id uint32) (uint32, bool) { return toHost(m.GIDs, id) }

func toHost(maps []IDMap, id uint32) (uint32, bool) {
	for _, e := range maps {
		if id >= e.ContainerID && uint64(id) < uint64(e.ContainerID)+uint64(e.Size) {
			return e.HostID + (id - e.ContainerID), true
		}
	}
	return 0, false
}

// String formats the mapping compactly, e.g.
// "subids uid=0:1000:1,1:100000:65536 gid=0:1000:1,1:100000:65536".
func (m Mapping) String() string {
	f := func(maps []IDMap) string {
		parts := make([]string, len(maps))
		for i, e := range maps {
			parts[i] = fmt.Sprintf("%d:%d:%d", e.ContainerID, e.HostID, e.Size)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprintf("%s uid=%s gid=%s", m.Kind, f(m.UIDs), f(m.GIDs))
}

// HostMapping returns the mapping nook uses for the calling user, chosen in
// this order:
//
//  1. euid 0: the identity over every id the caller's namespace maps
//     (0..4294967294 on the host; inside a nook namespace, the ids of that
//     namespace, so a child can create a nested one).
//  2. ranges in both /etc/subuid and /etc/subgid: 0 is the caller's uid
//     (gid), and 1.. are the ranges, sorted by start and merged.
//  3. otherwise: only 0 -> the caller's uid (gid), with a Warning.
//
// It reads /etc/passwd, /etc/subuid, /etc/subgid and /proc/self/uid_map on
// every call and has no other inputs, so it returns the same mapping until
// those files change. Callers that need one mapping for a whole session
// should compute it once and set Cmd.Mapping.
func HostMapping() (Mapping, error) {
	if os.Geteuid() == 0 {
		uids, err := readIDMapFile("/proc/self/uid_map")
		if err != nil {
			return Mapping{}, err
		}
		gids, err := readIDMapFile("/proc/self/gid_map")
		if err != nil {
			return Mapping{}, err
		}
		return identityMapping(uids, gids), nil
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	var name string
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		name = u.Username
	}
	subUIDs, err := SubUIDs(name, uid)
	if err != nil {
		return Mapping{}, err
	}
	subGIDs, err := SubGIDs(name, uid)
	if err != nil {
		return Mapping{}, err
	}
	return userMapping(name, uid, gid, subUIDs, subGIDs), nil
}

// identityMapping maps each id the current namespace maps to itself.
//
// The host's "0 0 4294967295" is split into "0 0 1" and "1 1 4294967294":
// same ids, but runc, crun and moby's userns.RunningInUserNS treat exactly
// "0 0 4294967295" as "not in a user namespace", and code inside must know
// it cannot do init-namespace things (mknod, trusted.* xattrs). Podman's
// copyMappings splits it for the same reason.
func identityMapping(uids, gids []IDMap) Mapping {
	ident := func(maps []IDMap) []IDMap {
		var out []IDMap
		for _, e := range maps {
			if e.ContainerID == 0 && e.Size > 1 {
				out = append(out, IDMap{0, 0, 1}, IDMap{1, 1, e.Size - 1})
				continue
			}
			out = append(out, IDMap{e.ContainerID, e.ContainerID, e.Size})
		}
		return out
	}
	return Mapping{UIDs: ident(uids), GIDs: ident(gids), Kind: MapIdentity}
}

// userMapping builds the mapping of an unprivileged user from its ranges.
func userMapping(name string, uid, gid uint32, subUIDs, subGIDs []IDRange) Mapping {
	subUIDs, subGIDs = normalize(subUIDs, uid), normalize(subGIDs, gid)
	if len(subUIDs) > 0 && len(subGIDs) > 0 {
		return Mapping{UIDs: withRanges(uid, subUIDs), GIDs: withRanges(gid, subGIDs), Kind: MapSubIDs}
	}
	var missing string
	switch {
	case len(subUIDs) == 0 && len(subGIDs) == 0:
		missing = subUIDFile + " and " + subGIDFile
	case len(subUIDs) == 0:
		missing = subUIDFile
	default:
		missing = subGIDFile
	}
	who := name
	if who == "" {
		who = strconv.FormatUint(uint64(uid), 10)
	}
	start := freeSubIDStart(subUIDFile, subGIDFile)
	return Mapping{
		UIDs: []IDMap{{0, uid, 1}},
		GIDs: []IDMap{{0, gid, 1}},
		Kind: MapSingle,
		warning: fmt.Sprintf("user %q has no subordinate id range in %s, so containers see only one user "+
			"(root, which is you): chown to any other id fails, images with files owned by other users "+
			"cannot be unpacked, and package managers (apt, dnf, apk) that switch users fail; "+
			"fix: sudo usermod --add-subuids %d-%d --add-subgids %d-%d %s",
			who, missing, start, start+65535, start, start+65535, who),
	}
}

// normalize sorts ranges by start, merges overlapping and adjacent ones and
// cuts out own: the kernel rejects a uid_map whose host ranges overlap, and
// own is already mapped to container id 0.
func normalize(ranges []IDRange, own uint32) []IDRange {
	rs := slices.Clone(ranges)
	slices.SortFunc(rs, func(a, b IDRange) int { return cmp.Compare(a.Start, b.Start) })
	var merged []IDRange
	for _, r := range rs {
		if n := len(merged); n > 0 {
			last := &merged[n-1]
			lastEnd, end := uint64(last.Start)+uint64(last.Count), uint64(r.Start)+uint64(r.Count)
			if uint64(r.Start) <= lastEnd {
				last.Count = uint32(max(lastEnd, end) - uint64(last.Start))
				continue
			}
		}
		merged = append(merged, r)
	}
	var out []IDRange
	for _, r := range merged {
		end := uint64(r.Start) + uint64(r.Count)
		if uint64(own) < uint64(r.Start) || uint64(own) >= end {
			out = append(out, r)
			continue
		}
		if own > r.Start {
			out = append(out, IDRange{r.Start, own - r.Start})
		}
		if uint64(own)+1 < end {
			out = append(out, IDRange{own + 1, uint32(end - uint64(own) - 1)})
		}
	}
	return out
}

// withRanges maps container 0 to own and container 1.. to the ranges in
// order, stopping at maxID.
func withRanges(own uint32, ranges []IDRange) []IDMap {
	maps := []IDMap{{0, own, 1}}
	next := uint64(1)
	for _, r := range ranges {
		size := min(uint64(r.Count), maxID+1-next)
		if size == 0 {
			break
		}
		maps = append(maps, IDMap{uint32(next), r.Start, uint32(size)})
		next += size
	}
	return maps
}

// parseIDMap parses the format of /proc/PID/uid_map: three decimal numbers
// per line, separated by spaces.
func parseIDMap(r io.Reader) ([]IDMap, error) {
	var maps []IDMap
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var n [3]uint64
		if len(f) != 3 {
			return nil, fmt.Errorf("parse id map line %q: want 3 fields", sc.Text())
		}
		for i := range f {
			var err error
			if n[i], err = strconv.ParseUint(f[i], 10, 32); err != nil {
				return nil, fmt.Errorf("parse id map line %q: %w", sc.Text(), err)
			}
		}
		maps = append(maps, IDMap{uint32(n[0]), uint32(n[1]), uint32(n[2])})
	}
	return maps, sc.Err()
}

func readIDMapFile(path string) ([]IDMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read id map: %w", err)
	}
	defer f.Close()
	maps, err := parseIDMap(f)
	if err != nil {
		return nil, fmt.Errorf("read id map %s: %w", path, err)
	}
	return maps, nil
}
