package rootless

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// procFiles returns a readFile that serves /proc paths from files (absent
// ones do not exist) and reads everything else from disk.
func procFiles(files map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if !strings.HasPrefix(name, "/proc/") {
			return os.ReadFile(name)
		}
		if v, ok := files[name]; ok {
			return []byte(v), nil
		}
		return nil, fs.ErrNotExist
	}
}

// status is how nook doctor shows c.
func status(c Check) string {
	switch {
	case !c.OK:
		return "FAIL"
	case c.Warning():
		return "warn"
	}
	return "ok"
}

// checkWant is what a test expects of a check: its status and strings its
// message and hint contain.
type checkWant struct {
	status    string
	msg, hint string
	absent    string // must appear in neither
}

func (w checkWant) verify(t *testing.T, c Check) {
	t.Helper()
	if got := status(c); got != w.status {
		t.Errorf("%s: status %s, want %s (message %q, hint %q)", c.Name, got, w.status, c.Message, c.Hint)
	}
	if !strings.Contains(c.Message, w.msg) {
		t.Errorf("%s: message %q, want it to contain %q", c.Name, c.Message, w.msg)
	}
	if !strings.Contains(c.Hint, w.hint) {
		t.Errorf("%s: hint %q, want it to contain %q", c.Name, c.Hint, w.hint)
	}
	if w.absent != "" && strings.Contains(c.Message+"\n"+c.Hint, w.absent) {
		t.Errorf("%s: message %q or hint %q contains %q", c.Name, c.Message, c.Hint, w.absent)
	}
	if (w.status == "ok") != (c.Hint == "") {
		t.Errorf("%s: status %s with hint %q: only failures and warnings have one", c.Name, w.status, c.Hint)
	}
}

func TestKernelVersions(t *testing.T) {
	tests := []struct {
		name, release string
		probesOK      bool
		want          checkWant
	}{
		{"Debian 12", "6.1.0-18-amd64", true, checkWant{status: "ok", msg: ">= 5.11", absent: "5.8"}},
		{"this machine's kind", "6.18.44-fc-v595", true, checkWant{status: "ok"}},
		{"exactly 5.11", "5.11.0", false, checkWant{status: "ok"}},
		{"Debian 11", "5.10.0-28-amd64", false, checkWant{status: "FAIL", msg: "5.10.0-28-amd64 < 5.11", hint: "upgrade to Linux 5.11", absent: "sudo"}},
		{"Ubuntu 20.04 with its overlay patch", "5.4.0-150-generic", true, checkWant{status: "warn", msg: "probes pass", hint: "5.11"}},
		{"before unprivileged whiteouts", "5.4.0", false, checkWant{status: "FAIL", msg: "< 5.8: no unprivileged whiteouts", hint: "5.11"}},
		{"5.8 has whiteouts", "5.8.0", false, checkWant{status: "FAIL", msg: "< 5.11", absent: "whiteouts"}},
		{"unparsable", "mainline", false, checkWant{status: "ok", msg: "not recognised"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &doctor{release: tt.release, euid: 1000}
			c := d.kernel(tt.probesOK)
			if c.Name != "kernel" {
				t.Errorf("name = %q", c.Name)
			}
			tt.want.verify(t, c)
		})
	}
}

