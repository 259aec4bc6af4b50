package rootless

// The host half of nook doctor: the store's filesystem, the network
// helper, /dev/net/tun, inotify limits, unprivileged ports and cgroups.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// store checks that nook can create or write its store at root, and
// returns the directory to probe: root, its nearest existing parent, or
// the temporary directory when neither is writable.
func (d *doctor) store(root string) (Check, string) {
	const name = "store"
	dir := root
	for {
		_, err := os.Stat(dir)
		if err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, fs.ErrNotExist) || parent == dir {
			return fail(name, err.Error(), ""), os.TempDir()
		}
		dir = parent
	}
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return fail(name, err.Error(), ""), os.TempDir()
	case !fi.IsDir():
		return fail(name, dir+" is not a directory", "mv "+dir+" "+dir+".old"), os.TempDir()
	}
	msg := fmt.Sprintf("%s (%s)", root, fsType(dir))
	if dir != root {
		msg = fmt.Sprintf("%s does not exist yet; nook creates it in %s (%s)", root, dir, fsType(dir))
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		tmp := os.TempDir()
		msg = fmt.Sprintf("%s: %s cannot write to %s; the probes below ran in %s instead", msg, d.user, dir, tmp)
		if dir == root {
			return fail(name, msg, fmt.Sprintf("%schown %d:%d %s && %schmod u+rwx %s", d.sudo(), d.uid, d.gid, root, d.sudo(), root)), tmp
		}
		return fail(name, msg, fmt.Sprintf("%sinstall -d -o %d -g %d %s", d.sudo(), d.uid, d.gid, root)), tmp
	}
	return pass(name, msg), dir
}

// fsType names the filesystem of path, for messages: overlay and
// whiteouts work on some and not on others.
func fsType(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "filesystem unknown: " + err.Error()
	}
	names := map[int64]string{
		unix.EXT4_SUPER_MAGIC: "ext4", unix.XFS_SUPER_MAGIC: "xfs", unix.BTRFS_SUPER_MAGIC: "btrfs",
		unix.TMPFS_MAGIC: "tmpfs", unix.OVERLAYFS_SUPER_MAGIC: "overlay", unix.F2FS_SUPER_MAGIC: "f2fs",
		unix.NFS_SUPER_MAGIC: "nfs", unix.FUSE_SUPER_MAGIC: "fuse", 0x2fc12fc1: "zfs",
	}
	if n, ok := names[int64(st.Type)]; ok {
		return n
	}
	return fmt.Sprintf("filesystem %#x", st.Type)
}

// network says which helper gives containers a network of their own.
func (d *doctor) network() Check {
	const name = "network helper"
	pasta, _ := d.lookPath("pasta")
	slirp, _ := d.lookPath("slirp4netns")
	switch {
	case pasta != "" && slirp != "":
		return pass(name, fmt.Sprintf("nook will use pasta (%s); slirp4netns (%s) is also installed", pasta, slirp))
	case pasta != "":
		return pass(name, fmt.Sprintf("nook will use pasta (%s)", pasta))
	case slirp != "":
		return pass(name, fmt.Sprintf("nook will use slirp4netns (%s); pasta (package passt) is preferred", slirp))
	}
	return warn(name, "neither pasta (package passt) nor slirp4netns is installed: "+
		"containers cannot have a network of their own (--network host and none work)",
		d.sudo()+"apt-get install passt (Debian, Ubuntu; "+d.sudo()+"dnf install passt on Fedora)")
}

// nft checks for nft(8), which masquerades containers' outbound traffic
// inside each private network.
func (d *doctor) nft() Check {
	const name = "nft"
	if p, err := LookSbin(d.lookPath, "nft"); err == nil {
		return pass(name, fmt.Sprintf("%s masquerades containers' outbound traffic", p))
	}
	return warn(name, "nft is not installed: containers on a private network cannot reach beyond it (their project's containers and published ports work with outbound = \"none\")",
		d.sudo()+"apt-get install nftables")
}

const tunPath = "/dev/net/tun"

