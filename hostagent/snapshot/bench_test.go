package snapshot

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// BenchmarkSnapshot measures builtin create and restore throughput on a
// generated ~200 MB tree of mixed file sizes, half incompressible and half
// low-entropy. The tree is generated once and is in the page cache, so
// create measures the engine rather than the source disk; restore includes
// the fsync of every file.
func BenchmarkSnapshot(b *testing.B) {
	ctx := context.Background()
	root, size := makeBenchTree(b)
	newEngine := func(b *testing.B) *Builtin {
		e, err := NewBuiltin(filepath.Join(b.TempDir(), "snapshots"), hclog.NewNullLogger())
		require.NoError(b, err)
		return e
	}

	b.Run("create", func(b *testing.B) {
		e := newEngine(b)
		b.SetBytes(size)
		b.ResetTimer()
		for range b.N {
			meta, err := e.Create(ctx, "bench", []string{root}, ReasonManual)
			require.NoError(b, err)
			b.StopTimer()
			reportRatio(b, e, meta, size)
			require.NoError(b, e.Delete(ctx, meta.ID))
			b.StartTimer()
		}
	})

	b.Run("restore", func(b *testing.B) {
		e := newEngine(b)
		meta, err := e.Create(ctx, "bench", []string{root}, ReasonManual)
		require.NoError(b, err)
		b.SetBytes(size)
		b.ResetTimer()
		for range b.N {
			require.NoError(b, e.Restore(ctx, meta.ID))
		}
	})
}

// reportRatio reports the archive's size as a fraction of the tree's.
func reportRatio(b *testing.B, e *Builtin, meta Meta, size int64) {
	info, err := os.Stat(filepath.Join(e.dir, meta.ID, archiveFile))
	require.NoError(b, err)
	b.ReportMetric(float64(info.Size())/float64(size), "archive/tree")
}

// makeBenchTree writes 2,000 small files (4-64 KiB) across 40
// directories, 60 of 1 MiB and 4 of 20 MiB, and returns the root and the
// total size.
func makeBenchTree(b *testing.B) (string, int64) {
	b.Helper()
	root := filepath.Join(b.TempDir(), "state")
	rng := rand.New(rand.NewPCG(7, 7))
	src := rand.NewChaCha8([32]byte{7})
	var total int64
	files := 0
	write := func(rel string, n int) {
		p := filepath.Join(root, rel)
		require.NoError(b, os.MkdirAll(filepath.Dir(p), 0o755))
		data := make([]byte, n)
		_, _ = src.Read(data)
		// Every other file is low-entropy: 16 symbols, like text or
		// sparse pages, so about half the tree compresses.
		files++
		if files%2 == 0 {
			for i := range data {
				data[i] = 'a' + data[i]&0x0f
			}
		}
		require.NoError(b, os.WriteFile(p, data, 0o640))
		total += int64(n)
	}
	for i := range 2000 {
		write(fmt.Sprintf("small/%02d/%04d", i%40, i), 4<<10+rng.IntN(60<<10))
	}
	for i := range 60 {
		write(fmt.Sprintf("medium/%02d", i), 1<<20)
	}
	for i := range 4 {
		write(fmt.Sprintf("large/%d", i), 20<<20)
	}
	return root, total
}
