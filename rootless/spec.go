package rootless

// Spec is everything a container's init needs to build the container and
// start its process. It is rootless's own description of a container;
// callers translate images and nook.toml into it.
type Spec struct {
	// LayerRoot is the folder Lowers are relative to; init changes into it
	// so the overlay mount options stay short.
	LayerRoot string
	// Lowers are the image's unpacked layer folders, relative to
	// LayerRoot, top layer first. Empty means an empty image.
	Lowers []string
	// Upper and Work are the container's writable layer and overlay's work
	// folder, on one filesystem. Upper survives stop and start.
	Upper, Work string
	// Rootfs is an empty folder the overlay is mounted on.
	Rootfs string
	// Volatile says Upper is mounted once and thrown away (a --rm
	// container): overlay's "volatile" then skips syncing the whole upper
	// filesystem when the container ends. After a crash, or once mounted,
	// the pair cannot be mounted again (overlayfs.rst, "Volatile mount").
	Volatile bool

	// ExecDir is the host folder where init listens for exec requests;
	// empty runs no exec server.
	ExecDir string

	Hostname string
	// Network is "host" (share the caller's network) or "none" (only lo).
	Network string
	// Hosts, HostnameFile and ResolvConf are host files bind-mounted over
	// /etc/hosts, /etc/hostname and /etc/resolv.conf.
	Hosts, HostnameFile, ResolvConf string
	Mounts                          []Mount

	Process Process
}

// Mount is a bind mount of a host path into the container.
type Mount struct {
	Source, Target string
	ReadOnly       bool
}

// Process is the container's main process.
type Process struct {
	Args []string
	Env  []string
	Cwd  string
	// User is "UID[:GID]" or "NAME[:GROUP]", looked up in the container's
	// /etc/passwd and /etc/group; empty means 0:0.
	User     string
	Terminal bool
	// NoSetGroups is set when the id mapping has no room for supplementary
	// groups (single-id mapping: setgroups(2) is denied).
	NoSetGroups bool
}
