package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nook-dev/nook/project"
	"github.com/nook-dev/nook/rootless"
)

// Commands that create, read or remove files owned by the image's users
// (uid 1000 inside is a subordinate id outside) run inside nook's user
// namespace, with the same id mapping every time, where they can without
// root: build, load, import, prune, commit, up, down and watch. The CLI
// re-executes itself into the namespace before such a command runs
// (inUserns); root needs no namespace for that and runs in place. run and
// create go inside only when the image must be unpacked first
// (inUsernsUnlessReady); the rest read and write files that are the
// user's inside and out, and run where they are started.
const (
	entryCLI      = "cli"
	annotUserns   = "nook/userns" // set on commands that must run inside
	exitBootstrap = 125           // rootless's status for a failed namespace entry
)

// insideUserns is true in the CLI process re-executed into the namespace.
var insideUserns bool

func init() {
	rootless.Register(entryCLI, func() int {
		insideUserns = true
		return run(os.Args[1:], os.Stdout, os.Stderr)
	})
}

// inUserns marks a command as one that runs inside nook's user namespace.
func inUserns(cmd *cobra.Command) *cobra.Command {
	return markUserns(cmd, "yes")
}

// inUsernsUnlessReady marks a command that may run where it was started
// when what it needs is ready (see runHere) and re-executes itself into
// the namespace otherwise.
func inUsernsUnlessReady(cmd *cobra.Command) *cobra.Command {
	return markUserns(cmd, "unless-ready")
}

func markUserns(cmd *cobra.Command, how string) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[annotUserns] = how
	return cmd
}

// runHere reports whether a command marked inUsernsUnlessReady runs in
// this process: one of root's, or one already inside, always does; an
// ordinary user's does when nook's namespace is made of subordinate
// ranges, whose highest id keeps containers off the init copy (see
// rootless.Containers.Start).
func runHere(rt *project.Runtime) bool {
	return insideUserns || os.Geteuid() == 0 || rt.Mapping.Kind == rootless.MapSubIDs
}

// exitCode ends the CLI with a status without printing anything: the
// process that ran the command already did.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// reexecIfNeeded runs the whole command line again inside the namespace
// when cmd needs it, and returns the child's status as an exitCode.
func reexecIfNeeded(g *globals, cmd *cobra.Command) error {
	if cmd.Annotations[annotUserns] != "yes" || insideUserns || os.Geteuid() == 0 {
		return nil
	}
	return reexec(g)
}

// reexec runs the whole command line again inside the namespace and
// returns the child's status as an exitCode.
func reexec(g *globals) error {
	m, err := rootless.HostMapping()
	if err != nil {
		return err
	}
	if w := m.Warning(); w != "" {
		g.log.Warn(w)
	}
	c := rootless.Command(entryCLI, g.args...)
	c.Mapping = &m
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	c.ForwardSignals = true
	err = c.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return exitCode(0)
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return exitCode(ee.ExitCode())
	case errors.As(err, &ee):
		return exitCode(128 + int(ee.Sys().(syscall.WaitStatus).Signal()))
	}
	return err
}
