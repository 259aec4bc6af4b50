package project

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nook-dev/nook/layers"
	"github.com/nook-dev/nook/rootless"
	"github.com/nook-dev/nook/watch"
)

// WatchOptions say how the watch loop runs and reports.
type WatchOptions struct {
	// Explain prints, for each batch, every path with the rule that
	// decided it and the time split detect -> build -> start.
	Explain bool
	// Out receives one line per batch (and the explanations).
	Out io.Writer
	// Quiet and MaxWait tune the watcher's batching; zero takes its
	// defaults.
	Quiet, MaxWait time.Duration
	// Ready, if set, is called when the loop watches the project.
	Ready func()
}

// Watch runs the dev loop until ctx ends: each batch of saved files is
// synced into the containers that sync it, rebuilds the images that read it
// from their first affected step, and restarts only the containers whose
// image changed. A failed build leaves the running containers alone and
// says why; the next save tries again. A newer batch supersedes a build
// still running.
func (rt *Runtime) Watch(ctx context.Context, p *Project, o WatchOptions) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	w, err := watch.New(p.Dir, watch.Options{Quiet: o.Quiet, MaxWait: o.MaxWait, Ignore: p.watchIgnores()})
	if err != nil {
		return err
	}
	defer w.Close()
	if o.Ready != nil {
		o.Ready()
	}
	loop := &watchLoop{rt: rt, p: p, o: o, w: w, stats: layers.NewStatCache(), synced: map[string]map[string]SyncChange{}}
	return loop.run(ctx)
}

// watchIgnores are the patterns the watcher skips besides .nookignore:
// what host steps write (their outputs would trigger them again) and each
// container's watch.ignore.
func (p *Project) watchIgnores() []string {
	var out []string
	for _, name := range p.BuildOrder {
		for _, s := range p.Images[name].Steps {
			out = append(out, s.Outputs...)
		}
	}
	for _, svc := range p.StartOrder {
		if w := p.Containers[svc].Watch; w != nil {
			out = append(out, w.Ignore...)
		}
	}
	return out
}

type watchLoop struct {
	rt    *Runtime
	p     *Project
	o     WatchOptions
	w     *watch.Watcher
	stats *layers.StatCache
	mu    sync.Mutex // serialises output lines
	// synced remembers, per service, the files synced since its image was
	// last built with them, so a recreated container gets them again:
	// synced content survives until a rebuild includes it.
	synced map[string]map[string]SyncChange
}

func (l *watchLoop) run(ctx context.Context) error {
	var (
		pending []string  // paths of batches not handled yet
		first   time.Time // when the oldest of them was first seen
		busy    bool
		cancel  context.CancelFunc = func() {}
		done                       = make(chan struct{}, 1)
	)
	start := func() {
		paths, at := pending, first
		pending, busy = nil, true
		var bctx context.Context
		bctx, cancel = context.WithCancel(ctx)
		go func() {
			l.handle(bctx, paths, at)
			done <- struct{}{}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			cancel()
			if busy {
				<-done
			}
			return nil
		case err := <-l.w.Errors():
			l.say("watch: %v%s", err, hintOf(err))
		case b, ok := <-l.w.Batches():
			if !ok {
				return errors.New("watch: the watcher stopped")
			}
			if len(pending) == 0 {
				first = b.At
			}
			pending = mergePaths(pending, b.Paths)
			if busy {
				cancel() // supersede: the build restarts with every path
				continue
			}
			start()
		case <-done:
			busy = false
			if len(pending) > 0 {
				start()
			}
		}
	}
}

func mergePaths(a, b []string) []string {
	for _, p := range b {
		if !slices.Contains(a, p) {
			a = append(a, p)
		}
	}
	return a
}

func hintOf(err error) string {
	var h interface{ Hint() string }
	if errors.As(err, &h) && h.Hint() != "" {
		return "\nhint: " + h.Hint()
	}
	return ""
}

func (l *watchLoop) say(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.o.Out, format+"\n", args...)
}

