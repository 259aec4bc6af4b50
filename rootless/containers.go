package rootless

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nook-dev/nook/internal/atomicfile"
)

// ErrNoContainer is returned (wrapped) for a name or id that matches no
// container.
var ErrNoContainer = errors.New("no such container")

// Containers is the set of containers kept under Root:
//
//	Root/<id>/config.json  what the container is (written once, by Create)
//	Root/<id>/state.json   what it is doing (created, running, exited)
//	Root/<id>/upper, work  its writable layer; survives stop and start
//	Root/<id>/rootfs       where its overlay is mounted (inside its namespace)
//	Root/<id>/log.json     its output, one JSON object per line
//	Root/names/<name>      a symlink to <id>: names are unique by creation
//	Root/init/nook-<key>   the init copy of a nook build (see hostLaunch)
//
// Every file is replaced atomically, so a SIGKILL at any moment leaves a
// readable record.
type Containers struct {
	Root string
}

// Config is what a container is; it does not change after Create (except
// its Name, by Rename).
type Config struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Image   string            `json:"image"`    // as the user named it
	ImageID string            `json:"image_id"` // the image's digest
	Created time.Time         `json:"created"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Remove makes the container remove itself when it exits (--rm).
	Remove      bool          `json:"remove,omitempty"`
	StopSignal  string        `json:"stop_signal,omitempty"`
	StopTimeout time.Duration `json:"stop_timeout,omitempty"`
	// Restart says when the monitor starts the container again after it
	// exits: "no" (or empty), "on-failure" (at most MaxRetries times, 0
	// meaning no limit) or "always". A stop never restarts it.
	Restart     RestartPolicy `json:"restart,omitzero"`
	Healthcheck *Healthcheck  `json:"healthcheck,omitempty"`
	// KeepID maps the user's own uid and gid to the same numbers inside,
	// so files written to bind mounts are the user's (see KeepIDMapping).
	KeepID bool `json:"keep_id,omitempty"`
	// Network connects a container whose Spec.Network is NetworkPrivate.
	Network *NetworkConfig `json:"network,omitempty"`
	Spec    Spec           `json:"spec"`
}

// RestartPolicy is when a container is started again after it exits.
type RestartPolicy struct {
	Policy     string `json:"policy,omitempty"`
	MaxRetries int    `json:"max_retries,omitempty"`
}

// Healthcheck is a command the monitor runs in the container every
// Interval; Retries failures in a row make it unhealthy, failures during
// StartPeriod do not count.
type Healthcheck struct {
	Cmd         []string      `json:"cmd"`
	Interval    time.Duration `json:"interval"`
	Timeout     time.Duration `json:"timeout"`
	Retries     int           `json:"retries"`
	StartPeriod time.Duration `json:"start_period,omitempty"`
}

// Status is where a container is in its life.
type Status string

const (
	StatusCreated    Status = "created"
	StatusRunning    Status = "running"
	StatusRestarting Status = "restarting" // exited; its monitor starts it again after a back-off
	StatusExited     Status = "exited"
)

// Health states, as Docker's.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// State is what a container is doing, as its monitor last recorded it.
type State struct {
	Status       Status    `json:"status"`
	Pid          int       `json:"pid,omitempty"`         // init, in the host's pid namespace
	PidStart     uint64    `json:"pid_start,omitempty"`   // its start time, to tell a reused pid
	BootID       string    `json:"boot_id,omitempty"`     // the boot it ran in
	MonitorPid   int       `json:"monitor_pid,omitempty"` // the monitor that waits for it
	MonitorStart uint64    `json:"monitor_start,omitempty"`
	StartedAt    time.Time `json:"started_at,omitzero"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
	ExitCode     int       `json:"exit_code"`
	Error        string    `json:"error,omitempty"` // why it did not start, or why it stopped unseen
	// Health is the healthcheck's verdict ("starting", "healthy",
	// "unhealthy"); empty without a healthcheck.
	Health        string `json:"health,omitempty"`
	FailingStreak int    `json:"failing_streak,omitempty"`
	HealthFailure string `json:"health_failure,omitempty"` // why the last check failed
	RestartCount  int    `json:"restart_count,omitempty"`
}

