package project

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nook-dev/nook/layers"
	"github.com/nook-dev/nook/rootless"
)

// stepRunner runs the builder's run steps in throwaway containers: the
// wire between layers.StepRunner and rootless.
type stepRunner struct {
	noSetGroups bool
}

func (r stepRunner) RunStep(_ context.Context, req layers.RunRequest) error {
	dir := filepath.Dir(req.Upper)
	spec := rootless.Spec{
		LayerRoot: req.LayerRoot, Lowers: req.Lowers,
		Upper: req.Upper, Work: filepath.Join(dir, "work"), Rootfs: filepath.Join(dir, "rootfs"),
		Hostname: "nook-build", Network: "host",
		Process: rootless.Process{Args: req.Command, Env: req.Env, Cwd: req.Workdir, User: req.User, NoSetGroups: r.noSetGroups},
	}
	for _, d := range []string{spec.Work, spec.Rootfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	out, errOut := req.Stdout, req.Stderr
	if out == nil {
		out = io.Discard
	}
	if errOut == nil {
		errOut = io.Discard
	}
	code, err := rootless.RunOnce(&spec, out, errOut)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%q exited with status %d", req.Command[len(req.Command)-1], code)
	}
	return nil
}
