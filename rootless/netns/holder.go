package netns

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"github.com/nook-dev/nook/rootless"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// holderEntry is the registered re-exec entry point of the process that
// holds a hub namespace.
const holderEntry = "nook.netns-holder"

func init() { rootless.Register(holderEntry, holderMain) }

// holderConfig is what the supervisor tells the holder, as JSON in argv[2].
type holderConfig struct {
	Bridge string
	Addr   netip.Prefix // the bridge's address, the containers' gateway
	MTU    int
	NFT    string // path of nft(8) for the masquerade rule; "" = no NAT
	// PortChild is what the port driver's child half needs (runPortChild).
	PortChild map[string]string
}

// holder is the running holder process.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // closed by Close: the holder exits on EOF
	done  chan struct{}  // closed once the holder has exited
	err   error          // its exit, valid after done
}

// startHolder starts the holder in a new network namespace and returns
// once that namespace is set up and the holder holds no capabilities
// (pasta and slirp4netns drop theirs before they open /proc/PID/ns/net,
// and the kernel's ptrace check refuses a target with more capabilities
// than the opener).
func startHolder(cfg holderConfig) (*holder, error) {
	arg, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:   "/proc/self/exe",
		Args:   []string{"nook-netns", "setup", string(arg)},
		Env:    []string{rootless.SelfEnv(holderEntry)},
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWNET,
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	h := &holder{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the forking thread exits (golang/go#27505):
		// keep this one for the holder's whole life.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		h.err = cmd.Wait()
		close(h.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start network holder: %w", err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line == "ok\n" {
		return h, nil
	}
	h.kill()
	msg := strings.TrimSpace(strings.TrimPrefix(line, "err "))
	if msg == "" {
		msg = fmt.Sprintf("holder exited (%v): %s", h.err, strings.TrimSpace(stderr.String()))
	}
	return nil, fmt.Errorf("set up network namespace: %s", msg)
}

// pid is the holder's pid on the host.
func (h *holder) pid() int { return h.cmd.Process.Pid }

// kill ends the holder and waits for it. Idempotent.
func (h *holder) kill() {
	h.stdin.Close()
	select {
	case <-h.done:
		return
	default:
	}
	h.cmd.Process.Kill()
	<-h.done
}

// holderMain runs in the holder: "setup CONFIG" configures the new
// namespace, drops capabilities and re-executes itself as "hold", which
// waits for EOF on stdin.
func holderMain() int {
	if len(os.Args) == 3 && os.Args[1] == "hold" {
		// Only now, without capabilities, may pasta open our namespace.
		// Dialing containers needs none.
		var opaque map[string]string
		if err := json.Unmarshal([]byte(os.Args[2]), &opaque); err != nil {
			fmt.Fprintf(os.Stdout, "err holder: bad port driver arguments: %v\n", err)
			return 1
		}
		quit := make(chan struct{})
		go func() {
			if err := runPortChild(opaque, quit); err != nil {
				fmt.Fprintf(os.Stderr, "nook: network holder: port driver: %v\n", err)
			}
		}()
		fmt.Fprintln(os.Stdout, "ok")
		io.Copy(io.Discard, os.Stdin)
		close(quit)
		return 0
	}
	if len(os.Args) != 3 || os.Args[1] != "setup" {
		fmt.Fprintf(os.Stdout, "err holder: bad arguments %q\n", os.Args[1:])
		return 1
	}
	var cfg holderConfig
	err := json.Unmarshal([]byte(os.Args[2]), &cfg)
	if err == nil {
		err = setupHub(cfg)
	}
	if err == nil {
		err = dropCapsAndHold(cfg.PortChild)
	}
	fmt.Fprintf(os.Stdout, "err %v\n", err)
	return 1
}

// setupHub brings up lo and the bridge, turns on forwarding and, with
// NAT, masquerades the bridge's subnet on its way out.
func setupHub(cfg holderConfig) error {
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: cfg.Bridge, MTU: cfg.MTU}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s: %w", cfg.Bridge, err)
	}
	addr := &netlink.Addr{IPNet: prefixNet(cfg.Addr)}
	if err := netlink.AddrAdd(br, addr); err != nil {
		return fmt.Errorf("address bridge %s: %w", cfg.Bridge, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("bring up bridge %s: %w", cfg.Bridge, err)
	}
	// /proc/sys/net belongs to the network namespace of whoever opens it.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0); err != nil {
		return fmt.Errorf("enable forwarding: %w", err)
	}
	if cfg.NFT == "" {
		return nil
	}
	// The uplink (pasta's or slirp4netns' tap) knows one address of ours;
	// pasta of Debian 12 (2023-03) even answers the last source it saw.
	rules := fmt.Sprintf(`table ip nook {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %s oifname != "%s" masquerade
	}
}
`, cfg.Addr.Masked(), cfg.Bridge)
	nft := exec.Command(cfg.NFT, "-f", "-")
	nft.Stdin = strings.NewReader(rules)
	if out, err := nft.CombinedOutput(); err != nil {
		return fmt.Errorf("add masquerade rule with nft: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// dropCapsAndHold empties the inheritable, ambient and bounding sets and
// re-executes the holder as "hold": uid 0 then gets no capabilities from
// execve. The bounding
// set is per thread, so the exec must happen on the thread that dropped.
func dropCapsAndHold(portChild map[string]string) error {
	runtime.LockOSThread() // never unlocked: the process image is replaced
	// An inheritable or ambient capability would survive the execve.
	if err := rootless.ClearInheritedCaps(); err != nil {
		return err
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	arg, err := json.Marshal(portChild)
	if err != nil {
		return err
	}
	err = unix.Exec("/proc/self/exe", []string{"nook-netns", "hold", string(arg)}, []string{rootless.SelfEnv(holderEntry)})
	return fmt.Errorf("re-exec holder: %w", err)
}
