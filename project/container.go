package project

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nook-dev/nook/layers"
	"github.com/nook-dev/nook/rootless"
	"github.com/nook-dev/nook/rootless/netns"
)

// Runtime is the store and the container set one user's nook works on.
type Runtime struct {
	Store      *layers.Store
	Containers *rootless.Containers
	Mapping    rootless.Mapping
}

// OpenRuntime opens the store and containers under root.
func OpenRuntime(root string) (*Runtime, error) {
	s, err := layers.Open(root)
	if err != nil {
		return nil, err
	}
	m, err := rootless.HostMapping()
	if err != nil {
		return nil, err
	}
	cs := &rootless.Containers{Root: filepath.Join(root, "containers")}
	if err := os.MkdirAll(cs.Root, 0o700); err != nil {
		return nil, err
	}
	return &Runtime{Store: s, Containers: cs, Mapping: m}, nil
}

// ErrNeedsNamespace is CreateContainer's answer outside nook's user
// namespace (to an ordinary user's process) when the image's layers are
// not all unpacked: unpacking gives files the image's owners, which only
// the namespace can. Run it again inside.
var ErrNeedsNamespace = errors.New("create container: the image's layers must be unpacked inside nook's user namespace")

// ContainerOptions describe a container to create from an image, as
// `nook create` and `nook run` take them. Empty fields take the image's
// values.
type ContainerOptions struct {
	Image      string
	Name       string
	Cmd        []string
	Entrypoint []string // nil keeps the image's; an empty non-nil slice clears it
	Env        []string // KEY=VALUE, added to the image's
	Workdir    string
	User       string
	Hostname   string
	// Network is "private" (the default: a network of the container's
	// own, or its project's with Supervisor), "host" or "none".
	Network    string
	Supervisor string                   // a project network's supervisor socket
	Ports      []rootless.PublishedPort // published on a private network
	DNS        string                   // the project network's nameserver, if it has one
	Volumes    []Volume
	Remove     bool
	Terminal   bool
	Labels     map[string]string

	// Hosts adds names to the container's /etc/hosts (address -> names).
	Hosts map[string][]string

	Restart     rootless.RestartPolicy
	Healthcheck *rootless.Healthcheck
	StopSignal  string        // default: the image's, else SIGTERM
	StopTimeout time.Duration // default: 10s
	KeepID      bool
}

