package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nook-dev/nook/project"
	"github.com/nook-dev/nook/rootless"
)

// currentProject loads the project the global flags or the working folder
// point at, or returns nil when there is none (or it does not load): the
// container verbs then work on containers by their own names. It loads
// the files once per command, however many containers it names.
func currentProject(g *globals) *project.Project {
	if !g.projectLoaded {
		g.project, _ = project.Load(g.loadOptions())
		g.projectLoaded = true
	}
	return g.project
}

// resolveRef maps a service name ("web", or "web-2" for a replica) of the
// current project to its container's name; anything else is a container
// name or id as it is.
func resolveRef(p *project.Project, ref string) string {
	if p == nil {
		return ref
	}
	if p.Containers[ref] != nil {
		return project.ContainerName(p.Name, ref, 1)
	}
	if i := strings.LastIndex(ref, "-"); i > 0 {
		if n, err := strconv.Atoi(ref[i+1:]); err == nil && p.Containers[ref[:i]] != nil {
			return project.ContainerName(p.Name, ref[:i], n)
		}
	}
	return ref
}

func projectProgress(g *globals) func(string, string) {
	return func(svc, msg string) { fmt.Fprintf(g.stderr, " ✔ %-20s %s\n", svc, msg) }
}

func newUpCmd(g *globals) *cobra.Command {
	var detach, watch, explain, noBuild, build, forceRecreate, noCache bool
	var scale []string
	cmd := &cobra.Command{
		Use:   "up [flags] [SERVICE...]",
		Short: "Build what changed and start the project's containers",
		Long: "Build what changed and bring the project's containers to what nook.toml describes, in dependency order.\n" +
			"In the foreground nook follows their output until Ctrl-C, which stops them (a second Ctrl-C kills);\n" +
			"with -d it returns once they are started (and healthy where a dependency waits for it).",
		RunE: func(cmd *cobra.Command, args []string) error {
			p, rt, err := projectRuntime(g)
			if err != nil {
				return err
			}
			o := project.UpOptions{
				Services: args, NoBuild: noBuild && !build, ForceRecreate: forceRecreate, Scale: map[string]int{},
				Build:    project.BuildOptions{NoCache: noCache, Progress: stepPrinter(g), Output: g.stderr},
				Progress: projectProgress(g),
			}
			for _, s := range scale {
				svc, n, ok := strings.Cut(s, "=")
				count, err := strconv.Atoi(n)
				if !ok || err != nil || count < 0 {
					return fmt.Errorf("--scale %q: want SERVICE=N", s)
				}
				o.Scale[svc] = count
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			began := time.Now()
			if err := rt.Up(ctx, p, o); err != nil {
				if !detach {
					// In the foreground, a failed up takes down what it
					// started, as Compose does; with -d it stays up.
					stopProject(rt, p, false)
				}
				return err
			}
			if detach && watch {
				bg := []string{"-C", p.Dir}
				for _, f := range g.files {
					bg = append(bg, "--file", f)
				}
				for _, pr := range g.profiles {
					bg = append(bg, "--profile", pr)
				}
				bg = append(bg, "watch", "--log", rt.WatchLog(p.Name))
				if explain {
					bg = append(bg, "--explain")
				}
				if err := rt.StartBackgroundWatch(p, bg); err != nil {
					return err
				}
				fmt.Fprintf(g.stderr, "watching in the background: nook logs -f shows what it does; nook down stops it\n")
			}
			if detach {
				return nil
			}
			if watch {
				go runWatch(ctx, g, rt, p, explain)
			}
			return followProject(g, rt, p, stop, began)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&detach, "detach", "d", false, "start in the background and return")
	f.BoolVarP(&watch, "watch", "w", false, "rebuild and restart what a file change affects, sync what is synced")
	f.BoolVar(&explain, "explain", false, "with --watch: say for each changed path what decided its fate, and where the time went")
	f.BoolVar(&build, "build", false, "build images before starting (the default)")
	f.BoolVar(&noBuild, "no-build", false, "do not build; use the images in the store")
	f.BoolVar(&noCache, "no-cache", false, "rebuild every step")
	f.BoolVar(&forceRecreate, "force-recreate", false, "recreate containers even if nothing changed")
	f.StringArrayVar(&scale, "scale", nil, "run `SERVICE=N` replicas (repeatable)")
	return cmd
}

// followProject prints the project's merged output until its containers
// have all exited or the user presses Ctrl-C, then stops them; a second
// Ctrl-C kills them.
func followProject(g *globals, rt *project.Runtime, p *project.Project, stopSignals func(), since time.Time) error {
	stopSignals()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- followLogs(ctx, g, rt, p, nil, true, -1, since) }()
	select {
	case err := <-done:
		return err
	case <-sigs:
	}
	cancel()
	fmt.Fprintln(g.stderr, "Gracefully stopping... (press Ctrl-C again to force)")
	stopped := make(chan error, 1)
	go func() { stopped <- stopProject(rt, p, false) }()
	select {
	case err := <-stopped:
		return err
	case <-sigs:
		return stopProject(rt, p, true)
	}
}

// stopProject stops a project's containers in reverse start order.
func stopProject(rt *project.Runtime, p *project.Project, kill bool) error {
	cs, err := rt.ProjectContainers(p.Name)
	if err != nil {
		return err
	}
	for i := len(p.StartOrder) - 1; i >= 0; i-- {
		for _, c := range cs {
			if c.Labels[project.LabelService] != p.StartOrder[i] {
				continue
			}
			sig, timeout := project.StopSignal(c), c.StopTimeout
			if kill {
				sig, timeout = syscall.SIGKILL, 0
			}
			if err := rt.Containers.Stop(c, sig, timeout); err != nil {
				return err
			}
		}
	}
	return nil
}

func newDownCmd(g *globals) *cobra.Command {
	var volumes bool
	var timeout int
	cmd := &cobra.Command{
		Use:   "down [flags]",
		Short: "Stop and remove the project's containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, rt, err := projectRuntime(g)
			if err != nil {
				return err
			}
			o := project.DownOptions{Volumes: volumes, Progress: projectProgress(g)}
			if cmd.Flags().Changed("timeout") {
				t := time.Duration(timeout) * time.Second
				o.Timeout = &t
			}
			return rt.Down(p, o)
		},
	}
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "also remove the project's named volumes")
	cmd.Flags().IntVarP(&timeout, "timeout", "t", 10, "seconds to wait for each container to stop before killing it")
	return cmd
}

