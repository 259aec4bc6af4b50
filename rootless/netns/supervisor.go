package netns

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/nook-dev/nook/rootless"
)

// The supervisor is the process that owns a project's network while the
// project is up: it holds the Network (and so the hub, the uplink and the
// published ports), starts the project's container monitors so that they
// share its user namespace, and attaches each container when its monitor
// asks. It answers rootless.NetRequest lines on a unix socket in its
// folder. It lives until "shutdown" or until its holder dies; a SIGKILL
// releases everything (see Network), and the next Supervise starts a new
// one with a new generation.
const supervisorEntry = "nook.net-supervisor"

func init() {
	rootless.Register(supervisorEntry, supervisorMain)
	rootless.RegisterNetwork(ownNetwork)
}

// SupervisorOptions configure a project network.
type SupervisorOptions struct {
	Dir          string // the supervisor's folder: socket, port driver state, log
	Outbound     Outbound
	HostLoopback bool
}

// matches reports whether a running supervisor was started with opts.
func (opts SupervisorOptions) matches(info *rootless.NetInfo) bool {
	hostLoopback := info.HostLoopback != ""
	outbound := opts.Outbound == OutboundAuto || string(opts.Outbound) == info.Outbound
	return hostLoopback == opts.HostLoopback && outbound
}

// Socket is the supervisor socket in dir.
func Socket(dir string) string { return filepath.Join(dir, "net.sock") }

// Supervise returns the running supervisor of opts.Dir, starting one if
// none answers (or if the one running was started with other options:
// it is shut down first, and its containers lose their network). It must
// run as uid 0 in nook's user namespace, in the host's network namespace.
func Supervise(opts SupervisorOptions) (*rootless.NetInfo, error) {
	sock := Socket(opts.Dir)
	if rep, err := rootless.NetCall(sock, rootless.NetRequest{Op: "info"}); err == nil {
		if opts.matches(rep.Info) {
			return rep.Info, nil
		}
		rootless.NetCall(sock, rootless.NetRequest{Op: "shutdown"})
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("start network: %w", err)
	}
	arg, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(opts.Dir, "supervisor.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start network: %w", err)
	}
	defer logf.Close()
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer reportR.Close()
	cmd := rootless.Self(supervisorEntry, string(arg))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{reportW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		return nil, fmt.Errorf("start network: %w", err)
	}
	go cmd.Wait()
	line, _ := bufio.NewReader(reportR).ReadString('\n')
	if line != "ok\n" {
		var pe hintedError
		if json.Unmarshal([]byte(line), &pe) != nil || pe.Msg == "" {
			pe.Msg = "its supervisor exited during setup; see " + filepath.Join(opts.Dir, "supervisor.log")
		}
		return nil, &pe
	}
	rep, err := rootless.NetCall(sock, rootless.NetRequest{Op: "info"})
	if err != nil {
		return nil, fmt.Errorf("start network: %w", err)
	}
	return rep.Info, nil
}

// hintedError travels from the supervisor to Supervise as JSON.
type hintedError struct {
	Msg      string `json:"msg"`
	HintText string `json:"hint,omitempty"`
}

func (e *hintedError) Error() string { return e.Msg }
func (e *hintedError) Hint() string  { return e.HintText }

