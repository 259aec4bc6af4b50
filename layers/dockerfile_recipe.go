package layers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// defaultShell runs the shell forms of RUN, CMD and ENTRYPOINT until a
// SHELL instruction says otherwise.
var defaultShell = []string{"/bin/sh", "-c"}

// stageState is what translating a stage tracks between instructions.
type stageState struct {
	// vars is the environment words are expanded with: the base image's
	// Env, then the stage's ARGs and ENVs in order, a later one replacing
	// an earlier one of the same name (BuildKit adds ARGs to the same
	// environment).
	vars    []string
	workdir string
	shell   []string
	r       Recipe
}

// Recipe translates stage i into a Recipe starting from the image from,
// whose config is base: its Env takes part in variable expansion (`ENV
// PATH=/opt/bin:$PATH`) and its WorkingDir in relative paths. Variables
// are expanded as BuildKit does, with shell.Lex, except in shell-form RUN,
// CMD and ENTRYPOINT, which the shell expands when it runs.
func (df *Dockerfile) Recipe(i int, from string, base v1.Config) (Recipe, error) {
	s := df.Stages[i]
	st := &stageState{vars: slices.Clone(base.Env), workdir: base.WorkingDir, shell: defaultShell}
	st.r = Recipe{From: from, Context: df.opts.Context, Name: df.opts.File + ":" + s.Name}
	target := i == len(df.Stages)-1
	if target {
		st.r.Tag = df.opts.Tag
	}
	for _, c := range s.cmds {
		if err := df.translate(st, c); err != nil {
			return st.r, df.errorf(line(c), "%s: %w", strings.ToUpper(c.Name()), err)
		}
	}
	if target {
		applyConfig(&st.r.Config, df.opts.Config)
	}
	return st.r, nil
}

// translate adds one instruction to the recipe.
func (df *Dockerfile) translate(st *stageState, c instructions.Command) error {
	if ex, ok := c.(instructions.SupportsSingleWordExpansion); ok {
		if _, isArg := c.(*instructions.ArgCommand); !isArg { // ARG expands its own defaults
			err := ex.Expand(func(word string) (string, error) {
				w, _, err := df.lex.ProcessWord(word, shell.EnvsFromSlice(st.vars))
				return w, err
			})
			if err != nil {
				return err
			}
		}
	}
	cfg := &st.r.Config
	switch c := c.(type) {
	case *instructions.ArgCommand:
		return df.arg(st, c)
	case *instructions.EnvCommand:
		vars := map[string]string{}
		for _, kv := range c.Env {
			vars[kv.Key] = kv.Value
			st.vars = setVar(st.vars, kv.Key, kv.Value)
		}
		st.add(Step{Kind: StepEnv, Vars: vars})
	case *instructions.WorkdirCommand:
		st.workdir = st.abs(c.Path)
		st.add(Step{Kind: StepWorkdir, Value: st.workdir})
	case *instructions.UserCommand:
		st.add(Step{Kind: StepUser, Value: c.User})
	case *instructions.CopyCommand:
		return st.copy(c.SourcesAndDest, c.Chown, c.Chmod)
	case *instructions.AddCommand:
		if err := df.checkNotArchive(c.SourcePaths); err != nil {
			return err
		}
		return st.copy(c.SourcesAndDest, c.Chown, c.Chmod)
	case *instructions.RunCommand:
		return st.run(c)
	case *instructions.CmdCommand:
		cfg.Cmd = st.command(c.ShellDependantCmdLine)
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = st.command(c.ShellDependantCmdLine)
	case *instructions.ShellCommand:
		st.shell = slices.Clone(c.Shell)
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.ExposeCommand:
		return df.expose(st, c.Ports)
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
	}
	// HEALTHCHECK, VOLUME, ONBUILD and MAINTAINER: ParseDockerfile warned.
	return nil
}

func (st *stageState) add(s Step) { st.r.Steps = append(st.r.Steps, s) }

// arg declares build arguments as BuildKit's dispatchArg: a --build-arg
// wins, else the default expanded, else the value of the meta ARG of the
// same name; an ARG with none of them stays unset.
func (df *Dockerfile) arg(st *stageState, c *instructions.ArgCommand) error {
	vars := map[string]string{}
	for _, kv := range c.Args {
		v, ok := df.opts.BuildArgs[kv.Key]
		switch {
		case ok:
			df.used[kv.Key] = true
		case kv.Value != nil:
			w, _, err := df.lex.ProcessWord(*kv.Value, shell.EnvsFromSlice(st.vars))
			if err != nil {
				return err
			}
			v, ok = w, true
		default:
			v, ok = lookupVar(df.global, kv.Key)
		}
		if ok {
			vars[kv.Key] = v
			st.vars = setVar(st.vars, kv.Key, v)
		}
	}
	if len(vars) > 0 {
		st.add(Step{Kind: StepArg, Vars: vars})
	}
	return nil
}

// abs resolves p against the working folder, as Docker resolves WORKDIR
// and COPY destinations.
func (st *stageState) abs(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join("/", st.workdir, p)
}

