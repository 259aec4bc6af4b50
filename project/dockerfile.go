package project

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/charmbracelet/log"

	"github.com/nook-dev/nook/layers"
)

// DockerfileOptions say how to build one Dockerfile, as `nook build -t`.
type DockerfileOptions struct {
	Store      *layers.Store
	Dockerfile string // path; relative paths are the caller's working folder's
	Context    string // the build context folder
	Tag        string // NAME[:TAG] for the target
	Target     string // stage; empty means the last
	BuildArgs  map[string]string
	NoCache    bool
	Progress   func(layers.Event)
	Output     io.Writer   // what RUN steps print
	Log        *log.Logger // warnings about ignored instructions; nil means silence
}

// BuildDockerfile builds a Dockerfile outside any project and tags the
// result. Its stat cache is kept per context folder in the store.
func BuildDockerfile(ctx context.Context, opts DockerfileOptions) (layers.Result, error) {
	dir, err := filepath.Abs(opts.Context)
	if err != nil {
		return layers.Result{}, err
	}
	stats, save := loadStats(opts.Store, dir)
	defer save()
	b := newBuilder(opts.Store, stats, opts.NoCache, opts.Progress, opts.Output)
	return buildDockerfile(ctx, b, opts.Dockerfile, layers.DockerfileOptions{
		File: filepath.Base(opts.Dockerfile), Context: dir, Tag: opts.Tag, Target: opts.Target, BuildArgs: opts.BuildArgs,
	}, opts.Log)
}

// buildDockerfile builds a project image from its dockerfile, with the
// image's nook.toml settings laid over the Dockerfile's.
func (p *Project) buildDockerfile(ctx context.Context, b *layers.Builder, name string, logger *log.Logger) (layers.Result, error) {
	img := p.Images[name]
	res, err := buildDockerfile(ctx, b, filepath.Join(p.Dir, img.Dockerfile), layers.DockerfileOptions{
		File: img.Dockerfile, Context: filepath.Join(p.Dir, img.Context), Tag: p.ImageTag(name), Config: img.config(),
	}, logger)
	if err != nil {
		return res, fmt.Errorf("build %q: %w", name, err)
	}
	return res, nil
}

func buildDockerfile(ctx context.Context, b *layers.Builder, file string, opts layers.DockerfileOptions, logger *log.Logger) (layers.Result, error) {
	f, err := os.Open(file)
	if err != nil {
		return layers.Result{}, fmt.Errorf("read Dockerfile: %w", err)
	}
	defer f.Close()
	df, err := layers.ParseDockerfile(f, opts)
	if err != nil {
		return layers.Result{}, err
	}
	res, err := b.BuildDockerfile(ctx, df)
	if logger != nil {
		for _, w := range df.Warnings {
			logger.Warn(w)
		}
	}
	return res, err
}
