// Command floor is the least a rootless container start must do, as a
// yardstick for nook: clone into new user, mount and pid namespaces (a
// single-id map, written by Go), mount an overlay of ROOTFS with a fresh
// upper and work folder, pivot_root into it, exec /bin/true, wait.
//
//	floor ROOTFS
//
// It re-executes itself for the part inside the namespaces, so it pays two
// Go process starts, like any Go runtime that cannot fork.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

const childArg = "floor-child"

func main() {
	var err error
	if len(os.Args) == 4 && os.Args[1] == childArg {
		err = child(os.Args[2], os.Args[3])
	} else if len(os.Args) == 2 {
		err = parent(os.Args[1])
	} else {
		err = fmt.Errorf("usage: floor ROOTFS")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "floor: %v\n", err)
		os.Exit(1)
	}
}

func parent(rootfs string) error {
	rootfs, err := filepath.Abs(rootfs)
	if err != nil {
		return err
	}
	// Upper, work and the mount point live next to the rootfs: overlay
	// wants upper and work on one filesystem.
	scratch, err := os.MkdirTemp(filepath.Dir(rootfs), "floor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(scratch, d), 0o755); err != nil {
			return err
		}
	}
	cmd := exec.Command("/proc/self/exe", childArg, rootfs, scratch)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	return cmd.Run()
}

// child runs as pid 1 and root of the new namespaces.
func child(rootfs, scratch string) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	merged := filepath.Join(scratch, "merged")
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work,userxattr", rootfs, scratch, scratch)
	if err := syscall.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay: %w", err)
	}
	if err := syscall.Chdir(merged); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on the new one; detaching
	// it leaves the new root alone, with no folder for the old one.
	if err := syscall.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := syscall.Unmount(".", syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := syscall.Chdir("/"); err != nil {
		return err
	}
	return syscall.Exec("/bin/true", []string{"true"}, []string{"PATH=/bin"})
}
