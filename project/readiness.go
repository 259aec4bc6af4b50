package project

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nook-dev/nook/internal/atomicfile"
	"github.com/nook-dev/nook/rootless"
)

// The watch loop keeps each service's recent edit-to-ready times, so
// `nook ps` can show the last one and the median.

// readyTimesKept is how many edit-to-ready times are kept per service.
const readyTimesKept = 20

// ReadyTimes are a service's recent edit-to-ready times, oldest first.
type ReadyTimes []time.Duration

// Last and Median summarise them; zero when there are none.
func (r ReadyTimes) Last() time.Duration {
	if len(r) == 0 {
		return 0
	}
	return r[len(r)-1]
}

func (r ReadyTimes) Median() time.Duration {
	if len(r) == 0 {
		return 0
	}
	s := slices.Clone(r)
	slices.Sort(s)
	return s[len(s)/2]
}

func (rt *Runtime) readyFile(project string) string {
	return filepath.Join(rt.Store.Root, "projects", project+".ready.json")
}

// ReadyTimes returns the recorded edit-to-ready times of a project's
// services.
func (rt *Runtime) ReadyTimes(project string) map[string]ReadyTimes {
	out := map[string]ReadyTimes{}
	data, err := os.ReadFile(rt.readyFile(project))
	if err == nil {
		json.Unmarshal(data, &out)
	}
	return out
}

func (rt *Runtime) recordReady(project, svc string, d time.Duration) {
	all := rt.ReadyTimes(project)
	times := append(all[svc], d)
	if len(times) > readyTimesKept {
		times = times[len(times)-readyTimesKept:]
	}
	all[svc] = times
	data, err := json.Marshal(all)
	if err != nil {
		return
	}
	atomicfile.WriteFile(rt.readyFile(project), data, false) // a figure lost costs nothing
}

// restartContainer stops a container and starts it again.
func (rt *Runtime) restartContainer(c *rootless.Container) error {
	fresh, err := rt.stopContainer(c)
	if err != nil {
		return err
	}
	if fresh == nil {
		return fmt.Errorf("restart %s: it removed itself when it stopped", c.Name)
	}
	_, err = rt.Containers.Start(fresh, rootless.StartOptions{Mapping: &rt.Mapping})
	return err
}
