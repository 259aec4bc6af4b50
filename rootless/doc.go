// Package rootless owns the container runtime without root: the user
// namespace and its id mapping, mounts and the overlay rootfs, the other
// namespaces, the container's init (PID 1), exec, TTYs, networking and
// published ports.
//
// It must not import project, layers or watch. Callers describe what to run
// in rootless's own types.
package rootless
