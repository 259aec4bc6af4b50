package layers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/nook-dev/nook/internal/atomicfile"
)

// Builder builds recipes into the store, reusing every step whose cache
// key it has seen before.
type Builder struct {
	Store *Store
	// Stats remembers file digests across builds; nil means none.
	Stats *StatCache
	// Runner runs run steps; nil makes them fail with a clear error.
	Runner StepRunner
	// NoCache rebuilds every step.
	NoCache bool
	// Progress, if set, is called as each step starts and ends.
	Progress func(Event)
	// Output receives what host and run steps print; nil discards it.
	Output io.Writer
	// IgnoreChown unpacks layers without their owners, for a single-id
	// mapping that cannot represent them.
	IgnoreChown bool
}

// Result is what a build produced.
type Result struct {
	Digest v1.Hash // the image's manifest digest
	Built  int     // steps that ran
	Cached int     // steps answered by the cache
}

// buildState is an image being built, step by step.
type buildState struct {
	cfg    v1.ConfigFile
	layers []LayerDesc
	args   map[string]string
	key    string
}

// Build builds r and, if r.Tag is set, points the tag at the result.
// Content decides what is rebuilt: a step is a cache hit when its parent,
// its definition and the content of everything it reads are unchanged. A
// build holds the store's gc lock shared, so prune never removes what it
// is writing.
func (b *Builder) Build(ctx context.Context, r Recipe) (Result, error) {
	unlock, err := b.Store.lock("gc.lock", unix.LOCK_SH)
	if err != nil {
		return Result{}, err
	}
	defer unlock()

	var res Result
	st, err := b.base(r.From)
	if err != nil {
		return res, fmt.Errorf("build %s: %w", r.label(), err)
	}
	var cctx *Context
	if r.Context != "" {
		if cctx, err = OpenContext(r.Context, b.Stats); err != nil {
			return res, fmt.Errorf("build %s: %w", r.label(), err)
		}
		defer cctx.Close()
	}
	for i, s := range r.Steps {
		ev := Event{Image: r.label(), Index: i + 1, Total: len(r.Steps), Step: s.String()}
		b.progress(ev)
		start := time.Now()
		cached, err := b.step(ctx, cctx, st, s)
		ev.Done, ev.Cached, ev.Err, ev.Took = true, cached, err, time.Since(start).Seconds()
		b.progress(ev)
		if err != nil {
			return res, fmt.Errorf("build %s: step %d (%s): %w", r.label(), i+1, s, err)
		}
		if cached {
			res.Cached++
		} else {
			res.Built++
		}
	}
	applyConfig(&st.cfg.Config, r.Config)
	// Like ko, a fixed creation time: the same inputs give the same image.
	// When nook built it is kept in the index, where `nook images` reads it.
	st.cfg.Created = v1.Time{Time: unixTime(sourceDateEpoch())}
	if res.Digest, err = b.Store.PutImage(st.cfg, st.layers); err != nil {
		return res, fmt.Errorf("build %s: %w", r.label(), err)
	}
	if r.Tag != "" {
		if err := b.Store.Tag(r.Tag, res.Digest); err != nil {
			return res, fmt.Errorf("build %s: %w", r.Tag, err)
		}
	}
	return res, nil
}

func (b *Builder) progress(ev Event) {
	if b.Progress != nil {
		b.Progress(ev)
	}
}

// base loads the image a recipe starts from.
func (b *Builder) base(from string) (*buildState, error) {
	st := &buildState{args: map[string]string{}, key: "scratch"}
	st.cfg = v1.ConfigFile{Architecture: runtime.GOARCH, OS: "linux"}
	if from == "" || from == "scratch" {
		return st, nil
	}
	// A full digest of a manifest in the store need not be in the index:
	// a Dockerfile's earlier stages are built untagged.
	d, err := v1.NewHash(from)
	if err != nil || !b.Store.HasBlob(d) {
		if d, err = b.Store.ResolveBase(from); err != nil {
			return nil, err
		}
	}
	im, err := b.Store.Image(d)
	if err != nil {
		return nil, err
	}
	st.cfg = *im.Config
	st.cfg.RootFS = v1.RootFS{}
	for _, l := range im.Manifest.Layers {
		st.layers = append(st.layers, LayerDesc{Digest: l.Digest, Size: l.Size})
	}
	st.key = baseKey(d)
	return st, nil
}

// step runs one step against st, or takes it from the cache.
func (b *Builder) step(ctx context.Context, cctx *Context, st *buildState, s Step) (cached bool, err error) {
	switch s.Kind {
	case StepEnv, StepWorkdir, StepUser, StepArg:
		st.key = stepKey(st.key, s, nil)
		applyStep(st, s)
		st.cfg.History = append(st.cfg.History, v1.History{CreatedBy: "nook: " + s.String(), EmptyLayer: true})
		return true, nil
	case StepCopy:
		return b.copyStep(cctx, st, s)
	case StepHost:
		return b.hostStep(ctx, cctx, st, s)
	case StepRun:
		if b.Runner == nil {
			return false, errors.New("run steps need the container runtime, which this build was not given")
		}
		return b.runStep(ctx, st, s)
	}
	return false, fmt.Errorf("unknown step kind %q", s.Kind)
}

