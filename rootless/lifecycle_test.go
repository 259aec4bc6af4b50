package rootless

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// newTestContainer creates a container over the busybox layer in a fresh
// container set, running args, with a short stop timeout.
func newTestContainer(t *testing.T, args ...string) (*Containers, *Container) {
	t.Helper()
	requireUserns(t)
	base := busyboxLayer(t)
	root, err := os.MkdirTemp("", "nook-cs-")
	if err != nil {
		t.Fatal(err)
	}
	cs := &Containers{Root: root}
	t.Cleanup(func() {
		list, _ := cs.List()
		for _, c := range list {
			cs.Stop(c, syscall.SIGKILL, 0)
		}
		RemoveAll(root)
	})
	c, err := cs.Create(Config{
		Name: "t1", StopSignal: "SIGTERM", StopTimeout: 5 * time.Second,
		Spec: Spec{LayerRoot: base, Lowers: []string{"layer"}, Network: "none", Hostname: "t1",
			Process: Process{Args: args, Env: []string{"PATH=/bin"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Spec.Upper, c.Spec.Work, c.Spec.Rootfs, c.Spec.ExecDir = filepath.Join(c.Dir, "upper"), filepath.Join(c.Dir, "work"), filepath.Join(c.Dir, "rootfs"), c.Dir
	if err := c.SaveConfig(); err != nil {
		t.Fatal(err)
	}
	return cs, c
}

func execOutput(t *testing.T, c *Container, args ...string) string {
	t.Helper()
	r, w, _ := os.Pipe()
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	code, err := c.Exec(ExecRequest{Args: args}, null, w, w, nil)
	w.Close()
	var out bytes.Buffer
	out.ReadFrom(r)
	if err != nil || code != 0 {
		t.Fatalf("exec %v = %d, %v: %s", args, code, err, out.String())
	}
	return out.String()
}

func TestSyncWritesIntoRunningContainer(t *testing.T) {
	cs, c := newTestContainer(t, "sleep", "1000")
	if _, err := cs.Start(c, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _ = cs.Get(c.ID)
	defer cs.Stop(c, syscall.SIGKILL, 0)

	src := filepath.Join(t.TempDir(), "index.html")
	os.WriteFile(src, []byte("v2"), 0o644)
	f, _ := os.Open(src)
	defer f.Close()
	err := c.Sync([]SyncFile{{Path: "/app/static/index.html", Mode: 0o644}, {Path: "/bin/true", Remove: true}}, []*os.File{f})
	if err != nil {
		t.Fatal(err)
	}
	if got := execOutput(t, c, "cat", "/app/static/index.html"); got != "v2" {
		t.Errorf("synced file = %q, want v2", got)
	}
	if got := execOutput(t, c, "sh", "-c", "test -e /bin/true && echo still || echo gone"); got != "gone\n" {
		t.Errorf("removed file: %q", got)
	}
	// Synced content lives in the writable layer: it survives a restart.
	if err := cs.Stop(c, syscall.SIGKILL, 0); err != nil {
		t.Fatal(err)
	}
	c, _ = cs.Get(c.ID)
	if _, err := cs.Start(c, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _ = cs.Get(c.ID)
	if got := execOutput(t, c, "cat", "/app/static/index.html"); got != "v2" {
		t.Errorf("after restart the synced file = %q, want v2", got)
	}
}

func TestRestartPolicyGivesUpAfterMaxRetries(t *testing.T) {
	cs, c := newTestContainer(t, "sh", "-c", "exit 1")
	c.Restart = RestartPolicy{Policy: "on-failure", MaxRetries: 2}
	c.SaveConfig()
	if _, err := cs.Start(c, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _ = cs.Get(c.ID)
	done, err := cs.Wait(c)
	if err != nil {
		t.Fatal(err)
	}
	if done.State.Status != StatusExited || done.State.RestartCount != 2 || done.State.ExitCode != 1 {
		t.Errorf("after on-failure:2 the state is %+v, want exited 1 after 2 restarts", done.State)
	}
}

func TestHealthcheckMarksHealthy(t *testing.T) {
	cs, c := newTestContainer(t, "sh", "-c", "touch /tmp/ready; exec sleep 1000")
	c.Healthcheck = &Healthcheck{Cmd: []string{"sh", "-c", "test -f /tmp/ready"}, Interval: 50 * time.Millisecond, Timeout: time.Second, Retries: 3}
	c.SaveConfig()
	if _, err := cs.Start(c, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := cs.Get(c.ID)
		if got.State.Health == HealthHealthy {
			cs.Stop(got, syscall.SIGKILL, 0)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy after 10s: %+v", got.State)
		}
		time.Sleep(20 * time.Millisecond) // polling the state the monitor writes
	}
}

func TestStopIsNotRestarted(t *testing.T) {
	cs, c := newTestContainer(t, "sleep", "1000")
	c.Restart = RestartPolicy{Policy: "always"}
	c.SaveConfig()
	if _, err := cs.Start(c, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _ = cs.Get(c.ID)
	if err := cs.Stop(c, syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	got, _ := cs.Get(c.ID)
	if got.State.Status != StatusExited {
		t.Errorf("after stop: %+v, want exited and not restarting", got.State)
	}
}