// Container is a container's record.
type Container struct {
	Config
	State State
	Dir   string
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Create records a new container. Its name must be unique; an empty name
// gets a generated one. It creates the container's folders.
func (cs *Containers) Create(cfg Config) (*Container, error) {
	if cfg.ID == "" {
		cfg.ID = newID()
	}
	if cfg.Name == "" {
		cfg.Name = generateName(cfg.ID)
	}
	if !nameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("create container: invalid name %q: use letters, digits, '_', '.' and '-'", cfg.Name)
	}
	cfg.Created = time.Now().UTC()
	dir := filepath.Join(cs.Root, cfg.ID)
	for _, d := range []string{"upper", "work", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("create container: %w", err)
		}
	}
	c := &Container{Config: cfg, State: State{Status: StatusCreated}, Dir: dir}
	if err := writeJSON(filepath.Join(dir, "state.json"), c.State); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), c.Config); err != nil {
		return nil, err
	}
	if err := cs.claimName(cfg.Name, cfg.ID); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// claimName makes name point at id; it fails if the name is taken.
func (cs *Containers) claimName(name, id string) error {
	names := filepath.Join(cs.Root, "names")
	if err := os.MkdirAll(names, 0o700); err != nil {
		return err
	}
	err := os.Symlink(id, filepath.Join(names, name))
	if errors.Is(err, os.ErrExist) {
		if _, gerr := cs.Get(name); errors.Is(gerr, ErrNoContainer) {
			// A leftover of a container removed by a killed process.
			os.Remove(filepath.Join(names, name))
			err = os.Symlink(id, filepath.Join(names, name))
		}
	}
	if errors.Is(err, os.ErrExist) {
		return &nameTaken{name}
	}
	return err
}

type nameTaken struct{ name string }

func (e *nameTaken) Error() string {
	return fmt.Sprintf("the container name %q is already in use", e.name)
}
func (e *nameTaken) Hint() string {
	return fmt.Sprintf("remove it (nook rm -f %s) or choose another --name", e.name)
}

