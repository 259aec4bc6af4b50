package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// nookBin is the nook binary built once for these tests, driven as a user
// drives it; nookInitBin is the nook-init built with it, next to it, as
// install.sh installs them.
var nookBin, nookInitBin string

// testToken ties the two (see rootless/initbinary.go); otherToken is
// another build's.
const testToken, otherToken = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nook-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nookBin, nookInitBin = filepath.Join(dir, "nook"), filepath.Join(dir, "nook-init")
	for _, b := range []struct{ out, pkg string }{{nookBin, "."}, {nookInitBin, "../nook-init"}} {
		if out, err := buildWithToken(b.out, b.pkg, testToken); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildWithToken builds the package pkg to out with the build token.
func buildWithToken(out, pkg, token string) ([]byte, error) {
	return exec.Command("go", "build", "-ldflags=-X github.com/nook-dev/nook/rootless.buildToken="+token, "-o", out, pkg).CombinedOutput()
}

// nook runs the binary and returns stdout, stderr and the exit code.
func nook(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(nookBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run nook %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func TestConfigOnExamples(t *testing.T) {
	for _, ex := range []string{"hello", "shop"} {
		t.Run(ex, func(t *testing.T) {
			dir := filepath.Join("..", "..", "examples", ex)
			out, errOut, code := nook(t, "-C", dir, "config")
			if code != 0 {
				t.Fatalf("nook config = exit %d\n%s", code, errOut)
			}
			var asTOML map[string]any
			if err := toml.Unmarshal([]byte(out), &asTOML); err != nil {
				t.Fatalf("config output is not TOML: %v\n%s", err, out)
			}
			if asTOML["name"] != ex {
				t.Errorf("config name = %v, want %q", asTOML["name"], ex)
			}
			// The printed project loads again as the same project.
			reloaded := filepath.Join(t.TempDir(), "nook.toml")
			if err := os.WriteFile(reloaded, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, errOut, code := nook(t, "-C", dir, "-f", reloaded, "config"); code != 0 {
				t.Errorf("config output does not load back: exit %d\n%s", code, errOut)
			}

			out, errOut, code = nook(t, "-C", dir, "config", "--json")
			if code != 0 {
				t.Fatalf("nook config --json = exit %d\n%s", code, errOut)
			}
			var asJSON struct {
				Name       string
				Containers map[string]struct{ Image string }
				StartOrder []string `json:"start_order"`
			}
			if err := json.Unmarshal([]byte(out), &asJSON); err != nil {
				t.Fatalf("config --json output is not JSON: %v\n%s", err, out)
			}
			if asJSON.Name != ex || len(asJSON.Containers) == 0 || len(asJSON.StartOrder) != len(asJSON.Containers) {
				t.Errorf("config --json = %+v", asJSON)
			}
		})
	}
}

func TestShopStartsAPIFirst(t *testing.T) {
	out, _, _ := nook(t, "-C", "../../examples/shop", "config", "--json")
	if !strings.Contains(out, `"start_order": [
    "api",
    "web"
  ]`) {
		t.Errorf("shop start order is not api, web:\n%s", out)
	}
}

func TestExitCodesAndErrors(t *testing.T) {
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "nook.toml"), []byte("[containers.web]\nimage = \"busybox\"\ncomand = \"sh\"\nports = [\"70000\"]\n"), 0o644)
	deep := t.TempDir()
	os.WriteFile(filepath.Join(deep, "nook.toml"), []byte("a = "+strings.Repeat("[", 5<<20)+strings.Repeat("]", 5<<20)), 0o644)

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"unknown flag", []string{"--bogus"}, exitUsage, "nook: error: unknown flag: --bogus\nRun 'nook --help' for usage.\n"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "nook: error: unknown command \"frobnicate\" for \"nook\"\nRun 'nook --help' for usage.\n"},
		{"extra argument", []string{"version", "x"}, exitUsage, "nook: error: unknown command \"x\" for \"nook version\"\nRun 'nook --help' for usage.\n"},
		{"no project", []string{"-C", t.TempDir(), "config"}, exitError, "hint: run nook in a project folder, pass -C DIR, or create nook.toml"},
		{"every problem, one per line", []string{"-C", bad, "config"}, exitError,
			"nook: error: nook.toml:3:1: containers.web: unknown key \"comand\" (did you mean \"command\"?)\n" +
				"nook: error: nook.toml:4:10: containers.web.ports[0]: invalid port \"70000\": port 70000 out of range 1-65535\n"},
		{"5 MB of nesting", []string{"-C", deep, "config"}, exitError, "nook: error: nook.toml:1:1: file is larger than 1048576 bytes; a project file may be at most 1 MiB\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := nook(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			stderr = strings.ReplaceAll(stderr, bad+"/", "")
			stderr = strings.ReplaceAll(stderr, deep+"/", "")
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing: errors go to stderr", stdout)
			}
		})
	}
}

func TestVersionAndCompletion(t *testing.T) {
	out, _, code := nook(t, "version")
	if code != 0 || !strings.HasPrefix(out, "nook ") {
		t.Errorf("nook version = %q, exit %d", out, code)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, errOut, code := nook(t, "completion", shell)
		if code != 0 || !strings.Contains(out, "nook") {
			t.Errorf("nook completion %s = exit %d\n%s", shell, code, errOut)
		}
	}
}
