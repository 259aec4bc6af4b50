// Command nook is a rootless, daemonless container tool for one person on
// one Linux desktop. See README.md.
//
// main decides which process this is before any flag is parsed: the CLI, or
// one of the helper processes nook starts by re-executing itself inside
// namespaces.
package main

import (
	"os"

	"github.com/nook-dev/nook/rootless"
)

func main() {
	// A process nook started inside its namespaces runs its entry point
	// and exits here; only the CLI goes on.
	rootless.Init()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
