package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// memory is a process's use, in MB, from /proc/PID/smaps_rollup.
type memory struct {
	pss, rss float64
	pssShmem float64 // the part of pss in shared memory (memfd, tmpfs)
}

func readMemory(pid int) (memory, error) {
	var m memory
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return m, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "Pss:":
			m.pss = kb / 1024
		case "Rss:":
			m.rss = kb / 1024
		case "Pss_Shmem:":
			m.pssShmem = kb / 1024
		}
	}
	return m, sc.Err()
}

// memfdSize returns the size in MB of the memfd pid runs from; 0 if it
// runs from a file.
func memfdSize(pid int) (float64, error) {
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	if link, err := os.Readlink(exe); err != nil || !strings.HasPrefix(link, "/memfd:") {
		return 0, err
	}
	st, err := os.Stat(exe)
	if err != nil {
		return 0, err
	}
	return float64(st.Size()) / (1 << 20), nil
}

// processesNamed returns the pids of this user's processes called name.
func processesNamed(name string) []int {
	return processes(func(pid int, info os.FileInfo) bool {
		if info.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
			return false
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return err == nil && strings.TrimSpace(string(comm)) == name
	})
}

// childrenOf returns the pids of ppid's children.
func childrenOf(ppid int) []int {
	return processes(func(pid int, _ os.FileInfo) bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// The fields after the command, which may hold spaces, in parens.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		return len(f) > 1 && f[1] == strconv.Itoa(ppid)
	})
}

// processes returns the pids of the processes that match.
func processes(match func(pid int, info os.FileInfo) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if info, err := e.Info(); err == nil && match(pid, info) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	m, _, _ := stats(xs)
	return m
}
