package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/nook-dev/nook/project"
)

// errNotYet marks commands whose command line is fixed but whose runtime has
// not landed yet.
var errNotYet = errors.New("not implemented yet: the runtime has not landed")

func newUpCmd(g *globals) *cobra.Command {
	var detach, watch bool
	cmd := &cobra.Command{
		Use:   "up [CONTAINER...]",
		Short: "Build what changed and start the project's containers",
		RunE: func(*cobra.Command, []string) error {
			if _, err := project.Load(g.loadOptions()); err != nil {
				return err
			}
			return errNotYet
		},
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "start in the background and return")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "rebuild and restart what a file change affects")
	return cmd
}

func newDownCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Stop and remove the project's containers",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if _, err := project.Load(g.loadOptions()); err != nil {
				return err
			}
			return errNotYet
		},
	}
}