// serviceOf returns the service label of a project container, or "".
func serviceOf(c *rootless.Container) string { return c.Labels[project.LabelService] }

// runWatch runs the watch loop, its lines on stderr prefixed "watch |".
func runWatch(ctx context.Context, g *globals, rt *project.Runtime, p *project.Project, explain bool) error {
	out := &prefixWriter{w: g.stderr, prefix: paint("watch", "watch", isTerminal(g.stderr)) + " | "}
	err := rt.Watch(ctx, p, project.WatchOptions{Explain: explain, Out: out})
	if err != nil {
		printError(g.stderr, err)
	}
	return err
}

func newWatchCmd(g *globals) *cobra.Command {
	var explain bool
	var logFile string
	cmd := &cobra.Command{
		Use:   "watch [flags]",
		Short: "Run the dev loop on a project that is up: rebuild, restart or sync what each save affects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, rt, err := projectRuntime(g)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var out io.Writer = g.stdout
			if logFile != "" {
				lw, err := project.OpenLogWriter(logFile)
				if err != nil {
					return err
				}
				defer lw.Close()
				out = lw
			}
			return rt.Watch(ctx, p, project.WatchOptions{Explain: explain, Out: out,
				Ready: func() { fmt.Fprintf(out, "watching %s\n", p.Dir) }})
		},
	}
	cmd.Flags().BoolVar(&explain, "explain", false, "say for each changed path what decided its fate, and where the time went")
	cmd.Flags().StringVar(&logFile, "log", "", "write to `FILE` in the containers' log format (up -d --watch uses it)")
	return cmd
}

// prefixWriter prefixes every line written through it.
type prefixWriter struct {
	w      io.Writer
	prefix string
	mid    bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if !p.mid {
			io.WriteString(p.w, p.prefix)
		}
		i := strings.IndexByte(string(b), '\n')
		if i < 0 {
			p.w.Write(b)
			p.mid = true
			break
		}
		p.w.Write(b[:i+1])
		b = b[i+1:]
		p.mid = false
	}
	return n, nil
}

// projectRuntime loads the current project and opens the store and
// containers it runs on.
func projectRuntime(g *globals) (*project.Project, *project.Runtime, error) {
	p, err := project.Load(g.loadOptions())
	if err != nil {
		return nil, nil, err
	}
	rt, err := openRuntime()
	return p, rt, err
}
