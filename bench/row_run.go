package main

import (
	"fmt"
	"os"
)

// rowRun is row 1: start a container that runs true and remove it, twice:
// with each tool's default network (nook's own private one, podman's
// slirp4netns), and with none, as crun, bwrap and the floor start.
func rowRun(b *bench) []result {
	res := b.interleave(1, "run --rm IMG true, default network", networkedRunContenders(b))
	return append(res, b.interleave(1, "run --rm --network none IMG true", runContenders(b))...)
}

// networkedRunContenders start a container on its tool's default network.
func networkedRunContenders(b *bench) []contender {
	cs := []contender{{tool: "nook", run: func() error {
		return b.nookCmd("run", "--rm", "bench/busybox", "true")
	}}}
	if b.have("podman") {
		cs = append(cs, contender{tool: "podman", run: func() error {
			return b.podman("run", "--rm", podmanImage, "true")
		}})
	}
	return cs
}

// runContenders are the tools able to start a container from the shared
// rootfs, each in its plainest form and without a network: nook and
// podman from their stores, crun from a ready bundle (and from one that
// maps nook's ids, the user's subordinate ranges), bwrap with a bind
// mount, the floor with an overlay.
func runContenders(b *bench) []contender {
	cs := []contender{{tool: "nook", run: func() error {
		return b.nookCmd("run", "--rm", "--network", "none", "bench/busybox", "true")
	}}}
	if b.have("podman") {
		cs = append(cs, contender{tool: "podman", run: func() error {
			return b.podman("run", "--rm", "--network", "none", podmanImage, "true")
		}})
	}
	if b.have("crun") {
		n := 0 // crun run deletes the container when it exits; ids stay unique anyway
		crun := func(tool, bundle string) contender {
			return contender{tool: tool, run: func() error {
				n++
				id := fmt.Sprintf("nb-%d-%d", os.Getpid(), n)
				return b.cmd(bundle, "crun", append(b.crunFlags(), "run", "--bundle", bundle, id)...)
			}}
		}
		cs = append(cs, crun("crun", b.bundle()))
		if dir := b.rangeBundle(); dir != "" && !b.broken[crunRange] {
			cs = append(cs, crun(crunRange, dir))
		}
	}
	if b.have("bwrap") {
		cs = append(cs, contender{tool: "bwrap", run: func() error {
			return b.cmd("", "bwrap", "--unshare-all", "--bind", b.rootfs, "/",
				"--proc", "/proc", "--dev", "/dev", "/bin/true")
		}})
	}
	cs = append(cs, contender{tool: "floor", run: func() error {
		return b.cmd("", b.floor, b.rootfs)
	}})
	return cs
}
