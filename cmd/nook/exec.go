package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/creack/pty"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/nook-dev/nook/rootless"
)

// rawTerminal puts stdin, when it is a terminal, in raw mode so every key
// reaches the container (Ctrl-C included), and returns how to restore it.
func rawTerminal() func() {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return func() {}
	}
	state, err := term.MakeRaw(fd)
	if err != nil {
		return func() {}
	}
	return func() { term.Restore(fd, state) }
}

// checkTTY refuses -it when stdin is not a terminal, as Docker does.
func checkTTY(interactive, tty bool) error {
	if interactive && tty && !term.IsTerminal(int(os.Stdin.Fd())) {
		return rootless.WithHint(errors.New("the input device is not a terminal"), "drop -t to pipe input to the container (-i alone)")
	}
	return nil
}

func newExecCmd(g *globals) *cobra.Command {
	var interactive, tty bool
	var user, workdir string
	var env []string
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := checkTTY(interactive, tty); err != nil {
				return err
			}
			_, c, err := openContainer(g, args[0])
			if err != nil {
				return err
			}
			req := rootless.ExecRequest{Args: args[1:], Cwd: workdir, User: user, Tty: tty, Env: envFlags(env)}
			stdin := os.Stdin
			if !interactive {
				if stdin, err = os.Open(os.DevNull); err != nil {
					return err
				}
				defer stdin.Close()
			}
			var restore func()
			if tty {
				restore = rawTerminal()
				defer restore()
			}
			code, err := c.Exec(req, stdin, os.Stdout, os.Stderr, func(master *os.File) {
				copyTerminal(master, interactive)
			})
			if err != nil {
				var ie *rootless.InitError
				if errors.As(err, &ie) {
					return &statusError{code: ie.Code, err: fmt.Errorf("exec in %s: %s", c.Name, ie.Msg)}
				}
				return err
			}
			if restore != nil {
				restore()
			}
			return exitCode(code)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "keep stdin open")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a terminal")
	cmd.Flags().StringVarP(&user, "user", "u", "", "run as `USER[:GROUP]`")
	cmd.Flags().StringVarP(&workdir, "workdir", "w", "", "working folder")
	cmd.Flags().StringArrayVarP(&env, "env", "e", nil, "set an environment variable (`KEY=VALUE`)")
	return cmd
}

// copyTerminal joins our terminal and a container's pty until the pty
// closes, keeping the pty's size equal to ours.
func copyTerminal(master *os.File, interactive bool) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	resize := func() {
		if size, err := pty.GetsizeFull(os.Stdin); err == nil {
			pty.Setsize(master, size)
		}
	}
	resize()
	go func() {
		for range winch {
			resize()
		}
	}()
	if interactive {
		go io.Copy(master, os.Stdin)
	}
	io.Copy(os.Stdout, master)
}
