package main

import (
	"cmp"
	"slices"
)

// A result is one line of the table: one tool on one workload.
type result struct {
	row      int
	workload string
	tool     string
	samples  []float64 // in unit, one per measured run
	unit     string    // "ms", "MB" or "req/s"
	mb       float64   // data each run moves, to print MB/s; 0 for none
	note     string    // why there are no samples, or what to know about them
}

// A contender is one tool's way of doing a workload once.
type contender struct {
	tool string
	prep func() error // untimed, before every run; may be nil
	run  func() error // the timed part
	// timed, if set, replaces run and measures itself: for a run that
	// has untimed work after its timed part (reading a watcher's report).
	timed func() (float64, error)
	// limit caps the measured runs of a tool too slow for the full
	// count, and drops its warm-ups: against its own run time they are
	// noise. 0 means o.runs after o.warmups.
	limit int
	// unit is what timed returns when it is not milliseconds ("req/s").
	unit string
}

// A row of the table, with the function that measures it (nil: not yet).
var rows = []struct {
	num  int
	name string
	fn   func(*bench) []result
}{
	{1, "run --rm IMG true", rowRun},
	{2, "restart a running container", rowRestart},
	{3, "build", rowBuild},
	{4, "edit → response", rowDevLoop},
	{5, "up/down 20 containers", rowUpDown},
	{6, "memory per idle container", rowMemory},
	{7, "layer creation", rowLayers},
	{8, "HTTP requests per second through a published port", rowHTTP},
}

// interleave runs the contenders in turn (a, b, c, a, b, c, ...), so a
// slow phase of the machine hits every tool alike: o.warmups rounds
// unmeasured, then o.runs measured. A contender that fails is dropped
// with the error as its note.
func (b *bench) interleave(row int, workload string, cs []contender) []result {
	results := make([]result, len(cs))
	for i, c := range cs {
		results[i] = result{row: row, workload: workload, tool: c.tool, unit: cmp.Or(c.unit, "ms")}
	}
	failed := make([]bool, len(cs))
	for round := range b.o.warmups + b.o.runs {
		for i, c := range cs {
			if failed[i] || !c.due(round, b.o.warmups, len(results[i].samples)) {
				continue
			}
			if c.prep != nil {
				if err := c.prep(); err != nil {
					failed[i], results[i].note = true, "failed: "+err.Error()
					continue
				}
			}
			ms, err := c.measure()
			if err != nil {
				failed[i], results[i].note = true, "failed: "+err.Error()
				logf("bench: %s: %s: %v", workload, c.tool, err)
				continue
			}
			if round >= b.o.warmups {
				results[i].samples = append(results[i].samples, ms)
			}
		}
	}
	for i := range results {
		if failed[i] {
			results[i].samples = nil
		}
	}
	return results
}

// measure runs c once and returns how long it took in milliseconds, or
// what timed measured in c.unit.
func (c contender) measure() (float64, error) {
	if c.timed != nil {
		return c.timed()
	}
	return timeIt(c.run)
}

// due says whether c runs in round, having n measured runs so far.
func (c contender) due(round, warmups, n int) bool {
	if c.limit == 0 {
		return true
	}
	return round >= warmups && n < c.limit
}

// stats returns the median, min and max of xs (which it sorts).
func stats(xs []float64) (median, lo, hi float64) {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		median = xs[n/2]
	} else {
		median = (xs[n/2-1] + xs[n/2]) / 2
	}
	return median, xs[0], xs[n-1]
}
