package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// writeTable prints the machine, the table and the notes as markdown.
func writeTable(w io.Writer, b *bench, results []result) error {
	var s strings.Builder
	fmt.Fprintf(&s, "## nook vs peers, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	for _, line := range b.machine() {
		fmt.Fprintf(&s, "- %s\n", line)
	}
	fmt.Fprintf(&s, "- %d measured runs per tool after %d warm-ups, tools interleaved; "+
		"nook/peer = nook's median / the peer's (below 1: nook is faster or smaller%s)\n\n", b.o.runs, b.o.warmups, rateNote(results))
	s.WriteString("| # | workload | tool | median | min | max | nook/peer |\n")
	s.WriteString("| --- | --- | --- | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		s.WriteString(row(r, nookMedian(results, r.workload)))
	}
	if len(b.skipped) > 0 {
		s.WriteString("\nSkipped:\n\n")
		for _, why := range b.skipped {
			fmt.Fprintf(&s, "- %s\n", why)
		}
	}
	_, err := io.WriteString(w, s.String())
	return err
}

// row renders one result; nook is nook's median on the same workload (0
// when it has none).
func row(r result, nook float64) string {
	if len(r.samples) == 0 {
		return fmt.Sprintf("| %d | %s | %s | %s | | | |\n", r.row, r.workload, r.tool, r.note)
	}
	med, lo, hi := stats(r.samples)
	ratio := ""
	if r.tool != "nook" && nook > 0 && med > 0 {
		ratio = fmt.Sprintf("%.2f", nook/med)
	}
	cell := func(v float64) string { return formatValue(v, r.unit, r.mb) }
	tool := strings.ReplaceAll(r.tool, "|", `\|`)
	if r.note != "" {
		tool += " (" + r.note + ")"
	}
	return fmt.Sprintf("| %d | %s | %s | %s | %s | %s | %s |\n", r.row, r.workload, tool, cell(med), cell(lo), cell(hi), ratio)
}

// rateNote turns the ratio's reading around for rates, where more is
// faster.
func rateNote(results []result) string {
	for _, r := range results {
		if r.unit == "req/s" {
			return "; for req/s, above 1: nook is faster"
		}
	}
	return ""
}

func nookMedian(results []result, workload string) float64 {
	for _, r := range results {
		if r.workload == workload && r.tool == "nook" && len(r.samples) > 0 {
			med, _, _ := stats(r.samples)
			return med
		}
	}
	return 0
}

func formatValue(v float64, unit string, mb float64) string {
	switch {
	case unit == "MB":
		return fmt.Sprintf("%.2f MB", v)
	case unit == "req/s":
		return fmt.Sprintf("%.0f req/s", v)
	case mb > 0:
		return fmt.Sprintf("%.0f ms (%.0f MB/s)", v, mb/(v/1000))
	case v < 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.0f ms", v)
	}
}

// machine describes where the numbers come from.
func (b *bench) machine() []string {
	store := filepath.Join(b.work, "store")
	fs, err := exec.Command("findmnt", "-n", "-o", "FSTYPE", "-T", store).Output()
	if err != nil {
		fs, _ = exec.Command("stat", "-f", "-c", "%T", store).Output()
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	lines := []string{
		fmt.Sprintf("machine: %s, %d cores, kernel %s", cpuModel(), runtime.NumCPU(), strings.TrimSpace(string(kernel))),
		fmt.Sprintf("store: %s on %s; load average before: %s, after: %s", store, strings.TrimSpace(string(fs)),
			b.load, loadAverage()),
		"as: " + whoami(),
	}
	if len(b.rowLoad) > 0 {
		lines = append(lines, "1-minute load average as each row began: "+strings.Join(b.rowLoad, ", "))
	}
	var versions []string
	for _, v := range [][]string{{"podman", "--version"}, {"crun", "--version"}, {"bwrap", "--version"}} {
		if out, err := exec.Command(v[0], v[1]).Output(); err == nil {
			versions = append(versions, strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
		}
	}
	if len(versions) > 0 {
		lines = append(lines, "peers: "+strings.Join(versions, ", ")+
			"; podman "+strings.Join(podmanFlags, " ")+" (store: "+cmp.Or(b.driver, "?")+"), crun "+strings.Join(b.crunFlags()[:1], " "))
	}
	return lines
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func whoami() string {
	name := os.Getenv("USER")
	if name == "" {
		name = "?"
	}
	return fmt.Sprintf("%s (uid %d)", name, os.Getuid())
}
