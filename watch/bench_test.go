package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkEditToBatch measures one save, from the end of the write to the
// batch naming the file in the receiver's hands: the latency the watcher
// adds to nook's edit-to-ready loop. It should be Quiet plus a little; the
// "extra-ms" metric is that little. The tree has 50 folders and 500 files,
// so walking and matching costs are in it.
func BenchmarkEditToBatch(b *testing.B) {
	for _, quiet := range []time.Duration{DefaultQuiet, time.Millisecond} {
		b.Run(fmt.Sprintf("quiet=%v", quiet), func(b *testing.B) {
			root := b.TempDir()
			for i := range 500 {
				p := filepath.Join(root, fmt.Sprintf("pkg%02d/file%03d.go", i%50, i))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("package x\n"), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			w, err := New(root, Options{Quiet: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()

			target := filepath.Join(root, "pkg07/file007.go")
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := os.WriteFile(target, fmt.Appendf(nil, "package x // %d\n", i), 0o644); err != nil {
					b.Fatal(err)
				}
				wrote := time.Now()
				for {
					batch := <-w.Batches()
					if slices.Contains(batch.Paths, "pkg07/file007.go") {
						break
					}
				}
				total += time.Since(wrote)
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N)-float64(quiet.Microseconds())/1000, "extra-ms")
		})
	}
}
