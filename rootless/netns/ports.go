package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rootless-containers/rootlesskit/v2/pkg/port"
	"github.com/rootless-containers/rootlesskit/v2/pkg/port/builtin"
	"github.com/rootless-containers/rootlesskit/v2/pkg/port/builtin/child"
)

// PortSpec publishes one host port to one container port.
type PortSpec struct {
	Proto         string     // "tcp" or "udp"
	HostIP        netip.Addr // zero means 127.0.0.1
	HostPort      int
	Container     string // an attached name; it may attach after Publish
	ContainerPort int
}

func (s PortSpec) String() string {
	ip := s.HostIP
	if !ip.IsValid() {
		ip = loopback
	}
	return fmt.Sprintf("%s/%s -> %s:%d", netip.AddrPortFrom(ip, uint16(s.HostPort)), s.Proto, s.Container, s.ContainerPort)
}

var loopback = netip.MustParseAddr("127.0.0.1")

// Errors a PortError wraps, for errors.Is.
var (
	ErrPortInUse      = errors.New("port already in use")
	ErrPortPrivileged = errors.New("port below net.ipv4.ip_unprivileged_port_start")
)

// PortError is a port that could not be published. Hint, when not
// empty, is the command that would allow it.
type PortError struct {
	Spec PortSpec
	Err  error
	hint string
}

func (e *PortError) Error() string {
	ip := e.Spec.HostIP
	if !ip.IsValid() {
		ip = loopback
	}
	return fmt.Sprintf("publish %s/%s: %v", netip.AddrPortFrom(ip, uint16(e.Spec.HostPort)), e.Spec.Proto, e.Err)
}
func (e *PortError) Unwrap() error { return e.Err }
func (e *PortError) Hint() string  { return e.hint }

// ports runs rootlesskit's builtin port driver: the parent half in this
// process listens on the host; the child half runs in the holder, inside
// the hub, dials the container for each connection and hands the
// connected socket back over a unix socket in the state folder. (The
// child could run here too, entering the hub for each connection, but a
// thread that enters the hub cannot come back, so every connection would
// cost a thread: a third fewer requests a second.)
type ports struct {
	parent port.ParentDriver
	quit   chan struct{}
	errc   chan error
}

// newPorts prepares the parent half; the child half needs opaque.
func newPorts(stateDir string, log io.Writer) (*ports, map[string]string, error) {
	parent, err := builtin.NewParentDriver(log, stateDir)
	if err != nil {
		return nil, nil, fmt.Errorf("start port driver: %w", err)
	}
	return &ports{parent: parent, quit: make(chan struct{}), errc: make(chan error, 1)}, parent.OpaqueForChild(), nil
}

// start runs the parent half and returns once the child half answered.
func (p *ports) start() error {
	initDone := make(chan struct{}, 1)
	go func() { p.errc <- p.parent.RunParentDriver(initDone, p.quit, &port.ChildContext{}) }()
	select {
	case <-initDone:
		return nil
	case err := <-p.errc:
		close(p.quit)
		return fmt.Errorf("start port driver: %w", err)
	}
}

// runPortChild runs the child half in the holder until quit.
func runPortChild(opaque map[string]string, quit <-chan struct{}) error {
	return child.NewDriver(io.Discard).RunChildDriver(opaque, quit, "")
}

// close removes every port and stops the driver.
func (p *ports) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a guess: listeners close at once
	defer cancel()
	list, _ := p.parent.ListPorts(ctx)
	var errs []error
	for _, st := range list {
		if err := p.parent.RemovePort(ctx, st.ID); err != nil {
			errs = append(errs, fmt.Errorf("unpublish %d: %w", st.Spec.ParentPort, err))
		}
	}
	close(p.quit)
	return errors.Join(errs...)
}

// Publish listens on spec's host address and forwards each connection (or
// UDP flow) to the container's address. The container must be attached
// when a connection comes, not before. A port that is taken is a
// *PortError wrapping ErrPortInUse; one the kernel reserves for root
// wraps ErrPortPrivileged, with the sysctl that allows it as its Hint.
// release stops listening; it is idempotent.
func (n *Network) Publish(spec PortSpec) (release func() error, err error) {
	if spec.Proto == "" {
		spec.Proto = "tcp"
	}
	if !spec.HostIP.IsValid() {
		spec.HostIP = loopback
	}
	if spec.Proto != "tcp" && spec.Proto != "udp" {
		return nil, &PortError{Spec: spec, Err: fmt.Errorf("protocol %q: want tcp or udp", spec.Proto)}
	}
	if spec.HostPort < 1 || spec.HostPort > 65535 || spec.ContainerPort < 1 || spec.ContainerPort > 65535 {
		return nil, &PortError{Spec: spec, Err: errors.New("port out of range 1-65535")}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, &PortError{Spec: spec, Err: ErrClosed}
	}
	ip, err := n.addrOf(spec.Container)
	if err != nil {
		return nil, &PortError{Spec: spec, Err: err}
	}
	st, err := n.ports.parent.AddPort(context.Background(), port.Spec{
		Proto: spec.Proto, ParentIP: spec.HostIP.String(), ParentPort: spec.HostPort,
		ChildIP: ip.String(), ChildPort: spec.ContainerPort,
	})
	if err != nil {
		return nil, portError(spec, err)
	}
	var once bool
	return func() error {
		n.mu.Lock()
		defer n.mu.Unlock()
		if once || n.closed {
			return nil
		}
		once = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return n.ports.parent.RemovePort(ctx, st.ID)
	}, nil
}

// addrOf returns the address name has or will have. A name not attached
// yet is given its address now, so ports can be published (and refused)
// before any container starts.
func (n *Network) addrOf(name string) (netip.Addr, error) {
	if name == "" {
		return netip.Addr{}, errors.New("no container named")
	}
	if e, ok := n.endpoints[name]; ok {
		return e.ip, nil
	}
	ip, err := n.freeIP()
	if err != nil {
		return netip.Addr{}, err
	}
	n.endpoints[name] = &endpoint{ip: ip} // reserved: no veth yet
	return ip, nil
}

// portError explains why the kernel refused a listener.
func portError(spec PortSpec, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return &PortError{Spec: spec, Err: ErrPortInUse, hint: fmt.Sprintf("stop what uses it (ss -%slnp 'sport = :%d' shows it), or publish another host port", spec.Proto[:1], spec.HostPort)}
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		start := unprivilegedPortStart()
		if start < 0 || spec.HostPort >= start {
			break
		}
		return &PortError{
			Spec: spec,
			Err:  &explained{fmt.Sprintf("port %d is below net.ipv4.ip_unprivileged_port_start (%d)", spec.HostPort, start), ErrPortPrivileged},
			hint: fmt.Sprintf("sudo sysctl -w net.ipv4.ip_unprivileged_port_start=%d (add it to /etc/sysctl.d to keep it), or publish a port >= %d", spec.HostPort, start),
		}
	}
	return &PortError{Spec: spec, Err: err}
}

// explained is a sentinel error with a message of its own.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// unprivilegedPortStart reads the host's sysctl; -1 if unreadable.
func unprivilegedPortStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}