func TestUsernsSysctls(t *testing.T) {
	const max, clone = "/proc/sys/user/max_user_namespaces", "/proc/sys/kernel/unprivileged_userns_clone"
	tests := []struct {
		name  string
		euid  int
		files map[string]string
		want  checkWant
	}{
		{"upstream kernel", 1000, map[string]string{max: "96365\n"}, checkWant{status: "ok", msg: "user.max_user_namespaces=96365"}},
		{"Debian 10 knob on", 1000, map[string]string{max: "63229\n", clone: "1\n"},
			checkWant{status: "ok", msg: "kernel.unprivileged_userns_clone=1"}},
		{"Debian 10 knob off", 1000, map[string]string{max: "63229\n", clone: "0\n"},
			checkWant{status: "FAIL", msg: "kernel.unprivileged_userns_clone=0 (must be 1)",
				hint: "sudo sysctl -w kernel.unprivileged_userns_clone=1\necho 'kernel.unprivileged_userns_clone = 1' | sudo tee -a /etc/sysctl.d/90-nook-userns.conf"}},
		{"knob off does not stop root", 0, map[string]string{max: "63229\n", clone: "0\n"},
			checkWant{status: "ok", msg: "(does not apply to root)"}},
		{"max 0", 1000, map[string]string{max: "0\n"},
			checkWant{status: "FAIL", msg: "user.max_user_namespaces=0 disables them", hint: "sudo sysctl -w user.max_user_namespaces=28633"}},
		{"max 0 stops root too, no sudo", 0, map[string]string{max: "0\n"},
			checkWant{status: "FAIL", hint: "sysctl -w user.max_user_namespaces=28633", absent: "sudo"}},
		{"both off", 1000, map[string]string{max: "0", clone: "0"},
			checkWant{status: "FAIL", msg: "disables them; kernel.unprivileged_userns_clone=0", hint: "28633\necho"}},
		{"no CONFIG_USER_NS", 1000, map[string]string{}, checkWant{status: "FAIL", msg: "CONFIG_USER_NS", hint: "CONFIG_USER_NS=y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &doctor{readFile: procFiles(tt.files), euid: tt.euid}
			tt.want.verify(t, d.userns())
		})
	}
}

func TestUbuntuAppArmorRestriction(t *testing.T) {
	const knob = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
	const exe = "/home/ann/.local/bin/nook"
	withProfile := t.TempDir()
	os.MkdirAll(filepath.Join(withProfile, "local"), 0o755)
	os.WriteFile(filepath.Join(withProfile, "nook"), []byte("abi <abi/4.0>,\nprofile nook "+exe+" flags=(unconfined) {\n  userns,\n}\n"), 0o644)
	otherProfile := t.TempDir()
	os.WriteFile(filepath.Join(otherProfile, "podman"), []byte("profile podman /usr/bin/podman flags=(unconfined) {\n  userns,\n}\n"), 0o644)

	tests := []struct {
		name        string
		euid        int
		knob        string // "" for absent
		apparmorDir string
		want        checkWant
	}{
		{"Debian: no knob", 1000, "", otherProfile, checkWant{status: "ok", msg: "not present"}},
		{"Ubuntu 22.04: knob off", 1000, "0\n", otherProfile, checkWant{status: "ok", msg: "=0"}},
		{"Ubuntu 24.04 root", 0, "1\n", otherProfile, checkWant{status: "ok", msg: "not for root"}},
		{"Ubuntu 24.04 with nook's profile", 1000, "1\n", withProfile,
			checkWant{status: "ok", msg: "restricted; " + filepath.Join(withProfile, "nook") + " allows userns for " + exe}},
		{"Ubuntu 24.04 without a profile", 1000, "1\n", otherProfile, checkWant{status: "FAIL",
			msg: "kernel.apparmor_restrict_unprivileged_userns=1 blocks user namespaces",
			hint: "put this profile in " + otherProfile + "/nook\n" +
				"  abi <abi/4.0>,\n" +
				"  include <tunables/global>\n" +
				"  profile nook " + exe + " flags=(unconfined) {\n" +
				"    userns,\n" +
				"    include if exists <local/nook>\n" +
				"  }\n" +
				"and load it: sudo apparmor_parser -r " + otherProfile + "/nook\n" +
				"or lift the restriction for every program: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			if tt.knob != "" {
				files[knob] = tt.knob
			}
			d := &doctor{readFile: procFiles(files), euid: tt.euid, exe: exe, apparmorDir: tt.apparmorDir}
			tt.want.verify(t, d.apparmor())
		})
	}
}

