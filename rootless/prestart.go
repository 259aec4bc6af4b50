package rootless

import (
	"io"
	"os"
	"sync"
)

// Prestarted is the init of a container that is about to be created,
// cloned ahead of it: see Containers.Prestart.
type Prestarted struct {
	via       *hostLaunch
	shape     initShape
	withStdin bool

	mu    sync.Mutex
	taken bool
	done  chan spawned
}

// spawned is a container's init waiting for its spec, with the read ends
// of its stdout and stderr, or why it could not be cloned.
type spawned struct {
	outR, errR *os.File
	p          *pendingInit
	err        error
}

// Prestart begins, in the background, the start of a container's init
// that the caller will create next and start attached from outside nook's
// namespace (Start with StartOptions.Prestarted): the clone, init's own
// process start and its id maps then overlap the container's creation
// instead of following it. network, terminal and stdin must be what the
// container's spec and the StartOptions will say; Start starts a fresh
// init if they are not. Prestart returns nil where Start would not start
// the container from this process (see hostLaunch), or for a private
// network, which its monitor builds inside the namespace. The caller must
// Cancel what Start did not take; Cancel after Start does nothing.
func (cs *Containers) Prestart(m Mapping, network string, terminal, stdin bool) *Prestarted {
	if network == NetworkPrivate {
		return nil
	}
	via := cs.hostLaunch(m)
	if via == nil {
		return nil
	}
	pre := &Prestarted{
		via:       via,
		shape:     initShape{hostNetwork: network == NetworkHost, terminal: terminal},
		withStdin: stdin,
		done:      make(chan spawned, 1),
	}
	go func() { pre.done <- spawnWithPipes(pre.shape, stdin, via) }()
	return pre
}

// fits reports whether pre was cloned for c started with opts.
func (pre *Prestarted) fits(c *Container, opts StartOptions) bool {
	return pre.shape == shapeOf(&c.Spec) && pre.withStdin == (opts.Stdin != nil)
}

// take returns the init, once; later calls return false.
func (pre *Prestarted) take() (spawned, bool) {
	pre.mu.Lock()
	defer pre.mu.Unlock()
	if pre.taken {
		return spawned{}, false
	}
	pre.taken = true
	return <-pre.done, true
}

// Cancel kills the init if Start did not take it. pre may be nil.
func (pre *Prestarted) Cancel() {
	if pre == nil {
		return
	}
	if s, ok := pre.take(); ok && s.err == nil {
		s.p.cancel()
		s.outR.Close()
		s.errR.Close()
	}
}

// spawnWithPipes is spawnInit with pipes for the container's stdout and
// stderr, whose read ends it returns. withStdin passes ours on, unless
// the container has a terminal (whose input comes through its master).
func spawnWithPipes(shape initShape, withStdin bool, via *hostLaunch) spawned {
	var stdin io.Reader
	if withStdin && !shape.terminal {
		stdin = os.Stdin
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return spawned{err: err}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return spawned{err: err}
	}
	p, err := spawnInit(shape, stdin, outW, errW, via)
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return spawned{err: err}
	}
	return spawned{outR: outR, errR: errR, p: p}
}
