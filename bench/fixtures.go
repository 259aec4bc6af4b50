package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nook-dev/nook/rootless"
)

// The busybox project: one copy step of the rootfs every tool shares.
const busyboxProject = `name = "bench"

[images.busybox]
from = "scratch"
cmd = ["sh"]

[[images.busybox.steps]]
copy = "rootfs/"
to = "/"
`

// crunFlags make rootless crun run without systemd: no cgroup at all (in
// v1, where bench runs it, a rootless container gets none anyway).
func (b *bench) crunFlags() []string {
	return []string{"--cgroup-manager=disabled", "--root", filepath.Join(b.work, "crun-state")}
}

func (b *bench) bundle() string { return filepath.Join(b.work, "bundle") }

// rangeBundle is bundle with nook's id mapping (the user's uid as 0, the
// subordinate ranges from 1), for which crun runs newuidmap and
// newgidmap as nook does; "" where the user has no subordinate range.
func (b *bench) rangeBundle() string {
	if _, err := os.Stat(filepath.Join(b.work, "bundle-range", "config.json")); err != nil {
		return ""
	}
	return filepath.Join(b.work, "bundle-range")
}

// crunRange names the crun that maps nook's ids.
const crunRange = "crun (nook's id range)"

// prepare makes the shared rootfs and gives it to each tool in its form,
// removes containers a killed earlier run left, and probes each peer once.
func (b *bench) prepare() error {
	if err := b.makeRootfs(); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(b.proj, "nook.toml"), busyboxProject); err != nil {
		return err
	}
	b.removeContainers()
	if err := b.nookCmd("build"); err != nil {
		return err
	}
	if b.have("podman") {
		// Restarts podman's pause process, whose namespaces every podman
		// command joins, so it is made in this mount namespace.
		b.cmd("", "podman", "system", "migrate")
		b.podmanStorage()
		if err := b.podmanImport(); err != nil {
			b.skip("podman", err.Error())
		}
	}
	if b.have("crun") {
		if err := b.makeBundle(); err != nil {
			b.skip("crun", err.Error())
		}
	}
	for _, c := range runContenders(b) {
		if err := c.run(); err != nil {
			b.skip(c.tool, err.Error())
		}
	}
	return nil
}

// makeRootfs lays out busybox, its applet links and /etc/passwd in
// proj/rootfs, once.
func (b *bench) makeRootfs() error {
	bin := filepath.Join(b.rootfs, "bin")
	if _, err := os.Stat(filepath.Join(bin, "busybox")); err == nil {
		return nil
	}
	src, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("find busybox (the busybox-static package): %w", err)
	}
	for _, d := range []string{"bin", "etc", "proc", "dev", "sys", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(b.rootfs, d), 0o755); err != nil {
			return err
		}
	}
	if err := copyFile(src, filepath.Join(bin, "busybox"), 0o755); err != nil {
		return err
	}
	list, err := exec.Command(src, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	if err := writeFile(filepath.Join(b.rootfs, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n"); err != nil {
		return err
	}
	return writeFile(filepath.Join(b.rootfs, "etc", "group"), "root:x:0:\n")
}

// podmanStorage notes podman's storage driver. A store made earlier with
// another driver overrides the flag; bench's own user's store is reset to
// overlay, anyone else's is left alone.
func (b *bench) podmanStorage() {
	out, _ := b.podmanOutput("info", "--format", "{{.Store.GraphDriverName}}")
	b.driver = strings.TrimSpace(out)
	if b.driver != "overlay" && os.Getenv("USER") == benchUser {
		logf("bench: podman's store uses %q: resetting it to overlay", b.driver)
		b.podman("system", "reset", "-f")
		out, _ = b.podmanOutput("info", "--format", "{{.Store.GraphDriverName}}")
		b.driver = strings.TrimSpace(out)
	}
}

// podmanImport gives podman the rootfs as a one-layer image, once.
func (b *bench) podmanImport() error {
	if b.podman("image", "exists", podmanImage) == nil {
		return nil
	}
	tarball := filepath.Join(b.work, "rootfs.tar")
	if err := b.cmd("", "tar", "-C", b.rootfs, "-cf", tarball, "."); err != nil {
		return err
	}
	defer os.Remove(tarball)
	return b.podman("import", "--change", `CMD ["sh"]`, tarball, podmanImage)
}

// makeBundle writes a rootless OCI bundle whose root is the shared rootfs
// and whose process is /bin/true.
func (b *bench) makeBundle() error {
	dir := b.bundle()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	os.Remove(filepath.Join(dir, "config.json"))
	if err := b.cmd(dir, "crun", "spec", "--rootless"); err != nil {
		return err
	}
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	process, _ := spec["process"].(map[string]any)
	root, _ := spec["root"].(map[string]any)
	if process == nil || root == nil {
		return fmt.Errorf("%s: no process or root", path)
	}
	process["args"] = []string{"/bin/true"}
	process["terminal"] = false
	root["path"] = b.rootfs
	if err := writeSpec(path, spec); err != nil {
		return err
	}

	// The same with nook's mapping, where the user has one.
	ranged := filepath.Join(b.work, "bundle-range")
	os.RemoveAll(ranged)
	m, err := rootless.HostMapping()
	linux, _ := spec["linux"].(map[string]any)
	if err != nil || m.Kind != rootless.MapSubIDs || linux == nil {
		return nil
	}
	maps := func(ms []rootless.IDMap) []map[string]uint32 {
		var out []map[string]uint32
		for _, e := range ms {
			out = append(out, map[string]uint32{"containerID": e.ContainerID, "hostID": e.HostID, "size": e.Size})
		}
		return out
	}
	linux["uidMappings"], linux["gidMappings"] = maps(m.UIDs), maps(m.GIDs)
	if err := os.MkdirAll(ranged, 0o755); err != nil {
		return err
	}
	return writeSpec(filepath.Join(ranged, "config.json"), spec)
}

// writeSpec writes an OCI runtime spec.
func writeSpec(path string, spec map[string]any) error {
	out, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

// removeContainers removes what an earlier, interrupted run left running.
func (b *bench) removeContainers() {
	if ids, err := b.output(b.nook, "ps", "-a", "-q"); err == nil && strings.TrimSpace(ids) != "" {
		b.nookCmd(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	if _, err := exec.LookPath("podman"); err == nil {
		b.podman("rm", "-a", "-f", "-t", "0")
	}
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}
