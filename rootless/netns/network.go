package netns

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nook-dev/nook/rootless"
)

// Defaults for Options' zero values.
const (
	DefaultBridge = "nook0"
	// DefaultMTU is 65520, the largest pasta and slirp4netns accept: with
	// 1500, slirp4netns moves about a seventh of the data (rootlesskit
	// docs/network.md) and pasta's tap queue overflows (rootlesskit#615).
	DefaultMTU = 65520
	uplinkName = "nook-wan" // pasta's or slirp4netns' tap in the hub
)

// Outbound names how the hub reaches the world.
type Outbound string

const (
	OutboundAuto  Outbound = ""            // pasta if installed, else slirp4netns
	OutboundPasta Outbound = "pasta"       // passt's pasta(1)
	OutboundSlirp Outbound = "slirp4netns" // slirp4netns(1)
	OutboundNone  Outbound = "none"        // containers reach only each other
)

// Options configure Create. The zero value is a usable default.
type Options struct {
	Bridge   string       // "" means DefaultBridge
	Subnet   netip.Prefix // a /24 or larger; zero picks 10.89.N.0/24 clear of the host's routes
	MTU      int          // 0 means DefaultMTU
	Outbound Outbound
	// HostLoopback lets containers reach the host's loopback through the
	// uplink's gateway (pasta: the host's default gateway address;
	// slirp4netns: 10.0.2.2). Off by default, as in rootless Docker:
	// services bound to 127.0.0.1 on the host trust their callers.
	HostLoopback bool
	// StateDir holds the port driver's sockets; "" means a new directory
	// under os.TempDir, removed by Close.
	StateDir string
	Log      io.Writer // pasta's, slirp4netns' and the port driver's chatter; nil discards
}

// Network is a project's private network. Its methods are safe for
// concurrent use.
type Network struct {
	opts     Options
	subnet   netip.Prefix
	gateway  netip.Addr // the bridge's address
	holder   *holder
	uplink   *uplink // nil with OutboundNone
	ports    *ports
	ownState bool

	mu        sync.Mutex
	endpoints map[string]*endpoint
	closed    bool
	closeErr  error
	done      chan struct{} // closed when Close has released everything
}

// Create sets up a network: the holder with its namespace, the uplink
// and the port driver. It must run as uid 0 in nook's user namespace, in
// the network namespace where ports are to be published. On error
// nothing is left behind.
func Create(opts Options) (n *Network, err error) {
	if opts.Bridge == "" {
		opts.Bridge = DefaultBridge
	}
	if opts.MTU == 0 {
		opts.MTU = DefaultMTU
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	subnet := opts.Subnet
	if !subnet.IsValid() {
		if subnet, err = freeSubnet(); err != nil {
			return nil, err
		}
	}
	if !subnet.Addr().Is4() || subnet.Bits() > 30 {
		return nil, fmt.Errorf("create network: subnet %s: want IPv4, /30 or larger", subnet)
	}
	n = &Network{opts: opts, subnet: subnet.Masked(), endpoints: map[string]*endpoint{}, done: make(chan struct{})}
	n.gateway = n.subnet.Addr().Next()
	defer func() {
		if err != nil {
			n.Close()
			n = nil
		}
	}()
	if n.opts.StateDir == "" {
		if n.opts.StateDir, err = os.MkdirTemp("", "nook-net-"); err != nil {
			return n, fmt.Errorf("create network: %w", err)
		}
		n.ownState = true
	}
	outbound, err := pickOutbound(opts.Outbound)
	if err != nil {
		return n, fmt.Errorf("create network: %w", err)
	}
	cfg := holderConfig{Bridge: opts.Bridge, Addr: netip.PrefixFrom(n.gateway, n.subnet.Bits()), MTU: opts.MTU}
	if outbound != OutboundNone {
		if cfg.NFT, err = rootless.LookSbin(exec.LookPath, "nft"); err != nil {
			return n, fmt.Errorf("create network: %w", rootless.WithHint(
				fmt.Errorf("outbound traffic is masqueraded with nft(8): %w", err),
				`sudo apt-get install nftables; or, in a project, [network] outbound = "none"`))
		}
	}
	var opaque map[string]string
	if n.ports, opaque, err = newPorts(n.opts.StateDir, opts.Log); err != nil {
		return n, fmt.Errorf("create network: %w", err)
	}
	cfg.PortChild = opaque
	if n.holder, err = startHolder(cfg); err != nil {
		return n, fmt.Errorf("create network: %w", err)
	}
	if outbound != OutboundNone {
		if n.uplink, err = startUplink(outbound, n.nsPath(), opts); err != nil {
			return n, fmt.Errorf("create network: %w", err)
		}
	}
	if err = n.ports.start(); err != nil {
		return n, fmt.Errorf("create network: %w", err)
	}
	go n.watchHolder()
	return n, nil
}

// watchHolder releases everything when the holder dies before Close (a
// SIGKILL, say): the namespace is gone, and so must the ports be.
func (n *Network) watchHolder() {
	<-n.holder.done
	n.Close()
}

// nsPath is the hub's namespace file.
func (n *Network) nsPath() string { return "/proc/" + strconv.Itoa(n.holder.pid()) + "/ns/net" }

// HolderPid is the pid of the process holding the hub namespace.
func (n *Network) HolderPid() int { return n.holder.pid() }

// Outbound says which uplink runs (OutboundNone if none).
func (n *Network) Outbound() Outbound {
	if n.uplink == nil {
		return OutboundNone
	}
	return n.uplink.kind
}

// HostLoopback is the address at which containers reach the host's
// loopback, when Options.HostLoopback asked for it; ok is false otherwise.
func (n *Network) HostLoopback() (addr netip.Addr, ok bool) {
	if n.uplink == nil || !n.opts.HostLoopback {
		return netip.Addr{}, false
	}
	return n.uplink.hostLoopback, n.uplink.hostLoopback.IsValid()
}

// DNS is the nameserver for containers' /etc/resolv.conf: the uplink's
// forwarder; ok is false without an uplink.
func (n *Network) DNS() (addr netip.Addr, ok bool) {
	if n.uplink == nil {
		return netip.Addr{}, false
	}
	return n.uplink.dns(), true
}

// Hosts returns a copy of the attached containers' names and addresses,
// for their /etc/hosts.
func (n *Network) Hosts() map[string]netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]netip.Addr, len(n.endpoints))
	for name, e := range n.endpoints {
		out[name] = e.ip
	}
	return out
}

