package project

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// Port is a published (or exposed) port range: Count ports starting at
// ContainerPort inside, reached at HostPort.. on HostIP outside.
type Port struct {
	HostIP        string // "" = 127.0.0.1 when published; nook never binds all addresses unasked
	HostPort      uint16 // 0 = any free port (or not published, for expose)
	ContainerPort uint16
	Count         uint16 // >= 1
	Proto         string // "tcp" or "udp"
}

func (p *Port) decodeTOML(d *decoder, v *value, key string) {
	switch v.kind {
	case kindInt:
		if v.num < 1 || v.num > 65535 {
			d.fail(v, key, "port %d out of range 1-65535", v.num)
			return
		}
		*p = Port{ContainerPort: uint16(v.num), Count: 1, Proto: "tcp"}
	case kindString:
		x, err := ParsePort(v.str)
		if err != nil {
			d.fail(v, key, "%v", err)
			return
		}
		*p = x
	default:
		d.wrongType(v, key, `a port like "8080:80"`)
	}
}

// ParsePort parses a port as `ports`, `expose` and `-p` write it:
// [[IP:]HOST:]CONTAINER[/PROTO], where HOST and CONTAINER may be ranges
// of the same length ("8000-8002:9000-9002") and IP may be bracketed IPv6.
func ParsePort(s string) (Port, error) {
	bad := func(format string, args ...any) (Port, error) {
		return Port{}, fmt.Errorf("invalid port %q: %s", s, fmt.Sprintf(format, args...))
	}
	rest, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	} else if proto != "tcp" && proto != "udp" {
		return bad("protocol %q: want tcp or udp", proto)
	}

	var ip string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return bad("want [IPV6]:HOST:CONTAINER")
		}
		ip, rest = rest[1:end], rest[end+2:]
	}
	parts := strings.Split(rest, ":")
	if ip == "" && len(parts) == 3 {
		ip, parts = parts[0], parts[1:]
	}
	if len(parts) > 2 || ip != "" && len(parts) != 2 {
		return bad("want [[IP:]HOST:]CONTAINER[/tcp|udp]")
	}
	if ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return bad("%q is not an IP address", ip)
		}
	}

	ctr, n, err := parseRange(parts[len(parts)-1])
	if err != nil {
		return bad("%v", err)
	}
	p := Port{HostIP: ip, ContainerPort: ctr, Count: n, Proto: proto}
	if len(parts) == 2 && parts[0] != "" {
		host, hn, err := parseRange(parts[0])
		if err != nil {
			return bad("%v", err)
		}
		if hn != n {
			return bad("host range has %d ports, container range %d", hn, n)
		}
		p.HostPort = host
	}
	return p, nil
}

// parseRange parses "N" or "N-M" into the first port and a count.
func parseRange(s string) (uint16, uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	first, err := parsePortNumber(lo)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return first, 1, nil
	}
	last, err := parsePortNumber(hi)
	if err != nil {
		return 0, 0, err
	}
	if last < first {
		return 0, 0, fmt.Errorf("range %s ends before it starts", s)
	}
	return first, last - first + 1, nil
}

func parsePortNumber(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", n)
	}
	return uint16(n), nil
}

func (p Port) String() string {
	r := func(start uint16) string {
		if p.Count > 1 {
			return fmt.Sprintf("%d-%d", start, int(start)+int(p.Count)-1)
		}
		return strconv.Itoa(int(start))
	}
	s := r(p.ContainerPort)
	if p.HostPort != 0 {
		s = r(p.HostPort) + ":" + s
	}
	if p.HostIP != "" {
		ip := p.HostIP
		if strings.Contains(ip, ":") {
			ip = "[" + ip + "]"
		}
		if p.HostPort == 0 {
			s = ":" + s
		}
		s = ip + ":" + s
	}
	return s + "/" + p.Proto
}

func (p Port) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Volume is a bind mount of a host path or a named volume kept in the store.
type Volume struct {
	Source   string // bind: an absolute host path; volume: the volume's name
	Target   string // absolute path in the container
	ReadOnly bool
	Named    bool // a named volume rather than a bind mount
}

var volumeName = lazyRegexp(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func (vol *Volume) decodeTOML(d *decoder, v *value, key string) {
	if v.kind != kindString {
		d.wrongType(v, key, `a volume like "./data:/data" or "cache:/cache:ro"`)
		return
	}
	x, err := ParseVolume(v.str, d.dir, d.home)
	if err != nil {
		d.fail(v, key, "%v", err)
		return
	}
	*vol = x
}

// ParseVolume parses SOURCE:TARGET[:ro|rw]. A SOURCE starting with ".",
// "/" or "~" is a host path (relative ones resolve against dir, "~" against
// home); anything else names a volume.
func ParseVolume(s, dir, home string) (Volume, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Volume{}, fmt.Errorf("invalid volume %q: want SOURCE:TARGET[:ro]", s)
	}
	v := Volume{Source: parts[0], Target: parts[1]}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			v.ReadOnly = true
		case "rw":
		default:
			return Volume{}, fmt.Errorf("invalid volume %q: option %q: want ro or rw", s, parts[2])
		}
	}
	if !strings.HasPrefix(v.Target, "/") {
		return Volume{}, fmt.Errorf("invalid volume %q: target %q must be an absolute path", s, v.Target)
	}
	v.Target = filepath.Clean(v.Target)
	switch src := v.Source; {
	case src == "~" || strings.HasPrefix(src, "~/"):
		v.Source = filepath.Join(home, src[1:])
	case strings.HasPrefix(src, "/"):
		v.Source = filepath.Clean(src)
	case strings.HasPrefix(src, "."):
		v.Source = filepath.Join(dir, src)
	case volumeName().MatchString(src):
		v.Named = true
	default:
		return Volume{}, fmt.Errorf("invalid volume %q: %q is neither a path (start it with ./ or /) nor a volume name", s, src)
	}
	return v, nil
}

func (v Volume) String() string {
	s := v.Source + ":" + v.Target
	if v.ReadOnly {
		s += ":ro"
	}
	return s
}

func (v Volume) MarshalText() ([]byte, error) { return []byte(v.String()), nil }