func TestInotifyLimits(t *testing.T) {
	const watches, instances = "/proc/sys/fs/inotify/max_user_watches", "/proc/sys/fs/inotify/max_user_instances"
	tests := []struct {
		name                   string
		files                  map[string]string
		wantWatches, wantInsts checkWant
	}{
		{"Debian defaults on 8 GB", map[string]string{watches: "65536\n", instances: "128\n"},
			checkWant{status: "ok", msg: "fs.inotify.max_user_watches=65536"}, checkWant{status: "ok", msg: "fs.inotify.max_user_instances=128"}},
		{"old 8192 default", map[string]string{watches: "8192\n", instances: "128\n"},
			checkWant{status: "warn", msg: "fs.inotify.max_user_watches=8192 < 65536",
				hint: "sudo sysctl -w fs.inotify.max_user_watches=524288\n" +
					"echo 'fs.inotify.max_user_watches = 524288' | sudo tee -a /etc/sysctl.d/90-nook-inotify.conf"},
			checkWant{status: "ok"}},
		{"few instances", map[string]string{watches: "524288", instances: "64"},
			checkWant{status: "ok"},
			checkWant{status: "warn", msg: "=64 < 128", hint: "sudo sysctl -w fs.inotify.max_user_instances=512\n"}},
		{"garbage", map[string]string{watches: "lots", instances: "128"},
			checkWant{status: "warn", msg: `"lots" is not a number`, hint: "=524288"}, checkWant{status: "ok"}},
		{"no inotify", map[string]string{},
			checkWant{status: "warn", msg: "not readable", hint: "CONFIG_INOTIFY_USER"}, checkWant{status: "warn", msg: "not readable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &doctor{readFile: procFiles(tt.files), euid: 1000}
			w, i := d.inotify()
			tt.wantWatches.verify(t, w)
			tt.wantInsts.verify(t, i)
		})
	}
}

func TestUnprivilegedPortsIsNeverAFailure(t *testing.T) {
	const knob = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
	tests := []struct {
		name  string
		euid  int
		value string // "" for absent
		want  string
	}{
		{"default", 1000, "1024\n", "net.ipv4.ip_unprivileged_port_start=1024: ports below 1024 cannot be published " +
			"(sudo sysctl -w net.ipv4.ip_unprivileged_port_start=80 allows 80 and up)"},
		{"root", 0, "1024\n", "net.ipv4.ip_unprivileged_port_start=1024 (root can publish any port)"},
		{"lowered to 80", 1000, "80\n", "net.ipv4.ip_unprivileged_port_start=80: ports below 80 cannot be published"},
		{"zero", 1000, "0\n", "=0: any port can be published"},
		{"before Linux 4.11", 1000, "", "not present: ports below 1024 need root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			if tt.value != "" {
				files[knob] = tt.value
			}
			d := &doctor{readFile: procFiles(files), euid: tt.euid}
			checkWant{status: "ok", msg: tt.want}.verify(t, d.ports())
		})
	}
}

func TestCgroupLayout(t *testing.T) {
	tests := []struct{ name, mounts, want string }{
		{"v2 (Debian 12 with systemd)", "sysfs /sys sysfs rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n", "v2 (/sys/fs/cgroup)"},
		{"hybrid (these test machines)", "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n" +
			"cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n" +
			"cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n" +
			"cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
			"hybrid: v1 (cpu,cpuacct, memory) and v2 at /sys/fs/cgroup/unified"},
		{"v1", "cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n", "v1 (pids)"},
		{"escaped mount point", `cgroup2 /run/my\040cgroup cgroup2 rw 0 0` + "\n", "v2 (/run/my cgroup)"},
		{"none", "proc /proc proc rw 0 0\n", "none mounted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cgroupLayout(tt.mounts); got != tt.want {
				t.Errorf("cgroupLayout() = %q, want %q", got, tt.want)
			}
		})
	}
	d := &doctor{readFile: procFiles(map[string]string{"/proc/self/mounts": tests[0].mounts}), euid: 1000}
	checkWant{status: "ok", msg: "v2 (/sys/fs/cgroup): resource limits (memory, cpus, pids) are not enforced rootless here"}.verify(t, d.cgroups())
}

