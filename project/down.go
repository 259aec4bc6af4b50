package project

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nook-dev/nook/rootless"
)

// StopSignal is the signal that stops c: its stop signal, SIGTERM if that
// does not parse.
func StopSignal(c *rootless.Container) syscall.Signal {
	sig, err := ParseSignal(c.StopSignal)
	if err != nil {
		return syscall.SIGTERM
	}
	return syscall.Signal(sig)
}

// stopContainer stops c (its stop signal, then SIGKILL after its stop
// timeout) and returns its record as the stop left it; nil if it removed
// itself (a --rm container).
func (rt *Runtime) stopContainer(c *rootless.Container) (*rootless.Container, error) {
	if err := rt.Containers.Stop(c, StopSignal(c), c.StopTimeout); err != nil {
		return nil, err
	}
	fresh, err := rt.Containers.Get(c.ID)
	if errors.Is(err, rootless.ErrNoContainer) {
		return nil, nil
	}
	return fresh, err
}

// removeContainer stops a container and removes it.
func (rt *Runtime) removeContainer(c *rootless.Container) error {
	fresh, err := rt.stopContainer(c)
	if fresh == nil || err != nil {
		return err
	}
	return rt.Containers.Remove(fresh)
}

// DownOptions say how to take a project down.
type DownOptions struct {
	Volumes  bool           // remove the project's named volumes too
	Timeout  *time.Duration // override each container's stop timeout
	Progress func(service, msg string)
}

// Down stops the project's containers in reverse dependency order and
// removes them (and, with Volumes, its named volumes). It works on what it
// finds, whatever state a killed up left behind.
func (rt *Runtime) Down(p *Project, o DownOptions) (first error) {
	unlock, err := rt.lockProject(p.Name)
	if err != nil {
		return err
	}
	defer unlock()
	rt.StopBackgroundWatch(p.Name)
	defer func() {
		if err := rt.downNetwork(p.Name); err != nil && first == nil {
			first = err
		}
	}()
	cs, err := rt.ProjectContainers(p.Name)
	if err != nil {
		return err
	}
	rank := func(c *rootless.Container) int { return slices.Index(p.StartOrder, c.Labels[LabelService]) }
	slices.SortStableFunc(cs, func(a, b *rootless.Container) int { return rank(b) - rank(a) })
	for _, c := range cs {
		if o.Timeout != nil {
			c.StopTimeout = *o.Timeout
		}
		if err := rt.removeContainer(c); err != nil {
			first = cmpErr(first, err)
			continue
		}
		if o.Progress != nil {
			o.Progress(displayName(c), "Removed")
		}
	}
	if o.Volumes {
		if err := rootless.RemoveAll(rt.volumeDir(projectVolume(p.Name, ""))); err != nil {
			first = cmpErr(first, err)
		}
	}
	return first
}

func cmpErr(first, err error) error {
	if first == nil {
		return err
	}
	return first
}

// lockProject takes the project's lock, failing at once if another nook
// holds it.
func (rt *Runtime) lockProject(name string) (func(), error) {
	dir := filepath.Join(rt.Store.Root, "projects")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, rootless.WithHint(fmt.Errorf("project %s is already being brought up or down by another nook", name), "wait for it to finish, then run the command again")
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}

// serviceHosts maps addr to every service name, replica name ("web-2")
// and SERVICE.PROJECT name of the project.
func (p *Project) serviceHosts(addr string) map[string][]string {
	var names []string
	for _, svc := range p.StartOrder {
		for n := 1; n <= max(p.Containers[svc].Replicas, 1); n++ {
			name := replicaName(svc, n)
			names = append(names, name, name+"."+p.Name)
		}
	}
	return map[string][]string{addr: names}
}
