package project

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/charmbracelet/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nook-dev/nook/layers"
	"github.com/nook-dev/nook/rootless"
)

// BuildOptions say how to build a project's images.
type BuildOptions struct {
	Store *layers.Store
	// Images limits the build to these images (and what they are built
	// from); empty builds all of them.
	Images   []string
	NoCache  bool
	Progress func(layers.Event)
	Output   io.Writer // what host and run steps print
	// Stats, if set, is the stat cache to use (the watch loop keeps one in
	// memory); otherwise the project's is loaded from the store and saved.
	Stats *layers.StatCache
	// Log receives warnings about Dockerfile instructions nook ignores;
	// nil means silence.
	Log *log.Logger
}

// Built is one image a build produced.
type Built struct {
	Name   string // the image's name in nook.toml
	Tag    string // its tag in the store, PROJECT/NAME:latest
	Digest v1.Hash
	Ran    int // steps that ran; 0 means everything came from the cache
}

// ImageTag is the store tag of a project image.
func (p *Project) ImageTag(name string) string { return p.Name + "/" + name + ":latest" }

// Build builds the project's images in dependency order and tags each as
// PROJECT/NAME:latest. It stops at the first image that fails.
func Build(ctx context.Context, p *Project, opts BuildOptions) ([]Built, error) {
	want, err := p.withBases(opts.Images)
	if err != nil {
		return nil, err
	}
	stats := opts.Stats
	if stats == nil {
		var save func()
		stats, save = loadStats(opts.Store, p.Dir)
		defer save()
	}

	b := newBuilder(opts.Store, stats, opts.NoCache, opts.Progress, opts.Output)
	digests := map[string]v1.Hash{}
	var out []Built
	for _, name := range p.BuildOrder {
		if !want[name] {
			continue
		}
		var res layers.Result
		if p.Images[name].Dockerfile != "" {
			res, err = p.buildDockerfile(ctx, b, name, opts.Log)
		} else {
			var r layers.Recipe
			if r, err = p.recipe(name, digests); err == nil {
				res, err = b.Build(ctx, r)
			}
		}
		if err != nil {
			return out, err
		}
		digests[name] = res.Digest
		out = append(out, Built{Name: name, Tag: p.ImageTag(name), Digest: res.Digest, Ran: res.Built})
	}
	return out, nil
}

// loadStats loads the stat cache the store keeps for a folder; save
// writes it back.
func loadStats(s *layers.Store, dir string) (stats *layers.StatCache, save func()) {
	statFile := filepath.Join(s.Root, "cache", fmt.Sprintf("stat-%x.cache", sha256.Sum256([]byte(dir))))
	stats = layers.LoadStatCache(statFile)
	return stats, func() { stats.Save(statFile) }
}

// newBuilder is a builder whose run steps run in rootless containers.
func newBuilder(s *layers.Store, stats *layers.StatCache, noCache bool, progress func(layers.Event), output io.Writer) *layers.Builder {
	single := false
	if m, err := rootless.HostMapping(); err == nil {
		single = m.Kind == rootless.MapSingle
	}
	return &layers.Builder{
		Store: s, Stats: stats, NoCache: noCache, Progress: progress, Output: output,
		Runner: stepRunner{noSetGroups: single}, IgnoreChown: single,
	}
}

// withBases returns the named images plus every project image they are
// built from.
func (p *Project) withBases(names []string) (map[string]bool, error) {
	if len(names) == 0 {
		names = p.BuildOrder
	}
	want := map[string]bool{}
	for _, n := range names {
		if p.Images[n] == nil {
			msg := fmt.Sprintf("build %q: no such image in the project", n)
			if s := suggest(n, slices.Sorted(maps.Keys(p.Images))); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return nil, errors.New(msg)
		}
		for img := n; p.Images[img] != nil && !want[img]; img = p.Images[img].From {
			want[img] = true
		}
	}
	return want, nil
}

// recipe translates one image of nook.toml into a layers.Recipe. Images it
// is built from must already be in built.
func (p *Project) recipe(name string, built map[string]v1.Hash) (layers.Recipe, error) {
	img := p.Images[name]
	r := layers.Recipe{Tag: p.ImageTag(name), From: img.From, Context: p.Dir, Config: img.config()}
	if d, ok := built[img.From]; ok {
		r.From = d.String()
	}
	if strings.HasPrefix(r.From, "oci-layout:") || strings.HasPrefix(r.From, "oci-archive:") {
		kind, rest, _ := strings.Cut(r.From, ":")
		if !filepath.IsAbs(rest) {
			r.From = kind + ":" + filepath.Join(p.Dir, rest)
		}
	}
	for i, s := range img.Steps {
		step, err := translateStep(s)
		if err != nil {
			return r, fmt.Errorf("build %q: step %d: %w", name, i+1, err)
		}
		r.Steps = append(r.Steps, step)
	}
	return r, nil
}

// config is the image config nook.toml sets; the builder lays it over
// what the base and the steps (or the Dockerfile) made.
func (img *Image) config() v1.Config {
	c := v1.Config{
		Env:        envList(img.Env),
		WorkingDir: img.Workdir,
		User:       img.User,
		Cmd:        img.Cmd,
		Entrypoint: img.Entrypoint,
		Labels:     img.Labels,
		StopSignal: string(img.StopSignal),
	}
	for _, port := range img.Expose {
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		for n := range int(port.Count) {
			c.ExposedPorts[fmt.Sprintf("%d/%s", int(port.ContainerPort)+n, port.Proto)] = struct{}{}
		}
	}
	return c
}

func translateStep(s Step) (layers.Step, error) {
	switch s.Kind() {
	case "copy":
		uid, gid, err := numericOwner(s.Chown)
		if err != nil {
			return layers.Step{}, err
		}
		return layers.Step{Kind: layers.StepCopy, Copy: layers.CopySpec{Sources: s.Copy, To: s.To, UID: uid, GID: gid, Mode: fs.FileMode(s.Mode)}}, nil
	case "run":
		return layers.Step{Kind: layers.StepRun, Command: s.Run}, nil
	case "host":
		return layers.Step{Kind: layers.StepHost, Command: s.Host, Inputs: s.Inputs, Outputs: s.Outputs}, nil
	case "env":
		return layers.Step{Kind: layers.StepEnv, Vars: s.Env}, nil
	case "arg":
		return layers.Step{Kind: layers.StepArg, Vars: s.Arg}, nil
	case "workdir":
		return layers.Step{Kind: layers.StepWorkdir, Value: s.Workdir}, nil
	case "user":
		return layers.Step{Kind: layers.StepUser, Value: s.User}, nil
	}
	return layers.Step{}, errors.New("empty step")
}

// numericOwner parses a chown of UID[:GID]. Names need the image's
// /etc/passwd, which the builder does not read yet.
func numericOwner(spec string) (int, int, error) {
	if spec == "" {
		return 0, 0, nil
	}
	u, g, hasG := strings.Cut(spec, ":")
	uid, err := strconv.Atoi(u)
	if err != nil {
		return 0, 0, fmt.Errorf("chown %q: only numeric ids are supported for now (UID or UID:GID)", spec)
	}
	gid := uid
	if hasG {
		if gid, err = strconv.Atoi(g); err != nil {
			return 0, 0, fmt.Errorf("chown %q: only numeric ids are supported for now (UID or UID:GID)", spec)
		}
	}
	return uid, gid, nil
}

func envList(env Env) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}
