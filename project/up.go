package project

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nook-dev/nook/layers"
	"github.com/nook-dev/nook/rootless"
)

// Labels nook puts on a project's containers.
const (
	LabelProject = "nook.project"
	LabelService = "nook.service"
	LabelReplica = "nook.replica"
	LabelConfig  = "nook.config" // hash of everything the container was made from
)

// UpOptions say how to bring a project up.
type UpOptions struct {
	Services      []string // only these (and what they depend on); empty means all active
	NoBuild       bool
	ForceRecreate bool
	Scale         map[string]int
	Build         BuildOptions // Store is filled in
	// Progress reports each container's step ("web-1 Started"); nil is silent.
	Progress func(service, msg string)
}

// Up builds what changed and brings the project's containers to what its
// files describe: containers whose configuration or image changed are
// recreated, the others keep running; they start in dependency order, each
// waiting for its dependencies' conditions. Replicas no longer wanted and
// containers of services no longer in the files are removed. Only one Up
// or Down runs on a project at a time.
func (rt *Runtime) Up(ctx context.Context, p *Project, o UpOptions) error {
	unlock, err := rt.lockProject(p.Name)
	if err != nil {
		return err
	}
	defer unlock()
	services, err := p.selectServices(o.Services)
	if err != nil {
		return err
	}
	if !o.NoBuild {
		o.Build.Store = rt.Store
		o.Build.Images = p.imagesOf(services)
		if len(o.Build.Images) > 0 {
			if _, err := Build(ctx, p, o.Build); err != nil {
				return err
			}
		}
	}
	existing, err := rt.ProjectContainers(p.Name)
	if err != nil {
		return err
	}
	pn, err := rt.upNetwork(p, services, o, existing)
	if err != nil {
		return err
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string, string) {}
	}
	for _, svc := range services {
		if err := rt.waitForDeps(ctx, p, svc); err != nil {
			return err
		}
		if err := rt.upService(p, svc, o, existing, pn, progress); err != nil {
			return err
		}
	}
	// What the files no longer describe goes.
	for _, c := range existing {
		svc := c.Labels[LabelService]
		n, _ := strconv.Atoi(c.Labels[LabelReplica])
		if ctr := p.Containers[svc]; ctr != nil && ctr.Active && n <= replicas(ctr, svc, o.Scale) {
			continue
		}
		if len(o.Services) > 0 && p.Containers[svc] != nil {
			continue // up of some services leaves the others alone
		}
		if err := rt.removeContainer(c); err != nil {
			return err
		}
		progress(displayName(c), "Removed")
	}
	return nil
}

