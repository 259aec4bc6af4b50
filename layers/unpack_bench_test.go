package layers

import (
	"archive/tar"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// utBenchTar writes a ~100 MB layer of 5,000 files in 250 directories to
// dir: mostly small files (1-8 KiB, like a package tree) and one in ten
// around 180 KiB (libraries), the shape the dev loop unpacks.
func utBenchTar(b *testing.B, dir string) string {
	b.Helper()
	name := filepath.Join(dir, "layer.tar")
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 256<<10)
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	tw := tar.NewWriter(f)
	for d := range 250 {
		dname := fmt.Sprintf("usr/lib/pkg%03d/", d)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dname, Mode: 0o755, ModTime: utTime}); err != nil {
			b.Fatal(err)
		}
		for i := range 20 {
			size := 1<<10 + rng.IntN(7<<10)
			if rng.IntN(10) == 0 {
				size = 150<<10 + rng.IntN(60<<10)
			}
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%sfile%02d", dname, i), Mode: 0o644, Size: int64(size), ModTime: utTime}
			if err := tw.WriteHeader(hdr); err != nil {
				b.Fatal(err)
			}
			if _, err := tw.Write(data[:size]); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return name
}

// BenchmarkUnpack compares Unpack with GNU tar -x on the same tar file;
// both read from the page cache and write to the same filesystem.
func BenchmarkUnpack(b *testing.B) {
	work := b.TempDir()
	tarball := utBenchTar(b, work)
	fi, err := os.Stat(tarball)
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, extract func(dir string) error) {
		b.SetBytes(fi.Size())
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			dir := filepath.Join(work, fmt.Sprintf("out%d", i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := extract(dir); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.Run("nook", func(b *testing.B) {
		run(b, func(dir string) error {
			f, err := os.Open(tarball)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = Unpack(f, dir, utOpts())
			return err
		})
	})
	b.Run("tar-x", func(b *testing.B) {
		tarBin, err := exec.LookPath("tar")
		if err != nil {
			b.Skip("no tar in PATH:", err)
		}
		run(b, func(dir string) error {
			out, err := exec.Command(tarBin, "-xf", tarball, "-C", dir).CombinedOutput()
			if err != nil {
				return fmt.Errorf("tar -x: %v: %s", err, out)
			}
			return nil
		})
	})
}