// supervisorMain runs the supervisor: os.Args[1] is its options as JSON;
// fd 3 gets "ok" once it serves, or the error as JSON.
func supervisorMain() int {
	report := os.NewFile(3, "report")
	fail := func(err error) int {
		he := hintedError{Msg: "start network: " + err.Error()}
		var h interface{ Hint() string }
		if errors.As(err, &h) {
			he.HintText = h.Hint()
		}
		json.NewEncoder(report).Encode(he)
		return 1
	}
	var opts SupervisorOptions
	if len(os.Args) < 2 || json.Unmarshal([]byte(os.Args[1]), &opts) != nil {
		return fail(errors.New("bad arguments"))
	}
	sock := Socket(opts.Dir)
	state := filepath.Join(opts.Dir, "ports")
	os.Remove(sock) // a killed supervisor's
	os.RemoveAll(state)
	if err := os.Mkdir(state, 0o700); err != nil {
		return fail(err)
	}
	n, err := Create(Options{Outbound: opts.Outbound, HostLoopback: opts.HostLoopback, StateDir: state, Log: os.Stderr})
	if err != nil {
		return fail(err)
	}
	defer n.Close()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fail(err)
	}
	defer os.Remove(sock)
	s := &supervisor{n: n, l: l, ports: map[string]*published{}, quit: make(chan struct{})}
	s.info = rootless.NetInfo{
		Generation: strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(rootless.ProcessStart(os.Getpid()), 10),
		Outbound:   string(n.Outbound()),
	}
	if a, ok := n.HostLoopback(); ok {
		s.info.HostLoopback = a.String()
	}
	if a, ok := n.DNS(); ok {
		s.info.DNS = a.String()
	}
	fmt.Fprintln(report, "ok")
	report.Close()

	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	select {
	case <-s.quit:
	case <-sigs:
	case <-n.Done():
		if s.stopping.Load() {
			<-s.quit // "shutdown" closed it; its answer is on its way
			break
		}
		fmt.Fprintln(os.Stderr, "nook: network supervisor: the network namespace's holder died")
		return 1
	}
	l.Close()
	return 0
}

// supervisor is a running supervisor's state.
type supervisor struct {
	n    *Network
	l    *net.UnixListener
	info rootless.NetInfo

	mu       sync.Mutex // guards ports
	ports    map[string]*published
	quit     chan struct{}
	quitOnce sync.Once
	stopping atomic.Bool // a "shutdown" is releasing the network
}

// published is what one container publishes: specs while it exists,
// listening (releases not nil) while it is attached.
type published struct {
	specs    []rootless.PublishedPort
	releases []func() error
}

func (s *supervisor) serve(c net.Conn) {
	defer c.Close()
	line, err := bufio.NewReader(io.LimitReader(c, 1<<20)).ReadBytes('\n')
	if err != nil {
		return
	}
	var req rootless.NetRequest
	var rep rootless.NetReply
	if err := json.Unmarshal(line, &req); err != nil {
		rep.Error = "bad request: " + err.Error()
	} else if err := s.handle(req, &rep); err != nil {
		rep.Error = err.Error()
		var h interface{ Hint() string }
		if errors.As(err, &h) {
			rep.Hint = h.Hint()
		}
		var ie *rootless.InitError
		var se *startError
		switch {
		case errors.As(err, &ie):
			rep.Code = ie.Code
		case errors.As(err, &se):
			rep.Code = se.code
		}
	}
	json.NewEncoder(c).Encode(rep)
	if req.Op == "shutdown" {
		s.quitOnce.Do(func() { close(s.quit) })
	}
}

func (s *supervisor) handle(req rootless.NetRequest, rep *rootless.NetReply) error {
	switch req.Op {
	case "info":
		info := s.info
		rep.Info = &info
	case "start":
		// The ports it is to publish once attached: they may have gone
		// with an earlier container of its name, or an earlier supervisor.
		c, err := (&rootless.Containers{Root: req.Root}).Get(req.ID)
		if err != nil {
			return err
		}
		if c.Network != nil {
			s.want(c.Name, c.Network.Ports)
		}
		return rootless.ParseReport(rootless.SpawnMonitor(req.Root, req.ID), c.Name)
	case "attach":
		if _, err := s.n.Attach(req.Pid, req.Name); err != nil {
			return err
		}
		return s.open(req.Name)
	case "detached":
		// Its container exited: connections to its ports are refused at
		// once, not left waiting on a SYN to an address nobody holds
		// (TCP retries after a second) until it is attached again.
		s.close(req.Name)
		s.n.Forget(req.Name)
	case "reserve":
		rep.Addrs = map[string]string{}
		for _, name := range req.Names {
			ip, err := s.n.Reserve(name)
			if err != nil {
				return err
			}
			rep.Addrs[name] = ip.String()
		}
	case "publish":
		s.want(req.Name, req.Ports)
		return s.open(req.Name)
	case "release":
		// The container is gone, and its end of the pair with its
		// namespace, which takes the pair with it (asynchronously: Attach
		// copes). The address stays the name's: every /etc/hosts of the
		// project lists it, and a container made again under the name
		// takes it.
		s.drop(req.Name)
		s.n.Forget(req.Name)
	case "shutdown":
		// Released before the answer: a down that returned left no port
		// open and no helper running.
		s.stopping.Store(true)
		s.l.Close() // also removes the socket: the next Supervise starts anew
		return s.n.Close()
	default:
		return fmt.Errorf("unknown request %q", req.Op)
	}
	return nil
}