// copy adds a COPY (or a local ADD). The destination is a folder when it
// ends in "/" or "/.", is ".", is the working folder (which WORKDIR made a
// folder; Docker looks at the image, nook does not), or there are several
// sources.
func (st *stageState) copy(sd instructions.SourcesAndDest, chown, chmod string) error {
	spec := CopySpec{To: st.abs(sd.DestPath)}
	dest := sd.DestPath
	if strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.") || spec.To == st.abs(".") {
		spec.To = strings.TrimSuffix(spec.To, "/") + "/"
	}
	for _, src := range sd.SourcePaths {
		// Docker reads "/x" as the context's x.
		spec.Sources = append(spec.Sources, strings.TrimPrefix(src, "/"))
	}
	var err error
	if spec.UID, spec.GID, err = parseChown(chown); err != nil {
		return err
	}
	if chmod != "" {
		m, err := strconv.ParseUint(chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("--chmod=%s: only octal modes are supported (0755)", chmod)
		}
		spec.Mode = fs.FileMode(m)
	}
	st.add(Step{Kind: StepCopy, Copy: spec})
	return nil
}

// parseChown parses --chown=UID[:GID]; a UID alone is its own GID, as
// Docker does. Names need the image's /etc/passwd, which the builder does
// not read yet.
func parseChown(spec string) (int, int, error) {
	if spec == "" {
		return 0, 0, nil
	}
	u, g, hasG := strings.Cut(spec, ":")
	uid, err := strconv.Atoi(u)
	gid := uid
	if err == nil && hasG {
		gid, err = strconv.Atoi(g)
	}
	if err != nil || uid < 0 || gid < 0 {
		return 0, 0, fmt.Errorf("--chown=%s: only numeric ids are supported for now (UID or UID:GID)", spec)
	}
	return uid, gid, nil
}

// run adds a RUN. The shell form runs through the shell (SHELL, else
// /bin/sh -c) and expands its own variables; the exec form is the argv.
func (st *stageState) run(c *instructions.RunCommand) error {
	if !c.PrependShell {
		if len(c.CmdLine) == 0 {
			return errors.New("an empty command")
		}
		st.add(Step{Kind: StepRun, Args: slices.Clone(c.CmdLine)})
		return nil
	}
	line := strings.Join(c.CmdLine, " ")
	if slices.Equal(st.shell, defaultShell) {
		st.add(Step{Kind: StepRun, Command: line})
	} else {
		st.add(Step{Kind: StepRun, Args: append(slices.Clone(st.shell), line)})
	}
	return nil
}

// command is the config value of CMD or ENTRYPOINT: never nil, so that
// `CMD []` clears the base image's.
func (st *stageState) command(c instructions.ShellDependantCmdLine) []string {
	if c.PrependShell {
		return append(slices.Clone(st.shell), strings.Join(c.CmdLine, " "))
	}
	return append([]string{}, c.CmdLine...)
}

// expose adds EXPOSE ports: PORT[-END][/tcp|udp|sctp], after expansion.
func (df *Dockerfile) expose(st *stageState, ports []string) error {
	cfg := &st.r.Config
	if cfg.ExposedPorts == nil {
		cfg.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range ports {
		words, err := df.lex.ProcessWords(p, shell.EnvsFromSlice(st.vars))
		if err != nil {
			return err
		}
		for _, w := range words {
			spec, proto, _ := strings.Cut(w, "/")
			if proto == "" {
				proto = "tcp"
			}
			lo, hi, isRange := strings.Cut(spec, "-")
			first, err1 := strconv.ParseUint(lo, 10, 16)
			last, err2 := first, error(nil)
			if isRange {
				last, err2 = strconv.ParseUint(hi, 10, 16)
			}
			proto = strings.ToLower(proto)
			if err1 != nil || err2 != nil || first == 0 || last < first || (proto != "tcp" && proto != "udp" && proto != "sctp") {
				return fmt.Errorf("invalid port %q: want PORT[-END][/tcp|udp|sctp]", w)
			}
			for n := first; n <= last; n++ {
				cfg.ExposedPorts[fmt.Sprintf("%d/%s", n, proto)] = struct{}{}
			}
		}
	}
	return nil
}

// checkNotArchive refuses ADD of a local archive, which Docker would
// unpack: copying it as a file would silently build something else.
func (df *Dockerfile) checkNotArchive(sources []string) error {
	if df.opts.Context == "" {
		return nil
	}
	root, err := os.OpenRoot(df.opts.Context)
	if err != nil {
		return fmt.Errorf("open build context: %w", err)
	}
	defer root.Close()
	for _, src := range sources {
		src = path.Clean(strings.TrimPrefix(src, "/"))
		names := []string{src}
		if isGlob(src) {
			if names, err = fs.Glob(root.FS(), src); err != nil {
				return fmt.Errorf("%s: %w", src, err)
			}
		}
		for _, n := range names {
			if isArchive(root, n) {
				return fmt.Errorf("%s is an archive, which ADD would unpack; that is not supported yet: COPY it and unpack it with RUN tar", n)
			}
		}
	}
	return nil
}

// isArchive sniffs a context file for a tar header or a compression magic
// number. Folders and missing files are not archives (COPY reports those).
func isArchive(root *os.Root, name string) bool {
	f, err := root.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	for _, magic := range [][]byte{{0x1f, 0x8b}, []byte("BZh"), {0xfd, '7', 'z', 'X', 'Z', 0}, {0x28, 0xb5, 0x2f, 0xfd}} {
		if bytes.HasPrefix(head, magic) {
			return true
		}
	}
	return n >= 262 && bytes.Equal(head[257:262], []byte("ustar"))
}
