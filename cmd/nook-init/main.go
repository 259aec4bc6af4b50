// Command nook-init is the init (PID 1) nook runs inside a container:
// the one part of nook that runs there, built alone so that it starts in
// half the time. nook takes it only from next to its own binary, and only
// when both come from the same build (see install.sh and
// rootless/initbinary.go). It is not for running by hand.
package main

import (
	"fmt"
	"os"

	"github.com/nook-dev/nook/rootless"
)

func main() {
	rootless.Init() // as a container's init: runs it and exits
	fmt.Fprintln(os.Stderr, "nook-init: nook starts this inside each container; run nook instead")
	os.Exit(2)
}
