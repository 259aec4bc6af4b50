package layers

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// DockerfileOptions say how to read a Dockerfile.
type DockerfileOptions struct {
	// File names the Dockerfile in errors and warnings; "Dockerfile" if
	// empty.
	File string
	// Context is the build context folder COPY and ADD read from.
	Context string
	// Tag is the NAME[:TAG] the target stage's image gets; empty leaves it
	// untagged. Earlier stages are never tagged.
	Tag string
	// Target names the stage to build; empty means the last one.
	Target string
	// BuildArgs override ARG defaults, as `--build-arg K=V`.
	BuildArgs map[string]string
	// Config is laid over the target's config as a Recipe's Config is
	// (nook.toml's env, cmd, ... for a dockerfile image).
	Config v1.Config
}

// Dockerfile is a parsed Dockerfile, cut down to the stages its target
// needs. Parsing checks every instruction those stages use; variables in
// them are expanded only by Recipe, which knows the base image's
// environment.
type Dockerfile struct {
	// Stages are the stages to build, in order; the target is last.
	Stages []DockerfileStage
	// Warnings name instructions that were ignored and build arguments
	// nothing used, each as "FILE:LINE: message".
	Warnings []string

	opts   DockerfileOptions
	lex    *shell.Lex
	global []string // meta ARGs (before the first FROM) and the built-in ones, as KEY=VALUE
	used   map[string]bool
}

// DockerfileStage is one FROM and the instructions after it.
type DockerfileStage struct {
	Name string // the name after AS, else the stage's position in the file
	// From is the expanded base: "scratch" or an image reference in the
	// store. It is empty when Base is set.
	From string
	// Base is the index in Stages of the earlier stage this one is built
	// on, or -1.
	Base int
	Line int // of the FROM

	cmds []instructions.Command
}

// DockerfileError is a problem at one line of a Dockerfile.
type DockerfileError struct {
	File string
	Line int // 0 when the problem has no line
	Err  error
}

func (e *DockerfileError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *DockerfileError) Unwrap() error { return e.Err }

