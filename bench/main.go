// Command bench measures nook against podman, crun, bwrap and a minimal
// "floor" program on the same busybox root filesystem, and prints the
// results as a markdown table. See bench/README.md.
//
//	go run ./bench            # as root on a fresh Debian machine: installs peers, measures as "nookbench"
//	go run ./bench -quick     # 1 warm-up and 3 measured runs (CI)
//	go run ./bench -o FILE    # also write the table to FILE
//
// As root it prepares the machine (packages, a user with a subuid range,
// /dev/net/tun) and re-runs its measuring part as that user, since rootless
// is what nook is for. As any other user it measures with what is installed.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// options are the command line, shared by the preparing and the measuring
// process (the first passes them on to the second).
type options struct {
	runs    int    // measured runs per tool and workload
	warmups int    // unmeasured runs before them
	out     string // also write the table here
	repo    string // the nook module's folder (to build nook and the floor)
	work    string // measuring: the folder with binaries and fixtures
	measure bool   // this is the measuring process
	only    string // comma-separated row numbers to run (empty: all)
	quick   bool   // -quick: also smaller loads where a row has one (row 8)
}

func main() {
	var o options
	quick := flag.Bool("quick", false, "1 warm-up and 3 measured runs (for CI)")
	flag.IntVar(&o.runs, "n", 20, "measured runs per tool and workload")
	flag.IntVar(&o.warmups, "warmup", 3, "warm-up runs per tool and workload")
	flag.StringVar(&o.out, "o", "", "also write the markdown table to this `file`")
	flag.StringVar(&o.repo, "repo", ".", "the nook module's `folder`")
	flag.StringVar(&o.only, "rows", "", "run only these rows, e.g. \"1,2\"")
	flag.StringVar(&o.work, "work", "", "measuring: the prepared work `folder` (internal)")
	flag.BoolVar(&o.measure, "measure", false, "measure in -work, prepared already (internal)")
	flag.Parse()
	if *quick {
		o.runs, o.warmups, o.quick = 3, 1, true
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.measure {
		return measureAll(o, os.Stdout)
	}
	start := time.Now()
	var buf bytes.Buffer
	table := io.MultiWriter(os.Stdout, &buf)
	var err error
	if os.Geteuid() == 0 {
		err = asRoot(o, table)
	} else {
		err = asUser(o, table)
	}
	logf("bench: took %s", time.Since(start).Round(time.Second))
	if err == nil && o.out != "" {
		err = os.WriteFile(o.out, buf.Bytes(), 0o644)
	}
	return err
}

// logf prints progress to stderr; stdout carries only the table.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
