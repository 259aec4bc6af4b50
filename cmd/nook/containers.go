package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nook-dev/nook/project"
	"github.com/nook-dev/nook/rootless"
)

func openRuntime() (*project.Runtime, error) {
	root, err := storeRoot()
	if err != nil {
		return nil, err
	}
	return project.OpenRuntime(root)
}

// createFlags are the flags create and run share.
type createFlags struct {
	name, workdir, user, hostname, network, entrypoint, userns string
	env, volumes, publish                                      []string
	rm, interactive, tty                                       bool
	entrypointSet                                              bool
}

func (f *createFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "name the container")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (`KEY=VALUE`, or KEY to pass yours)")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working folder inside the container")
	fs.StringVarP(&f.user, "user", "u", "", "run as `USER[:GROUP]` (names or ids)")
	fs.StringArrayVarP(&f.volumes, "volume", "v", nil, "bind mount `HOST:CONTAINER[:ro]` or a named volume")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "replace the image's entrypoint")
	fs.StringVar(&f.hostname, "hostname", "", "hostname inside (default: the container's name)")
	fs.StringVar(&f.network, "network", "private", "network: private (its own, with outbound access), host or none")
	fs.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a container port on the host: `[[IP:]HOST:]CONTAINER[/udp]` (IP defaults to 127.0.0.1)")
	fs.StringVar(&f.userns, "userns", "", "keep-id: your own uid and gid inside, so files in bind mounts stay yours")
	fs.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open")
	fs.BoolVarP(&f.tty, "tty", "t", false, "give the container a terminal")
}

func (f *createFlags) options(cmd *cobra.Command, args []string) (project.ContainerOptions, error) {
	o := project.ContainerOptions{
		Image: args[0], Name: f.name, Workdir: f.workdir, User: f.user, Hostname: f.hostname,
		Network: f.network, Remove: f.rm, Terminal: f.tty,
	}
	if err := checkTTY(f.interactive, f.tty); err != nil {
		return o, err
	}
	if len(args) > 1 {
		o.Cmd = args[1:]
	}
	if cmd.Flags().Changed("entrypoint") {
		o.Entrypoint = []string{}
		if f.entrypoint != "" {
			o.Entrypoint = []string{f.entrypoint}
		}
	}
	switch f.userns {
	case "":
	case "keep-id":
		o.KeepID = true
	default:
		return o, fmt.Errorf("--userns %q: want keep-id", f.userns)
	}
	switch f.network {
	case "private", "bridge":
		o.Network = rootless.NetworkPrivate
	case "host", "none":
		if len(f.publish) > 0 {
			return o, fmt.Errorf("-p: a container on the %s network publishes no ports; drop -p or --network %s", f.network, f.network)
		}
	default:
		return o, fmt.Errorf("--network %q: want private, host or none", f.network)
	}
	for _, s := range f.publish {
		p, err := project.ParsePort(s)
		if err != nil {
			return o, fmt.Errorf("-p: %w", err)
		}
		if p.HostIP == "" {
			p.HostIP = "127.0.0.1"
		}
		ports, err := project.PublishedPorts([]project.Port{p}, nil)
		if err != nil {
			return o, fmt.Errorf("-p %s: %w", s, err)
		}
		o.Ports = append(o.Ports, ports...)
	}
	o.Env = envFlags(f.env)
	wd, _ := os.Getwd()
	home, _ := os.UserHomeDir()
	for _, v := range f.volumes {
		vol, err := project.ParseVolume(v, wd, home)
		if err != nil {
			return o, fmt.Errorf("-v: %w", err)
		}
		o.Volumes = append(o.Volumes, vol)
	}
	return o, nil
}

// create makes the container the flags and args describe. With attach
// (run in the foreground), it first has its init cloned, to overlap the
// creation (see rootless.Containers.Prestart); the caller passes the
// result on to Start. An ordinary user's CLI gets errInside where the
// command must run inside nook's namespace instead.
func (f *createFlags) create(cmd *cobra.Command, args []string, attach bool) (*project.Runtime, *rootless.Container, *rootless.Prestarted, error) {
	o, err := f.options(cmd, args)
	if err != nil {
		return nil, nil, nil, err
	}
	rt, err := openRuntime()
	if err != nil {
		return nil, nil, nil, err
	}
	if !runHere(rt) {
		return nil, nil, nil, errInside
	}
	var pre *rootless.Prestarted
	if attach && !o.KeepID {
		pre = rt.Containers.Prestart(rt.Mapping, o.Network, o.Terminal, f.interactive)
	}
	c, err := rt.CreateContainer(o)
	if err != nil {
		pre.Cancel()
		if errors.Is(err, project.ErrNeedsNamespace) {
			err = errInside
		}
		return nil, nil, nil, err
	}
	return rt, c, pre, nil
}

// errInside is create's answer when the command must run again inside
// nook's user namespace.
var errInside = errors.New("this needs nook's user namespace")

func newCreateCmd(g *globals) *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create [flags] IMAGE [COMMAND [ARG...]]",
		Short: "Create a container without starting it",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, _, err := f.create(cmd, args, false)
			if errors.Is(err, errInside) {
				return reexec(g)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, c.ID)
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	f.register(cmd.Flags())
	return cmd
}

