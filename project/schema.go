package project

// The schema of nook.toml. These types are what the loader decodes into and
// what `nook config` prints; docs/nook.toml.md documents every field. Field
// tags name the TOML key; the decoder rejects keys no field names.

// Project is a loaded, merged, interpolated and validated project.
type Project struct {
	Name       string                `toml:"name" json:"name"`
	Dir        string                `toml:"-" json:"dir"`   // the project folder, absolute
	Files      []string              `toml:"-" json:"files"` // the files merged, in order
	Images     map[string]*Image     `toml:"images,omitempty" json:"images,omitempty"`
	Containers map[string]*Container `toml:"containers,omitempty" json:"containers,omitempty"`
	Network    *Network              `toml:"network,omitempty" json:"network,omitempty"`

	// Profiles are the profiles this project was loaded with.
	Profiles []string `toml:"-" json:"profiles,omitempty"`
	// BuildOrder lists image names so that every image comes after the
	// project image it is built from.
	BuildOrder []string `toml:"-" json:"build_order,omitempty"`
	// StartOrder lists the active containers so that every container comes
	// after the containers it depends on.
	StartOrder []string `toml:"-" json:"start_order,omitempty"`
}

// Image describes how one image is built: either from a base and steps, or
// from a Dockerfile.
type Image struct {
	From       string            `toml:"from,omitempty" json:"from,omitempty"`
	Dockerfile string            `toml:"dockerfile,omitempty" json:"dockerfile,omitempty"`
	Context    string            `toml:"context,omitempty" json:"context,omitempty"`
	Steps      []Step            `toml:"steps,omitempty" json:"steps,omitempty"`
	Env        Env               `toml:"env,omitempty" json:"env,omitempty"`
	Workdir    string            `toml:"workdir,omitempty" json:"workdir,omitempty"`
	User       string            `toml:"user,omitempty" json:"user,omitempty"`
	Cmd        Command           `toml:"cmd,omitempty" json:"cmd,omitempty"`
	Entrypoint Command           `toml:"entrypoint,omitempty" json:"entrypoint,omitempty"`
	Labels     map[string]string `toml:"labels,omitempty" json:"labels,omitempty"`
	Expose     []Port            `toml:"expose,omitempty" json:"expose,omitempty"`
	StopSignal Signal            `toml:"stop_signal,omitempty" json:"stop_signal,omitempty"`
}

// Step is one build step. Exactly one of Copy, Run, Host, Env, Workdir, User
// and Arg is set; To, Chown and Mode go with Copy, Inputs and Outputs with
// Host.
type Step struct {
	Copy  Strings `toml:"copy,omitempty" json:"copy,omitempty"` // sources in the project folder; globs allowed
	To    string  `toml:"to,omitempty" json:"to,omitempty"`     // destination in the image
	Chown string  `toml:"chown,omitempty" json:"chown,omitempty"`
	Mode  Mode    `toml:"mode,omitempty" json:"mode,omitempty"`

	Run string `toml:"run,omitempty" json:"run,omitempty"` // /bin/sh -c inside the image being built

	Host    string  `toml:"host,omitempty" json:"host,omitempty"`       // /bin/sh -c on the host, in the project folder
	Inputs  Strings `toml:"inputs,omitempty" json:"inputs,omitempty"`   // files the host command reads (globs)
	Outputs Strings `toml:"outputs,omitempty" json:"outputs,omitempty"` // files it writes, never watched

	Env     Env    `toml:"env,omitempty" json:"env,omitempty"`
	Workdir string `toml:"workdir,omitempty" json:"workdir,omitempty"`
	User    string `toml:"user,omitempty" json:"user,omitempty"`
	Arg     Env    `toml:"arg,omitempty" json:"arg,omitempty"` // build arguments and their defaults
}

// Kind names the step's kind: "copy", "run", "host", "env", "workdir",
// "user" or "arg".
func (s *Step) Kind() string {
	switch {
	case len(s.Copy) > 0:
		return "copy"
	case s.Run != "":
		return "run"
	case s.Host != "":
		return "host"
	case s.Env != nil:
		return "env"
	case s.Workdir != "":
		return "workdir"
	case s.User != "":
		return "user"
	case s.Arg != nil:
		return "arg"
	}
	return ""
}

