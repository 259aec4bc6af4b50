package project

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func (c *checker) checkContainer(name string, ctr *Container) {
	path := []string{"containers", name}
	has := func(k string) bool { return c.valueAt(append(path, k)...) != nil }
	if !nameRE().MatchString(name) {
		c.fail(path, "invalid container name %q: use lowercase letters, digits, '-', '_' and '.'", name)
	}
	c.checkContainerImage(path, name, ctr)
	if !has("replicas") {
		ctr.Replicas = 1
	} else if ctr.Replicas < 0 || ctr.Replicas > MaxReplicas {
		c.fail(append(path, "replicas"), "replicas %d out of range 0-%d", ctr.Replicas, MaxReplicas)
	}
	if ctr.Restart.Policy == "" {
		ctr.Restart.Policy = "no"
	}
	if !has("stop_timeout") {
		ctr.StopTimeout = DefaultStopTimeout
	}
	switch ctr.Network {
	case "":
		ctr.Network = DefaultNetwork
	case "project", "host", "none":
	default:
		c.fail(append(path, "network"), `unknown network %q: want "project", "host" or "none"`, ctr.Network)
	}
	c.userSpec(append(path, "user"), ctr.User)
	c.absPath(append(path, "workdir"), ctr.Workdir)
	if ctr.Hostname != "" && (len(ctr.Hostname) > 253 || !hostnameRE().MatchString(ctr.Hostname)) {
		c.fail(append(path, "hostname"), "invalid hostname %q", ctr.Hostname)
	}
	for i, p := range ctr.Profiles {
		if !nameRE().MatchString(p) {
			c.fail(append(path, "profiles", strconv.Itoa(i)), "invalid profile name %q", p)
		}
	}
	ctr.Active = c.active(ctr)
	c.loadEnvFiles(path, ctr)
	c.checkDependsOn(path, name, ctr)
	c.checkHealthcheck(path, ctr)
	c.checkWatch(path, ctr)
}

// checkContainerImage defaults a container's image to the project image of
// the same name and validates the reference otherwise.
func (c *checker) checkContainerImage(path []string, name string, ctr *Container) {
	switch {
	case ctr.Image == "" && c.p.Images[name] != nil:
		ctr.Image = name
	case ctr.Image == "":
		msg := `missing "image": name an image of this project or an image reference`
		if len(c.p.Images) > 0 {
			msg += " (this project has " + strings.Join(slices.Sorted(maps.Keys(c.p.Images)), ", ") + ")"
		}
		c.fail(path, "%s", msg)
	case c.p.Images[ctr.Image] != nil:
	case !refRE().MatchString(ctr.Image):
		e := c.fail(append(path, "image"), "invalid image reference %q", ctr.Image)
		if s := suggest(ctr.Image, slices.Collect(maps.Keys(c.p.Images))); s != "" {
			e.Msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
	}
}

// active reports whether a container runs with the profiles asked for: a
// container without profiles always does; "*" enables every profile.
func (c *checker) active(ctr *Container) bool {
	if len(ctr.Profiles) == 0 {
		return true
	}
	for _, want := range c.p.Profiles {
		if want == "*" || slices.Contains(ctr.Profiles, want) {
			return true
		}
	}
	return false
}

// loadEnvFiles reads env_file files into Env; variables set in env win.
func (c *checker) loadEnvFiles(path []string, ctr *Container) {
	env := Env{}
	for i, f := range ctr.EnvFile {
		at := append(path, "env_file", strconv.Itoa(i))
		if len(ctr.EnvFile) == 1 && c.valueAt(append(path, "env_file")...).kind == kindString {
			at = at[:len(at)-1]
		}
		full := f
		if !filepath.IsAbs(full) {
			full = filepath.Join(c.p.Dir, f)
		}
		data, err := os.ReadFile(full)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				c.fail(at, "env file %q does not exist", f)
			} else {
				c.fail(at, "read env file %q: %v", f, err)
			}
			continue
		}
		vars, err := parseDotenv(displayPath(full), data)
		if err != nil {
			c.fail(at, "%v", err)
			continue
		}
		maps.Copy(env, vars)
	}
	if len(env) == 0 {
		return
	}
	maps.Copy(env, ctr.Env)
	ctr.Env = env
}

