package main

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// busyboxProject writes a project whose image "box" is a static busybox
// with its applets, plus extra nook.toml text, and returns its folder.
func busyboxProject(t *testing.T, extra string) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("busybox is missing: apt-get install busybox-static")
		}
		t.Skip("busybox is missing: apt-get install busybox-static")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "rootfs", "bin")
	os.MkdirAll(bin, 0o755)
	os.MkdirAll(filepath.Join(dir, "rootfs", "etc"), 0o755)
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755)
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range strings.Fields(string(list)) {
		if app != "busybox" {
			os.Symlink("busybox", filepath.Join(bin, app))
		}
	}
	os.WriteFile(filepath.Join(dir, "rootfs", "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	toml := "name = \"rs\"\n[images.box]\nfrom = \"scratch\"\ncmd = [\"sh\"]\n[[images.box.steps]]\ncopy = \"rootfs/\"\nto = \"/\"\n" + extra
	os.WriteFile(filepath.Join(dir, "nook.toml"), []byte(toml), 0o644)
	return dir
}

func TestRunStepBuildsLayerWithWhiteouts(t *testing.T) {
	dir := busyboxProject(t, `
[images.app]
from = "box"
[[images.app.steps]]
run = "mkdir -p /data && echo ok > /data/x && rm /bin/true"
`)
	root := t.TempDir()
	out, _ := mustNook(t, root, dir, "build")
	if !strings.Contains(out, "rs/app:latest sha256:") {
		t.Fatalf("build printed %q", out)
	}
	// The run step's layer holds the new file and a whiteout for the
	// deleted one, in OCI's format.
	var m struct{ Layers []struct{ Digest string } }
	manifest := inspectManifest(t, root, "rs/app")
	json.Unmarshal(manifest, &m)
	top := m.Layers[len(m.Layers)-1].Digest
	names := tarNames(t, filepath.Join(root, "oci", "blobs", "sha256", strings.TrimPrefix(top, "sha256:")))
	for _, want := range []string{"bin/.wh.true", "data/", "data/x"} {
		if !slices.Contains(names, want) {
			t.Errorf("run step layer %v lacks %q", names, want)
		}
	}
	// A container from the image sees the change.
	got, _ := mustNook(t, root, dir, "run", "--rm", "rs/app", "sh", "-c", "cat /data/x; test -e /bin/true || echo gone")
	if got != "ok\ngone\n" {
		t.Errorf("container output = %q, want ok and gone", got)
	}
	// Building again is all cache hits, the same image.
	if again, _ := mustNook(t, root, dir, "build"); again != out {
		t.Errorf("second build = %q, want %q", again, out)
	}
}

func inspectManifest(t *testing.T, root, image string) []byte {
	t.Helper()
	var idx struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	data, err := os.ReadFile(filepath.Join(root, "oci", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(data, &idx)
	for _, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == image+":latest" {
			data, err := os.ReadFile(filepath.Join(root, "oci", "blobs", "sha256", strings.TrimPrefix(m.Digest, "sha256:")))
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
	t.Fatalf("no image %s in the store", image)
	return nil
}

func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

func TestKeepIDFilesInBindMountsAreTheUsers(t *testing.T) {
	dir := busyboxProject(t, "")
	root := t.TempDir()
	mustNook(t, root, dir, "build")
	share := t.TempDir()
	os.Chmod(share, 0o777)
	// Twice: the first run unpacks the image inside nook's namespace; the
	// second finds it unpacked, and an ordinary user's CLI must still go
	// inside for the keep-id namespace, which nests in nook's.
	mustNook(t, root, dir, "run", "--rm", "--userns", "keep-id", "--network", "none", "rs/box", "true")
	out, _ := mustNook(t, root, dir, "run", "--rm", "--userns", "keep-id", "--network", "none", "-v", share+":/share", "rs/box", "sh", "-c", "touch /share/f; id -u; ulimit -n")
	lines := strings.Fields(out)
	// As root keep-id changes nothing: root's files are root's.
	if len(lines) != 2 || lines[0] != strconv.Itoa(os.Getuid()) {
		t.Errorf("id -u inside = %q, want %d, the caller's own uid", out, os.Getuid())
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(share, "f"), &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() {
		t.Errorf("file written in the bind mount is %d:%d, want %d:%d", st.Uid, st.Gid, os.Getuid(), os.Getgid())
	}
	if n, _ := strconv.Atoi(lines[len(lines)-1]); n <= 1024 {
		t.Errorf("ulimit -n inside = %s, want the hard limit (above 1024)", lines[len(lines)-1])
	}
	// A restart (which an ordinary user's CLI does from outside nook's
	// namespace) keeps the ids.
	mustNook(t, root, dir, "run", "-d", "--name", "kid", "--userns", "keep-id", "-v", share+":/share", "rs/box", "sleep", "1000")
	defer nookIn(t, root, dir, "rm", "-f", "kid")
	mustNook(t, root, dir, "restart", "-t", "0", "kid")
	mustNook(t, root, dir, "exec", "kid", "touch", "/share/g")
	if err := syscall.Stat(filepath.Join(share, "g"), &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() {
		t.Errorf("after a restart, a file written in the bind mount is %d:%d, want %d:%d", st.Uid, st.Gid, os.Getuid(), os.Getgid())
	}
}
