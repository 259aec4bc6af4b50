// Package atomicfile replaces files so that a reader, or a process killed
// halfway, sees the old content or the new, never part of either.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces name with what write writes to f (and whatever mode or
// owner it gives f): a temporary file in the same folder, mode 0600
// unless write changes it, renamed over name. With sync the data reaches the disk
// before the rename (the caller syncs the folder to make the rename
// durable too). On error name is unchanged and no temporary file is left.
func Write(name string, sync bool, write func(f *os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

// WriteFile is Write of data.
func WriteFile(name string, data []byte, sync bool) error {
	return Write(name, sync, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}