// applyStep applies a config step to the image being built.
func applyStep(st *buildState, s Step) {
	switch s.Kind {
	case StepEnv:
		st.cfg.Config.Env = setEnv(st.cfg.Config.Env, s.Vars)
	case StepWorkdir:
		wd := s.Value
		if !filepath.IsAbs(wd) {
			wd = filepath.Join("/", st.cfg.Config.WorkingDir, wd)
		}
		st.cfg.Config.WorkingDir = wd
	case StepUser:
		st.cfg.Config.User = s.Value
	case StepArg:
		maps.Copy(st.args, s.Vars) // a later ARG of the same name wins, as in Docker
	}
}

// setEnv sets vars in a KEY=VALUE list, replacing existing names, in a
// stable order.
func setEnv(env []string, vars map[string]string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, replaced := vars[k]
		return replaced
	})
	return append(out, sortedVars(vars)...)
}

// applyConfig lays the recipe's final config over the image's.
func applyConfig(dst *v1.Config, c v1.Config) {
	if len(c.Env) > 0 {
		vars := map[string]string{}
		for _, kv := range c.Env {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		dst.Env = setEnv(dst.Env, vars)
	}
	if c.WorkingDir != "" {
		dst.WorkingDir = c.WorkingDir
	}
	if c.User != "" {
		dst.User = c.User
	}
	if c.Entrypoint != nil {
		dst.Entrypoint = c.Entrypoint
		dst.Cmd = nil // Docker's rule: a new entrypoint drops the base's cmd
	}
	if c.Cmd != nil {
		dst.Cmd = c.Cmd
	}
	if len(c.Labels) > 0 {
		if dst.Labels == nil {
			dst.Labels = map[string]string{}
		}
		maps.Copy(dst.Labels, c.Labels)
	}
	if len(c.ExposedPorts) > 0 {
		if dst.ExposedPorts == nil {
			dst.ExposedPorts = map[string]struct{}{}
		}
		maps.Copy(dst.ExposedPorts, c.ExposedPorts)
	}
	if c.StopSignal != "" {
		dst.StopSignal = c.StopSignal
	}
}

// cacheEntry is what the build cache remembers about a step.
type cacheEntry struct {
	Layer   *LayerDesc          `json:"layer,omitempty"`
	Outputs map[string][32]byte `json:"outputs,omitempty"` // host steps: what the command wrote
}

func (b *Builder) cacheGet(key string) (cacheEntry, bool) {
	var e cacheEntry
	if b.NoCache {
		return e, false
	}
	data, err := os.ReadFile(b.Store.path("cache", "steps", key))
	if err != nil || json.Unmarshal(data, &e) != nil {
		return e, false
	}
	if e.Layer != nil && !b.Store.HasBlob(e.Layer.Digest) {
		return e, false // pruned
	}
	return e, true
}

func (b *Builder) cachePut(key string, e cacheEntry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(b.Store.path("cache", "steps", key), data, true)
}

// copyStep makes a layer of files from the context.
func (b *Builder) copyStep(cctx *Context, st *buildState, s Step) (bool, error) {
	if cctx == nil {
		return false, errors.New("copy needs a build context")
	}
	for attempt := 0; ; attempt++ {
		entries, err := cctx.collect(s.Copy)
		if err != nil {
			return false, err
		}
		key := stepKey(st.key, s, summarize(entries))
		if e, ok := b.cacheGet(key); ok && e.Layer != nil {
			st.addLayer(key, *e.Layer, s)
			return true, nil
		}
		layer, err := b.writeLayer(cctx, entries)
		if errors.Is(err, errChanged) && attempt < 3 {
			continue // a file changed under us: collect again
		}
		if err != nil {
			return false, err
		}
		return false, b.keepLayer(st, key, layer, s)
	}
}

// keepLayer caches the layer step s made under key and adds it to st.
func (b *Builder) keepLayer(st *buildState, key string, l LayerDesc, s Step) error {
	if err := b.cachePut(key, cacheEntry{Layer: &l}); err != nil {
		return err
	}
	st.addLayer(key, l, s)
	return nil
}

func (st *buildState) addLayer(key string, l LayerDesc, s Step) {
	st.key = key
	st.layers = append(st.layers, l)
	st.cfg.History = append(st.cfg.History, v1.History{CreatedBy: "nook: " + s.String()})
}

// writeLayer writes entries as a layer blob.
func (b *Builder) writeLayer(cctx *Context, entries []entry) (LayerDesc, error) {
	w, err := b.Store.NewBlob()
	if err != nil {
		return LayerDesc{}, err
	}
	if err := cctx.writeLayer(w, entries, sourceDateEpoch()); err != nil {
		w.Abort()
		return LayerDesc{}, err
	}
	d, n, err := w.Commit()
	return LayerDesc{Digest: d, Size: n}, err
}

// sourceDateEpoch is the timestamp of every file in a layer nook writes:
// $SOURCE_DATE_EPOCH (the reproducible-builds convention) or 0. Go's
// http.FileServer sends no Last-Modified for time 0, so browsers do not
// cache a dev build's files by date.
func sourceDateEpoch() int64 {
	if v, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil && v >= 0 {
		return v
	}
	return 0
}

// hostStep runs a command on the host, in the context, unless its inputs
// and outputs are unchanged since it last ran.
func (b *Builder) hostStep(ctx context.Context, cctx *Context, st *buildState, s Step) (bool, error) {
	if cctx == nil {
		return false, errors.New("host steps need a build context")
	}
	var content []byte
	if len(s.Inputs) > 0 {
		inputs, err := cctx.collect(CopySpec{Sources: s.Inputs, To: "/"})
		if err != nil {
			return false, fmt.Errorf("inputs: %w", err)
		}
		content = summarize(inputs)
	}
	args := slices.Sorted(maps.Keys(st.args))
	for _, k := range args {
		content = fmt.Appendf(content, "arg %s=%s\n", k, st.args[k])
	}
	key := stepKey(st.key, s, content)
	st.key = key
	st.cfg.History = append(st.cfg.History, v1.History{CreatedBy: "nook: " + s.String(), EmptyLayer: true})
	if e, ok := b.cacheGet(key); ok && cctx.outputsMatch(e.Outputs) {
		return true, nil
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s.Command)
	cmd.Dir = cctx.Dir
	cmd.Env = os.Environ()
	for _, k := range args {
		cmd.Env = append(cmd.Env, k+"="+st.args[k])
	}
	out := b.Output
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return false, fmt.Errorf("%q: %w", s.Command, err)
	}
	outputs, err := cctx.digests(s.Outputs)
	if err != nil {
		return false, fmt.Errorf("outputs: %w", err)
	}
	return false, b.cachePut(key, cacheEntry{Outputs: outputs})
}