// selectServices returns the active services to bring up, with what they
// depend on, in start order.
func (p *Project) selectServices(names []string) ([]string, error) {
	if len(names) == 0 {
		return p.StartOrder, nil
	}
	want := map[string]bool{}
	var add func(string) error
	add = func(n string) error {
		ctr := p.Containers[n]
		if ctr == nil {
			msg := fmt.Sprintf("no service %q in the project", n)
			if s := suggest(n, p.StartOrder); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return errors.New(msg)
		}
		if want[n] {
			return nil
		}
		want[n] = true
		for dep := range ctr.DependsOn {
			if err := add(dep); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		if err := add(n); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, n := range p.StartOrder {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// imagesOf returns the project images the services run.
func (p *Project) imagesOf(services []string) []string {
	var out []string
	for _, s := range services {
		if img := p.Containers[s].Image; p.Images[img] != nil && !slices.Contains(out, img) {
			out = append(out, img)
		}
	}
	return out
}

func replicas(ctr *Container, svc string, scale map[string]int) int {
	if n, ok := scale[svc]; ok {
		return n
	}
	return ctr.Replicas
}

// ContainerName is the name of a service's replica n: PROJECT-SERVICE-N.
func ContainerName(project, service string, n int) string {
	return fmt.Sprintf("%s-%s-%d", project, service, n)
}

// displayName is how a project's container is called inside the project:
// "web" for the first replica, "web-2" for the others.
func displayName(c *rootless.Container) string {
	svc, n := c.Labels[LabelService], c.Labels[LabelReplica]
	if n == "1" || n == "" {
		return svc
	}
	return svc + "-" + n
}

// upService brings one service's replicas to their wanted state.
func (rt *Runtime) upService(p *Project, svc string, o UpOptions, existing []*rootless.Container, pn *projectNet, progress func(string, string)) error {
	ctr := p.Containers[svc]
	digest, err := rt.serviceImage(p, ctr)
	if err != nil {
		return fmt.Errorf("start %s: %w", svc, err)
	}
	for n := 1; n <= replicas(ctr, svc, o.Scale); n++ {
		name := ContainerName(p.Name, svc, n)
		var network string
		if onProjectNetwork(ctr) {
			network = pn.info.Generation // a new network needs new containers
		}
		hash := configHash(ctr, digest, n, network)
		shown := replicaName(svc, n)
		var c *rootless.Container
		if i := slices.IndexFunc(existing, func(c *rootless.Container) bool { return c.Name == name }); i >= 0 {
			c = existing[i]
		}
		switch {
		case c != nil && c.Labels[LabelConfig] == hash && !o.ForceRecreate:
			if c.State.Status == rootless.StatusRunning || c.State.Status == rootless.StatusRestarting {
				progress(shown, "Running")
				continue
			}
		case c != nil:
			if err := rt.removeContainer(c); err != nil {
				return err
			}
			progress(shown, "Recreate")
			c = nil
		}
		if c == nil {
			if c, err = rt.createService(p, svc, ctr, digest, n, hash, pn); err != nil {
				return fmt.Errorf("create %s: %w", shown, err)
			}
			progress(shown, "Created")
		}
		if _, err := rt.Containers.Start(c, rootless.StartOptions{Mapping: &rt.Mapping}); err != nil {
			return fmt.Errorf("start %s: %w%s", shown, err, lastLogLines(c, 10))
		}
		progress(shown, "Started")
	}
	return nil
}

// serviceImage resolves the image a service runs to its digest.
func (rt *Runtime) serviceImage(p *Project, ctr *Container) (v1.Hash, error) {
	ref := ctr.Image
	if p.Images[ref] != nil {
		ref = p.ImageTag(ref)
	}
	d, err := rt.Store.Resolve(ref)
	if errors.Is(err, layers.ErrNotFound) && p.Images[ctr.Image] != nil {
		return d, rootless.WithHint(fmt.Errorf("image %s is not built", ref), "run nook up without --no-build, or nook build")
	}
	return d, err
}

// configHash identifies what a container was made from: if it changes, the
// container is recreated.
func configHash(ctr *Container, image v1.Hash, replica int, network string) string {
	data, _ := json.Marshal(struct {
		C       *Container
		Image   string
		Replica int
		Network string `json:",omitempty"`
	}{ctr, image.String(), replica, network})
	return fmt.Sprintf("%x", sha256.Sum256(data))[:16]
}

// createService creates replica n of a service.
func (rt *Runtime) createService(p *Project, svc string, ctr *Container, image v1.Hash, n int, hash string, pn *projectNet) (*rootless.Container, error) {
	o := ContainerOptions{
		Image:      image.String(),
		Name:       ContainerName(p.Name, svc, n),
		Cmd:        ctr.Command,
		Workdir:    ctr.Workdir,
		User:       ctr.User,
		Hostname:   firstNonEmpty(ctr.Hostname, replicaName(svc, n)),
		Restart:    rootless.RestartPolicy{Policy: ctr.Restart.Policy, MaxRetries: ctr.Restart.MaxRetries},
		StopSignal: string(ctr.StopSignal), StopTimeout: time.Duration(ctr.StopTimeout),
		KeepID: ctr.KeepID,
		Labels: map[string]string{
			LabelProject: p.Name, LabelService: svc, LabelReplica: strconv.Itoa(n), LabelConfig: hash,
		},
	}
	switch {
	case ctr.Network == "none":
		o.Network = rootless.NetworkNone
	case onProjectNetwork(ctr):
		o.Network, o.Supervisor = rootless.NetworkPrivate, pn.socket
		o.Ports, o.Hosts, o.DNS = pn.ports[o.Name], pn.hosts, pn.info.DNS
	default:
		// The host's network (keep_id services too): names resolve to
		// loopback, where the project's other host services listen.
		o.Network, o.Hosts = rootless.NetworkHost, p.serviceHosts("127.0.0.1")
	}
	if ctr.Entrypoint != nil {
		o.Entrypoint = ctr.Entrypoint
	}
	for _, k := range slices.Sorted(maps.Keys(ctr.Env)) {
		o.Env = append(o.Env, k+"="+ctr.Env[k])
	}
	for _, v := range ctr.Volumes {
		if v.Named {
			v.Source = projectVolume(p.Name, v.Source)
		}
		o.Volumes = append(o.Volumes, v)
	}
	if hc := ctr.Healthcheck; hc != nil {
		o.Healthcheck = &rootless.Healthcheck{
			Cmd: hc.Cmd, Interval: time.Duration(hc.Interval), Timeout: time.Duration(hc.Timeout),
			Retries: hc.Retries, StartPeriod: time.Duration(hc.StartPeriod),
		}
	}
	c, err := rt.CreateContainer(o)
	if err != nil {
		return nil, err
	}
	c.Image = p.ImageTag(ctr.Image)
	if p.Images[ctr.Image] == nil {
		c.Image = ctr.Image
	}
	return c, c.SaveConfig()
}

// waitForDeps waits until every dependency of svc meets its condition.
func (rt *Runtime) waitForDeps(ctx context.Context, p *Project, svc string) error {
	for _, dep := range slices.Sorted(maps.Keys(p.Containers[svc].DependsOn)) {
		cond := p.Containers[svc].DependsOn[dep]
		name := ContainerName(p.Name, dep, 1)
		if err := rt.waitFor(ctx, name, cond, dependencyTimeout(p.Containers[dep])); err != nil {
			return fmt.Errorf("start %s: dependency %s: %w", svc, dep, err)
		}
	}
	return nil
}

// dependencyTimeout bounds the wait for a dependency: long enough for its
// healthcheck to pass within its retries, and a minute at least.
func dependencyTimeout(dep *Container) time.Duration {
	t := time.Minute
	if hc := dep.Healthcheck; hc != nil {
		t = max(t, time.Duration(hc.StartPeriod)+time.Duration(hc.Retries+1)*(time.Duration(hc.Interval)+time.Duration(hc.Timeout)))
	}
	return t
}

// waitFor polls a container until it meets cond, fails it, or time runs
// out. (A dependency's state lives in files its monitor writes; polling
// them every 20 ms costs nothing next to a container start.)
func (rt *Runtime) waitFor(ctx context.Context, name string, cond Condition, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := rt.Containers.Get(name)
		if err != nil {
			return err
		}
		st := c.State
		switch cond {
		case Started:
			if st.Status == rootless.StatusRunning || st.Status == rootless.StatusExited && st.ExitCode == 0 {
				return nil
			}
		case Healthy:
			if st.Health == rootless.HealthHealthy {
				return nil
			}
			if st.Health == rootless.HealthUnhealthy {
				return fmt.Errorf("it is unhealthy: its healthcheck %s%s", st.HealthFailure, lastLogLines(c, 10))
			}
		case Completed:
			if st.Status == rootless.StatusExited && st.ExitCode == 0 {
				return nil
			}
		}
		if st.Status == rootless.StatusExited && !(cond == Started && st.ExitCode == 0) && !(cond == Completed && st.ExitCode == 0) {
			return fmt.Errorf("it exited with status %d%s", st.ExitCode, lastLogLines(c, 10))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("it was not %s after %s", cond, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lastLogLines returns a container's last n log lines, for errors.
func lastLogLines(c *rootless.Container, n int) string {
	data, err := os.ReadFile(filepath.Join(c.Dir, "log.json"))
	if err != nil || len(data) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	b.WriteString("; its last output:")
	for _, l := range lines {
		var e rootless.LogEntry
		if json.Unmarshal([]byte(l), &e) == nil {
			b.WriteString("\n    " + strings.TrimRight(e.Log, "\n"))
		}
	}
	return b.String()
}

// ProjectContainers lists a project's containers.
func (rt *Runtime) ProjectContainers(project string) ([]*rootless.Container, error) {
	all, err := rt.Containers.List()
	if err != nil {
		return nil, err
	}
	var out []*rootless.Container
	for _, c := range all {
		if c.Labels[LabelProject] == project {
			out = append(out, c)
		}
	}
	return out, nil
}

// replicaName is how replica n of a service is called in its project:
// "web", "web-2", ...
func replicaName(svc string, n int) string {
	if n == 1 {
		return svc
	}
	return fmt.Sprintf("%s-%d", svc, n)
}

// projectVolume names a project's named volume in the store: volumes of
// different projects never meet, and "_projects" cannot be the name of a
// volume of its own (names start with a letter or digit).
func projectVolume(project, name string) string {
	return filepath.Join("_projects", project, name)
}