// Container describes what to run from an image.
type Container struct {
	Image       string       `toml:"image" json:"image"`
	Command     Command      `toml:"command,omitempty" json:"command,omitempty"`
	Entrypoint  Command      `toml:"entrypoint,omitempty" json:"entrypoint,omitempty"`
	Env         Env          `toml:"env,omitempty" json:"env,omitempty"`
	EnvFile     Strings      `toml:"env_file,omitempty" json:"env_file,omitempty"`
	Ports       []Port       `toml:"ports,omitempty" json:"ports,omitempty"`
	Volumes     []Volume     `toml:"volumes,omitempty" json:"volumes,omitempty"`
	DependsOn   DependsOn    `toml:"depends_on,omitempty" json:"depends_on,omitempty"`
	Restart     Restart      `toml:"restart" json:"restart"`
	Replicas    int          `toml:"replicas" json:"replicas"`
	Profiles    []string     `toml:"profiles,omitempty" json:"profiles,omitempty"`
	Healthcheck *Healthcheck `toml:"healthcheck,omitempty" json:"healthcheck,omitempty"`
	StopSignal  Signal       `toml:"stop_signal,omitempty" json:"stop_signal,omitempty"`
	StopTimeout Duration     `toml:"stop_timeout" json:"stop_timeout"`
	User        string       `toml:"user,omitempty" json:"user,omitempty"`
	Workdir     string       `toml:"workdir,omitempty" json:"workdir,omitempty"`
	Hostname    string       `toml:"hostname,omitempty" json:"hostname,omitempty"`
	KeepID      bool         `toml:"keep_id,omitempty" json:"keep_id,omitempty"`
	Network     string       `toml:"network,omitempty" json:"network,omitempty"`
	Watch       *Watch       `toml:"watch,omitempty" json:"watch,omitempty"`

	// Active is false for a container whose profiles were not asked for.
	Active bool `toml:"-" json:"active"`
}

// Network configures the project's private network.
type Network struct {
	// Outbound is how containers reach beyond the machine: "auto" (pasta
	// if installed, else slirp4netns), "pasta", "slirp4netns" or "none".
	Outbound string `toml:"outbound,omitempty" json:"outbound,omitempty"`
	// HostLoopback lets containers reach services on the host's loopback
	// at the name host.nook.internal.
	HostLoopback bool `toml:"host_loopback,omitempty" json:"host_loopback,omitempty"`
}

// Healthcheck is a command nook runs inside the container to decide whether
// it is healthy.
type Healthcheck struct {
	Cmd         Command  `toml:"cmd" json:"cmd"`
	Interval    Duration `toml:"interval" json:"interval"`
	Timeout     Duration `toml:"timeout" json:"timeout"`
	Retries     int      `toml:"retries" json:"retries"`
	StartPeriod Duration `toml:"start_period" json:"start_period"`
}

// Watch says what `nook up --watch` does when files change, beyond what it
// infers from the build graph.
type Watch struct {
	Sync    []Sync  `toml:"sync,omitempty" json:"sync,omitempty"`
	Restart Strings `toml:"restart,omitempty" json:"restart,omitempty"` // paths whose change restarts the container
	Exec    Command `toml:"exec,omitempty" json:"exec,omitempty"`       // run in the container after a sync
	Ignore  Strings `toml:"ignore,omitempty" json:"ignore,omitempty"`   // .nookignore patterns
}

// Sync copies changed files under From (in the project folder) to To (in
// the running container) without a rebuild or restart.
type Sync struct {
	From string `toml:"from" json:"from"`
	To   string `toml:"to" json:"to"`
}

// Defaults applied where a field is left out.
const (
	DefaultNetwork     = "project"
	DefaultStopTimeout = Duration(10e9)
	DefaultHCInterval  = Duration(1e9) // Docker's 30s is too slow for a dev loop that waits on health
	DefaultHCTimeout   = Duration(5e9)
	DefaultHCRetries   = 3
	MaxReplicas        = 100 // guessed: far above what one desktop runs, low enough to catch a typo
)