// isID reports whether name can be a container's id, as newID makes
// them, rather than one of Root's other entries (names, init).
func isID(name string) bool {
	if len(name) != 64 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

func newID() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// generateName makes a readable name from an id, as Docker's adjective_noun.
func generateName(id string) string {
	adjectives := []string{"brisk", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry", "nimble", "quiet", "sunny", "tidy", "vivid", "witty", "zesty"}
	nouns := []string{"otter", "heron", "lynx", "finch", "badger", "koala", "puffin", "marten", "gecko", "wren", "ibex", "tapir", "quokka", "stoat", "newt", "plover"}
	a, _ := strconv.ParseUint(id[:2], 16, 8)
	n, _ := strconv.ParseUint(id[2:4], 16, 8)
	return adjectives[a%16] + "_" + nouns[n%16] + "_" + id[4:8]
}

// Get finds a container by name, full id or unique id prefix.
func (cs *Containers) Get(ref string) (*Container, error) {
	if target, err := os.Readlink(filepath.Join(cs.Root, "names", filepath.Base(ref))); err == nil && ref != "" && !strings.Contains(ref, "/") {
		if c, err := cs.load(target); err == nil && c.Name == ref {
			return c, nil
		}
	}
	ents, err := os.ReadDir(cs.Root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var found []string
	for _, e := range ents {
		if isID(e.Name()) && ref != "" && strings.HasPrefix(e.Name(), ref) {
			found = append(found, e.Name())
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w: %s", ErrNoContainer, ref)
	case 1:
		return cs.load(found[0])
	}
	return nil, fmt.Errorf("container %q is ambiguous: %d containers start with it", ref, len(found))
}

func (cs *Containers) load(id string) (*Container, error) {
	dir := filepath.Join(cs.Root, id)
	c := &Container{Dir: dir}
	if err := readJSON(filepath.Join(dir, "config.json"), &c.Config); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNoContainer, id)
	}
	if err := readJSON(filepath.Join(dir, "state.json"), &c.State); err != nil {
		// A container whose state cannot be read still shows, and rm
		// removes it: hidden, its writable layer would stay for good. Its
		// monitor's next save replaces the file.
		c.State = State{Status: StatusExited, ExitCode: -1, Error: "its state cannot be read: " + err.Error()}
		return c, nil
	}
	c.State = c.State.truthful()
	return c, nil
}

// List returns every container, newest first.
func (cs *Containers) List() ([]*Container, error) {
	ents, err := os.ReadDir(cs.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, e := range ents {
		if !isID(e.Name()) || !e.IsDir() {
			continue
		}
		if c, err := cs.load(e.Name()); err == nil {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Rename gives a container a new, unused name.
func (cs *Containers) Rename(ref, name string) error {
	c, err := cs.Get(ref)
	if err != nil {
		return err
	}
	if !nameRE.MatchString(name) {
		return fmt.Errorf("rename %s: invalid name %q", c.Name, name)
	}
	if err := cs.claimName(name, c.ID); err != nil {
		return err
	}
	old := c.Name
	c.Config.Name = name
	if err := writeJSON(filepath.Join(c.Dir, "config.json"), c.Config); err != nil {
		os.Remove(filepath.Join(cs.Root, "names", name))
		return err
	}
	os.Remove(filepath.Join(cs.Root, "names", old))
	return nil
}

// Remove deletes a container's record and writable layer. It must not be
// running.
func (cs *Containers) Remove(c *Container) error {
	if c.State.Status == StatusRunning {
		return fmt.Errorf("remove %s: the container is running: stop it first, or use rm -f", c.Name)
	}
	// The name goes first: a container without a name is invisible, one
	// with a name and no folder would block the name.
	os.Remove(filepath.Join(cs.Root, "names", c.Name))
	// Its ports go with it; a supervisor that is gone released them
	// already.
	c.tellSupervisor("release")
	// Marking the record gone first means a kill -9 halfway leaves a
	// folder List skips, not a half-removed container.
	os.Remove(filepath.Join(c.Dir, "config.json"))
	return RemoveAll(c.Dir)
}

// RemoveLeftovers removes what removals cut short left behind: folders
// of Root without a config.json (Remove deletes it first) and older than
// age, so that a container Create is making meanwhile is spared. It
// returns how many it removed.
func (cs *Containers) RemoveLeftovers(age time.Duration) (int, error) {
	ents, err := os.ReadDir(cs.Root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range ents {
		if !isID(e.Name()) || !e.IsDir() {
			continue
		}
		dir := filepath.Join(cs.Root, e.Name())
		if _, err := os.Lstat(filepath.Join(dir, "config.json")); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < age {
			continue
		}
		if err := RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// SaveState records a container's state.
func (c *Container) SaveState() error {
	return writeJSON(filepath.Join(c.Dir, "state.json"), c.State)
}

// truthful corrects a state that says "running" when its process is gone:
// killed with its monitor, or the machine rebooted.
func (s State) truthful() State {
	monitorAlive := s.BootID == bootID() && s.MonitorStart != 0 && ProcessStart(s.MonitorPid) == s.MonitorStart
	switch s.Status {
	case StatusRunning:
		// A live monitor whose container just exited is about to say so.
		if s.BootID == bootID() && ProcessStart(s.Pid) == s.PidStart && s.PidStart != 0 || monitorAlive {
			return s
		}
	case StatusRestarting:
		if monitorAlive {
			return s
		}
	default:
		return s
	}
	s.Status = StatusExited
	s.ExitCode = -1
	if s.Error == "" {
		s.Error = "stopped while nook was not watching (its monitor was killed, or the machine restarted)"
	}
	if s.FinishedAt.IsZero() {
		s.FinishedAt = s.StartedAt
	}
	return s
}

// ProcessStart returns a process's start time in clock ticks since boot
// (field 22 of /proc/PID/stat), or 0 if it does not exist: with the pid,
// it tells a process from a later one that reused its pid.
func ProcessStart(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces and parentheses: skip
	// past its closing parenthesis.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(fields[19], 10, 64)
	return n
}

func bootID() string {
	data, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(data))
}

func writeJSON(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(name, data, false)
}

func readJSON(name string, v any) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// SaveConfig records a container's config.
func (c *Container) SaveConfig() error {
	return writeJSON(filepath.Join(c.Dir, "config.json"), c.Config)
}
