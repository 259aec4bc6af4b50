package rootless

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// The init's copy of nook must be byte for byte the running binary and
// carry every seal, whichever way it was copied.
func TestSealedSelfIsExactAndSealed(t *testing.T) {
	want, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		copy func(dst, src *os.File) error
	}{
		{"sendfile", sendfileAll},
		{"plain", copyPlain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := os.Open("/proc/self/exe")
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			mem, err := sealedCopy(src, tc.copy)
			if err != nil {
				t.Fatalf("sealedCopy: %v", err)
			}
			defer mem.Close()
			got, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(mem.Fd())))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("copy is %d bytes and differs from the %d-byte binary", len(got), len(want))
			}
			seals, err := unix.FcntlInt(mem.Fd(), unix.F_GET_SEALS, 0)
			if err != nil {
				t.Fatal(err)
			}
			all := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
			if seals&all != all {
				t.Errorf("seals = %#x, want %#x set", seals, all)
			}
			if _, err := mem.WriteAt([]byte("x"), 0); err == nil {
				t.Error("writing the sealed copy succeeded")
			}
		})
	}
}

// BenchmarkSealedSelf is the copy a monitor (or a project supervisor, for
// all its monitors) makes once.
func BenchmarkSealedSelf(b *testing.B) {
	for _, bc := range []struct {
		name string
		copy func(dst, src *os.File) error
	}{
		{"sendfile", sendfileAll},
		{"plain", copyPlain},
	} {
		b.Run(bc.name, func(b *testing.B) {
			src, err := os.Open("/proc/self/exe")
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			for b.Loop() {
				mem, err := sealedCopy(src, bc.copy)
				if err != nil {
					b.Fatal(err)
				}
				mem.Close()
			}
		})
	}
}

// overlaySelf gives the running binary, readable and executable, through
// a mount that takes no write, not even after a remount, and leaves
// nothing mounted in the caller's namespace.
func TestOverlaySelfRefusesWrites(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs CAP_SYS_ADMIN for a mount namespace; the unprivileged path is TestProcOneExeIsSealed in cmd/nook")
	}
	f, err := overlaySelf()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	path := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	got, err := os.ReadFile(path)
	want, _ := os.ReadFile("/proc/self/exe")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read through the overlay: %d bytes, %v; want the binary's %d", len(got), err, len(want))
	}
	if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		w.Close()
		t.Fatal("opened the binary for writing through the overlay")
	} else if !errors.Is(err, unix.EROFS) {
		t.Errorf("open for writing: %v, want EROFS", err)
	}
	// Clearing the read-only flag leaves a mount with no upper layer.
	if err := unix.MountSetattr(int(f.Fd()), "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}); err == nil {
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			w.Close()
			t.Fatal("opened the binary for writing after clearing MOUNT_ATTR_RDONLY")
		}
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mounts, []byte("nook-lower-")) {
		t.Errorf("overlaySelf left a mount in this process's namespace:\n%s", mounts)
	}
}
