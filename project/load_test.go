package project

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeProject writes files (name -> content) into a fresh folder and
// returns it.
func writeProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// load loads the project in dir with a fixed environment, and returns its
// errors as lines with the folder trimmed from file names.
func load(t *testing.T, dir string, opts Options) (*Project, []string) {
	t.Helper()
	opts.Dir = dir
	if opts.Env == nil {
		opts.Env = func(k string) (string, bool) {
			v, ok := map[string]string{"USER_SET": "from-env", "EMPTY": ""}[k]
			return v, ok
		}
	}
	p, err := Load(opts)
	if err == nil {
		return p, nil
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		lines = append(lines, strings.ReplaceAll(l, dir+string(filepath.Separator), ""))
	}
	return p, lines
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		toml  string
		extra map[string]string
		want  []string
	}{
		{
			name: "syntax error",
			toml: "name = \"x\"\nimages = [\n",
			want: []string{"nook.toml:2:11: toml: array is incomplete"},
		},
		{
			name: "duplicate key",
			toml: "name = \"a\"\nname = \"b\"\n",
			want: []string{"nook.toml:2:1: toml: key name is already defined"},
		},
		{
			name: "unknown key with suggestion",
			toml: "[containers.web]\nimage = \"busybox\"\ncomand = \"sh\"\n",
			want: []string{`nook.toml:3:1: containers.web: unknown key "comand" (did you mean "command"?)`},
		},
		{
			name: "unknown top-level key without a near match",
			toml: "zzzzzzzz = 1\n",
			want: []string{`nook.toml:1:1: unknown key "zzzzzzzz"`},
		},
		{
			name: "every problem in one pass",
			toml: "[containers.web]\nimage = \"busybox\"\nports = [\"70000\"]\nstop_timeout = \"5 parsecs\"\nrestart = \"sometimes\"\n" +
				"[containers.db]\nimage = \"my image\"\nstop_signal = \"SIGNOPE\"\nuser = \"a b\"\n",
			want: []string{
				`nook.toml:3:10: containers.web.ports[0]: invalid port "70000": port 70000 out of range 1-65535`,
				`nook.toml:4:16: containers.web.stop_timeout: invalid duration "5 parsecs": want a number and a unit, like "500ms", "10s" or "2m"`,
				`nook.toml:5:11: containers.web.restart: invalid restart policy "sometimes": want "no", "on-failure", "on-failure:N" or "always"`,
				`nook.toml:8:15: containers.db.stop_signal: unknown signal "SIGNOPE"`,
			},
		},
		{
			name: "checks after decoding, all at once",
			toml: "[containers.web]\nimage = \"my image\"\nuser = \"a b\"\nworkdir = \"rel\"\nhostname = \"-bad-\"\nnetwork = \"bridge\"\n",
			want: []string{
				`nook.toml:2:9: containers.web.image: invalid image reference "my image"`,
				`nook.toml:3:8: containers.web.user: invalid user "a b": want NAME, UID, NAME:GROUP or UID:GID`,
				`nook.toml:4:11: containers.web.workdir: "rel" must be an absolute path`,
				`nook.toml:5:12: containers.web.hostname: invalid hostname "-bad-"`,
				`nook.toml:6:11: containers.web.network: unknown network "bridge": want "project", "host" or "none"`,
			},
		},
		{
			name: "wrong type",
			toml: "[containers.web]\nimage = 5\nreplicas = \"two\"\nkeep_id = \"yes\"\n",
			want: []string{
				`nook.toml:2:9: containers.web.image: want a string, got an integer`,
				`nook.toml:3:12: containers.web.replicas: want an integer, got a string`,
				`nook.toml:4:11: containers.web.keep_id: want true or false, got a string`,
			},
		},
		{
			name: "port forms",
			toml: "[containers.web]\nimage = \"busybox\"\nports = [\"8080:80/sctp\", \"1-3:1-2\", \"x:80\", \"999.1.1.1:80:80\"]\n",
			want: []string{
				`nook.toml:3:10: containers.web.ports[0]: invalid port "8080:80/sctp": protocol "sctp": want tcp or udp`,
				`nook.toml:3:26: containers.web.ports[1]: invalid port "1-3:1-2": host range has 3 ports, container range 2`,
				`nook.toml:3:37: containers.web.ports[2]: invalid port "x:80": "x" is not a port number`,
				`nook.toml:3:45: containers.web.ports[3]: invalid port "999.1.1.1:80:80": "999.1.1.1" is not an IP address`,
			},
		},
		{
			name: "host port published twice",
			toml: "[containers.a]\nimage = \"busybox\"\nports = [\"8080:80\"]\n[containers.b]\nimage = \"busybox\"\nports = [\"8080:81\"]\n",
			want: []string{`nook.toml:6:10: containers.b.ports[0]: host port 127.0.0.1:8080/tcp is already published by "a"`},
		},
		{
			name: "depends_on cycle",
			toml: "[containers.a]\nimage = \"busybox\"\ndepends_on = [\"b\"]\n[containers.b]\nimage = \"busybox\"\ndepends_on = [\"c\"]\n[containers.c]\nimage = \"busybox\"\ndepends_on = [\"a\"]\n",
			want: []string{`nook.toml:3:14: containers.a.depends_on: cycle: a -> b -> c -> a`},
		},
		{
			name: "from cycle",
			toml: "[images.a]\nfrom = \"b\"\n[images.b]\nfrom = \"a\"\n",
			want: []string{`nook.toml:2:8: images.a.from: cycle: a -> b -> a`},
		},
		{
			name: "unknown dependency and bad condition",
			toml: "[containers.web]\nimage = \"busybox\"\ndepends_on = { api = \"ready\", dbb = \"started\" }\n[containers.db]\nimage = \"busybox\"\n",
			want: []string{
				`nook.toml:3:22: containers.web.depends_on.api: unknown condition "ready": want "started", "healthy" or "completed"`,
			},
		},
		{
			name: "dependency typo",
			toml: "[containers.web]\nimage = \"busybox\"\ndepends_on = [\"dbb\"]\n[containers.db]\nimage = \"busybox\"\n",
			want: []string{`nook.toml:3:14: containers.web.depends_on: unknown container "dbb" (did you mean "db"?)`},
		},
		{
			name: "healthy needs a healthcheck",
			toml: "[containers.web]\nimage = \"busybox\"\ndepends_on = { db = \"healthy\" }\n[containers.db]\nimage = \"busybox\"\n",
			want: []string{`nook.toml:3:14: containers.web.depends_on: "web" waits for "db" to be healthy, but "db" has no healthcheck`},
		},
		{
			name:  "copy source escapes the project",
			toml:  "[images.a]\nfrom = \"scratch\"\n[[images.a.steps]]\ncopy = [\"../secret\", \"/etc/passwd\", \"out/*\"]\nto = \"/\"\n",
			extra: map[string]string{},
			want: []string{
				`nook.toml:4:9: images.a.steps[0].copy[0]: "../secret" leaves the project folder`,
				`nook.toml:4:22: images.a.steps[0].copy[1]: "/etc/passwd" is absolute: paths are relative to the project folder`,
			},
		},
		{
			name: "host input escapes the project",
			toml: "[images.a]\nfrom = \"scratch\"\n[[images.a.steps]]\nhost = \"make\"\ninputs = [\"src/../../x\"]\n",
			want: []string{`nook.toml:5:11: images.a.steps[0].inputs[0]: "src/../../x" leaves the project folder`},
		},
		{
			name: "step with two kinds and stray modifiers",
			toml: "[images.a]\nfrom = \"scratch\"\n[[images.a.steps]]\ncopy = \"x\"\nrun = \"true\"\n[[images.a.steps]]\nrun = \"true\"\nto = \"/x\"\n[[images.a.steps]]\ncopy = \"x\"\n",
			want: []string{
				`nook.toml:3:3: images.a.steps[0]: a step has exactly one of copy, run, host, env, workdir, user, arg; this one has copy and run`,
				`nook.toml:8:6: images.a.steps[1].to: "to" only goes with "copy", not with "run"`,
				`nook.toml:9:3: images.a.steps[2]: a copy step needs "to", the destination in the image`,
			},
		},
		{
			name: "image needs a base",
			toml: "[images.a]\nworkdir = \"/app\"\n[images.b]\nfrom = \"scratch\"\ndockerfile = \"Dockerfile\"\n",
			want: []string{
				`nook.toml:1:2: images.a: image needs "from" (with steps) or "dockerfile"`,
				`nook.toml:5:14: images.b.dockerfile: "from" and "dockerfile" exclude each other: a Dockerfile names its own base`,
			},
		},
		{
			name: "required variable",
			toml: "[containers.web]\nimage = \"busybox\"\nenv = { TOKEN = \"${TOKEN:?set TOKEN to your API token}\", E = \"${EMPTY:?}\" }\n",
			want: []string{
				`nook.toml:3:17: containers.web.env.TOKEN: variable TOKEN: set TOKEN to your API token`,
				`nook.toml:3:62: containers.web.env.E: variable EMPTY: required but not set`,
			},
		},
		{
			name: "bad substitution",
			toml: "[containers.web]\nimage = \"${USER_SET:x}\"\ncommand = \"${1BAD}\"\n",
			want: []string{
				`nook.toml:2:9: containers.web.image: invalid substitution ${USER_SET:x}: want ${USER_SET:-default} or ${USER_SET:?message}`,
				`nook.toml:3:11: containers.web.command: invalid variable name "1BAD" in ${1BAD}`,
			},
		},
		{
			name: "missing env file",
			toml: "[containers.web]\nimage = \"busybox\"\nenv_file = \"web.env\"\n",
			want: []string{`nook.toml:3:12: containers.web.env_file: env file "web.env" does not exist`},
		},
		{
			name: "replicas cannot share a host port",
			toml: "[containers.web]\nimage = \"busybox\"\nreplicas = 3\nports = [\"8080:80\"]\n",
			want: []string{`nook.toml:4:10: containers.web.ports[0]: 3 replicas cannot all publish host port 8080`},
		},
		{
			name: "volume forms",
			toml: "[containers.web]\nimage = \"busybox\"\nvolumes = [\"data\", \"./d:rel\", \"./d:/d:rx\", \"bad name:/x\"]\n",
			want: []string{
				`nook.toml:3:12: containers.web.volumes[0]: invalid volume "data": want SOURCE:TARGET[:ro]`,
				`nook.toml:3:20: containers.web.volumes[1]: invalid volume "./d:rel": target "rel" must be an absolute path`,
				`nook.toml:3:31: containers.web.volumes[2]: invalid volume "./d:/d:rx": option "rx": want ro or rw`,
				`nook.toml:3:44: containers.web.volumes[3]: invalid volume "bad name:/x": "bad name" is neither a path (start it with ./ or /) nor a volume name`,
			},
		},
		{
			name: "missing image",
			toml: "[images.api]\nfrom = \"scratch\"\n[containers.web]\nports = [\"80\"]\n",
			want: []string{`nook.toml:3:2: containers.web: missing "image": name an image of this project or an image reference (this project has api)`},
		},
		{
			name: "nesting too deep",
			toml: "a = " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n",
			want: []string{`nook.toml:1:37: arrays and inline tables nested more than 32 deep`},
		},
		{
			name: "bad names",
			toml: "name = \"My Project\"\n[images.\"Bad Image\"]\nfrom = \"scratch\"\n",
			want: []string{
				`nook.toml:1:8: name: invalid project name "My Project": use lowercase letters, digits, '-', '_' and '.', starting with a letter or digit`,
				`nook.toml:2:2: images."Bad Image": invalid image name "Bad Image": use lowercase letters, digits, '-', '_' and '.'`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"nook.toml": tt.toml}
			for k, v := range tt.extra {
				files[k] = v
			}
			_, got := load(t, writeProject(t, files), Options{})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Load errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadErrorsAreTyped(t *testing.T) {
	dir := writeProject(t, map[string]string{"nook.toml": "[containers.web]\ncomand = 1\n"})
	_, err := Load(Options{Dir: dir})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Load = %v, want a *project.Error", err)
	}
	if e.Pos.Line != 2 || e.Pos.Col != 1 || e.Key != "containers.web" {
		t.Errorf("Error = %+v, want line 2 col 1 key containers.web", e)
	}
}

func TestSymlinkOutOfProject(t *testing.T) {
	outside := t.TempDir()
	dir := writeProject(t, map[string]string{"nook.toml": "[images.a]\nfrom = \"scratch\"\n[[images.a.steps]]\ncopy = \"link/secret\"\nto = \"/\"\n"})
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	_, got := load(t, dir, Options{})
	real, _ := filepath.EvalSymlinks(outside)
	want := []string{`nook.toml:4:8: images.a.steps[0].copy[0]: "link/secret" leads outside the project folder (a symlink to ` + real + `)`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load errors (-want +got):\n%s", diff)
	}
}

func TestHugeFileIsRefused(t *testing.T) {
	dir := writeProject(t, map[string]string{"nook.toml": "a = " + strings.Repeat("[", 5<<20)})
	_, got := load(t, dir, Options{})
	want := []string{"nook.toml:1:1: file is larger than 1048576 bytes; a project file may be at most 1 MiB"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load errors (-want +got):\n%s", diff)
	}
}
