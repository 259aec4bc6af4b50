package rootless

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec.Network values.
const (
	NetworkHost = "host" // the caller's network namespace
	NetworkNone = "none" // a namespace with only lo
	// NetworkPrivate is a namespace of its own on a private network: the
	// container's init waits before the command starts until the monitor
	// has attached it (see NetworkConfig).
	NetworkPrivate = "private"
)

// PublishedPort is a host port forwarded to a container port.
type PublishedPort struct {
	Proto         string `json:"proto"`             // "tcp" or "udp"
	HostIP        string `json:"host_ip,omitempty"` // "" means 127.0.0.1
	HostPort      int    `json:"host_port"`
	ContainerPort int    `json:"container_port"`
}

// String is Docker's form, "127.0.0.1:8080->80/tcp".
func (p PublishedPort) String() string {
	ip := p.HostIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	return net.JoinHostPort(ip, strconv.Itoa(p.HostPort)) + "->" + strconv.Itoa(p.ContainerPort) + "/" + p.Proto
}

// NetworkConfig says how a container with a private network is connected.
//
// With a Supervisor, the container is on a project's network: that
// supervisor (package netns) starts the container's monitor, so the
// monitor lives in the supervisor's user namespace, and attaches the
// container when the monitor asks. Without one, the monitor makes a
// network of its own for the container, publishes Ports on it, and
// releases it when the container exits.
type NetworkConfig struct {
	Supervisor string          `json:"supervisor,omitempty"` // the supervisor's socket
	Ports      []PublishedPort `json:"ports,omitempty"`
}

// supervisor is the socket of the project network's supervisor c is on;
// "" for a container with no project network.
func (c *Container) supervisor() string {
	if c.Network == nil {
		return ""
	}
	return c.Network.Supervisor
}

// tellSupervisor sends op about c to its project network's supervisor, if
// it has one, and ignores the answer: for news a supervisor that is gone
// has no use for ("detached", "release").
func (c *Container) tellSupervisor(op string) {
	if sock := c.supervisor(); sock != "" {
		NetCall(sock, NetRequest{Op: op, Name: c.Name})
	}
}

// OwnNetwork is a network a monitor made for its container alone.
type OwnNetwork interface {
	// Attach connects the container whose init is pid.
	Attach(pid int) error
	Close() error
}

var (
	networkMu   sync.Mutex
	makeNetwork func(name string, cfg NetworkConfig, log io.Writer) (OwnNetwork, error)
)

// RegisterNetwork installs what makes a standalone container's network
// (package netns does, from its init function). Without it, starting such
// a container fails.
func RegisterNetwork(fn func(name string, cfg NetworkConfig, log io.Writer) (OwnNetwork, error)) {
	networkMu.Lock()
	defer networkMu.Unlock()
	makeNetwork = fn
}

func newOwnNetwork(c *Container, log io.Writer) (OwnNetwork, error) {
	networkMu.Lock()
	fn := makeNetwork
	networkMu.Unlock()
	if fn == nil {
		return nil, errors.New("no network support in this binary")
	}
	var cfg NetworkConfig
	if c.Network != nil {
		cfg = *c.Network
	}
	return fn(c.Name, cfg, log)
}

// NetRequest is one request to a network supervisor: a JSON line on its
// socket, answered by one NetReply line.
type NetRequest struct {
	// Op is "start" (start container ID of store Root: its monitor),
	// "attach" (Name's init is Pid; its ports open), "detached" (Name's
	// container exited; its ports close until it attaches again),
	// "reserve" (give Names addresses), "publish" (open Name's Ports now,
	// replacing what it had), "release" (Name is removed: its ports go),
	// "info", or "shutdown".
	Op    string          `json:"op"`
	Root  string          `json:"root,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Pid   int             `json:"pid,omitempty"`
	Names []string        `json:"names,omitempty"`
	Ports []PublishedPort `json:"ports,omitempty"`
}

// NetReply answers a NetRequest.
type NetReply struct {
	Error string `json:"error,omitempty"`
	Hint  string `json:"hint,omitempty"`
	// Code is the exit status Docker would give a "start" that failed.
	Code  int               `json:"code,omitempty"`
	Addrs map[string]string `json:"addrs,omitempty"` // "reserve": name -> address
	Info  *NetInfo          `json:"info,omitempty"`
}

// NetInfo describes a running supervisor.
type NetInfo struct {
	Generation   string `json:"generation"` // differs for every supervisor ever started
	Outbound     string `json:"outbound"`
	HostLoopback string `json:"host_loopback,omitempty"`
	DNS          string `json:"dns,omitempty"`
}

// NetError is an error a supervisor answered with.
type NetError struct {
	Msg, hint string
	Code      int
}

func (e *NetError) Error() string { return e.Msg }
func (e *NetError) Hint() string  { return e.hint }

// ErrNoSupervisor is returned (wrapped) when a supervisor's socket does
// not answer: it is not running.
var ErrNoSupervisor = errors.New("the network supervisor is not running")

// NetCall sends req to the supervisor at socket and returns its answer;
// an answer with an error comes back as a *NetError.
func NetCall(socket string, req NetRequest) (NetReply, error) {
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return NetReply{}, fmt.Errorf("%s: %w (%v)", req.Op, ErrNoSupervisor, err)
	}
	defer conn.Close()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return NetReply{}, fmt.Errorf("%s: %w", req.Op, err)
	}
	var rep NetReply
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &rep)
	}
	if err != nil {
		return NetReply{}, fmt.Errorf("%s: no answer from the network supervisor: %w", req.Op, err)
	}
	if rep.Error != "" {
		return rep, &NetError{Msg: rep.Error, hint: rep.Hint, Code: rep.Code}
	}
	return rep, nil
}

// SpawnMonitor starts container id's monitor, detached, in this process's
// namespaces, and returns once the container runs: what a supervisor does
// for "start". It returns the monitor's report: "ok", or "CODE MESSAGE".
func SpawnMonitor(root, id string) string {
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return fmt.Sprintf("%d %v", exitSetup, err)
	}
	defer reportR.Close()
	cmd := Self(entryMonitor, root, id, "detached")
	cmd.ExtraFiles = []*os.File{reportW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err = InheritSealed(cmd); err == nil {
		err = cmd.Start()
	}
	reportW.Close()
	if err != nil {
		return fmt.Sprintf("%d start monitor: %v", exitSetup, err)
	}
	go cmd.Wait() // reap it if it exits while we live
	line, _ := bufio.NewReader(reportR).ReadString('\n')
	return strings.TrimSpace(line)
}

// Self returns a command that runs the registered entry point name in a
// new copy of this binary in the caller's namespaces (no new user
// namespace), with args as its os.Args[1:].
func Self(name string, args ...string) *exec.Cmd {
	return &exec.Cmd{
		Path: "/proc/self/exe",
		Args: append([]string{"nook"}, args...),
		Env:  append(os.Environ(), SelfEnv(name)),
	}
}

// SelfEnv is the environment entry that makes a re-executed binary run
// entry point name without the user namespace bootstrap.
func SelfEnv(name string) string { return envSelf + "=" + name }