func TestTunMode(t *testing.T) {
	const chr = unix.S_IFCHR
	tests := []struct {
		name    string
		statErr error
		mode    uint32
		openErr error
		want    checkWant
	}{
		{"Debian with udev", nil, chr | 0o666, nil, checkWant{status: "ok", msg: "mode 0666, ann can open it read-write"}},
		{"no udev", nil, chr | 0o600, unix.EACCES, checkWant{status: "warn",
			msg: "mode 0600 root:root: ann cannot open it (no udev?), so pasta and slirp4netns fail", hint: "sudo chmod 0666 /dev/net/tun"}},
		{"no tun module", fs.ErrNotExist, 0, nil, checkWant{status: "warn", msg: "does not exist",
			hint: "sudo modprobe tun && sudo chmod 0666 /dev/net/tun"}},
		{"not a device", nil, unix.S_IFREG | 0o644, nil, checkWant{status: "warn", msg: "not a character device (mode 0644)",
			hint: "sudo mknod -m 0666 /dev/net/tun c 10 200"}},
		{"driver gone", nil, chr | 0o666, unix.ENODEV, checkWant{status: "warn", msg: "no such device", hint: "sudo modprobe tun"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tunCheck("ann", tt.statErr, tt.mode, "root:root", tt.openErr, "sudo ")
			if c.Name != "/dev/net/tun" {
				t.Errorf("name = %q", c.Name)
			}
			tt.want.verify(t, c)
		})
	}
}

