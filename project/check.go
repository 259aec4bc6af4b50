package project

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// checker fills in defaults and validates a decoded project. It reports
// every problem at the position of the value that caused it, found by
// walking the merged tree the project was decoded from.
type checker struct {
	p     *Project
	tree  *value
	probs *problems
}

// The patterns compile on first use: every nook process (the container's
// init and monitor too) would otherwise pay ~0.4 ms at start for them.
var (
	nameRE     = lazyRegexp(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	hostnameRE = lazyRegexp(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)
	userRE     = lazyRegexp(`^([a-zA-Z_][a-zA-Z0-9_.-]*\$?|[0-9]+)(:([a-zA-Z_][a-zA-Z0-9_.-]*|[0-9]+))?$`)
	// refRE is the shape of an image reference: [HOST[:PORT]/]PATH[:TAG][@DIGEST].
	refRE = lazyRegexp(`^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)?` +
		`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
		`(?::[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`)
)

// lazyRegexp returns a function that compiles expr once, when first called.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

func (c *checker) check() {
	c.checkName()
	for _, name := range slices.Sorted(maps.Keys(c.p.Images)) {
		c.checkImage(name, c.p.Images[name])
	}
	for _, name := range slices.Sorted(maps.Keys(c.p.Containers)) {
		c.checkContainer(name, c.p.Containers[name])
	}
	c.checkPorts()
	if n := c.p.Network; n != nil {
		switch n.Outbound {
		case "", "auto", "pasta", "slirp4netns", "none":
		default:
			c.fail([]string{"network", "outbound"}, `unknown outbound %q: want "auto", "pasta", "slirp4netns" or "none"`, n.Outbound)
		}
	}
	c.p.BuildOrder = c.order("images", c.imageDeps, "from")
	c.p.StartOrder = c.order("containers", c.containerDeps, "depends_on")
}

// at returns the position of the value at path, or of its nearest ancestor
// present in the files when the value was left out.
func (c *checker) at(path ...string) pos {
	for n := len(path); n > 0; n-- {
		if v := c.valueAt(path[:n]...); v != nil {
			return v.pos
		}
	}
	return c.tree.pos
}

func (c *checker) fail(path []string, format string, args ...any) *Error {
	key := ""
	for _, k := range path {
		if _, err := strconv.Atoi(k); err == nil && key != "" {
			key += "[" + k + "]"
		} else {
			key = joinKey(key, k)
		}
	}
	return c.probs.add(c.at(path...), key, format, args...)
}

func (c *checker) checkName() {
	if c.p.Name == "" {
		c.p.Name = defaultName(filepath.Base(c.p.Dir))
		return
	}
	if !nameRE().MatchString(c.p.Name) {
		c.fail([]string{"name"}, "invalid project name %q: use lowercase letters, digits, '-', '_' and '.', starting with a letter or digit", c.p.Name)
	}
}

// defaultName turns a folder name into a valid project name.
func defaultName(folder string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(folder) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.TrimLeft(b.String(), "-_.")
	if len(name) > 63 {
		name = name[:63]
	}
	if name == "" {
		return "project"
	}
	return name
}

func (c *checker) checkImage(name string, img *Image) {
	path := []string{"images", name}
	if !nameRE().MatchString(name) {
		c.fail(path, "invalid image name %q: use lowercase letters, digits, '-', '_' and '.'", name)
	}
	switch {
	case img.From == "" && img.Dockerfile == "":
		c.fail(path, `image needs "from" (with steps) or "dockerfile"`)
	case img.From != "" && img.Dockerfile != "":
		c.fail(append(path, "dockerfile"), `"from" and "dockerfile" exclude each other: a Dockerfile names its own base`)
	case img.Dockerfile != "" && len(img.Steps) > 0:
		c.fail(append(path, "steps"), `"steps" and "dockerfile" exclude each other`)
	}
	if img.Dockerfile != "" {
		c.projectPath(append(path, "dockerfile"), img.Dockerfile)
		if img.Context == "" {
			img.Context = "."
		}
		c.projectPath(append(path, "context"), img.Context)
	} else if img.Context != "" {
		c.fail(append(path, "context"), `"context" only goes with "dockerfile"; steps read from the project folder`)
	}
	if img.From != "" {
		c.checkFrom(append(path, "from"), img.From)
	}
	for i := range img.Steps {
		c.checkStep(append(path, "steps", strconv.Itoa(i)), &img.Steps[i])
	}
	c.userSpec(append(path, "user"), img.User)
	c.absPath(append(path, "workdir"), img.Workdir)
	for i, p := range img.Expose {
		if p.HostPort != 0 || p.HostIP != "" {
			c.fail(append(path, "expose"), "expose[%d] %q: expose names container ports only; publish with a container's ports", i, p.String())
		}
	}
}

// checkFrom validates an image's base: scratch, a project image, an OCI
// layout or archive in the project, or an image reference.
func (c *checker) checkFrom(path []string, from string) {
	switch {
	case from == "scratch":
	case strings.HasPrefix(from, "oci-layout:"):
		dir, _, _ := strings.Cut(strings.TrimPrefix(from, "oci-layout:"), ":")
		c.hostPath(path, dir)
	case strings.HasPrefix(from, "oci-archive:"):
		c.hostPath(path, strings.TrimPrefix(from, "oci-archive:"))
	case c.p.Images[from] != nil:
	case !refRE().MatchString(from):
		c.fail(path, "invalid image reference %q", from)
	}
}

// hostPath checks that a path the user points nook at exists.
func (c *checker) hostPath(path []string, p string) {
	if p == "" {
		c.fail(path, "missing path")
		return
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.p.Dir, p)
	}
	if _, err := os.Stat(p); err != nil {
		c.fail(path, "%s does not exist", p)
	}
}

var stepKinds = []string{"copy", "run", "host", "env", "workdir", "user", "arg"}

func (c *checker) checkStep(path []string, s *Step) {
	var kinds []string
	for _, k := range stepKinds {
		if c.valueAt(append(path, k)...) != nil {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		c.fail(path, "a step has exactly one of %s; this one has %s", strings.Join(stepKinds, ", "), describe(kinds))
		return
	}
	kind := kinds[0]
	only := func(field, owner string, set bool) {
		if set && kind != owner {
			c.fail(append(path, field), "%q only goes with %q, not with %q", field, owner, kind)
		}
	}
	only("to", "copy", s.To != "")
	only("chown", "copy", s.Chown != "")
	only("mode", "copy", s.Mode != 0)
	only("inputs", "host", len(s.Inputs) > 0)
	only("outputs", "host", len(s.Outputs) > 0)

	switch kind {
	case "copy":
		for i, src := range s.Copy {
			c.projectPath(append(path, "copy", strconv.Itoa(i)), src)
		}
		if s.To == "" {
			c.fail(path, `a copy step needs "to", the destination in the image`)
		}
		c.userSpec(append(path, "chown"), s.Chown)
	case "host":
		for i, in := range s.Inputs {
			c.projectPath(append(path, "inputs", strconv.Itoa(i)), in)
		}
		for i, out := range s.Outputs {
			c.projectPath(append(path, "outputs", strconv.Itoa(i)), out)
		}
	case "user":
		c.userSpec(append(path, "user"), s.User)
	case "arg":
		for k := range s.Arg {
			if !validVarName(k) {
				c.fail(append(path, "arg", k), "invalid argument name %q", k)
			}
		}
	}
}

func describe(kinds []string) string {
	if len(kinds) == 0 {
		return "none"
	}
	return strings.Join(kinds, " and ")
}

// valueAt returns the tree value at path, or nil. Array indexes are
// decimal strings.
func (c *checker) valueAt(path ...string) *value {
	v := c.tree
	for _, k := range path {
		if v == nil {
			return nil
		}
		if v.kind == kindArray {
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(v.items) {
				return nil
			}
			v = v.items[i]
			continue
		}
		v = v.get(k)
	}
	return v
}

// projectPath checks that a path (possibly a glob) names something inside
// the project folder: not absolute, no "..", and no symlink on the way
// that points out.
func (c *checker) projectPath(path []string, p string) {
	switch {
	case p == "":
		c.fail(path, "empty path")
	case filepath.IsAbs(p):
		c.fail(path, "%q is absolute: paths are relative to the project folder", p)
	case escapes(p):
		c.fail(path, "%q leaves the project folder", p)
	default:
		if target, out := symlinkOut(c.p.Dir, p); out {
			c.fail(path, "%q leads outside the project folder (a symlink to %s)", p, target)
		}
	}
}

func escapes(p string) bool {
	p = filepath.Clean(p)
	return p == ".." || strings.HasPrefix(p, "../")
}

// symlinkOut resolves the part of p before any glob character and reports
// whether it ends up outside dir.
func symlinkOut(dir, p string) (string, bool) {
	static := p
	if i := strings.IndexAny(p, "*?["); i >= 0 {
		static = filepath.Dir(p[:i+1])
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", false
	}
	// Resolve the longest prefix that exists; what does not exist yet (a
	// host step's output, say) cannot be a symlink.
	for cur := filepath.Join(dir, static); ; cur = filepath.Dir(cur) {
		real, err := filepath.EvalSymlinks(cur)
		if err == nil {
			if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
				return real, true
			}
			return "", false
		}
		if cur == dir || cur == filepath.Dir(cur) {
			return "", false
		}
	}
}

func (c *checker) userSpec(path []string, u string) {
	if u == "" {
		return
	}
	if !userRE().MatchString(u) {
		c.fail(path, "invalid user %q: want NAME, UID, NAME:GROUP or UID:GID", u)
		return
	}
	for _, part := range strings.Split(u, ":") {
		if n, err := strconv.ParseUint(part, 10, 64); err == nil && n > 1<<32-2 {
			c.fail(path, "invalid user %q: id %d out of range", u, n)
		}
	}
}

func (c *checker) absPath(path []string, p string) {
	if p != "" && !strings.HasPrefix(p, "/") {
		c.fail(path, "%q must be an absolute path", p)
	}
}
