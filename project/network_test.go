package project

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nook-dev/nook/rootless"
)

// PublishedPorts expands ranges pairwise, keeps a fixed host port, and
// gives "any free port" the port the container had before, else a new
// one.
func TestPublishedPorts(t *testing.T) {
	parse := func(s string) Port {
		p, err := ParsePort(s)
		if err != nil {
			t.Fatal(err)
		}
		if p.HostIP == "" {
			p.HostIP = "127.0.0.1"
		}
		return p
	}
	had := []rootless.PublishedPort{{Proto: "tcp", HostIP: "127.0.0.1", HostPort: 40001, ContainerPort: 9000}}
	got, err := PublishedPorts([]Port{parse("8000-8001:80-81"), parse("0.0.0.0:53:53/udp"), parse("9000")}, had)
	if err != nil {
		t.Fatal(err)
	}
	want := []rootless.PublishedPort{
		{Proto: "tcp", HostIP: "127.0.0.1", HostPort: 8000, ContainerPort: 80},
		{Proto: "tcp", HostIP: "127.0.0.1", HostPort: 8001, ContainerPort: 81},
		{Proto: "udp", HostIP: "0.0.0.0", HostPort: 53, ContainerPort: 53},
		{Proto: "tcp", HostIP: "127.0.0.1", HostPort: 40001, ContainerPort: 9000},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PublishedPorts (-want +got):\n%s", diff)
	}

	fresh, err := PublishedPorts([]Port{parse("9000")}, nil)
	if err != nil || len(fresh) != 1 || fresh[0].HostPort == 0 {
		t.Errorf("PublishedPorts of a port with no host port and no history = %v, %v; want a free host port", fresh, err)
	}
}

// Every container's /etc/hosts names localhost, the project's containers
// in address order, and its own hostname (on loopback when the project
// does not name it).
func TestHostsFile(t *testing.T) {
	names := map[string][]string{
		"10.89.0.10": {"web-2", "web-2.shop", "shop-web-2"},
		"10.89.0.2":  {"api", "api.shop", "shop-api-1"},
	}
	got := hostsFile("api", names)
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"10.89.0.2\tapi api.shop shop-api-1\n10.89.0.10\tweb-2 web-2.shop shop-web-2\n"
	if got != want {
		t.Errorf("hostsFile(api) =\n%s\nwant\n%s", got, want)
	}
	if got := hostsFile("tool", names); !strings.HasSuffix(got, "127.0.1.1\ttool\n") {
		t.Errorf("hostsFile(tool) =\n%s\nwant its own name on 127.0.1.1", got)
	}
}