// handle acts on one batch of changed paths, first seen at at.
func (l *watchLoop) handle(ctx context.Context, paths []string, at time.Time) {
	detected := time.Now()
	plan := l.p.PlanChanges(paths)
	if l.o.Explain {
		l.explain(plan, paths)
	}
	var actions []string
	for _, svc := range slices.Sorted(maps.Keys(plan.Syncs)) {
		if err := l.sync(svc, plan.Syncs[svc]); err != nil {
			l.say("watch: sync %s: %v", svc, err)
			continue
		}
		actions = append(actions, "synced "+svc)
		if l.synced[svc] == nil {
			l.synced[svc] = map[string]SyncChange{}
		}
		for _, ch := range plan.Syncs[svc] {
			l.synced[svc][ch.Target] = ch
		}
	}
	synced := time.Now()
	services, hostTime, err := l.rebuild(ctx, plan)
	built := time.Now()
	if errors.Is(err, context.Canceled) {
		return // superseded by a newer batch, which covers these paths
	}
	if err != nil {
		l.say("watch: build failed; the running containers keep serving:\n%v", err)
		return
	}
	restart := mergePaths(services, plan.Restarts)
	if len(restart) > 0 {
		if err := l.restart(plan.Restarts, services); err != nil {
			l.say("watch: restart failed; fix and save again:\n%v", err)
			return
		}
		actions = append(actions, "restarted "+strings.Join(restart, ", "))
		l.resync(services)
	}
	ready := time.Now()
	if len(actions) == 0 {
		if l.o.Explain {
			l.say("watch: %d path(s): nothing changed", len(paths))
		}
		return
	}
	total := ready.Sub(at)
	nook := total - hostTime
	l.say("watch: %s (%s; nook %s)", strings.Join(actions, ", "), ms(total), ms(nook))
	if l.o.Explain {
		l.say("  detect %s, sync %s, build %s (host steps %s), start %s, ready at %s",
			ms(detected.Sub(at)), ms(synced.Sub(detected)), ms(built.Sub(synced)), ms(hostTime), ms(ready.Sub(built)), ms(total))
	}
	for _, svc := range mergePaths(restart, slices.Collect(maps.Keys(plan.Syncs))) {
		l.rt.recordReady(l.p.Name, svc, total)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

func (l *watchLoop) explain(plan Plan, paths []string) {
	for _, p := range slices.Sorted(slices.Values(paths)) {
		for _, r := range plan.Reasons[p] {
			l.say("  %s: %s", p, r)
		}
	}
}

// sync copies changed files into every running replica of svc, then runs
// its watch.exec.
func (l *watchLoop) sync(svc string, changes []SyncChange) error {
	var files []rootless.SyncFile
	var sources []*os.File
	defer func() {
		for _, f := range sources {
			f.Close()
		}
	}()
	for _, ch := range changes {
		f, err := os.Open(filepath.Join(l.p.Dir, filepath.FromSlash(ch.Path)))
		if errors.Is(err, os.ErrNotExist) {
			files = append(files, rootless.SyncFile{Path: ch.Target, Remove: true})
			continue
		}
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil || fi.IsDir() {
			f.Close()
			continue
		}
		files = append(files, rootless.SyncFile{Path: ch.Target, Mode: uint32(fi.Mode().Perm())})
		sources = append(sources, f)
	}
	cs, err := l.rt.serviceContainers(l.p, svc)
	if err != nil {
		return err
	}
	w := l.p.Containers[svc].Watch
	for _, c := range cs {
		if err := c.Sync(files, sources); err != nil {
			return err
		}
		if w != nil && len(w.Exec) > 0 {
			null, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			c.Exec(rootless.ExecRequest{Args: w.Exec}, null, null, null, nil)
			null.Close()
		}
	}
	return nil
}

// rebuild builds the images the plan names and returns the services whose
// image digest changed, and the time host steps took.
func (l *watchLoop) rebuild(ctx context.Context, plan Plan) ([]string, time.Duration, error) {
	if len(plan.Images) == 0 {
		return nil, 0, nil
	}
	var hostTime time.Duration
	var mu sync.Mutex
	opts := BuildOptions{
		Store: l.rt.Store, Images: slices.Collect(maps.Keys(plan.Images)), Stats: l.stats, Output: l.o.Out,
		Progress: func(ev layers.Event) {
			if ev.Done && !ev.Cached && strings.HasPrefix(ev.Step, "host ") {
				mu.Lock()
				hostTime += time.Duration(ev.Took * float64(time.Second))
				mu.Unlock()
			}
		},
	}
	built, err := Build(ctx, l.p, opts)
	if err != nil {
		return nil, hostTime, err
	}
	var services []string
	for _, b := range built {
		for _, svc := range l.p.StartOrder {
			if l.p.Containers[svc].Image != b.Name {
				continue
			}
			if changed, err := l.rt.imageChanged(l.p, svc, b.Digest.String()); err == nil && changed {
				services = append(services, svc)
			}
		}
	}
	return services, hostTime, nil
}

// imageChanged reports whether svc's first replica runs another image.
func (rt *Runtime) imageChanged(p *Project, svc, digest string) (bool, error) {
	c, err := rt.Containers.Get(ContainerName(p.Name, svc, 1))
	if err != nil {
		return true, nil
	}
	return c.ImageID != digest, nil
}

// restart recreates the services whose image changed (Up's reconcile does
// exactly that) and restarts those a watch.restart path names.
func (l *watchLoop) restart(restarts, recreate []string) error {
	if len(recreate) > 0 {
		err := l.rt.Up(context.Background(), l.p, UpOptions{Services: recreate, NoBuild: true})
		if err != nil {
			return err
		}
	}
	for _, svc := range restarts {
		if slices.Contains(recreate, svc) {
			continue
		}
		cs, err := l.rt.serviceContainers(l.p, svc)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if err := l.rt.restartContainer(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// serviceContainers returns the running containers of a service.
func (rt *Runtime) serviceContainers(p *Project, svc string) ([]*rootless.Container, error) {
	all, err := rt.ProjectContainers(p.Name)
	if err != nil {
		return nil, err
	}
	var out []*rootless.Container
	for _, c := range all {
		if c.Labels[LabelService] == svc && c.State.Status == rootless.StatusRunning {
			out = append(out, c)
		}
	}
	return out, nil
}

// resync gives recreated services the files synced into their previous
// containers that their new image does not include.
func (l *watchLoop) resync(recreated []string) {
	for _, svc := range recreated {
		img := l.p.Images[l.p.Containers[svc].Image]
		var again []SyncChange
		for target, ch := range l.synced[svc] {
			included := false
			if img != nil {
				for _, s := range img.Steps {
					included = included || stepReads(s, ch.Path) != ""
				}
			}
			if included {
				delete(l.synced[svc], target) // the rebuild has it now
				continue
			}
			again = append(again, ch)
		}
		if len(again) > 0 {
			if err := l.sync(svc, again); err != nil {
				l.say("watch: sync %s again after its restart: %v", svc, err)
			}
		}
	}
}
