package main

// restartName is the detached container row 2 restarts, in each tool.
const restartName = "nb-restart"

// rowRestart is row 2: restart a detached `sleep 1000` with no grace
// period, so the time is the tool's stop and start, not a timeout.
func rowRestart(b *bench) []result {
	const workload = "restart -t 0 of a running container"
	var cs []contender
	if err := b.nookCmd("run", "-d", "--name", restartName, "bench/busybox", "sleep", "1000"); err != nil {
		return []result{{row: 2, workload: workload, tool: "nook", note: "failed: " + err.Error()}}
	}
	defer b.nookCmd("rm", "-f", restartName)
	cs = append(cs, contender{tool: "nook", run: func() error {
		return b.nookCmd("restart", "-t", "0", restartName)
	}})
	if b.have("podman") {
		if err := b.podman("run", "-d", "--name", restartName, podmanImage, "sleep", "1000"); err == nil {
			defer b.podman("rm", "-f", "-t", "0", restartName)
			cs = append(cs, contender{tool: "podman", run: func() error {
				return b.podman("restart", "-t", "0", restartName)
			}})
		} else {
			logf("bench: restart: podman: %v", err)
		}
	}
	return b.interleave(2, workload, cs)
}