// startError is a start that failed before the container's monitor ran,
// with the exit status Docker would give it.
type startError struct {
	code int
	err  error
}

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// want records the ports name publishes while attached; ports it had
// that changed are closed.
func (s *supervisor) want(name string, specs []rootless.PublishedPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.ports[name]
	if p != nil && slices.Equal(p.specs, specs) {
		return
	}
	if p != nil {
		p.closeLocked()
	}
	s.ports[name] = &published{specs: specs}
}

// open listens on name's ports, unless it does already. On error, none of
// them listens.
func (s *supervisor) open(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.ports[name]
	if p == nil || p.releases != nil {
		return nil
	}
	releases := []func() error{}
	for _, sp := range p.specs {
		release, err := s.n.Publish(portSpec(name, sp))
		if err != nil {
			for _, r := range releases {
				r()
			}
			return err
		}
		releases = append(releases, release)
	}
	p.releases = releases
	return nil
}

// close stops listening on name's ports; they open again at its next
// attach.
func (s *supervisor) close(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.ports[name]; p != nil {
		p.closeLocked()
	}
}

// drop closes name's ports and forgets them.
func (s *supervisor) drop(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.ports[name]; p != nil {
		p.closeLocked()
		delete(s.ports, name)
	}
}

func (p *published) closeLocked() {
	for _, r := range p.releases {
		r()
	}
	p.releases = nil
}

// portSpec translates rootless's description of a port to ours.
func portSpec(name string, p rootless.PublishedPort) PortSpec {
	spec := PortSpec{Proto: p.Proto, HostPort: p.HostPort, Container: name, ContainerPort: p.ContainerPort}
	if ip, err := netip.ParseAddr(p.HostIP); err == nil {
		spec.HostIP = ip
	}
	return spec
}

// ownNetwork is the network of a container that is on no project's: its
// monitor holds it, with the container's published ports, while the
// container runs.
func ownNetwork(name string, cfg rootless.NetworkConfig, log io.Writer) (rootless.OwnNetwork, error) {
	n, err := Create(Options{Outbound: StandaloneOutbound(), Log: log})
	if err != nil {
		return nil, err
	}
	for _, p := range cfg.Ports {
		if _, err := n.Publish(portSpec(name, p)); err != nil {
			n.Close()
			return nil, err
		}
	}
	return &own{n: n, name: name}, nil
}

type own struct {
	n    *Network
	name string
}

func (o *own) Attach(pid int) error {
	_, err := o.n.Attach(pid, o.name)
	return err
}

// Close releases the network when the monitor is done, which is just
// before it exits.
func (o *own) Close() error {
	o.n.Release()
	return nil
}

// StandaloneOutbound is the uplink of a standalone container's network:
// slirp4netns if installed, else pasta. Each such container has one of
// its own, and slirp4netns keeps about 1 MB where pasta keeps 20 (its
// packet buffers); a project's one network uses pasta, which moves more.
func StandaloneOutbound() Outbound {
	if _, err := exec.LookPath(string(OutboundSlirp)); err == nil {
		return OutboundSlirp
	}
	return OutboundAuto
}

// Resolver is the nameserver containers on a network with outbound o
// use; ok is false when they have none.
func Resolver(o Outbound) (addr netip.Addr, ok bool) {
	switch o, _ = pickOutbound(o); o {
	case OutboundPasta:
		return pastaDNS, true
	case OutboundSlirp:
		return slirpDNS, true
	}
	return netip.Addr{}, false
}
