package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by methods of a Network after Close (or after its
// holder died).
var ErrClosed = errors.New("network closed")

// endpoint is one attached container.
type endpoint struct {
	ip   netip.Addr
	veth string // the hub's end of the pair
}

// containerIf is the container's end of the pair.
const containerIf = "eth0"

// Attach puts the network namespace of process pid (a container's init,
// started with CLONE_NEWNET) on the bridge under name: a veth pair whose
// far end becomes eth0 there, with the next free address of the subnet,
// the MTU, lo up and a default route via the bridge. It returns the
// address: the one Reserve or Publish gave the name, if they came first.
// Attaching a name again (its container restarted) replaces the earlier
// pair and keeps the address. Errors leave nothing behind.
func (n *Network) Attach(pid int, name string) (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return netip.Addr{}, fmt.Errorf("attach %q: %w", name, ErrClosed)
	}
	var ip netip.Addr
	if e, ok := n.endpoints[name]; ok {
		// An earlier pair went, or is going, with the namespace of the
		// container that ended; plumb replaces one that lingers.
		e.veth = ""
		ip = e.ip
	} else {
		var err error
		if ip, err = n.freeIP(); err != nil {
			return netip.Addr{}, fmt.Errorf("attach %q: %w", name, err)
		}
	}
	// Host-side names must be unique in the hub and at most 15 bytes; the
	// last octet(s) of the address are both.
	veth := "nk" + strconv.FormatUint(uint64(ipIndex(n.subnet, ip)), 10)
	if err := n.plumb(pid, ip, veth); err != nil {
		return netip.Addr{}, fmt.Errorf("attach %q: %w", name, err)
	}
	n.endpoints[name] = &endpoint{ip: ip, veth: veth}
	return ip, nil
}

// plumb creates the veth pair and configures the container's end.
func (n *Network) plumb(pid int, ip netip.Addr, veth string) error {
	ctrPath := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	ctr, err := netns.GetFromPath(ctrPath)
	if err != nil {
		return fmt.Errorf("open %s: %w", ctrPath, err)
	}
	defer ctr.Close()
	err = inNS(n.nsPath(), func(hub *netlink.Handle) error {
		br, err := hub.LinkByName(n.opts.Bridge)
		if err != nil {
			return fmt.Errorf("find bridge: %w", err)
		}
		link := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: veth, MTU: n.opts.MTU, MasterIndex: br.Attrs().Index},
			PeerName:         containerIf,
			PeerNamespace:    netlink.NsFd(int(ctr)),
			PeerHardwareAddr: macOf(ip),
		}
		err = hub.LinkAdd(link)
		if errors.Is(err, unix.EEXIST) {
			// The pair of an earlier container at this address, whose
			// namespace the kernel has not finished tearing down.
			if old, lerr := hub.LinkByName(veth); lerr == nil {
				hub.LinkDel(old)
			}
			err = hub.LinkAdd(link)
		}
		if err != nil {
			return fmt.Errorf("add veth %s: %w", veth, err)
		}
		if err := hub.LinkSetUp(link); err != nil {
			hub.LinkDel(link)
			return fmt.Errorf("bring up %s: %w", veth, err)
		}
		// Packets that came for the address while no container held it
		// wait for its MAC (see Forget); knowing it now sends them on.
		hub.NeighSet(&netlink.Neigh{
			LinkIndex: br.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_REACHABLE,
			IP: net.IP(ip.AsSlice()), HardwareAddr: macOf(ip),
		})
		return nil
	})
	if err != nil {
		return err
	}
	err = inNS(ctrPath, func(h *netlink.Handle) error {
		return configureContainer(h, netip.PrefixFrom(ip, n.subnet.Bits()), n.gateway, n.opts.MTU)
	})
	if err != nil {
		n.unplumb(veth) // deleting one end deletes the pair
	}
	return err
}

// macOf is the MAC address of the container with address ip: derived from
// it, as Docker does, so that a container restarted at the same address
// has the same MAC, and its peers' ARP caches stay right (with a random
// one, they would send to the old MAC until their entries expire).
func macOf(ip netip.Addr) net.HardwareAddr {
	a := ip.As4()
	return net.HardwareAddr{0x02, 0x42, a[0], a[1], a[2], a[3]}
}

// configureContainer sets up lo and eth0 in the container's namespace.
func configureContainer(h *netlink.Handle, addr netip.Prefix, gw netip.Addr, mtu int) error {
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	eth, err := h.LinkByName(containerIf)
	if err != nil {
		return fmt.Errorf("find %s: %w", containerIf, err)
	}
	if err := h.LinkSetMTU(eth, mtu); err != nil {
		return fmt.Errorf("set mtu of %s: %w", containerIf, err)
	}
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: prefixNet(addr)}); err != nil {
		return fmt.Errorf("address %s: %w", containerIf, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("bring up %s: %w", containerIf, err)
	}
	route := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.IP(gw.AsSlice())}
	if err := h.RouteAdd(route); err != nil {
		return fmt.Errorf("add default route via %s: %w", gw, err)
	}
	return nil
}

// Reserve gives name its address now, before it attaches, so that every
// container's /etc/hosts can list every other one.
func (n *Network) Reserve(name string) (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return netip.Addr{}, fmt.Errorf("reserve %q: %w", name, ErrClosed)
	}
	return n.addrOf(name)
}

// Forget records that name's container is gone, with its end of the veth
// pair (the kernel removes the pair with the container's namespace). The
// address stays the name's for its next Attach. The hub forgets the
// address's MAC: a connection to it now waits for the address to be
// resolved, which happens the moment the name attaches again, rather than
// going nowhere and being retried by TCP a second later (a restart in
// the dev loop takes a few tens of milliseconds).
func (n *Network) Forget(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.endpoints[name]
	if !ok || n.closed {
		return
	}
	e.veth = ""
	inNS(n.nsPath(), func(hub *netlink.Handle) error {
		br, err := hub.LinkByName(n.opts.Bridge)
		if err != nil {
			return err
		}
		return hub.NeighDel(&netlink.Neigh{LinkIndex: br.Attrs().Index, Family: netlink.FAMILY_V4, IP: net.IP(e.ip.AsSlice())})
	})
}

// Detach removes name's veth pair and frees its address. Detaching a name
// that is not attached is not an error (a container that died took its
// end, and with it the pair, already).
func (n *Network) Detach(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.endpoints[name]
	if !ok || n.closed {
		return nil
	}
	delete(n.endpoints, name)
	if e.veth == "" {
		return nil
	}
	if err := n.unplumb(e.veth); err != nil {
		return fmt.Errorf("detach %q: %w", name, err)
	}
	return nil
}

// unplumb deletes the hub's end of a pair, if it still exists.
func (n *Network) unplumb(veth string) error {
	return inNS(n.nsPath(), func(hub *netlink.Handle) error {
		l, err := hub.LinkByName(veth)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil
			}
			return err
		}
		return hub.LinkDel(l)
	})
}

// freeIP returns the lowest unused address after the gateway.
func (n *Network) freeIP() (netip.Addr, error) {
	used := map[netip.Addr]bool{}
	for _, e := range n.endpoints {
		used[e.ip] = true
	}
	for a := n.gateway.Next(); n.subnet.Contains(a); a = a.Next() {
		if !used[a] && n.subnet.Contains(a.Next()) { // the last is broadcast
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("subnet %s is full", n.subnet)
}

// ipIndex is ip's offset in subnet.
func ipIndex(subnet netip.Prefix, ip netip.Addr) uint32 {
	a, b := subnet.Addr().As4(), ip.As4()
	return (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) -
		(uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]))
}
