package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nook-dev/nook/rootless"
)

func newPortCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER|SERVICE [PRIVATE_PORT[/PROTO]]",
		Short: "List a container's published ports, or where one of its ports is published",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := openContainer(g, args[0])
			if err != nil {
				return err
			}
			var ports []rootless.PublishedPort
			if c.Network != nil {
				ports = c.Network.Ports
			}
			if len(args) == 1 {
				for _, p := range ports {
					fmt.Fprintf(g.stdout, "%d/%s -> %s\n", p.ContainerPort, p.Proto, hostAddr(p))
				}
				return nil
			}
			want, proto, _ := strings.Cut(args[1], "/")
			if proto == "" {
				proto = "tcp"
			}
			found := false
			for _, p := range ports {
				if fmt.Sprint(p.ContainerPort) == want && p.Proto == proto {
					fmt.Fprintln(g.stdout, hostAddr(p))
					found = true
				}
			}
			if !found {
				return errors.New("port: " + c.Name + " publishes no port " + want + "/" + proto)
			}
			return nil
		},
	}
}

// hostAddr is where a published port listens: "127.0.0.1:8080".
func hostAddr(p rootless.PublishedPort) string {
	s := p.String()
	return s[:strings.Index(s, "->")]
}

// portsColumn is ps's PORTS: a running container's published ports, as
// long as its network is up (a project network whose supervisor was
// killed publishes nothing until the next nook up).
func portsColumn(c *rootless.Container) string {
	if c.Network == nil || c.State.Status != rootless.StatusRunning {
		return ""
	}
	if sock := c.Network.Supervisor; sock != "" && !supervisorAnswers(sock) {
		return ""
	}
	var out []string
	for _, p := range c.Network.Ports {
		out = append(out, p.String())
	}
	return strings.Join(out, ", ")
}

// supervisorAnswers reports whether a network supervisor listens on
// sock; ps asks once per socket.
var supervisorAnswers = func() func(string) bool {
	seen := map[string]bool{}
	return func(sock string) bool {
		up, ok := seen[sock]
		if !ok {
			_, err := rootless.NetCall(sock, rootless.NetRequest{Op: "info"})
			up = err == nil
			seen[sock] = up
		}
		return up
	}
}()
