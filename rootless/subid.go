package rootless

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// The files newuidmap(1) and newgidmap(1) consult, see subuid(5).
const (
	subUIDFile = "/etc/subuid"
	subGIDFile = "/etc/subgid"
)

// IDRange is a block of Count consecutive host ids starting at Start.
type IDRange struct {
	Start, Count uint32
}

// subIDEntry is one well-formed line of a subuid/subgid file.
type subIDEntry struct {
	owner string // user name or decimal uid, as written
	IDRange
}

// ParseSubIDs returns the ranges that r, in the format of /etc/subuid and
// /etc/subgid, grants to the user with login name name and uid uid, in file
// order. A line NAME_OR_UID:START:COUNT belongs to the user when its first
// field equals name or the decimal uid; both files are keyed by the user,
// never by a group. name may be empty when the uid has no passwd entry.
//
// Malformed lines (wrong field count, numbers that are not plain decimal,
// COUNT 0, a range reaching id 4294967295) and lines starting with '#' are
// skipped, not reported: shadow's newuidmap and newgidmap skip them too, and
// nook must arrive at exactly the ranges those setuid helpers will allow.
// The only error is a read error from r.
func ParseSubIDs(r io.Reader, name string, uid uint32) ([]IDRange, error) {
	entries, err := parseSubIDEntries(r)
	if err != nil {
		return nil, err
	}
	uidStr := strconv.FormatUint(uint64(uid), 10)
	var ranges []IDRange
	for _, e := range entries {
		if (name != "" && e.owner == name) || e.owner == uidStr {
			ranges = append(ranges, e.IDRange)
		}
	}
	return ranges, nil
}

// parseSubIDEntries returns every well-formed entry of r, for any owner.
func parseSubIDEntries(r io.Reader) ([]subIDEntry, error) {
	b, err := io.ReadAll(r) // small files; no line length limit
	if err != nil {
		return nil, err
	}
	var entries []subIDEntry
	for line := range strings.Lines(string(b)) {
		if e, ok := parseSubIDLine(line); ok {
			entries = append(entries, e)
		}
	}
	return entries, nil
}

func parseSubIDLine(line string) (subIDEntry, bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return subIDEntry{}, false
	}
	fields := strings.Split(line, ":")
	if len(fields) != 3 || fields[0] == "" {
		return subIDEntry{}, false
	}
	start, ok1 := parseDecimal(fields[1])
	count, ok2 := parseDecimal(fields[2])
	// Id 4294967295 is the kernel's invalid id; a range reaching it makes
	// the uid_map write fail.
	if !ok1 || !ok2 || count == 0 || uint64(start)+uint64(count) > 1<<32-1 {
		return subIDEntry{}, false
	}
	return subIDEntry{owner: fields[0], IDRange: IDRange{Start: start, Count: count}}, true
}

// parseDecimal accepts only ASCII digits: no sign, no spaces, no 0x.
func parseDecimal(s string) (uint32, bool) {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// SubUIDs returns the subordinate uid ranges of the user from /etc/subuid.
// A missing file means no ranges and no error.
func SubUIDs(name string, uid uint32) ([]IDRange, error) {
	return readSubIDs(subUIDFile, name, uid)
}

// SubGIDs returns the subordinate gid ranges of the user (not of a group)
// from /etc/subgid. A missing file means no ranges and no error.
func SubGIDs(name string, uid uint32) ([]IDRange, error) {
	return readSubIDs(subGIDFile, name, uid)
}

func readSubIDs(path, name string, uid uint32) ([]IDRange, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read subordinate ids: %w", err)
	}
	defer f.Close()
	ranges, err := ParseSubIDs(f, name, uid)
	if err != nil {
		return nil, fmt.Errorf("read subordinate ids: %s: %w", path, err)
	}
	return ranges, nil
}

// freeSubIDStart suggests the start of a 65536-id block that overlaps no
// range in any of the files: 100000 (what useradd's SUB_UID_MIN defaults
// to) when that is free, otherwise the first multiple of 65536 after the
// highest range. Unreadable files count as empty; it is only a suggestion.
func freeSubIDStart(paths ...string) uint32 {
	const first, size = 100000, 65536
	var maxEnd uint64
	taken := false
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		entries, _ := parseSubIDEntries(f)
		f.Close()
		for _, e := range entries {
			start, end := uint64(e.Start), uint64(e.Start)+uint64(e.Count)
			maxEnd = max(maxEnd, end)
			taken = taken || (start < first+size && end > first)
		}
	}
	if !taken {
		return first
	}
	start := (maxEnd + size - 1) / size * size
	if start+size > 1<<32-1 {
		return first // nothing sensible to suggest; usermod will say why
	}
	return uint32(start)
}
