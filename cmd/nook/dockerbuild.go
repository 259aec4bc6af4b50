package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nook-dev/nook/layers"
	"github.com/nook-dev/nook/project"
)

// dockerBuildFlags are build's docker build flags.
type dockerBuildFlags struct {
	tag, file, target string
	buildArgs         []string
}

// dockerMode tells `nook build -t NAME CONTEXT` from `nook build [IMAGE...]`:
// any docker build flag, or an argument that is a path (image names have no
// "/" and never start with ".").
func (o dockerBuildFlags) dockerMode(cmd *cobra.Command, args []string) bool {
	for _, name := range []string{"tag", "file", "build-arg", "target"} {
		if cmd.Flags().Changed(name) {
			return true
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, ".") || strings.Contains(a, "/") {
			return true
		}
	}
	return false
}

// dockerBuild builds one Dockerfile as docker build does and prints the
// image's name (if tagged) and digest.
func dockerBuild(cmd *cobra.Command, g *globals, s *layers.Store, o dockerBuildFlags, noCache bool, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("build: a Dockerfile build takes one CONTEXT folder, got %d arguments (nook build -t NAME .)", len(args))
	}
	// -C DIR: as if nook was started in DIR.
	at := func(p string) string {
		if g.dir == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(g.dir, p)
	}
	context, file := at(args[0]), filepath.Join(at(args[0]), "Dockerfile")
	if o.file != "" {
		file = at(o.file)
	}
	buildArgs := map[string]string{}
	for _, kv := range o.buildArgs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			v, ok = os.LookupEnv(k) // docker build's --build-arg K
		}
		if ok {
			buildArgs[k] = v
		}
	}
	res, err := project.BuildDockerfile(cmd.Context(), project.DockerfileOptions{
		Store: s, Dockerfile: file, Context: context, Tag: o.tag, Target: o.target, BuildArgs: buildArgs,
		NoCache: noCache, Progress: stepPrinter(g), Output: g.stderr, Log: g.log,
	})
	if err != nil {
		return err
	}
	if o.tag != "" {
		fmt.Fprintf(g.stdout, "%s %s\n", layers.NormalizeName(o.tag), res.Digest)
		return nil
	}
	fmt.Fprintln(g.stdout, res.Digest)
	return nil
}