// tun checks that the caller can open /dev/net/tun read-write, as pasta
// and slirp4netns do in the container's network namespace.
func (d *doctor) tun() Check {
	var st unix.Stat_t
	statErr := unix.Stat(tunPath, &st)
	var openErr error
	if statErr == nil {
		// Opening without TUNSETIFF creates no interface.
		fd, err := unix.Open(tunPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		openErr = err
	}
	return tunCheck(d.user, statErr, st.Mode, ownerNames(st.Uid, st.Gid), openErr, d.sudo())
}

// ownerNames formats a file's owner as "user:group", with numbers for ids
// without a name.
func ownerNames(uid, gid uint32) string {
	u, g := strconv.FormatUint(uint64(uid), 10), strconv.FormatUint(uint64(gid), 10)
	if e, err := user.LookupId(u); err == nil {
		u = e.Username
	}
	if e, err := user.LookupGroupId(g); err == nil {
		g = e.Name
	}
	return u + ":" + g
}

// tunCheck judges the results of stat and open on /dev/net/tun. Machines
// without udev leave it mode 0600 where Debian's udev rules make it 0666.
func tunCheck(user string, statErr error, mode uint32, owner string, openErr error, sudo string) Check {
	const name = tunPath
	load := sudo + "modprobe tun && " + sudo + "chmod 0666 " + tunPath
	perm := fmt.Sprintf("mode %04o", mode&0o7777)
	switch {
	case errors.Is(statErr, fs.ErrNotExist):
		return warn(name, "does not exist (pasta and slirp4netns need it)", load)
	case statErr != nil:
		return warn(name, statErr.Error(), load)
	case mode&unix.S_IFMT != unix.S_IFCHR:
		return warn(name, fmt.Sprintf("is not a character device (%s)", perm),
			fmt.Sprintf("%srm %s && %smknod -m 0666 %s c 10 200", sudo, tunPath, sudo, tunPath))
	case openErr == nil:
		return pass(name, fmt.Sprintf("%s, %s can open it read-write", perm, user))
	case errors.Is(openErr, unix.EACCES), errors.Is(openErr, unix.EPERM):
		return warn(name, fmt.Sprintf("%s %s: %s cannot open it (no udev?), so pasta and slirp4netns fail", perm, owner, user),
			sudo+"chmod 0666 "+tunPath)
	}
	return warn(name, fmt.Sprintf("open %s: %v", tunPath, openErr), load)
}

// inotify checks the per-user limits that nook up --watch runs into.
func (d *doctor) inotify() (Check, Check) {
	return d.limit("inotify watches", "fs.inotify.max_user_watches", minWatches, goodWatches,
			"watching big trees fails"),
		d.limit("inotify instances", "fs.inotify.max_user_instances", minInstances, goodInstances,
			"watching several projects at once fails")
}

func (d *doctor) limit(name, key string, min, good int, what string) Check {
	v, ok := d.sysctl(key)
	if !ok {
		return warn(name, key+" not readable (no inotify?): file watching may not work",
			"use a kernel built with CONFIG_INOTIFY_USER=y")
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		return warn(name, fmt.Sprintf("%s=%q is not a number", key, v), d.sysctlFix(key, good, "90-nook-inotify.conf"))
	case n < min:
		return warn(name, fmt.Sprintf("%s=%d < %d: %s", key, n, min, what), d.sysctlFix(key, good, "90-nook-inotify.conf"))
	}
	return pass(name, fmt.Sprintf("%s=%d", key, n))
}

// ports reports the lowest port a non-root user can publish. It is never a
// failure: most projects publish high ports.
func (d *doctor) ports() Check {
	const name, key = "unprivileged ports", "net.ipv4.ip_unprivileged_port_start"
	v, ok := d.sysctl(key)
	if !ok {
		return pass(name, key+" not present: ports below 1024 need root")
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		return pass(name, key+"="+v)
	case d.euid == 0:
		return pass(name, key+"="+v+" (root can publish any port)")
	case n == 0:
		return pass(name, key+"=0: any port can be published")
	case n <= 80:
		return pass(name, fmt.Sprintf("%s=%d: ports below %d cannot be published", key, n, n))
	}
	return pass(name, fmt.Sprintf("%s=%d: ports below %d cannot be published (%ssysctl -w %s=80 allows 80 and up)",
		key, n, n, d.sudo(), key))
}

// cgroups reports the cgroup layout. Information only: nook applies no
// resource limits, and could not rootless without a delegated v2 subtree.
func (d *doctor) cgroups() Check {
	const name = "cgroups"
	b, err := d.readFile("/proc/self/mounts")
	layout := "unknown (" + fmt.Sprint(err) + ")"
	if err == nil {
		layout = cgroupLayout(string(b))
	}
	how := "here"
	if d.euid != 0 {
		how = "rootless here"
	}
	return pass(name, layout+": resource limits (memory, cpus, pids) are not enforced "+how)
}

// cgroupLayout describes the cgroup mounts in mounts (the format of
// /proc/self/mounts): "v2 (/sys/fs/cgroup)", "v1 (cpu, memory)", "hybrid:
// v1 (cpu, memory) and v2 at /sys/fs/cgroup/unified" or "none mounted".
func cgroupLayout(mounts string) string {
	var v1, v2 []string
	for line := range strings.Lines(mounts) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		// The kernel escapes space, tab, newline and backslash as \ooo.
		dir := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(f[1])
		switch f[2] {
		case "cgroup":
			v1 = append(v1, filepath.Base(dir))
		case "cgroup2":
			v2 = append(v2, dir)
		}
	}
	switch {
	case len(v1) > 0 && len(v2) > 0:
		return fmt.Sprintf("hybrid: v1 (%s) and v2 at %s", strings.Join(v1, ", "), strings.Join(v2, ", "))
	case len(v1) > 0:
		return fmt.Sprintf("v1 (%s)", strings.Join(v1, ", "))
	case len(v2) > 0:
		return fmt.Sprintf("v2 (%s)", strings.Join(v2, ", "))
	}
	return "none mounted"
}
