package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

const idleContainers = 5

// rowMemory is row 6: the memory a tool keeps per idle container, as PSS
// (shared pages split among their users) of the processes it adds next to
// the container's own: nook's monitor and init, podman's conmon. The
// container's `sleep` is the same in both and not counted.
func rowMemory(b *bench) []result {
	const workload = "memory per idle container (PSS)"
	res := b.nookMemory(workload)
	if b.have("podman") {
		res = append(res, b.podmanMemory(workload)...)
	}
	return res
}

// nookMemory returns the PSS of monitor and init, and the same with the
// container's network helpers. When init runs from a memfd copy of nook
// (where a read-only overlay of it cannot be made), PSS counts only the
// pages of that copy init maps, but each container holds all of it in
// shmem (RAM) for its life: the lines then count all of it, and say so.
func (b *bench) nookMemory(workload string) []result {
	r := result{row: 6, workload: workload, tool: "nook", unit: "MB"}
	withNet := result{row: 6, workload: workload, tool: "nook", unit: "MB"}
	fail := func(err error) []result {
		r.note = "failed: " + err.Error()
		return []result{r}
	}
	for i := range idleContainers {
		name := fmt.Sprintf("nb-mem-%d", i)
		if err := b.nookCmd("run", "-d", "--name", name, "bench/busybox", "sleep", "1000"); err != nil {
			return fail(err)
		}
		defer b.nookCmd("rm", "-f", name)
	}
	time.Sleep(time.Second) // let the monitors settle after their start
	var monitor, init, rss []float64
	copies := 0
	for i := range idleContainers {
		out, err := b.output(b.nook, "inspect", fmt.Sprintf("nb-mem-%d", i))
		if err != nil {
			return fail(err)
		}
		var c []struct {
			State struct {
				Pid        int `json:"pid"`
				MonitorPid int `json:"monitor_pid"`
			} `json:"state"`
		}
		if err := json.Unmarshal([]byte(out), &c); err != nil || len(c) != 1 {
			return fail(fmt.Errorf("read nook inspect: %v", err))
		}
		m, err := readMemory(c[0].State.MonitorPid)
		if err != nil {
			return fail(err)
		}
		in, err := readMemory(c[0].State.Pid)
		if err != nil {
			return fail(err)
		}
		memfd, err := memfdSize(c[0].State.Pid)
		if err != nil {
			return fail(err)
		}
		// The container's own network: the monitor's other children, the
		// namespace holder and slirp4netns (or pasta).
		var helpers float64
		for _, pid := range childrenOf(c[0].State.MonitorPid) {
			if pid != c[0].State.Pid {
				h, err := readMemory(pid)
				if err != nil {
					return fail(err)
				}
				helpers += h.pss
			}
		}
		monitor, init, rss = append(monitor, m.pss), append(init, in.pss), append(rss, m.rss+in.rss)
		if memfd > 0 {
			copies++
		}
		r.samples = append(r.samples, m.pss+in.pss-in.pssShmem+memfd)
		withNet.samples = append(withNet.samples, m.pss+in.pss-in.pssShmem+memfd+helpers)
	}
	r.note = fmt.Sprintf("monitor %.2f + init %.2f; RSS %.2f", median(monitor), median(init), median(rss))
	if copies > 0 {
		r.note += fmt.Sprintf("; with all of init's memfd copy of nook (%d of %d containers)", copies, idleContainers)
	}
	withNet.note = "the same, with its network's holder and uplink (slirp4netns, else pasta)"
	return []result{r, withNet}
}

func (b *bench) podmanMemory(workload string) []result {
	r := result{row: 6, workload: workload, tool: "podman", unit: "MB"}
	fail := func(err error) []result {
		r.note = "failed: " + err.Error()
		return []result{r}
	}
	for i := range idleContainers {
		name := fmt.Sprintf("nb-mem-%d", i)
		if err := b.podman("run", "-d", "--name", name, podmanImage, "sleep", "1000"); err != nil {
			return fail(err)
		}
		defer b.podman("rm", "-f", "-t", "0", name)
	}
	time.Sleep(time.Second)
	var rss []float64
	for i := range idleContainers {
		out, err := b.podmanOutput("inspect", "--format", "{{.State.ConmonPid}}", fmt.Sprintf("nb-mem-%d", i))
		if err != nil {
			return fail(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(out))
		m, err := readMemory(pid)
		if err != nil {
			return fail(err)
		}
		r.samples, rss = append(r.samples, m.pss), append(rss, m.rss)
	}
	r.note = fmt.Sprintf("conmon; RSS %.2f", median(rss))
	res := []result{r}
	// Rootless podman's default network adds a slirp4netns per container,
	// as nook's adds a holder and pasta.
	var pids []int
	for _, pid := range processesNamed("slirp4netns") {
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); !strings.Contains(string(cmd), "nook-wan") {
			pids = append(pids, pid) // podman's, not what nook's containers left exiting
		}
	}
	if len(pids) == idleContainers {
		net := result{row: 6, workload: workload, tool: "podman", unit: "MB", note: "conmon + slirp4netns"}
		for i, pid := range pids {
			m, err := readMemory(pid)
			if err != nil {
				return res
			}
			net.samples = append(net.samples, r.samples[i]+m.pss)
		}
		res = append(res, net)
	} else {
		logf("bench: row 6: found %d podman slirp4netns processes for %d containers; leaving that line out", len(pids), idleContainers)
	}
	return res
}
