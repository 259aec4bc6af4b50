package project

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nook-dev/nook/rootless"
	"github.com/nook-dev/nook/rootless/netns"
)

// HostLoopbackName is the name at which containers reach the host's
// loopback, when the project's network allows it.
const HostLoopbackName = "host.nook.internal"

// projectNet is a project's running network, as Up sees it.
type projectNet struct {
	info   *rootless.NetInfo
	socket string
	hosts  map[string][]string // address -> names, for every container's /etc/hosts
	ports  map[string][]rootless.PublishedPort
}

// onProjectNetwork reports whether a service joins its project's network.
// A keep_id service cannot: its monitor runs in a user namespace of its
// own mapping, where the network's supervisor has no say; it shares the
// host's network instead.
func onProjectNetwork(ctr *Container) bool {
	return ctr.Network == "project" && !ctr.KeepID
}

// networkDir holds a project's network supervisor: socket, state, log.
func (rt *Runtime) networkDir(project string) string {
	return filepath.Join(rt.Store.Root, "projects", project+".net")
}

// upNetwork starts the project's network if it is not running, gives
// every container of services its address, and publishes their ports,
// all before any container starts: a port in use fails the whole up.
// It returns nil when no service is on the project network.
func (rt *Runtime) upNetwork(p *Project, services []string, o UpOptions, existing []*rootless.Container) (*projectNet, error) {
	if !slices.ContainsFunc(services, func(s string) bool { return onProjectNetwork(p.Containers[s]) }) {
		return nil, nil
	}
	opts := netns.SupervisorOptions{Dir: rt.networkDir(p.Name)}
	if p.Network != nil {
		opts.HostLoopback = p.Network.HostLoopback
		if p.Network.Outbound != "auto" {
			opts.Outbound = netns.Outbound(p.Network.Outbound)
		}
	}
	info, err := netns.Supervise(opts)
	if err != nil {
		return nil, fmt.Errorf("project %s: %w", p.Name, err)
	}
	pn := &projectNet{info: info, socket: netns.Socket(opts.Dir), hosts: map[string][]string{}, ports: map[string][]rootless.PublishedPort{}}

	// Every container of every service on the network gets its address
	// now, so each /etc/hosts can name all the others.
	var names []string
	aliases := map[string][]string{}
	for _, svc := range p.StartOrder {
		ctr := p.Containers[svc]
		if !onProjectNetwork(ctr) {
			continue
		}
		for n := 1; n <= max(replicas(ctr, svc, o.Scale), 1); n++ {
			name := ContainerName(p.Name, svc, n)
			short := replicaName(svc, n)
			names = append(names, name)
			aliases[name] = []string{short, short + "." + p.Name, name}
		}
	}
	rep, err := rootless.NetCall(pn.socket, rootless.NetRequest{Op: "reserve", Names: names})
	if err != nil {
		return nil, fmt.Errorf("project %s: network: %w", p.Name, err)
	}
	for _, name := range names {
		addr := rep.Addrs[name]
		pn.hosts[addr] = append(pn.hosts[addr], aliases[name]...)
	}
	if info.HostLoopback != "" {
		pn.hosts[info.HostLoopback] = append(pn.hosts[info.HostLoopback], HostLoopbackName)
	}

	for _, svc := range services {
		ctr := p.Containers[svc]
		if !onProjectNetwork(ctr) {
			continue
		}
		for n := 1; n <= replicas(ctr, svc, o.Scale); n++ {
			name := ContainerName(p.Name, svc, n)
			var had []rootless.PublishedPort
			if i := slices.IndexFunc(existing, func(c *rootless.Container) bool { return c.Name == name }); i >= 0 && existing[i].Network != nil {
				had = existing[i].Network.Ports
			}
			ports, err := PublishedPorts(ctr.Ports, had)
			if err != nil {
				return nil, fmt.Errorf("start %s: %w", replicaName(svc, n), err)
			}
			if _, err := rootless.NetCall(pn.socket, rootless.NetRequest{Op: "publish", Name: name, Ports: ports}); err != nil {
				return nil, fmt.Errorf("start %s: %w", replicaName(svc, n), err)
			}
			pn.ports[name] = ports
		}
	}
	// Containers that stay get the new list too, when it changed (a
	// service was scaled). It is rewritten in place, as it is bind-mounted:
	// a reader could see it half written, so an unchanged list (every
	// dev-loop restart) is left alone.
	for _, c := range existing {
		if c.Network == nil || c.Network.Supervisor != pn.socket || c.Spec.Hosts == "" {
			continue
		}
		want := hostsFile(c.Spec.Hostname, pn.hosts)
		if have, err := os.ReadFile(c.Spec.Hosts); err != nil || string(have) != want {
			os.WriteFile(c.Spec.Hosts, []byte(want), 0o644)
		}
	}
	return pn, nil
}

// downNetwork stops the project's network supervisor, if it runs.
func (rt *Runtime) downNetwork(project string) error {
	_, err := rootless.NetCall(netns.Socket(rt.networkDir(project)), rootless.NetRequest{Op: "shutdown"})
	if errors.Is(err, rootless.ErrNoSupervisor) {
		return nil
	}
	return err
}

// PublishedPorts expands a container's `ports` into single ports, each
// with a host port: HOST or, for "any free port", the one the container
// had before (had), else a free one now.
func PublishedPorts(ports []Port, had []rootless.PublishedPort) ([]rootless.PublishedPort, error) {
	var out []rootless.PublishedPort
	for _, p := range ports {
		for i := range int(p.Count) {
			pp := rootless.PublishedPort{Proto: p.Proto, HostIP: p.HostIP, ContainerPort: int(p.ContainerPort) + i}
			if p.HostPort != 0 {
				pp.HostPort = int(p.HostPort) + i
			} else if j := slices.IndexFunc(had, func(h rootless.PublishedPort) bool {
				return h.Proto == pp.Proto && h.HostIP == pp.HostIP && h.ContainerPort == pp.ContainerPort
			}); j >= 0 {
				pp.HostPort = had[j].HostPort
			} else {
				free, err := freePort(pp.Proto, pp.HostIP)
				if err != nil {
					return nil, err
				}
				pp.HostPort = free
			}
			out = append(out, pp)
		}
	}
	return out, nil
}

// freePort asks the kernel for a port free on ip now.
func freePort(proto, ip string) (int, error) {
	if ip == "" {
		ip = "127.0.0.1"
	}
	addr := net.JoinHostPort(ip, "0")
	if proto == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return 0, fmt.Errorf("find a free udp port on %s: %w", ip, err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("find a free tcp port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// hostsFile is a container's /etc/hosts: localhost, its own hostname,
// and names (address -> names).
func hostsFile(hostname string, names map[string][]string) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	own := false
	for _, addr := range slices.SortedFunc(maps.Keys(names), compareAddrs) {
		b.WriteString(addr + "\t" + strings.Join(names[addr], " ") + "\n")
		own = own || slices.Contains(names[addr], hostname)
	}
	if !own {
		b.WriteString("127.0.1.1\t" + hostname + "\n")
	}
	return b.String()
}

// compareAddrs orders addresses numerically (10.89.0.2 before 10.89.0.10).
func compareAddrs(a, b string) int {
	x, errA := netip.ParseAddr(a)
	y, errB := netip.ParseAddr(b)
	if errA != nil || errB != nil {
		return strings.Compare(a, b)
	}
	return x.Compare(y)
}
