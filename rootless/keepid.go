package rootless

import (
	"errors"
	"fmt"
	"os"
)

// Keep-id: a development container that bind-mounts the project folder
// should write files that belong to the user, not to a subordinate id. So
// the user's own uid (and gid) inside the container is the same number as
// outside, and maps to the user; the ids below and above it map to the
// subordinate range, as podman's --userns=keep-id does.
//
// nook builds this mapping from inside its own user namespace, where the
// user is uid 0 and subordinate ids are 1..N: the keep-id namespace is
// nested in it, and uid 0 there may write any mapping of its own ids.

// KeepIDMapping returns the mapping for a keep-id container, to pass as
// Cmd.Mapping (or StartOptions.Mapping). It must be called inside nook's
// user namespace, as uid 0 (the user), with subordinate ids mapped.
func KeepIDMapping() (Mapping, uint32, uint32, error) {
	uids, err := readIDMapFile("/proc/self/uid_map")
	if err != nil {
		return Mapping{}, 0, 0, err
	}
	gids, err := readIDMapFile("/proc/self/gid_map")
	if err != nil {
		return Mapping{}, 0, 0, err
	}
	uid, uidSpan, err := ownAndSpan(uids)
	if err != nil {
		return Mapping{}, 0, 0, fmt.Errorf("keep-id: %w", err)
	}
	gid, gidSpan, err := ownAndSpan(gids)
	if err != nil {
		return Mapping{}, 0, 0, fmt.Errorf("keep-id: %w", err)
	}
	m := Mapping{UIDs: keepIDMaps(uid, uidSpan), GIDs: keepIDMaps(gid, gidSpan), Kind: MapKeepID}
	return m, uid, gid, nil
}

// KeepIDUser returns the uid and gid a keep-id container's processes run
// as: the user's own, inside nook's namespace as outside it.
func KeepIDUser() (uint32, uint32, error) {
	if os.Geteuid() != 0 {
		return uint32(os.Getuid()), uint32(os.Getgid()), nil
	}
	_, uid, gid, err := KeepIDMapping()
	return uid, gid, err
}

// HostKeepIDMapping is KeepIDMapping for a caller outside nook's user
// namespace whose mapping for it is m (HostMapping): the same ids, in
// one namespace instead of one nested in nook's, which newuidmap and
// newgidmap install.
func HostKeepIDMapping(m Mapping) (Mapping, error) {
	if m.Kind != MapSubIDs {
		return Mapping{}, errors.New("keep-id needs subordinate id ranges (see nook doctor)")
	}
	uid, uidSpan, err := span(m.UIDs)
	if err != nil {
		return Mapping{}, fmt.Errorf("keep-id: %w", err)
	}
	gid, gidSpan, err := span(m.GIDs)
	if err != nil {
		return Mapping{}, fmt.Errorf("keep-id: %w", err)
	}
	return Mapping{
		UIDs: compose(keepIDMaps(uid, uidSpan), m.UIDs),
		GIDs: compose(keepIDMaps(gid, gidSpan), m.GIDs),
		Kind: MapSubIDs,
	}, nil
}

// compose returns the maps of inner's ids straight to outer's host ids,
// where inner maps into the ids outer maps; ids outer does not map are
// left out.
func compose(inner, outer []IDMap) []IDMap {
	var out []IDMap
	for _, in := range inner {
		for _, o := range outer {
			// The part of in's range (in outer's container ids) that o maps.
			lo := max(uint64(in.HostID), uint64(o.ContainerID))
			hi := min(uint64(in.HostID)+uint64(in.Size), uint64(o.ContainerID)+uint64(o.Size))
			if lo >= hi {
				continue
			}
			out = append(out, IDMap{
				ContainerID: in.ContainerID + uint32(lo-uint64(in.HostID)),
				HostID:      o.HostID + uint32(lo-uint64(o.ContainerID)),
				Size:        uint32(hi - lo),
			})
		}
	}
	return out
}

// ownAndSpan reads, from the maps of nook's namespace, the user's host id
// (what uid 0 here is outside) and how many ids there are here (0..span-1).
func ownAndSpan(maps []IDMap) (uint32, uint32, error) {
	if os.Geteuid() != 0 {
		return 0, 0, errors.New("not inside nook's user namespace with the user as root")
	}
	return span(maps)
}

// span is ownAndSpan of nook's maps, however the caller got them.
func span(maps []IDMap) (uint32, uint32, error) {
	if len(maps) == 0 || maps[0].ContainerID != 0 || maps[0].Size != 1 {
		return 0, 0, errors.New("the mapping does not make the user root")
	}
	if maps[0].HostID == 0 {
		return 0, 0, errors.New("the caller is root on the host: keep-id is for ordinary users")
	}
	span := uint32(0)
	for _, m := range maps {
		span = max(span, m.ContainerID+m.Size)
	}
	if span <= maps[0].HostID {
		return 0, 0, fmt.Errorf("the subordinate range (%d ids) is too small to keep id %d", span, maps[0].HostID)
	}
	return maps[0].HostID, span, nil
}

// keepIDMaps maps own -> 0 (the user, in nook's namespace), 0..own-1 ->
// 1..own, and own+1.. -> own+1.., all within ids 0..span-1 of nook's
// namespace.
func keepIDMaps(own, span uint32) []IDMap {
	out := []IDMap{{ContainerID: 0, HostID: 1, Size: own}, {ContainerID: own, HostID: 0, Size: 1}}
	if span > own+1 {
		out = append(out, IDMap{ContainerID: own + 1, HostID: own + 1, Size: span - own - 1})
	}
	return out
}