// digests returns the content digest of each named context file.
func (c *Context) digests(names []string) (map[string][32]byte, error) {
	out := map[string][32]byte{}
	for _, n := range names {
		fi, err := c.root.Stat(n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, notInContext(err))
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		d, err := c.stats.Digest(filepath.Join(c.Dir, n), fi, func() (io.ReadCloser, error) { return c.root.Open(n) })
		if err != nil {
			return nil, err
		}
		out[n] = d
	}
	return out, nil
}

// outputsMatch reports whether a host step's outputs are still what it
// wrote, so a cache hit can skip running it.
func (c *Context) outputsMatch(want map[string][32]byte) bool {
	got, err := c.digests(slices.Collect(maps.Keys(want)))
	return err == nil && maps.Equal(got, want)
}

// runStep runs a command in a container made of the image so far; what it
// changes becomes the step's layer. Its cache key is the parent, the
// command and the build arguments, as Docker's RUN.
func (b *Builder) runStep(ctx context.Context, st *buildState, s Step) (bool, error) {
	var content []byte
	for _, k := range slices.Sorted(maps.Keys(st.args)) {
		content = fmt.Appendf(content, "arg %s=%s\n", k, st.args[k])
	}
	key := stepKey(st.key, s, content)
	if e, ok := b.cacheGet(key); ok && e.Layer != nil {
		st.addLayer(key, *e.Layer, s)
		return true, nil
	}
	req := RunRequest{
		LayerRoot: b.Store.LayerDir(),
		Command:   []string{"/bin/sh", "-c", s.Command},
		Env:       runEnv(st.cfg.Config.Env, st.args),
		Workdir:   st.cfg.Config.WorkingDir,
		User:      st.cfg.Config.User,
		Stdout:    b.Output,
		Stderr:    b.Output,
	}
	for _, l := range slices.Backward(st.layers) {
		dir, err := b.Store.Unpacked(l.Digest, b.IgnoreChown)
		if err != nil {
			return false, err
		}
		req.Lowers = append(req.Lowers, dir)
	}
	tmp, err := os.MkdirTemp(b.Store.path("tmp"), "run-*")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	req.Upper = filepath.Join(tmp, "upper")
	if err := os.Mkdir(req.Upper, 0o755); err != nil {
		return false, err
	}
	if len(s.Args) > 0 {
		req.Command = s.Args
	}
	if err := b.Runner.RunStep(ctx, req); err != nil {
		return false, err
	}
	layer, err := b.Store.WriteUpper(req.Upper)
	if err != nil {
		return false, err
	}
	return false, b.keepLayer(st, key, layer, s)
}

// runEnv is a run step's environment: the image's, then the build
// arguments it does not set (ENV wins over ARG, as in Docker).
func runEnv(env []string, args map[string]string) []string {
	out := slices.Clone(env)
	for _, kv := range sortedVars(args) {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") }) {
			out = append(out, kv)
		}
	}
	return out
}