func TestIDHelpers(t *testing.T) {
	// security.capability as setcap cap_setuid=ep (revision 2) and
	// cap_setgid=ep (revision 3, with a root uid) write it.
	capSetuid := []byte{1, 0, 0, 2, 1 << 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	capSetgid := []byte{1, 0, 0, 3, 1 << 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	tests := []struct {
		name, helper string
		mode, owner  uint32
		caps         []byte
		want         checkWant
	}{
		{"Debian uidmap", "newuidmap", unix.S_IFREG | unix.S_ISUID | 0o755, 0, nil, checkWant{status: "ok", msg: "/usr/bin/newuidmap (setuid root)"}},
		{"Fedora file caps", "newuidmap", unix.S_IFREG | 0o755, 0, capSetuid, checkWant{status: "ok", msg: "(file capability cap_setuid)"}},
		{"Fedora newgidmap", "newgidmap", unix.S_IFREG | 0o755, 0, capSetgid, checkWant{status: "ok", msg: "cap_setgid"}},
		{"wrong capability", "newgidmap", unix.S_IFREG | 0o755, 0, capSetuid, checkWant{status: "FAIL", msg: "nor has cap_setgid"}},
		{"setuid bit lost in a copy", "newuidmap", unix.S_IFREG | 0o755, 0, nil, checkWant{status: "FAIL",
			msg: "/usr/bin/newuidmap is neither setuid root nor has cap_setuid", hint: "sudo apt-get install --reinstall uidmap"}},
		{"setuid but not root's", "newuidmap", unix.S_IFREG | unix.S_ISUID | 0o755, 1000, nil, checkWant{status: "FAIL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.verify(t, idHelperCheck(tt.helper, "/usr/bin/"+tt.helper, tt.mode, tt.owner, tt.caps, "sudo "))
		})
	}

	d := &doctor{euid: 1000, lookPath: func(string) (string, error) { return "", errors.New("not found") }}
	checkWant{status: "FAIL", msg: "not installed (package uidmap)", hint: "sudo apt-get install uidmap"}.verify(t, d.idHelper("newuidmap"))
	d.euid = 0
	checkWant{status: "ok", msg: "not needed for root"}.verify(t, d.idHelper("newgidmap"))
}

func TestSubIDRanges(t *testing.T) {
	const missing, more = "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ann", "sudo usermod --add-subuids 165536-231071 ann"
	tests := []struct {
		name   string
		ranges []IDRange
		want   checkWant
	}{
		{"useradd's default", []IDRange{{100000, 65536}}, checkWant{status: "ok", msg: "100000-165535 (65536 ids) for ann"}},
		{"two ranges", []IDRange{{100000, 1000}, {300000, 65536}}, checkWant{status: "ok", msg: "100000-100999, 300000-365535 (66536 ids)"}},
		{"none", nil, checkWant{status: "FAIL", msg: "none for ann in /etc/subuid", hint: missing}},
		{"too few", []IDRange{{100000, 1000}}, checkWant{status: "warn", msg: "(1000 ids) for ann; images may need 65536", hint: more}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.verify(t, subIDCheck("subuid range", "/etc/subuid", "ann", tt.ranges, missing, more))
		})
	}
}

func TestStoreOnNearestExistingParent(t *testing.T) {
	d := &doctor{euid: os.Geteuid(), uid: os.Getuid(), gid: os.Getgid(), user: "ann"}
	home := t.TempDir()
	file := filepath.Join(home, "file")
	os.WriteFile(file, nil, 0o644)

	c, dir := d.store(home)
	checkWant{status: "ok", msg: home + " ("}.verify(t, c)
	if dir != home {
		t.Errorf("store(%q) probes %q, want the store itself", home, dir)
	}
	root := filepath.Join(home, ".local", "share", "nook")
	c, dir = d.store(root)
	checkWant{status: "ok", msg: root + " does not exist yet; nook creates it in " + home}.verify(t, c)
	if dir != home {
		t.Errorf("store(%q) probes %q, want its nearest existing parent %q", root, dir, home)
	}
	c, dir = d.store(file)
	checkWant{status: "FAIL", msg: "is not a directory"}.verify(t, c)
	if dir != os.TempDir() {
		t.Errorf("store(%q) probes %q, want %q", file, dir, os.TempDir())
	}

	if os.Geteuid() == 0 {
		t.Skip("root may write to any directory: the unwritable-parent case needs an unprivileged user")
	}
	locked := filepath.Join(home, "locked")
	os.Mkdir(locked, 0o500)
	c, dir = d.store(filepath.Join(locked, "nook"))
	checkWant{status: "FAIL", msg: "ann cannot write to " + locked, hint: "sudo install -d -o "}.verify(t, c)
	if dir != os.TempDir() {
		t.Errorf("store under a read-only dir probes %q, want %q", dir, os.TempDir())
	}
}

// TestDoctorOnThisMachine runs every check for real: the probe's checks
// must pass wherever nook's namespace can be entered.
func TestDoctorOnThisMachine(t *testing.T) {
	requireUserns(t)
	checks := Doctor(filepath.Join(t.TempDir(), "share", "nook"))
	var names []string
	for _, c := range checks {
		t.Logf("%-4s %-18s %s %s", status(c), c.Name, c.Message, c.Hint)
		names = append(names, c.Name)
		switch c.Name {
		case "userns", "uid", "idmap", "overlay", "whiteout":
			if !c.OK {
				t.Errorf("probe check %s failed: %s (hint: %s)", c.Name, c.Message, c.Hint)
			}
		}
		if c.Message == "" {
			t.Errorf("check %s has no message", c.Name)
		}
	}
	want := "kernel|user namespaces|AppArmor userns|newuidmap|newgidmap|subuid range|subgid range|store|" +
		"userns|uid|idmap|overlay|whiteout|" +
		"network helper|nft|/dev/net/tun|inotify watches|inotify instances|unprivileged ports|cgroups"
	if got := strings.Join(names, "|"); got != want {
		t.Errorf("Doctor() checks\n%s\nwant\n%s", got, want)
	}
}