// Close releases the ports, the uplink and the namespace. It is
// idempotent; later calls return the first call's result.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return n.closeErr
	}
	n.closed = true
	var errs []error
	if n.ports != nil {
		errs = append(errs, n.ports.close())
	}
	if n.uplink != nil {
		n.uplink.kill()
	}
	if n.holder != nil {
		n.holder.kill()
	}
	if n.ownState {
		errs = append(errs, os.RemoveAll(n.opts.StateDir))
	}
	n.closeErr = errors.Join(errs...)
	close(n.done)
	return n.closeErr
}

// Release is Close for a process about to exit: it kills the uplink and
// the holder and returns without waiting for them, or for the port
// listeners, which close with the process. (Their exits are slow: the
// kernel takes tens of milliseconds to unregister a tap or a veth.)
func (n *Network) Release() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if n.uplink != nil {
		n.uplink.cmd.Process.Kill()
	}
	if n.holder != nil {
		n.holder.stdin.Close()
		n.holder.cmd.Process.Kill()
	}
}

// Done is closed once the network is released: by Close, or because its
// holder died.
func (n *Network) Done() <-chan struct{} { return n.done }

// UplinkPid is the pid of pasta or slirp4netns, 0 with OutboundNone.
func (n *Network) UplinkPid() int {
	if n.uplink == nil {
		return 0
	}
	return n.uplink.cmd.Process.Pid
}

// freeSubnet returns the first 10.89.N.0/24 that overlaps none of the
// host's routes (of the caller's network namespace).
func freeSubnet() (netip.Prefix, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list routes: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list addresses: %w", err)
	}
	var used []netip.Prefix
	for _, r := range routes {
		if r.Dst != nil {
			used = append(used, netPrefix(r.Dst))
		}
	}
	for _, a := range addrs {
		used = append(used, netPrefix(a.IPNet).Masked())
	}
	for i := 0; i < 256; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 89, byte(i), 0}), 24)
		if !overlapsAny(p, used) {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("create network: every 10.89.N.0/24 overlaps a host route; set Options.Subnet")
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.IsValid() && u.Bits() > 0 && p.Overlaps(u) {
			return true
		}
	}
	return false
}

func netPrefix(n *net.IPNet) netip.Prefix {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// inNS runs fn with a netlink handle in the namespace at path, on a
// thread of its own that enters the namespace and then dies. It cannot
// come back: returning to the host's namespace needs CAP_SYS_ADMIN in the
// host's user namespace, which nook's user namespace does not have; a
// thread that tried and failed would carry the next goroutine's sockets
// into the wrong namespace (netlink's NewHandleAt ignores that error).
func inNS(path string, fn func(h *netlink.Handle) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime ends the thread with the goroutine
		errc <- func() error {
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s: %w", path, err)
			}
			defer unix.Close(fd)
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("enter %s: %w", path, err)
			}
			h, err := netlink.NewHandle()
			if err != nil {
				return fmt.Errorf("netlink in %s: %w", path, err)
			}
			defer h.Close()
			return fn(h)
		}()
	}()
	return <-errc
}
