package main

import (
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nook-dev/nook/project"
	"github.com/nook-dev/nook/rootless"
)

// eachContainer runs fn for each named container, going on after a
// failure and returning the first error, as Docker does.
func eachContainer(g *globals, args []string, fn func(*project.Runtime, *rootless.Container) error) error {
	rt, err := openRuntime()
	if err != nil {
		return err
	}
	var first error
	for _, a := range args {
		c, err := getContainer(g, rt, a)
		if err == nil {
			err = fn(rt, c)
		}
		if err != nil {
			if first == nil {
				first = err
			} else {
				printError(g.stderr, err)
			}
			continue
		}
		fmt.Fprintln(g.stdout, a)
	}
	return first
}

func newStopCmd(g *globals) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   "stop [flags] CONTAINER...",
		Short: "Stop containers: their stop signal, then SIGKILL after a timeout",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachContainer(g, args, func(rt *project.Runtime, c *rootless.Container) error {
				t := c.StopTimeout
				if cmd.Flags().Changed("time") {
					t = time.Duration(timeout) * time.Second
				}
				return rt.Containers.Stop(c, project.StopSignal(c), t)
			})
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait before killing")
	return cmd
}

func newRestartCmd(g *globals) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   "restart [flags] CONTAINER...",
		Short: "Stop and start containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachContainer(g, args, func(rt *project.Runtime, c *rootless.Container) error {
				if err := rt.Containers.Stop(c, project.StopSignal(c), time.Duration(timeout)*time.Second); err != nil {
					return err
				}
				c, err := rt.Containers.Get(c.ID)
				if err != nil {
					return err
				}
				_, err = rt.Containers.Start(c, rootless.StartOptions{Mapping: &rt.Mapping})
				return err
			})
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait before killing")
	return cmd
}

func newKillCmd(g *globals) *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill [flags] CONTAINER...",
		Short: "Send a signal to containers (SIGKILL unless -s says otherwise)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			sig, err := project.ParseSignal(signal)
			if err != nil {
				return err
			}
			return eachContainer(g, args, func(_ *project.Runtime, c *rootless.Container) error {
				return c.Signal(syscall.Signal(sig))
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "KILL", "the `SIGNAL` to send")
	return cmd
}

func newWaitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER...",
		Short: "Wait for containers to stop and print their exit statuses",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			for _, a := range args {
				c, err := getContainer(g, rt, a)
				if err != nil {
					return err
				}
				done, err := rt.Containers.Wait(c)
				if err != nil {
					return err
				}
				code := c.State.ExitCode
				if done != nil {
					code = done.State.ExitCode
				}
				fmt.Fprintln(g.stdout, code)
			}
			return nil
		},
	}
}

func newRenameCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			return rt.Containers.Rename(args[0], args[1])
		},
	}
}

func newRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [flags] CONTAINER...",
		Short: "Remove containers and their writable layers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return eachContainer(g, args, func(rt *project.Runtime, c *rootless.Container) error {
				if c.State.Status == rootless.StatusRunning {
					if !force {
						return rootless.WithHint(fmt.Errorf("remove %s: the container is running", c.Name), "stop it first (nook stop "+c.Name+"), or force it: nook rm -f "+c.Name)
					}
					if err := rt.Containers.Stop(c, syscall.Signal(9), 0); err != nil {
						return err
					}
					if c, _ = rt.Containers.Get(c.ID); c == nil {
						return nil // it removed itself (--rm)
					}
				}
				return rt.Containers.Remove(c)
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	return cmd
}