func (c *checker) checkDependsOn(path []string, name string, ctr *Container) {
	for _, dep := range slices.Sorted(maps.Keys(ctr.DependsOn)) {
		at := append(path, "depends_on")
		switch other := c.p.Containers[dep]; {
		case dep == name:
			c.fail(at, "%q depends on itself", name)
		case other == nil:
			msg := fmt.Sprintf("unknown container %q", dep)
			if s := suggest(dep, slices.Collect(maps.Keys(c.p.Containers))); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			c.fail(at, "%s", msg)
		case ctr.DependsOn[dep] == Healthy && other.Healthcheck == nil:
			c.fail(at, "%q waits for %q to be healthy, but %q has no healthcheck", name, dep, dep)
		case ctr.Active && !c.active(other):
			c.fail(at, "%q depends on %q, which is only in profiles %s", name, dep, strings.Join(other.Profiles, ", ")).hint =
				"add --profile " + other.Profiles[0] + ", or give the dependency the same profiles"
		}
	}
}

func (c *checker) checkHealthcheck(path []string, ctr *Container) {
	hc := ctr.Healthcheck
	if hc == nil {
		return
	}
	at := append(path, "healthcheck")
	has := func(k string) bool { return c.valueAt(append(at, k)...) != nil }
	if len(hc.Cmd) == 0 {
		c.fail(at, `a healthcheck needs "cmd"`)
	}
	if !has("interval") {
		hc.Interval = DefaultHCInterval
	}
	if !has("timeout") {
		hc.Timeout = DefaultHCTimeout
	}
	if !has("retries") {
		hc.Retries = DefaultHCRetries
	} else if hc.Retries < 1 {
		c.fail(append(at, "retries"), "retries must be at least 1")
	}
	if hc.Interval == 0 {
		c.fail(append(at, "interval"), "interval must be longer than 0s")
	}
}

func (c *checker) checkWatch(path []string, ctr *Container) {
	w := ctr.Watch
	if w == nil {
		return
	}
	at := append(path, "watch")
	for i, s := range w.Sync {
		sp := append(at, "sync", strconv.Itoa(i))
		c.projectPath(append(sp, "from"), s.From)
		if !strings.HasPrefix(s.To, "/") {
			c.fail(append(sp, "to"), "sync target %q must be an absolute path in the container", s.To)
		}
	}
	for i, r := range w.Restart {
		c.projectPath(append(at, "restart", strconv.Itoa(i)), r)
	}
	for i, pat := range w.Ignore {
		if _, err := filepath.Match(strings.ReplaceAll(pat, "**", "*"), ""); err != nil {
			c.fail(append(at, "ignore", strconv.Itoa(i)), "invalid pattern %q: %v", pat, err)
		}
	}
}

// checkPorts defaults published ports to 127.0.0.1 and refuses two
// publications of one host port, which could never both start.
func (c *checker) checkPorts() {
	type hostPort struct {
		ip    string
		port  int
		proto string
	}
	owner := map[hostPort]string{}
	for _, name := range slices.Sorted(maps.Keys(c.p.Containers)) {
		ctr := c.p.Containers[name]
		for i := range ctr.Ports {
			p := &ctr.Ports[i]
			at := []string{"containers", name, "ports", strconv.Itoa(i)}
			if p.HostIP == "" {
				p.HostIP = "127.0.0.1"
			}
			if p.HostPort == 0 {
				continue
			}
			if ctr.Replicas > 1 {
				c.fail(at, "%d replicas cannot all publish host port %d", ctr.Replicas, p.HostPort).hint =
					`publish "` + strconv.Itoa(int(p.ContainerPort)) + `" alone to get a free host port for each replica`
			}
			for n := range int(p.Count) {
				k := hostPort{p.HostIP, int(p.HostPort) + n, p.Proto}
				if prev, taken := owner[k]; taken {
					c.fail(at, "host port %s:%d/%s is already published by %q", k.ip, k.port, k.proto, prev)
					break
				}
				owner[k] = name
			}
		}
	}
}