func newRunCmd(g *globals) *cobra.Command {
	var f createFlags
	var detach bool
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND [ARG...]]",
		Short: "Create and start a container",
		Long:  "Create and start a container. In the foreground nook returns the container's exit status;\nwith -d it prints the container's id and leaves it running.",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, c, pre, err := f.create(cmd, args, !detach)
			if errors.Is(err, errInside) {
				return reexec(g)
			}
			if err != nil {
				return err
			}
			return startContainer(g, rt, c, !detach, f.interactive, pre)
		},
	}
	cmd.Flags().SetInterspersed(false)
	f.register(cmd.Flags())
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "run in the background and print the container's id")
	return cmd
}

// startContainer starts c attached (returning its exit status as the
// CLI's) or detached (printing its id).
func startContainer(g *globals, rt *project.Runtime, c *rootless.Container, attach, stdin bool, pre *rootless.Prestarted) error {
	opts := rootless.StartOptions{Attach: attach, Stdout: g.stdout, Stderr: g.stderr, Mapping: &rt.Mapping, Prestarted: pre}
	if stdin {
		opts.Stdin = os.Stdin
	}
	if attach && c.Spec.Process.Terminal {
		defer rawTerminal()()
	}
	code, err := rt.Containers.Start(c, opts)
	var ie *rootless.InitError
	if errors.As(err, &ie) {
		if attach {
			return exitCode(ie.Code) // the monitor printed why
		}
		return &statusError{code: ie.Code, err: fmt.Errorf("start %s: %w", c.Name, ie)}
	}
	if err != nil {
		return err
	}
	if attach {
		return exitCode(code)
	}
	fmt.Fprintln(g.stdout, c.ID)
	return nil
}

// statusError is an error printed as usual that ends the CLI with a
// particular status (Docker's 125/126/127 for containers that cannot run).
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func newStartCmd(g *globals) *cobra.Command {
	var attach, interactive bool
	cmd := &cobra.Command{
		Use:   "start [flags] CONTAINER...",
		Short: "Start stopped or created containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			if attach && len(args) > 1 {
				return errors.New("start -a: attach to one container at a time")
			}
			for _, a := range args {
				c, err := getContainer(g, rt, a)
				if err != nil {
					return err
				}
				if attach {
					return startContainer(g, rt, c, true, interactive, nil)
				}
				if err := startContainer(g, rt, c, false, false, nil); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "attach to the container's output and return its exit status")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "attach stdin")
	return cmd
}

// status describes a container's state as `docker ps` does.
func status(c *rootless.Container) string {
	s := c.State
	switch s.Status {
	case rootless.StatusRunning:
		up := "Up " + humanDuration(time.Since(s.StartedAt))
		if s.Health != "" {
			up += " (" + s.Health + ")"
		}
		return up
	case rootless.StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, humanDuration(time.Since(s.FinishedAt)))
	case rootless.StatusExited:
		code := strconv.Itoa(s.ExitCode)
		if s.ExitCode < 0 {
			code = "unknown"
		}
		return fmt.Sprintf("Exited (%s) %s ago", code, humanDuration(time.Since(s.FinishedAt)))
	}
	return "Created"
}

// humanDuration is Docker's units.HumanDuration.
func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	}
	switch m := int(d.Minutes()); {
	case m == 1:
		return "About a minute"
	case m < 60:
		return fmt.Sprintf("%d minutes", m)
	}
	switch h := int(d.Hours() + 0.5); {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	case h < 24*30*2:
		return fmt.Sprintf("%d weeks", h/24/7)
	case h < 24*365*2:
		return fmt.Sprintf("%d months", h/24/30)
	default:
		return fmt.Sprintf("%d years", int(d.Hours())/24/365)
	}
}

func newCommitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "commit CONTAINER [IMAGE]",
		Short: "Make an image of a container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(_ *cobra.Command, args []string) error {
			rt, c, err := openContainer(g, args[0])
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			d, err := rt.Commit(c, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, d)
			return nil
		},
	}
}

// openContainer opens the runtime and finds the container ref names.
func openContainer(g *globals, ref string) (*project.Runtime, *rootless.Container, error) {
	rt, err := openRuntime()
	if err != nil {
		return nil, nil, err
	}
	c, err := getContainer(g, rt, ref)
	return rt, c, err
}

// getContainer finds a container by name or id, or, in a project, by
// service name ("web", "web-2").
func getContainer(g *globals, rt *project.Runtime, ref string) (*rootless.Container, error) {
	if c, err := rt.Containers.Get(resolveRef(currentProject(g), ref)); err == nil {
		return c, nil
	}
	return rt.Containers.Get(ref)
}

// envFlags turns -e flags into KEY=VALUE: a bare KEY passes the caller's
// value, or nothing when it is unset, as Docker does.
func envFlags(flags []string) []string {
	var out []string
	for _, e := range flags {
		if !strings.Contains(e, "=") {
			v, ok := os.LookupEnv(e)
			if !ok {
				continue
			}
			e += "=" + v
		}
		out = append(out, e)
	}
	return out
}
