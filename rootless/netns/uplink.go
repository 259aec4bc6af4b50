package netns

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/nook-dev/nook/rootless"
	"github.com/vishvananda/netlink"
)

// slirpHostLoopback is where slirp4netns maps the host's 127.0.0.1
// (unless --disable-host-loopback).
var slirpHostLoopback = netip.MustParseAddr("10.0.2.2")

// Where containers send DNS queries: slirp4netns answers at 10.0.2.3;
// pasta forwards what is sent to its --dns-forward address to the host's
// first resolver (podman uses the same link-local address).
var (
	slirpDNS = netip.MustParseAddr("10.0.2.3")
	pastaDNS = netip.MustParseAddr("169.254.1.1")
)

// uplink is a running pasta or slirp4netns attached to the hub.
type uplink struct {
	kind         Outbound
	cmd          *exec.Cmd
	done         chan struct{}
	hostLoopback netip.Addr // where the host's loopback answers, if mapped
}

// dns is where containers behind the uplink send DNS queries.
func (u *uplink) dns() netip.Addr {
	if u.kind == OutboundSlirp {
		return slirpDNS
	}
	return pastaDNS
}

// pickOutbound resolves OutboundAuto to what is installed.
func pickOutbound(o Outbound) (Outbound, error) {
	switch o {
	case OutboundNone:
		return o, nil
	case OutboundPasta, OutboundSlirp:
		if _, err := exec.LookPath(string(o)); err != nil {
			return "", fmt.Errorf("outbound %s: %w", o, err)
		}
		return o, nil
	case OutboundAuto:
		for _, o := range []Outbound{OutboundPasta, OutboundSlirp} {
			if _, err := exec.LookPath(string(o)); err == nil {
				return o, nil
			}
		}
		return "", rootless.WithHint(
			errors.New("neither pasta nor slirp4netns is installed: containers cannot reach beyond their network"),
			`sudo apt-get install passt (or slirp4netns); or, in a project, [network] outbound = "none"`)
	}
	return "", fmt.Errorf("unknown outbound %q", o)
}

// startUplink starts pasta or slirp4netns for the namespace at nsPath and
// returns once its interface is configured. Both tell us through a pipe
// at fd 3: pasta writes its pid file there once set up, slirp4netns
// writes "1" to its --ready-fd.
func startUplink(kind Outbound, nsPath string, opts Options) (*uplink, error) {
	mtu := strconv.Itoa(opts.MTU)
	var args []string
	switch kind {
	case OutboundPasta:
		// -f: stay our child, so Pdeathsig and Close reach it. No port
		// forwarding either way (-t/-u/-T/-U none): ports go through the
		// builtin driver, and pasta's "auto" would scan /proc/net every
		// second. --netns with a path joins the network namespace only.
		args = []string{"pasta", "-f", "-q", "--config-net", "--netns", nsPath,
			"-P", "/proc/self/fd/3", "-I", uplinkName, "--mtu", mtu, "-4",
			"-t", "none", "-u", "none", "-T", "none", "-U", "none", "--dns-forward", pastaDNS.String()}
		if !opts.HostLoopback {
			args = append(args, "--no-map-gw")
		}
		if os.Geteuid() == 0 {
			// Run by real root (a supervisor outside any user namespace),
			// pasta would become nobody, who may not open the hub.
			args = append(args, "--runas", "0:0")
		}
	case OutboundSlirp:
		args = []string{"slirp4netns", "--configure", "--mtu=" + mtu, "--ready-fd=3",
			"--netns-type=path", nsPath, uplinkName}
		if !opts.HostLoopback {
			args = append(args, "--disable-host-loopback")
		}
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var stderr strings.Builder
	u := &uplink{kind: kind, done: make(chan struct{})}
	u.cmd = &exec.Cmd{
		Path: path, Args: args, Stdout: opts.Log, Stderr: &teeWriter{&stderr, opts.Log},
		ExtraFiles:  []*os.File{w},
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // Pdeathsig follows the forking thread
		defer runtime.UnlockOSThread()
		if err := u.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		u.cmd.Wait()
		close(u.done)
	}()
	err = <-started
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	line, _ := bufio.NewReader(r).ReadString('\n')
	if strings.TrimSpace(line) == "" {
		u.kill()
		err := fmt.Errorf("start %s: exited during setup (%v): %s", kind, u.cmd.ProcessState, strings.TrimSpace(stderr.String()))
		if strings.Contains(stderr.String(), "/dev/net/tun") {
			// Machines without udev leave it 0600 (nook doctor checks it).
			err = rootless.WithHint(err, "sudo chmod 0666 /dev/net/tun")
		}
		return nil, err
	}
	if opts.HostLoopback {
		if kind == OutboundSlirp {
			u.hostLoopback = slirpHostLoopback
		} else if u.hostLoopback, err = defaultGateway(nsPath); err != nil {
			u.kill()
			return nil, fmt.Errorf("start %s: %w", kind, err)
		}
	}
	return u, nil
}

// defaultGateway reads the hub's default route, which pasta copied from
// the host: pasta maps connections to it to the host's loopback.
func defaultGateway(nsPath string) (gw netip.Addr, err error) {
	err = inNS(nsPath, func(h *netlink.Handle) error {
		routes, err := h.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw != nil {
				gw, _ = netip.AddrFromSlice(r.Gw.To4())
				return nil
			}
		}
		return errors.New("no default route in the network namespace")
	})
	return gw, err
}

// kill ends the uplink and waits for it. Idempotent.
func (u *uplink) kill() {
	select {
	case <-u.done:
		return
	default:
	}
	u.cmd.Process.Kill()
	<-u.done
}

// teeWriter writes to both; Log may be io.Discard.
type teeWriter struct {
	a, b interface{ Write([]byte) (int, error) }
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.a.Write(p)
	return t.b.Write(p)
}
