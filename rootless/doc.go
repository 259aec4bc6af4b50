// Package rootless owns the container runtime without root: the user
// namespace and its id mapping, mounts and the overlay rootfs, the other
// namespaces, the container's init (PID 1), exec, TTYs, networking and
// published ports.
//
// It must not import project, layers or watch. Callers describe what to run
// in rootless's own types.
//
// # Entering the user namespace
//
// Everything nook does to the store or to containers runs in a child
// process inside a new user namespace, always with the mapping HostMapping
// returns: the caller's uid (gid) is container root, and its subordinate
// ranges from /etc/subuid and /etc/subgid are container ids 1 and up.
//
// The child is the same binary, re-executed through /proc/self/exe. Each
// binary registers its child entry points with Register and calls Init
// first thing in main (and in TestMain), before flags are parsed:
//
//	func init() { rootless.Register("unpack", unpackMain) }
//
//	func main() {
//		rootless.Init() // in a child: runs unpackMain and exits
//		os.Exit(cli.Execute())
//	}
//
// The parent starts a child with Command("unpack", args...).Run(). ProbeDir
// checks what the namespace can do on this machine, for nook doctor and tests.
//
// # Starting a container
//
// A container's init (PID 1) is nook again, cloned into the container's
// namespaces and run from a file its root cannot write. Inside nook's
// namespace (a monitor, a project's network supervisor), that is nook's
// binary through a read-only overlay, else a sealed memfd copy. An
// ordinary user's CLI running a container in the foreground skips the
// namespace and the monitor: it clones init straight into a user
// namespace of its own, whose mapping leaves out the highest subordinate
// id, and runs it from the init copy, a copy that id owns of nook-init
// (the init alone, where one of nook's build sits beside it: see
// initbinary.go) or of nook (see initcopy.go). One Go process start
// fewer, which is most of what `nook run` costs.
package rootless
