package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"golang.org/x/term"

	"github.com/nook-dev/nook/project"
	"github.com/nook-dev/nook/rootless"
)

// logTail reads one container's log.json as it grows.
type logTail struct {
	f *os.File
	r *bufio.Reader
}

func openTail(c *rootless.Container) *logTail {
	f, err := os.Open(filepath.Join(c.Dir, "log.json"))
	if err != nil {
		return nil
	}
	return &logTail{f: f, r: bufio.NewReaderSize(f, 64<<10)}
}

// next returns the complete entries written since the last call.
func (t *logTail) next() []rootless.LogEntry {
	var out []rootless.LogEntry
	for {
		line, err := t.r.ReadBytes('\n')
		if err != nil {
			// A partial line is still being written: read it again later.
			t.f.Seek(-int64(len(line)), io.SeekCurrent)
			t.r.Reset(t.f)
			return out
		}
		var e rootless.LogEntry
		if json.Unmarshal(line, &e) == nil {
			out = append(out, e)
		}
	}
}

// prefixed is one log line with the container it came from.
type prefixed struct {
	rootless.LogEntry
	name string
}

// followLogs prints the merged output of a project's containers (or of the
// services named), each line prefixed with its service, in time order: the
// last tail lines of each (all when tail < 0, with since as the start when
// set), then, when following, what they print next until ctx ends or every
// container has exited.
func followLogs(ctx context.Context, g *globals, rt *project.Runtime, p *project.Project, services []string, follow bool, tail int, since ...time.Time) error {
	tails := map[string]*logTail{}
	names := map[string]string{}
	defer func() {
		for _, t := range tails {
			t.f.Close()
		}
	}()
	colour := isTerminal(g.stdout)
	var watchTail *logTail
	width := 0
	first := true
	for {
		cs, err := rt.ProjectContainers(p.Name)
		if err != nil {
			return err
		}
		var batch []prefixed
		live := false
		for _, c := range cs {
			if len(services) > 0 && !slices.Contains(services, serviceOf(c)) {
				continue
			}
			if c.State.Status == rootless.StatusRunning || c.State.Status == rootless.StatusRestarting {
				live = true
			}
			t := tails[c.ID]
			if t == nil {
				if t = openTail(c); t == nil {
					continue
				}
				tails[c.ID] = t
				names[c.ID] = displayName(c)
				width = max(width, len(names[c.ID]))
			}
			entries := t.next()
			if first && len(since) > 0 {
				entries = slices.DeleteFunc(entries, func(e rootless.LogEntry) bool { return e.Time.Before(since[0]) })
			}
			if first && tail >= 0 && len(entries) > tail {
				entries = entries[len(entries)-tail:]
			}
			for _, e := range entries {
				batch = append(batch, prefixed{e, names[c.ID]})
			}
		}
		if len(services) == 0 {
			if watchTail == nil {
				if f, err := os.Open(rt.WatchLog(p.Name)); err == nil {
					watchTail = &logTail{f: f, r: bufio.NewReaderSize(f, 64<<10)}
					width = max(width, len("watch"))
					defer f.Close()
				}
			}
			if watchTail != nil {
				entries := watchTail.next()
				if first && len(since) > 0 {
					entries = slices.DeleteFunc(entries, func(e rootless.LogEntry) bool { return e.Time.Before(since[0]) })
				}
				if first && tail >= 0 && len(entries) > tail {
					entries = entries[len(entries)-tail:]
				}
				for _, e := range entries {
					batch = append(batch, prefixed{e, "watch"})
				}
			}
		}
		sort.SliceStable(batch, func(i, j int) bool { return batch[i].Time.Before(batch[j].Time) })
		for _, e := range batch {
			fmt.Fprintf(g.stdout, "%s | %s", paint(fmt.Sprintf("%-*s", width, e.name), e.name, colour), e.Log)
			if len(e.Log) == 0 || e.Log[len(e.Log)-1] != '\n' {
				fmt.Fprintln(g.stdout)
			}
		}
		first = false
		if !follow || !live && len(tails) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func displayName(c *rootless.Container) string {
	svc, n := c.Labels[project.LabelService], c.Labels[project.LabelReplica]
	if n == "1" || n == "" {
		return svc
	}
	return svc + "-" + n
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == ""
}

// paint colours a prefix by its service's name, so each service keeps
// its colour from run to run.
func paint(s, key string, on bool) string {
	if !on {
		return s
	}
	colours := []int{36, 33, 32, 35, 34, 96, 93, 92, 95, 94}
	h := 0
	for _, r := range key {
		h = h*31 + int(r)
	}
	return fmt.Sprintf("\x1b[%dm%s\x1b[0m", colours[(h%len(colours)+len(colours))%len(colours)], s)
}
