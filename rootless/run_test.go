package rootless

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nook-dev/nook/internal/testenv"
)

// entryTestRun starts a container from a Spec in its first argument (JSON)
// and prints "exit N" or "error N MSG": the monitor's part, in a test.
const entryTestRun = "test-run"

func init() {
	Register(entryTestRun, func() int {
		var spec Spec
		if err := json.Unmarshal([]byte(os.Args[1]), &spec); err != nil {
			fmt.Println("error", err)
			return 1
		}
		c, err := StartInit(&spec, os.Stdin, os.Stdout, os.Stderr)
		if err != nil {
			fmt.Fprintf(os.Stdout, "error %v\n", err)
			if ie, ok := err.(*InitError); ok {
				return ie.Code
			}
			return 1
		}
		return c.Wait()
	})
}

// busyboxLayer makes a one-layer "image" folder with a static busybox.
func busyboxLayer(t *testing.T) string {
	t.Helper()
	src := "/bin/busybox"
	if _, err := os.Stat(src); err != nil {
		testenv.Unavailable(t, "busybox-static is not installed (apt-get install busybox-static)")
	}
	dir := t.TempDir()
	layer := filepath.Join(dir, "layer")
	for _, d := range []string{"bin", "etc", "tmp"} {
		os.MkdirAll(filepath.Join(layer, d), 0o755)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layer, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"sh", "echo", "cat", "ls", "hostname", "id", "sleep", "true", "false", "touch", "wc", "readlink"} {
		os.Symlink("busybox", filepath.Join(layer, "bin", app))
	}
	os.WriteFile(filepath.Join(layer, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644)
	return dir
}

// runContainer runs args in a container over the busybox layer and returns
// its output and exit status.
func runContainer(t *testing.T, base string, mutate func(*Spec), args ...string) (string, int) {
	t.Helper()
	cdir, err := os.MkdirTemp("", "nook-ctr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := RemoveAll(cdir); err != nil {
			t.Errorf("remove the container's folder: %v", err)
		}
	})
	for _, d := range []string{"upper", "work", "rootfs"} {
		os.MkdirAll(filepath.Join(cdir, d), 0o755)
	}
	spec := Spec{
		LayerRoot: base, Lowers: []string{"layer"},
		Upper: filepath.Join(cdir, "upper"), Work: filepath.Join(cdir, "work"), Rootfs: filepath.Join(cdir, "rootfs"),
		Hostname: "box", Network: "none",
		Process: Process{Args: args, Env: []string{"PATH=/bin"}},
	}
	if mutate != nil {
		mutate(&spec)
	}
	data, _ := json.Marshal(spec)
	c := Command(entryTestRun, string(data))
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err = c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), code
}

func TestRunEchoAndExitCodes(t *testing.T) {
	requireUserns(t)
	base := busyboxLayer(t)
	if out, code := runContainer(t, base, nil, "echo", "hi"); out != "hi\n" || code != 0 {
		t.Errorf("echo hi = %q, exit %d", out, code)
	}
	if _, code := runContainer(t, base, nil, "sh", "-c", "exit 3"); code != 3 {
		t.Errorf("exit 3 = exit %d", code)
	}
	if out, code := runContainer(t, base, nil, "nosuchcmd"); code != 127 || !strings.Contains(out, "not found") {
		t.Errorf("missing command = %q, exit %d; want 127", out, code)
	}
	if _, code := runContainer(t, base, nil, "sh", "-c", "kill -TERM $$"); code != 128+15 {
		t.Errorf("killed by SIGTERM = exit %d, want 143", code)
	}
}

func TestContainerIsolation(t *testing.T) {
	requireUserns(t)
	base := busyboxLayer(t)
	out, code := runContainer(t, base, nil, "sh", "-c", "hostname; cat /proc/1/cmdline; echo; ls /proc/self/fd | wc -l; id -u")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	// nook's init is PID 1; the shell has 0, 1, 2 and the fd ls opens for
	// the listing.
	want := "box\nnook-init\x00\n4\n0\n"
	if out != want {
		t.Errorf("hostname, pid 1, fd count, uid = %q, want %q", out, want)
	}
}

func TestContainerCannotRewriteNook(t *testing.T) {
	requireUserns(t)
	base := busyboxLayer(t)
	self, _ := os.Executable()
	before, _ := os.ReadFile(self)
	out, code := runContainer(t, base, nil, "sh", "-c", "echo pwned > /proc/1/exe && echo wrote")
	after, _ := os.ReadFile(self)
	if code == 0 || strings.Contains(out, "wrote") || !bytes.Equal(before, after) {
		t.Errorf("writing /proc/1/exe: exit %d, %q; binary changed: %v", code, out, !bytes.Equal(before, after))
	}
}

func TestWritesStayInUpper(t *testing.T) {
	requireUserns(t)
	base := busyboxLayer(t)
	var upper string
	out, code := runContainer(t, base, func(s *Spec) { upper = s.Upper }, "sh", "-c", "echo data > /tmp/x && rm /bin/true && echo ok")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(base, "layer", "bin", "true")); err != nil {
		t.Errorf("the image layer changed: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(upper, "tmp", "x")); err != nil || string(data) != "data\n" {
		t.Errorf("upper/tmp/x = %q, %v", data, err)
	}
}

// A --rm container's upper is mounted volatile (no sync of the whole
// upper filesystem when it ends); any other keeps overlay's syncs.
func TestVolatileUpperOnlyWhenAsked(t *testing.T) {
	requireUserns(t)
	base := busyboxLayer(t)
	for _, volatile := range []bool{true, false} {
		out, code := runContainer(t, base, func(s *Spec) { s.Volatile = volatile }, "sh", "-c", "grep ' / overlay ' /proc/mounts")
		if code != 0 {
			t.Fatalf("volatile=%v: exit %d: %s", volatile, code, out)
		}
		if got := strings.Contains(out, "volatile"); got != volatile {
			t.Errorf("volatile=%v: the overlay's options are %q", volatile, out)
		}
	}
}
