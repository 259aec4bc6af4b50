package layers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Recipe says how to build one image. It is layers' own description of a
// build; project translates nook.toml into it.
type Recipe struct {
	// Tag is the NAME[:TAG] the built image gets; empty leaves it untagged.
	Tag string
	// Name stands for the build in progress events and errors when Tag is
	// empty (a Dockerfile's earlier stage).
	Name string
	// From is the base: "scratch", an image in the store (name or digest),
	// "oci-layout:DIR[:TAG]" or "oci-archive:FILE".
	From string
	// Context is the folder copy and host steps read from.
	Context string
	Steps   []Step
	// Config is applied after the steps: Env entries are added (replacing
	// the same names), other fields replace the image's when set.
	Config v1.Config
}

// label names the build in events and errors.
func (r Recipe) label() string {
	if r.Tag != "" {
		return r.Tag
	}
	return r.Name
}

// StepKind names what a step does.
type StepKind string

const (
	StepCopy    StepKind = "copy"    // files from the context into the image
	StepRun     StepKind = "run"     // a command inside the image being built
	StepHost    StepKind = "host"    // a command on the host, in the context
	StepEnv     StepKind = "env"     // environment for later steps and the image
	StepWorkdir StepKind = "workdir" // working folder for later steps and the image
	StepUser    StepKind = "user"    // user for later run steps and the image
	StepArg     StepKind = "arg"     // build arguments with defaults
)

// Step is one build step. Copy and run steps make a layer; a host step
// runs a command whose outputs later copy steps take; the others change
// the image config only.
type Step struct {
	Kind    StepKind
	Copy    CopySpec // copy
	Command string   // run and host: a /bin/sh -c command line
	// Args is a run step's argv, run as is instead of Command (a
	// Dockerfile's exec-form RUN, or a shell its SHELL named). Omitted
	// when empty so that existing steps keep their cache keys.
	Args    []string          `json:",omitempty"`
	Inputs  []string          // host: context globs the command reads
	Outputs []string          // host: context paths it writes
	Vars    map[string]string // env and arg
	Value   string            // workdir and user
}

// String describes the step in one line, for build output and history.
func (s Step) String() string {
	switch s.Kind {
	case StepCopy:
		return fmt.Sprintf("copy %s -> %s", strings.Join(s.Copy.Sources, " "), s.Copy.To)
	case StepRun, StepHost:
		if len(s.Args) > 0 {
			var argv strings.Builder
			enc := json.NewEncoder(&argv)
			enc.SetEscapeHTML(false) // show >> as written
			enc.Encode(s.Args)
			return fmt.Sprintf("%s %s", s.Kind, strings.TrimSpace(argv.String()))
		}
		return fmt.Sprintf("%s %s", s.Kind, s.Command)
	case StepEnv, StepArg:
		return fmt.Sprintf("%s %s", s.Kind, strings.Join(sortedVars(s.Vars), " "))
	}
	return fmt.Sprintf("%s %s", s.Kind, s.Value)
}

func sortedVars(vars map[string]string) []string {
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// RunRequest is a run step for a StepRunner.
type RunRequest struct {
	// Lowers are the unpacked layer folders of the image so far, top first,
	// relative to LayerRoot, ready to be overlay lowerdirs.
	LayerRoot string
	Lowers    []string
	// Upper is an empty folder to receive the step's changes, in overlay's
	// format (whiteouts as 0/0 character devices, user.overlay.opaque).
	Upper   string
	Command []string
	Env     []string
	Workdir string
	User    string
	Stdout  io.Writer
	Stderr  io.Writer
}

// StepRunner runs a run step's command in a container whose root is the
// overlay of req.Lowers under req.Upper. It returns once the command has
// exited and the overlay is unmounted; a non-zero exit is an error. The
// runtime (package rootless) satisfies it; project wires it in.
type StepRunner interface {
	RunStep(ctx context.Context, req RunRequest) error
}

// Event reports a build's progress: a step starting, or finished with its
// outcome.
type Event struct {
	Image  string // the recipe's Tag
	Index  int    // 1-based step number
	Total  int
	Step   string // Step.String()
	Done   bool
	Cached bool
	Err    error
	Took   float64 // seconds, when Done
}

// stepKey chains a step's cache key: the previous key, the step as written
// and a summary of the content it reads.
func stepKey(prev string, s Step, content []byte) string {
	h := sha256.New()
	spec, _ := json.Marshal(s) // maps marshal with sorted keys
	fmt.Fprintf(h, "nook-step-v1\x00%s\x00%s\x00", prev, spec)
	h.Write(content)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// summarize is the content part of a copy or host step's key: every entry
// with its metadata and content digest.
func summarize(entries []entry) []byte {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s\x00%o\x00%d:%d\x00%s\x00%d\x00%x\n", e.name, uint32(e.mode), e.uid, e.gid, e.link, e.size, e.digest)
	}
	return []byte(b.String())
}

// baseKey starts the key chain at the base image.
func baseKey(base v1.Hash) string {
	if base == (v1.Hash{}) {
		return "scratch"
	}
	return base.String()
}
