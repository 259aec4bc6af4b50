// Package netns owns the private networks: one network namespace per
// running project (the hub), a bridge in it with one veth pair per
// container, outbound access through pasta or slirp4netns, and host ports
// published into it with rootlesskit's builtin port driver. A project's
// network lives in its supervisor (supervisor.go), which also starts the
// project's container monitors; a standalone container's network lives in
// its own monitor (rootless.RegisterNetwork).
//
// It must not import project, layers or watch; it implements the network
// side of rootless's contracts (Register, RegisterNetwork, NetRequest).
//
// # Topology
//
//	host netns (supervisor: port listeners)      hub netns (holder: the port driver's dialer)
//	127.0.0.1:8080 ──builtin port driver──►  nook0 10.89.0.1/24 ── vethN ══ eth0 10.89.0.2 (container "web")
//	                                         │                  └─ vethM ══ eth0 10.89.0.3 (container "db")
//	pasta / slirp4netns ◄── tap nook-wan ────┘ (masquerade from 10.89.0.0/24)
//
// Every container has its own address, so two services (or two replicas
// of one) may listen on the same port; this is what rootless Docker and
// nerdctl do inside rootlesskit's namespace, and what Podman's
// rootless-netns does with netavark. The alternative, one shared netns for
// the whole project (a pod), is cheaper but cannot host two listeners on
// one port.
//
// # Address range
//
// The bridge takes 10.89.0.0/24 (Podman/netavark's range for new
// networks, well away from Docker's 172.17.0.0/16 and from home routers'
// 192.168.x), or the next free 10.89.N.0/24 when a route or address of the
// host overlaps it: pasta copies the host's addresses and routes into the
// hub, and an overlap would make the bridge and the uplink fight over
// them. Each project has its own hub, so projects never collide with each
// other and all may use the same range.
//
// # Life cycle
//
// Create runs in the supervisor, which is uid 0 in nook's user namespace
// but still in the host's network namespace (that is where published
// ports listen). The holder, a re-executed nook in a new network
// namespace, sets up lo, the bridge, forwarding and NAT, then drops every
// capability and runs the port driver's child half, which dials
// containers from inside the hub; pasta (or slirp4netns) attaches to its
// namespace.
// The holder and pasta get SIGKILL when the supervisor dies, the port
// listeners close with the supervisor, and the kernel frees the namespace
// with its last process: a SIGKILL of the supervisor releases everything.
//
// Binaries that call Create must call rootless.Init first thing in main,
// as for every nook re-exec entry point.
package netns
