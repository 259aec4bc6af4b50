package project

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadResolvesProject(t *testing.T) {
	dir := writeProject(t, map[string]string{
		"nook.toml": `
[images.base]
from = "scratch"
[[images.base.steps]]
copy = ["bin/*"]
to = "/bin/"
mode = 0o755

[images.app]
from = "base"
cmd = "/bin/app --port ${PORT:-80}"

[containers.db]
image = "base"
healthcheck = { cmd = ["pg_isready"] }

[containers.app]
ports = ["8080:80", "[::1]:9000-9001:90-91/udp"]
depends_on = { db = "healthy" }
env = { A = "from-toml", N = 3 }
env_file = "app.env"
volumes = ["./data:/data", "cache:/cache:ro"]
restart = "on-failure:3"
stop_timeout = 30

[containers.debug]
image = "base"
profiles = ["tools"]
`,
		"app.env": "# comment\nA=from-file\nexport B='lit $x'\nC=\"q\\\"uoted\"\n",
		".env":    "PORT=8080\n",
	})
	p, errs := load(t, dir, Options{})
	if errs != nil {
		t.Fatalf("Load: %v", errs)
	}
	if p.Name != filepath.Base(dir) && p.Name != defaultName(filepath.Base(dir)) {
		t.Errorf("Name = %q, want the folder's name", p.Name)
	}
	if diff := cmp.Diff([]string{"base", "app"}, p.BuildOrder); diff != "" {
		t.Errorf("BuildOrder (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"db", "app"}, p.StartOrder); diff != "" {
		t.Errorf("StartOrder (-want +got):\n%s", diff)
	}
	app := p.Containers["app"]
	if app.Image != "app" {
		t.Errorf("app.Image = %q, want the project image of the same name", app.Image)
	}
	if diff := cmp.Diff(Command{"/bin/app", "--port", "8080"}, p.Images["app"].Cmd); diff != "" {
		t.Errorf("app cmd, interpolated from .env (-want +got):\n%s", diff)
	}
	wantEnv := Env{"A": "from-toml", "B": "lit $x", "C": `q"uoted`, "N": "3"}
	if diff := cmp.Diff(wantEnv, app.Env); diff != "" {
		t.Errorf("app env: env_file under env (-want +got):\n%s", diff)
	}
	wantPorts := []Port{
		{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Count: 1, Proto: "tcp"},
		{HostIP: "::1", HostPort: 9000, ContainerPort: 90, Count: 2, Proto: "udp"},
	}
	if diff := cmp.Diff(wantPorts, app.Ports); diff != "" {
		t.Errorf("app ports (-want +got):\n%s", diff)
	}
	wantVols := []Volume{
		{Source: filepath.Join(dir, "data"), Target: "/data"},
		{Source: "cache", Target: "/cache", ReadOnly: true, Named: true},
	}
	if diff := cmp.Diff(wantVols, app.Volumes); diff != "" {
		t.Errorf("app volumes (-want +got):\n%s", diff)
	}
	if app.Restart != (Restart{Policy: "on-failure", MaxRetries: 3}) || app.StopTimeout != Duration(30*time.Second) || app.Replicas != 1 {
		t.Errorf("app restart/stop_timeout/replicas = %v/%v/%d", app.Restart, app.StopTimeout, app.Replicas)
	}
	if hc := p.Containers["db"].Healthcheck; hc.Interval != DefaultHCInterval || hc.Retries != DefaultHCRetries {
		t.Errorf("db healthcheck defaults = %+v", hc)
	}
	if p.Containers["debug"].Active {
		t.Errorf("debug is active without its profile")
	}
	if m := p.Images["base"].Steps[0].Mode; m != 0o755 {
		t.Errorf("mode = %o, want 755", m)
	}
}

func TestProfilesActivate(t *testing.T) {
	dir := writeProject(t, map[string]string{"nook.toml": "[containers.a]\nimage = \"busybox\"\n[containers.b]\nimage = \"busybox\"\nprofiles = [\"dev\"]\n"})
	for _, tt := range []struct {
		profiles []string
		want     []string
	}{
		{nil, []string{"a"}},
		{[]string{"dev"}, []string{"a", "b"}},
		{[]string{"*"}, []string{"a", "b"}},
		{[]string{"prod"}, []string{"a"}},
	} {
		p, errs := load(t, dir, Options{Profiles: tt.profiles})
		if errs != nil {
			t.Fatal(errs)
		}
		if diff := cmp.Diff(tt.want, p.StartOrder); diff != "" {
			t.Errorf("profiles %v: StartOrder (-want +got):\n%s", tt.profiles, diff)
		}
	}
}

func TestMergeFiles(t *testing.T) {
	dir := writeProject(t, map[string]string{
		"nook.toml": "name = \"app\"\n[containers.web]\nimage = \"busybox\"\ncommand = [\"httpd\", \"-f\"]\nenv = { MODE = \"dev\", KEEP = \"yes\" }\nports = [\"8080:80\"]\n",
		"prod.toml": "[containers.web]\nenv = { MODE = \"prod\" }\nports = [\"80:80\", \"443:443\"]\n[containers.worker]\nimage = \"busybox\"\n",
	})
	p, errs := load(t, dir, Options{Files: []string{"nook.toml", "prod.toml"}})
	if errs != nil {
		t.Fatal(errs)
	}
	web := p.Containers["web"]
	if diff := cmp.Diff(Env{"MODE": "prod", "KEEP": "yes"}, web.Env); diff != "" {
		t.Errorf("tables merge key by key (-want +got):\n%s", diff)
	}
	if len(web.Ports) != 2 || web.Ports[0].HostPort != 80 {
		t.Errorf("arrays are replaced whole: ports = %v", web.Ports)
	}
	if diff := cmp.Diff(Command{"httpd", "-f"}, web.Command); diff != "" {
		t.Errorf("untouched keys stay (-want +got):\n%s", diff)
	}
	if p.Containers["worker"] == nil {
		t.Errorf("a later file adds containers")
	}
	// An error in the second file names the second file.
	if err := os.WriteFile(filepath.Join(dir, "prod.toml"), []byte("[containers.web]\nrestart = \"maybe\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs = load(t, dir, Options{Files: []string{"nook.toml", "prod.toml"}})
	want := []string{`prod.toml:2:11: containers.web.restart: invalid restart policy "maybe": want "no", "on-failure", "on-failure:N" or "always"`}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestFindsProjectInParent(t *testing.T) {
	dir := writeProject(t, map[string]string{"nook.toml": "name = \"up\"\n", "sub/deeper/x": ""})
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	if err := os.Chdir(filepath.Join(dir, "sub", "deeper")); err != nil {
		t.Fatal(err)
	}
	p, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "up" || p.Dir != dir {
		t.Errorf("Load from a subfolder = %q in %s, want \"up\" in %s", p.Name, p.Dir, dir)
	}
}

func TestSplitWords(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{`a b  c`, []string{"a", "b", "c"}},
		{`sh -c 'echo "$HOME" x'`, []string{"sh", "-c", `echo "$HOME" x`}},
		{`echo "a \"b\" \$c" d\ e`, []string{"echo", `a "b" $c`, "d e"}},
		{`''`, []string{""}},
		{``, nil},
	} {
		got, err := splitWords(tt.in)
		if err != nil {
			t.Errorf("splitWords(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("splitWords(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
	if _, err := splitWords(`echo "open`); err == nil {
		t.Errorf("splitWords of an unterminated quote succeeded")
	}
}

func TestExpand(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"SET": "v", "EMPTY": ""}[k]
		return v, ok
	}
	for _, tt := range []struct{ in, want string }{
		{"${SET}", "v"},
		{"${UNSET}", ""},
		{"${UNSET:-d}", "d"},
		{"${EMPTY:-d}", "d"},
		{"${EMPTY-d}", ""},
		{"${UNSET-d}", "d"},
		{"$$SET and $SET", "$SET and $SET"},
		{"a${SET}b${SET}c", "avbvc"},
		{"${SET:?msg}", "v"},
		{"${EMPTY?msg}", ""},
		{"trailing $", "trailing $"},
	} {
		got, err := expand(tt.in, env)
		if err != nil || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