// CreateContainer makes a container from an image: it unpacks the image's
// layers (once, shared), prepares the container's writable layer and its
// /etc files, and records it. It must run as uid 0 in nook's user
// namespace (or as root).
func (rt *Runtime) CreateContainer(o ContainerOptions) (*rootless.Container, error) {
	d, err := rt.Store.Resolve(o.Image)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	im, err := rt.Store.Image(d)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	var lowers []string
	for _, l := range slices.Backward(im.Layers()) {
		if os.Geteuid() != 0 {
			dir, ok := rt.Store.IsUnpacked(l)
			if !ok {
				return nil, ErrNeedsNamespace
			}
			lowers = append(lowers, dir)
			continue
		}
		dir, err := rt.Store.Unpacked(l, rt.Mapping.Kind == rootless.MapSingle)
		if err != nil {
			return nil, fmt.Errorf("create container: %w", err)
		}
		lowers = append(lowers, dir)
	}
	cfg := im.Config.Config
	args := cfg.Cmd
	if o.Cmd != nil {
		args = o.Cmd
	}
	entry := cfg.Entrypoint
	if o.Entrypoint != nil {
		entry = o.Entrypoint
		if o.Cmd == nil {
			args = nil // Docker: --entrypoint drops the image's cmd
		}
	}
	argv := append(slices.Clone(entry), args...)
	if len(argv) == 0 {
		return nil, fmt.Errorf("create container: image %s has no cmd or entrypoint: give a command", o.Image)
	}
	env := mergeEnv(cfg.Env, o.Env)
	network := o.Network
	if network == "" {
		network = rootless.NetworkPrivate
	}
	stopSignal := firstNonEmpty(o.StopSignal, cfg.StopSignal, "SIGTERM")
	stopTimeout := o.StopTimeout
	if stopTimeout == 0 {
		stopTimeout = 10 * time.Second
	}
	rc := rootless.Config{
		Name: o.Name, Image: o.Image, ImageID: d.String(), Labels: o.Labels, Remove: o.Remove,
		StopSignal: stopSignal, StopTimeout: stopTimeout, Restart: o.Restart, Healthcheck: o.Healthcheck,
		KeepID:  o.KeepID && !rootless.IsHostRoot(),
		Network: netConfig(network, o),
		Spec: rootless.Spec{
			// A --rm container's upper is mounted once and removed after;
			// one that restarts mounts it again, which volatile forbids.
			Volatile:  o.Remove && (o.Restart.Policy == "" || o.Restart.Policy == "no"),
			LayerRoot: rt.Store.LayerDir(),
			Lowers:    lowers,
			Network:   network,
			Process: rootless.Process{
				Args: argv, Env: env, Cwd: firstNonEmpty(o.Workdir, cfg.WorkingDir, "/"),
				User: firstNonEmpty(o.User, cfg.User), Terminal: o.Terminal,
				NoSetGroups: rt.Mapping.Kind == rootless.MapSingle,
			},
		},
	}
	if rc.KeepID && o.User == "" {
		// The user's own ids inside, as outside.
		uid, gid, err := rootless.KeepIDUser()
		if err != nil {
			return nil, fmt.Errorf("create container: %w", err)
		}
		rc.Spec.Process.User = fmt.Sprintf("%d:%d", uid, gid)
	}
	for _, v := range o.Volumes {
		if v.Named {
			dir, err := rt.volume(v.Source)
			if err != nil {
				return nil, err
			}
			v.Source = dir
		}
		rc.Spec.Mounts = append(rc.Spec.Mounts, rootless.Mount{Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	c, err := rt.Containers.Create(rc)
	if err != nil {
		return nil, err
	}
	dns := o.DNS
	if network == rootless.NetworkPrivate && o.Supervisor == "" {
		// A network of its own: its uplink's forwarder.
		if a, ok := netns.Resolver(netns.StandaloneOutbound()); ok {
			dns = a.String()
		}
	}
	if err := prepareContainer(c, o.Hostname, network, o.Hosts, dns); err != nil {
		rt.Containers.Remove(c)
		return nil, err
	}
	return c, nil
}

// netConfig is how a container on a private network is connected.
func netConfig(network string, o ContainerOptions) *rootless.NetworkConfig {
	if network != rootless.NetworkPrivate {
		return nil
	}
	return &rootless.NetworkConfig{Supervisor: o.Supervisor, Ports: o.Ports}
}

// prepareContainer fills in the paths and /etc files of a new container
// and saves its config.
func prepareContainer(c *rootless.Container, hostname, network string, names map[string][]string, dns string) error {
	if hostname == "" {
		hostname = c.Name
		if len(hostname) > 63 {
			hostname = hostname[:63]
		}
	}
	s := &c.Spec
	s.Upper, s.Work, s.Rootfs = filepath.Join(c.Dir, "upper"), filepath.Join(c.Dir, "work"), filepath.Join(c.Dir, "rootfs")
	s.ExecDir = c.Dir
	s.Hostname = hostname
	s.Hosts, s.HostnameFile, s.ResolvConf = filepath.Join(c.Dir, "hosts"), filepath.Join(c.Dir, "hostname"), filepath.Join(c.Dir, "resolv.conf")
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	resolv := "nameserver 127.0.0.1\n" // "none": nothing answers, and says so at once
	switch network {
	case rootless.NetworkHost:
		resolv = string(hostResolv)
	case rootless.NetworkPrivate:
		if dns != "" {
			resolv = privateResolv(string(hostResolv), dns)
		}
	}
	for name, content := range map[string]string{s.Hosts: hostsFile(hostname, names), s.HostnameFile: hostname + "\n", s.ResolvConf: resolv} {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			return fmt.Errorf("create container: %w", err)
		}
	}
	return c.SaveConfig()
}

// privateResolv is resolv.conf on a private network: the uplink's
// forwarder as the nameserver, the host's search domains and options.
func privateResolv(host, dns string) string {
	out := "nameserver " + dns + "\n"
	for line := range strings.Lines(host) {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "search" || f[0] == "domain" || f[0] == "options") {
			out += strings.TrimSpace(line) + "\n"
		}
	}
	return out
}

// volumeDir is where a named volume lives.
func (rt *Runtime) volumeDir(name string) string {
	return filepath.Join(rt.Store.Root, "volumes", name)
}

// volume returns the folder of a named volume, creating it.
func (rt *Runtime) volume(name string) (string, error) {
	dir := rt.volumeDir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	return dir, nil
}

func mergeEnv(base, add []string) []string {
	out := slices.Clone(base)
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		out = slices.DeleteFunc(out, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		out = append(out, kv)
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// Commit makes an image of a container: its image plus one layer with
// what the container changed, tagged name. The /etc files nook mounts
// over are not part of it.
func (rt *Runtime) Commit(c *rootless.Container, name string) (v1.Hash, error) {
	base, err := v1.NewHash(c.ImageID)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("commit %s: %w", c.Name, err)
	}
	im, err := rt.Store.Image(base)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("commit %s: %w", c.Name, err)
	}
	layer, err := rt.Store.WriteUpper(c.Spec.Upper, "etc/hosts", "etc/hostname", "etc/resolv.conf")
	if err != nil {
		return v1.Hash{}, fmt.Errorf("commit %s: %w", c.Name, err)
	}
	var descs []layers.LayerDesc
	for _, l := range im.Manifest.Layers {
		descs = append(descs, layers.LayerDesc{Digest: l.Digest, Size: l.Size})
	}
	cfg := *im.Config
	cfg.History = append(cfg.History, v1.History{CreatedBy: "nook commit " + c.Name})
	d, err := rt.Store.PutImage(cfg, append(descs, layer))
	if err != nil {
		return v1.Hash{}, err
	}
	if name != "" {
		err = rt.Store.Tag(name, d)
	}
	return d, err
}