// ParseDockerfile reads a Dockerfile and picks the stages opts.Target
// needs. It reports every unsupported instruction of those stages at once,
// each as a *DockerfileError.
func ParseDockerfile(r io.Reader, opts DockerfileOptions) (*Dockerfile, error) {
	if opts.File == "" {
		opts.File = "Dockerfile"
	}
	res, err := parser.Parse(r)
	if err != nil {
		return nil, &DockerfileError{File: opts.File, Line: errLine(err), Err: errors.New(stripLocation(err))}
	}
	df := &Dockerfile{opts: opts, lex: shell.NewLex(res.EscapeToken), used: map[string]bool{}}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		df.warn(line, "%s", w.Short)
	}

	var stages []instructions.Stage
	var metaArgs []*instructions.ArgCommand
	var errs []error
	for _, n := range res.AST.Children {
		cmd, err := instructions.ParseInstruction(n)
		if err != nil {
			errs = append(errs, df.errorf(n.StartLine, "%s", stripLocation(err)))
			continue
		}
		switch c := cmd.(type) {
		case *instructions.Stage:
			stages = append(stages, *c)
		case *instructions.ArgCommand:
			if len(stages) == 0 {
				metaArgs = append(metaArgs, c)
				continue
			}
			stages[len(stages)-1].AddCommand(c)
		case instructions.Command:
			if len(stages) == 0 {
				errs = append(errs, df.errorf(n.StartLine, "%s before the first FROM", strings.ToUpper(c.Name())))
				continue
			}
			stages[len(stages)-1].AddCommand(c)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(stages) == 0 {
		return nil, df.errorf(0, "no FROM instruction")
	}
	if err := df.metaArgs(metaArgs); err != nil {
		return nil, err
	}
	if err := df.pickStages(stages); err != nil {
		return nil, err
	}
	for _, s := range df.Stages {
		errs = append(errs, df.check(s.cmds)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return df, nil
}

// builtinArgs are the platform ARGs BuildKit defines before any FROM.
func builtinArgs() []string {
	p := "linux/" + runtime.GOARCH
	return []string{
		"TARGETPLATFORM=" + p, "TARGETOS=linux", "TARGETARCH=" + runtime.GOARCH, "TARGETVARIANT=",
		"BUILDPLATFORM=" + p, "BUILDOS=linux", "BUILDARCH=" + runtime.GOARCH, "BUILDVARIANT=",
	}
}

// metaArgs evaluates the ARGs before the first FROM, in order, as
// BuildKit's buildMetaArgs: a --build-arg wins, else the default expanded
// with the ARGs before it.
func (df *Dockerfile) metaArgs(cmds []*instructions.ArgCommand) error {
	df.global = builtinArgs()
	for _, c := range cmds {
		for _, kv := range c.Args {
			v, ok := df.opts.BuildArgs[kv.Key]
			if ok {
				df.used[kv.Key] = true
			} else if kv.Value != nil {
				res, err := df.lex.ProcessWordWithMatches(*kv.Value, shell.EnvsFromSlice(df.global))
				if err != nil {
					return df.errorf(line(c), "ARG %s: %w", kv.Key, err)
				}
				v, ok = res.Result, true
			}
			if ok {
				df.global = setVar(df.global, kv.Key, v)
			}
		}
	}
	return nil
}

// pickStages finds the target and, following FROM, the earlier stages it
// is built on; they go to df.Stages in build order.
func (df *Dockerfile) pickStages(stages []instructions.Stage) error {
	target := len(stages) - 1
	if t := df.opts.Target; t != "" {
		target = slices.IndexFunc(stages, func(s instructions.Stage) bool { return strings.EqualFold(s.Name, t) })
		if target < 0 {
			return df.errorf(0, "no stage named %q", t)
		}
	}
	// Expand every FROM of the chain, walking back from the target.
	type picked struct {
		from string
		base int // index in stages, or -1
	}
	chain := map[int]picked{}
	var order []int
	for i := target; i >= 0; {
		s := stages[i]
		from, err := df.lex.ProcessWordWithMatches(s.BaseName, shell.EnvsFromSlice(df.global))
		if err != nil {
			return df.errorf(stageLine(s), "FROM %s: %w", s.BaseName, err)
		}
		if from.Result == "" {
			return df.errorf(stageLine(s), "FROM %s: the base image name is empty", s.BaseName)
		}
		base := slices.IndexFunc(stages[:i], func(e instructions.Stage) bool { return e.Name != "" && strings.EqualFold(e.Name, from.Result) })
		chain[i] = picked{from.Result, base}
		order = append(order, i)
		i = base
	}
	slices.Reverse(order)
	pos := map[int]int{}
	for n, i := range order {
		s := stages[i]
		p := chain[i]
		ds := DockerfileStage{Name: s.Name, Base: -1, Line: stageLine(s), cmds: s.Commands}
		if ds.Name == "" {
			ds.Name = fmt.Sprint(i)
		}
		if p.base >= 0 {
			ds.Base = pos[p.base]
		} else {
			ds.From = p.from
		}
		if s.Platform != "" {
			df.warn(ds.Line, "FROM --platform is ignored: nook builds for linux/%s", runtime.GOARCH)
		}
		pos[i] = n
		df.Stages = append(df.Stages, ds)
	}
	return nil
}

// check reports the instructions nook cannot build and warns about those
// it ignores. Everything else is translated by Recipe.
func (df *Dockerfile) check(cmds []instructions.Command) []error {
	var errs []error
	fail := func(c instructions.Command, format string, args ...any) {
		errs = append(errs, df.errorf(line(c), format, args...))
	}
	for _, c := range cmds {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			switch {
			case c.From != "":
				fail(c, "COPY --from is not supported yet: build the stage with --target and copy from the project folder")
			case len(c.ExcludePatterns) > 0:
				fail(c, "COPY --exclude is not supported yet: use .dockerignore")
			case c.Parents:
				fail(c, "COPY --parents is not supported yet")
			case len(c.SourceContents) > 0:
				fail(c, "COPY with a heredoc is not supported yet")
			}
		case *instructions.AddCommand:
			switch {
			case c.Checksum != "" || c.KeepGitDir != nil || c.Unpack != nil:
				fail(c, "ADD --checksum, --keep-git-dir and --unpack are not supported: use COPY")
			case len(c.ExcludePatterns) > 0:
				fail(c, "ADD --exclude is not supported yet: use .dockerignore")
			case len(c.SourceContents) > 0:
				fail(c, "ADD with a heredoc is not supported yet")
			}
			for _, src := range c.SourcePaths {
				if isURL(src) {
					fail(c, "ADD %s: URLs and git sources are not supported; download in a RUN step or on the host", src)
				}
			}
		case *instructions.RunCommand:
			if len(c.FlagsUsed) > 0 {
				fail(c, "RUN --%s is not supported yet", c.FlagsUsed[0])
			} else if len(c.Files) > 0 {
				fail(c, "RUN with a heredoc is not supported yet")
			}
		case *instructions.HealthCheckCommand:
			df.warn(line(c), "HEALTHCHECK is ignored: give the container a healthcheck in nook.toml")
		case *instructions.VolumeCommand:
			df.warn(line(c), "VOLUME is ignored: give the container volumes in nook.toml or with run -v")
		case *instructions.OnbuildCommand:
			df.warn(line(c), "ONBUILD is ignored")
		case *instructions.MaintainerCommand:
			df.warn(line(c), "MAINTAINER is ignored: use LABEL")
		}
	}
	return errs
}

func isURL(s string) bool {
	return strings.Contains(s, "://") || strings.HasPrefix(s, "git@")
}

// UnusedBuildArgs warns about --build-arg values no ARG declared. Call it
// after every stage's Recipe.
func (df *Dockerfile) UnusedBuildArgs() {
	var unused []string
	for _, k := range slices.Sorted(maps.Keys(df.opts.BuildArgs)) {
		if !df.used[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		df.warn(0, "build arguments no ARG declares: %s", strings.Join(unused, ", "))
	}
}

func (df *Dockerfile) errorf(line int, format string, args ...any) error {
	return &DockerfileError{File: df.opts.File, Line: line, Err: fmt.Errorf(format, args...)}
}

func (df *Dockerfile) warn(line int, format string, args ...any) {
	df.Warnings = append(df.Warnings, (&DockerfileError{File: df.opts.File, Line: line, Err: fmt.Errorf(format, args...)}).Error())
}

// line is where an instruction starts.
func line(c instructions.Command) int {
	if loc := c.Location(); len(loc) > 0 {
		return loc[0].Start.Line
	}
	return 0
}

func stageLine(s instructions.Stage) int {
	if len(s.Location) > 0 {
		return s.Location[0].Start.Line
	}
	return 0
}

// errLine finds the line BuildKit's parser put on an error.
func errLine(err error) int {
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		return le.Locations[0][0].Start.Line
	}
	return 0
}

// stripLocation is the message of a BuildKit error without the "dockerfile
// parse error on line N: " prefix, which DockerfileError prints its own way.
func stripLocation(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, "dockerfile parse error on line "); ok {
		if _, m, ok := strings.Cut(rest, ": "); ok {
			return m
		}
	}
	return msg
}

// setVar sets KEY=VALUE in a list, replacing KEY where it is.
func setVar(list []string, k, v string) []string {
	for i, kv := range list {
		if name, _, _ := strings.Cut(kv, "="); name == k {
			list[i] = k + "=" + v
			return list
		}
	}
	return append(list, k+"="+v)
}

func lookupVar(list []string, k string) (string, bool) {
	for _, kv := range list {
		if name, v, _ := strings.Cut(kv, "="); name == k {
			return v, true
		}
	}
	return "", false
}
