package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nook-dev/nook/internal/testenv"
)

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	return strconv.Itoa(testenv.FreePort(t, "tcp"))
}

// shopCopy copies examples/shop to a temp folder, on free ports, and
// returns it and the web port.
func shopCopy(t *testing.T) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH: the shop's host steps compile with it")
	}
	dir := filepath.Join(t.TempDir(), "shop")
	if out, err := exec.Command("cp", "-r", filepath.Join("..", "..", "examples", "shop"), dir).CombinedOutput(); err != nil {
		t.Fatalf("copy shop: %v\n%s", err, out)
	}
	os.RemoveAll(filepath.Join(dir, ".nook"))
	web, api := freePort(t), freePort(t)
	toml, _ := os.ReadFile(filepath.Join(dir, "nook.toml"))
	s := strings.NewReplacer("8081", api, "8080", web).Replace(string(toml))
	os.WriteFile(filepath.Join(dir, "nook.toml"), []byte(s), 0o644)
	return dir, web
}

// shopUp brings a copy of the shop up in a store of its own, waits until
// it answers through web, and takes it down at the end. It returns the
// project folder, the store and web's base URL.
func shopUp(t *testing.T) (dir, root, base string) {
	t.Helper()
	dir, web := shopCopy(t)
	root = t.TempDir()
	mustNook(t, root, dir, "up", "-d")
	t.Cleanup(func() { nookIn(t, root, dir, "down") })
	base = "http://127.0.0.1:" + web
	eventually(t, "the shop to answer", func() (bool, string) {
		body := get(base + "/api/items")
		return strings.Contains(body, "teapot"), body
	})
	return dir, root, base
}

// get fetches a URL and returns its body, or "" when it does not answer.
func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// watchProc is a running `nook watch --explain` whose output is collected.
type watchProc struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out strings.Builder
}

func startWatch(t *testing.T, root, dir string) *watchProc {
	t.Helper()
	w := &watchProc{cmd: storeCmd(root, dir, "watch", "--explain")}
	pr, pw := io.Pipe()
	w.cmd.Stdout, w.cmd.Stderr = pw, pw
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			w.mu.Lock()
			w.out.WriteString(sc.Text() + "\n")
			w.mu.Unlock()
			if strings.Contains(sc.Text(), "watching") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	t.Cleanup(func() {
		w.cmd.Process.Signal(syscall.SIGTERM)
		w.cmd.Wait()
		pw.Close()
	})
	eventually(t, "nook watch to be ready", func() (bool, string) {
		select {
		case <-ready:
			return true, ""
		default:
			return false, w.output()
		}
	})
	return w
}

func (w *watchProc) output() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

// pidOf returns a project service's container init pid.
func pidOf(t *testing.T, root, dir, svc string) int {
	t.Helper()
	out, _ := mustNook(t, root, dir, "inspect", svc)
	var got []struct {
		State struct{ Pid int } `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect %s: %v\n%s", svc, err, out)
	}
	return got[0].State.Pid
}

func TestWatchShopRestartsOnlyWhatChanged(t *testing.T) {
	dir, root, base := shopUp(t)
	w := startWatch(t, root, dir)
	webPid, apiPid := pidOf(t, root, dir, "web"), pidOf(t, root, dir, "api")

	// A static file is synced into web: served at once, nothing restarts.
	edit(t, filepath.Join(dir, "static", "index.html"), "nook shop", "nook shop, synced")
	eventually(t, "the synced page", func() (bool, string) {
		body := get(base + "/")
		return strings.Contains(body, "nook shop, synced"), body + w.output()
	})
	if pidOf(t, root, dir, "web") != webPid || pidOf(t, root, dir, "api") != apiPid {
		t.Errorf("a synced static file restarted a container")
	}

	// An api change rebuilds and restarts api only.
	edit(t, filepath.Join(dir, "api", "main.go"), `{"teapot", 2400}`, `{"samovar", 2400}`)
	eventually(t, "the new api response through web", func() (bool, string) {
		body := get(base + "/api/items")
		return strings.Contains(body, "samovar"), body + w.output()
	})
	if pidOf(t, root, dir, "web") != webPid {
		t.Errorf("an api change restarted web")
	}
	if pidOf(t, root, dir, "api") == apiPid {
		t.Errorf("api was not restarted")
	}

	// A syntax error keeps the old api serving and shows the compiler's
	// error; fixing it recovers.
	apiPid = pidOf(t, root, dir, "api")
	edit(t, filepath.Join(dir, "api", "main.go"), `{"samovar", 2400}`, `{"samovar", 2400,,}`)
	eventually(t, "the compile error in the watch output", func() (bool, string) {
		out := w.output()
		return strings.Contains(out, "build failed") && strings.Contains(out, "syntax error"), out
	})
	if body := get(base + "/api/items"); !strings.Contains(body, "samovar") || pidOf(t, root, dir, "api") != apiPid {
		t.Errorf("after a failed build the old api should keep serving: %q", body)
	}
	edit(t, filepath.Join(dir, "api", "main.go"), `{"samovar", 2400,,}`, `{"urn", 2400}`)
	eventually(t, "the fixed api", func() (bool, string) {
		body := get(base + "/api/items")
		return strings.Contains(body, "urn"), body + w.output()
	})

	// Saving a file without changing it does nothing.
	apiPid = pidOf(t, root, dir, "api")
	data, _ := os.ReadFile(filepath.Join(dir, "api", "main.go"))
	os.WriteFile(filepath.Join(dir, "api", "main.go"), data, 0o644)
	// A sentinel change after it: once that is handled, the save was too.
	edit(t, filepath.Join(dir, "static", "style.css"), "h1", "h1 ")
	eventually(t, "the sentinel sync", func() (bool, string) {
		return strings.Count(w.output(), "synced web") >= 2, w.output()
	})
	if pidOf(t, root, dir, "api") != apiPid {
		t.Errorf("an identical save restarted api:\n%s", w.output())
	}
	// Two restarts in all: the api change and its fix; the broken build
	// and the identical save restarted nothing.
	if n := strings.Count(w.output(), "restarted api"); n != 2 {
		t.Errorf("api restarts in the watch output = %d, want 2:\n%s", n, w.output())
	}
}

func TestSyncIntoScratchSurvivesRestart(t *testing.T) {
	dir, root, base := shopUp(t)
	w := startWatch(t, root, dir)
	// web's image is FROM scratch: no shell, no tar, no cp inside.
	os.WriteFile(filepath.Join(dir, "static", "new.txt"), []byte("fresh\n"), 0o644)
	eventually(t, "the new file served", func() (bool, string) {
		body := get(base + "/new.txt")
		return body == "fresh\n", body + w.output()
	})
	mustNook(t, root, dir, "restart", "web")
	eventually(t, "the synced file after a restart", func() (bool, string) {
		body := get(base + "/new.txt")
		return body == "fresh\n", body
	})
}

// edit replaces old with new in a file, failing if old is not there.
func edit(t *testing.T, name, old, new string) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	if err := os.WriteFile(name, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}
