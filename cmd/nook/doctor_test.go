package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nook-dev/nook/rootless"
)

// doctorChecks are the names nook doctor prints, in order, when it can
// enter the namespace (the probe's checks after "userns" need that).
var doctorChecks = []string{
	"kernel", "user namespaces", "AppArmor userns", "newuidmap", "newgidmap", "subuid range", "subgid range", "store",
	"userns", "uid", "idmap", "overlay", "whiteout",
	"network helper", "nft", "/dev/net/tun", "inotify watches", "inotify instances", "unprivileged ports", "cgroups",
}

// doctor runs nook doctor with a store that does not exist yet, and skips
// (or, with NOOK_REQUIRE_USERNS=1, fails) when a check fails here.
func doctor(t *testing.T, args ...string) string {
	t.Helper()
	t.Setenv("NOOK_ROOT", filepath.Join(t.TempDir(), "store"))
	out, errOut, code := nook(t, append([]string{"doctor"}, args...)...)
	if errOut != "" {
		t.Errorf("nook doctor %v wrote to stderr: %q", args, errOut)
	}
	if code != 0 {
		reason := "nook doctor " + strings.Join(args, " ") + " found failures on this machine:\n" + out
		if os.Getenv("NOOK_REQUIRE_USERNS") == "1" {
			t.Fatal(reason)
		}
		t.Skip(reason)
	}
	return out
}

func TestDoctorPrintsEveryCheck(t *testing.T) {
	out := doctor(t)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var names []string
	for _, l := range lines {
		if len(l) < 6 || (l[:4] != "ok  " && l[:4] != "warn" && l[:4] != "FAIL") {
			continue // a fix line or the summary
		}
		for _, n := range doctorChecks {
			if strings.HasPrefix(l[6:], n+" ") {
				names = append(names, n)
				break
			}
		}
	}
	if !slices.Equal(names, doctorChecks) {
		t.Errorf("nook doctor printed checks %q, want %q\n%s", names, doctorChecks, out)
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "nook can run containers here") {
		t.Errorf("summary = %q", last)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colours in piped output:\n%q", out)
	}
	// Not re-executed into the namespace, where everyone is root: an
	// unprivileged caller's helpers and ranges are checked.
	if os.Geteuid() != 0 && strings.Contains(out, "not needed for root") {
		t.Errorf("nook doctor ran as root inside the namespace:\n%s", out)
	}
}

func TestDoctorJSON(t *testing.T) {
	out := doctor(t, "--json")
	var checks []struct {
		Name, Status, Message, Hint string
	}
	if err := json.Unmarshal([]byte(out), &checks); err != nil {
		t.Fatalf("nook doctor --json is not JSON: %v\n%s", err, out)
	}
	var names []string
	for _, c := range checks {
		names = append(names, c.Name)
		if c.Status != "ok" && c.Status != "warn" && c.Status != "fail" {
			t.Errorf("%s: status %q, want ok, warn or fail", c.Name, c.Status)
		}
		if (c.Status == "ok") != (c.Hint == "") {
			t.Errorf("%s: status %q with hint %q", c.Name, c.Status, c.Hint)
		}
	}
	if !slices.Equal(names, doctorChecks) {
		t.Errorf("nook doctor --json names %q, want %q", names, doctorChecks)
	}
}

func TestDoctorReport(t *testing.T) {
	checks := []rootless.Check{
		{Name: "kernel", OK: true, Message: "6.1.0"},
		{Name: "/dev/net/tun", OK: true, Message: "mode 0600", Hint: "sudo chmod 0666 /dev/net/tun"},
		{Name: "AppArmor userns", Message: "blocked", Hint: "put this in /etc/apparmor.d/nook\n  userns,\nand load it"},
	}
	tests := []struct {
		name   string
		checks []rootless.Check
		color  bool
		want   string
	}{
		{"failure and warning", checks, false, "" +
			"ok    kernel           6.1.0\n" +
			"warn  /dev/net/tun     mode 0600\n" +
			"      fix: sudo chmod 0666 /dev/net/tun\n" +
			"FAIL  AppArmor userns  blocked\n" +
			"      fix: put this in /etc/apparmor.d/nook\n" +
			"             userns,\n" +
			"           and load it\n" +
			"1 check failed, 1 warning, 1 ok: run the fixes above, then nook doctor again\n"},
		{"warnings only", checks[:2], false, "" +
			"ok    kernel        6.1.0\n" +
			"warn  /dev/net/tun  mode 0600\n" +
			"      fix: sudo chmod 0666 /dev/net/tun\n" +
			"nook can run containers here; 1 warning (see above), 1 ok\n"},
		{"on a terminal", checks[:1], true, "" +
			"\x1b[32mok  \x1b[0m  kernel  6.1.0\n" +
			"nook can run containers here; all 1 check passed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeChecks(&b, tt.checks, tt.color); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("writeChecks() =\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}
