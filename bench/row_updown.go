package main

import (
	"fmt"
	"path/filepath"
	"strings"
)

const (
	upServices = 20
	// upRuns caps row 5's measured rounds (a podman round is ~20
	// commands); upWarmups caps its warm-ups.
	upRuns, upWarmups = 10, 1
)

// rowUpDown is row 5: `nook up -d` and `nook down` of a project of 20
// busybox `sleep 1000` services (the image built already), against 20
// `podman run -d` and 20 `podman rm -f -t 0`, as a compose tool would run
// them; then examples/shop's up and down with nook alone.
func rowUpDown(b *bench) []result {
	r := *b // fewer rounds: one is ~40 commands
	r.o.runs, r.o.warmups = min(b.o.runs, upRuns), min(b.o.warmups, upWarmups)
	upW, downW := fmt.Sprintf("up -d, %d containers (busybox sleep)", upServices), fmt.Sprintf("down, %d containers", upServices)
	fail := func(err error) []result {
		return []result{{row: 5, workload: upW, tool: "nook", note: "failed: " + err.Error()}}
	}
	dir := filepath.Join(b.work, "up20")
	var toml strings.Builder
	toml.WriteString("name = \"nbup\"\n")
	for i := 1; i <= upServices; i++ {
		fmt.Fprintf(&toml, "\n[containers.s%02d]\nimage = \"bench/busybox\"\ncommand = [\"sleep\", \"1000\"]\n", i)
	}
	if err := writeFile(filepath.Join(dir, "nook.toml"), toml.String()); err != nil {
		return fail(err)
	}
	b.cmd(dir, b.nook, "down")
	defer b.cmd(dir, b.nook, "down")

	downs := map[string][]float64{}
	// pair times up, then down; the down time goes to downs.
	pair := func(tool string, up, down func() error) contender {
		n := 0
		return contender{tool: tool, timed: func() (float64, error) {
			n++
			upMs, err := timeIt(up)
			if err != nil {
				down()
				return 0, err
			}
			downMs, err := timeIt(down)
			if err != nil {
				return 0, err
			}
			if n > r.o.warmups {
				downs[tool] = append(downs[tool], downMs)
			}
			return upMs, nil
		}}
	}
	cs := []contender{pair("nook",
		func() error { return b.cmd(dir, b.nook, "up", "-d") },
		func() error { return b.cmd(dir, b.nook, "down") })}
	if b.have("podman") {
		names := make([]string, upServices)
		for i := range names {
			names[i] = fmt.Sprintf("nb-up-%02d", i+1)
		}
		b.podman(append([]string{"rm", "-f", "-t", "0", "-i"}, names...)...)
		defer b.podman(append([]string{"rm", "-f", "-t", "0", "-i"}, names...)...)
		cs = append(cs, pair("podman",
			func() error {
				for _, name := range names {
					if err := b.podman("run", "-d", "--network", "host", "--name", name, podmanImage, "sleep", "1000"); err != nil {
						return err
					}
				}
				return nil
			},
			func() error {
				for _, name := range names {
					if err := b.podman("rm", "-f", "-t", "0", name); err != nil {
						return err
					}
				}
				return nil
			}))
	}
	res := r.interleave(5, upW, cs)
	for i, u := range res {
		d := result{row: 5, workload: downW, tool: u.tool, unit: "ms", samples: downs[u.tool]}
		switch {
		case len(u.samples) == 0:
			d.samples, d.note = nil, u.note
		case u.tool == "podman":
			res[i].note = fmt.Sprintf("%d × run -d --network host", upServices)
			d.note = fmt.Sprintf("%d × rm -f -t 0", upServices)
		}
		res = append(res, d)
	}
	return append(res, r.shopUpDown()...)
}

// shopUpDown times examples/shop's `up -d` (its images built already; web
// waits for api's healthcheck) and `down`, nook alone.
func (b *bench) shopUpDown() []result {
	upW, downW := "up -d, examples/shop (2 services, web waits for api healthy)", "down, examples/shop"
	dir := filepath.Join(b.work, "up-shop")
	if _, _, err := b.shopCopy(dir); err != nil {
		return []result{{row: 5, workload: upW, tool: "nook", note: "failed: " + err.Error()}}
	}
	b.cmd(dir, b.nook, "down")
	if err := b.cmd(dir, b.nook, "build"); err != nil {
		return []result{{row: 5, workload: upW, tool: "nook", note: "failed: " + err.Error()}}
	}
	defer b.cmd(dir, b.nook, "down")
	var downs []float64
	n := 0
	res := b.interleave(5, upW, []contender{{tool: "nook", timed: func() (float64, error) {
		n++
		up, err := timeIt(func() error { return b.cmd(dir, b.nook, "up", "-d") })
		if err != nil {
			return 0, err
		}
		down, err := timeIt(func() error { return b.cmd(dir, b.nook, "down") })
		if err != nil {
			return 0, err
		}
		if n > b.o.warmups {
			downs = append(downs, down)
		}
		return up, nil
	}}})
	d := result{row: 5, workload: downW, tool: "nook", unit: "ms", samples: downs}
	if len(res[0].samples) == 0 {
		d.samples, d.note = nil, res[0].note
	}
	return append(res, d)
}
