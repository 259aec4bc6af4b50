package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nook-dev/nook/project"
	"github.com/nook-dev/nook/rootless"
)

func newPsCmd(g *globals) *cobra.Command {
	var all, quiet, asJSON, everywhere bool
	cmd := &cobra.Command{
		Use:   "ps [flags]",
		Short: "List containers: the project's in a project folder, else all (running ones; -a for all)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			var p *project.Project
			if !everywhere {
				p = currentProject(g)
			}
			list, err := rt.Containers.List()
			if p != nil {
				list, err = rt.ProjectContainers(p.Name)
			}
			if err != nil {
				return err
			}
			var shown []*rootless.Container
			for _, c := range list {
				if all || c.State.Status == rootless.StatusRunning || c.State.Status == rootless.StatusRestarting {
					shown = append(shown, c)
				}
			}
			switch {
			case quiet:
				for _, c := range shown {
					fmt.Fprintln(g.stdout, c.ID[:12])
				}
			case asJSON:
				return printJSON(g.stdout, inspectAll(shown))
			case p != nil:
				ready := rt.ReadyTimes(p.Name)
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "NAME\tIMAGE\tSERVICE\tCREATED\tSTATUS\tPORTS\tEDIT TO READY")
				for _, c := range shown {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\t%s\t%s\n", c.Name, c.Image, displayName(c), humanDuration(time.Since(c.Created)), status(c), portsColumn(c), readyColumn(ready[serviceOf(c)]))
				}
				return tw.Flush()
			default:
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES")
				for _, c := range shown {
					command := strings.Join(c.Spec.Process.Args, " ")
					if len(command) > 20 {
						command = command[:19] + "…"
					}
					fmt.Fprintf(tw, "%s\t%s\t%q\t%s ago\t%s\t%s\t%s\n", c.ID[:12], c.Image, command, humanDuration(time.Since(c.Created)), status(c), portsColumn(c), c.Name)
				}
				return tw.Flush()
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include containers that are not running")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print ids only")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&everywhere, "all-projects", false, "list every container, even in a project folder")
	return cmd
}

// inspected is a container as inspect and ps --json show it.
type inspected struct {
	rootless.Config
	State  rootless.State `json:"state"`
	Status string         `json:"status"`
}

func inspectAll(cs []*rootless.Container) []inspected {
	out := []inspected{}
	for _, c := range cs {
		out = append(out, inspected{Config: c.Config, State: c.State, Status: status(c)})
	}
	return out
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newInspectCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Show containers' configuration and state as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			var cs []*rootless.Container
			for _, a := range args {
				c, err := getContainer(g, rt, a)
				if err != nil {
					return err
				}
				cs = append(cs, c)
			}
			return printJSON(g.stdout, inspectAll(cs))
		},
	}
	cmd.Flags().Bool("json", true, "print JSON (the only format)")
	return cmd
}

func newLogsCmd(g *globals) *cobra.Command {
	var follow bool
	var tail int
	var since string
	cmd := &cobra.Command{
		Use:   "logs [flags] CONTAINER | [SERVICE...]",
		Short: "Print a container's output, or in a project folder its services' merged output",
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			var from time.Time
			if since != "" {
				if from, err = parseSince(since); err != nil {
					return err
				}
			}
			if p := currentProject(g); p != nil && allServices(p, args) {
				return followLogs(cmd.Context(), g, rt, p, args, follow, tail, from)
			}
			if len(args) != 1 {
				return errors.New("logs: name one container (or run it in a project folder, with service names)")
			}
			c, err := getContainer(g, rt, args[0])
			if err != nil {
				return err
			}
			return printLogs(g, c, tail, from, follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the container stops")
	cmd.Flags().IntVarP(&tail, "tail", "n", -1, "print only the last `N` lines")
	cmd.Flags().StringVar(&since, "since", "", "only output after `TIME` (RFC 3339) or a duration ago (10m)")
	return cmd
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("--since %q: want a time (2026-01-02T15:04:05Z) or a duration (10m)", s)
	}
	return t, nil
}

// printLogs prints a container's log: stdout lines to stdout, stderr lines
// to stderr. Following, it polls the log until the container has exited.
func printLogs(g *globals, c *rootless.Container, tail int, since time.Time, follow bool) error {
	f, err := os.Open(filepath.Join(c.Dir, "log.json"))
	if os.IsNotExist(err) {
		f, err = os.Open(os.DevNull)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var entries []rootless.LogEntry
	r := bufio.NewReaderSize(f, 64<<10)
	read := func() {
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				// A partial line is the monitor still writing it: read it again.
				f.Seek(-int64(len(line)), io.SeekCurrent)
				r.Reset(f)
				return
			}
			var e rootless.LogEntry
			if json.Unmarshal(line, &e) == nil && !e.Time.Before(since) {
				entries = append(entries, e)
			}
		}
	}
	emit := func() {
		for _, e := range entries {
			w := g.stdout
			if e.Stream == "stderr" {
				w = g.stderr
			}
			io.WriteString(w, e.Log)
		}
		entries = entries[:0]
	}
	read()
	if tail >= 0 && len(entries) > tail {
		entries = entries[len(entries)-tail:]
	}
	emit()
	for follow && c.State.Status == rootless.StatusRunning {
		time.Sleep(50 * time.Millisecond)
		read()
		emit()
		if fresh, err := (&rootless.Containers{Root: filepath.Dir(c.Dir)}).Get(c.ID); err != nil || fresh.State.Status != rootless.StatusRunning {
			read()
			emit()
			return nil
		}
	}
	return nil
}

// allServices reports whether every name is a service of p.
func allServices(p *project.Project, names []string) bool {
	for _, n := range names {
		if p.Containers[n] == nil {
			return false
		}
	}
	return true
}

// readyColumn shows a service's last edit-to-ready time under the watch
// loop and the median of the recent ones.
func readyColumn(times project.ReadyTimes) string {
	if len(times) == 0 {
		return ""
	}
	return fmt.Sprintf("last %dms, median %dms (%d)", times.Last().Milliseconds(), times.Median().Milliseconds(), len(times))
}
