package rsync

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchSize is the tree BenchmarkPull pulls: about 50 MB in 2,000 files so
// that `go test -bench` stays quick, or 1 GiB in 10,000 files with
// DRPLANE_BENCH_FULL=1.
func benchSize() (bytes int64, files int) {
	if os.Getenv("DRPLANE_BENCH_FULL") == "1" {
		return 1 << 30, 10000
	}
	return 50 << 20, 2000
}

// generateTree writes files of random, incompressible content under root,
// a hundred per directory, sizes spread around bytes/files. It returns
// the files' paths.
func generateTree(b *testing.B, root string, bytes int64, files int) []string {
	b.Helper()
	stream := rand.NewChaCha8([32]byte{1})
	rng := rand.New(stream)
	avg := bytes / int64(files)
	paths := make([]string, 0, files)
	for i := range files {
		p := filepath.Join(root, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d.dat", i))
		require.NoError(b, os.MkdirAll(filepath.Dir(p), 0o755))
		size := avg/2 + rng.Int64N(avg+1) // avg/2 .. 3avg/2
		f, err := os.Create(p)
		require.NoError(b, err)
		_, err = io.CopyN(f, stream, size)
		require.NoError(b, err)
		require.NoError(b, f.Close())
		paths = append(paths, p)
	}
	return paths
}

// changeFiles overwrites 4 KiB in the middle of every hundredth file,
// starting at offset, leaving sizes alone: rsync's delta transfer applies.
func changeFiles(b *testing.B, paths []string, offset int, rng *rand.Rand) {
	b.Helper()
	buf := make([]byte, 4096)
	for i := offset % 100; i < len(paths); i += 100 {
		f, err := os.OpenFile(paths[i], os.O_WRONLY, 0)
		require.NoError(b, err)
		info, err := f.Stat()
		require.NoError(b, err)
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		_, err = f.WriteAt(buf, info.Size()/2)
		require.NoError(b, err)
		require.NoError(b, f.Close())
	}
}

// pullBench pulls one tree through the tunnel and copies it with a plain
// local rsync, timing each separately.
type pullBench struct {
	opts          PullOptions
	src, localDst string
	tunnel, local time.Duration
	received      int64
	transferred   int64
}

// pull times one Pull; the benchmark timer runs only here.
func (pb *pullBench) pull(b *testing.B) {
	b.StartTimer()
	start := time.Now()
	res, err := Pull(b.Context(), pb.opts)
	pb.tunnel += time.Since(start)
	b.StopTimer()
	require.NoError(b, err)
	pb.received += res.ReceivedBytes
	pb.transferred += res.TransferredFiles
}

// copyLocal times `rsync -a --delete src/ localDst/`.
func (pb *pullBench) copyLocal(b *testing.B) {
	start := time.Now()
	out, err := exec.Command(pb.opts.RsyncBin, "-a", "--delete", pb.src+"/", pb.localDst+"/").CombinedOutput()
	pb.local += time.Since(start)
	require.NoError(b, err, "local rsync: %s", out)
}

// report adds the per-pull metrics.
func (pb *pullBench) report(b *testing.B) {
	n := float64(b.N)
	b.ReportMetric(pb.tunnel.Seconds()*1000/n, "tunnel-ms/op")
	b.ReportMetric(pb.local.Seconds()*1000/n, "local-ms/op")
	b.ReportMetric(pb.tunnel.Seconds()/pb.local.Seconds(), "tunnel/local")
	b.ReportMetric(float64(pb.transferred)/n, "files/op")
	b.ReportMetric(float64(pb.received)/n/(1<<20), "wire-MiB/op")
}

// BenchmarkPull pulls a generated tree through the tunnel (ns/op and
// tunnel-ms/op) and copies it with a plain local `rsync -a --delete`
// (local-ms/op): "full" into empty directories, "incremental" after
// changing 1% of the files.
func BenchmarkPull(b *testing.B) {
	size, count := benchSize()
	rsyncBin := requireRsync(b)
	pki := newTestPKI(b)
	src, work := filepath.Join(b.TempDir(), "state"), b.TempDir()
	paths := generateTree(b, src, size, count)
	agent := startServingAgent(b, pki, map[string][]string{"app-state": {src}}, rsyncBin)
	newBench := func() *pullBench {
		return &pullBench{src: src, localDst: filepath.Join(work, "local"), opts: PullOptions{
			RsyncBin: rsyncBin, Self: self(b), Delete: true,
			Tunnel:     tunnelOptions(pki.dir, drAgent, agent.addr, "app-state"),
			RemotePath: src, LocalPath: filepath.Join(work, "tunnel"),
		}}
	}
	clean := func() {
		require.NoError(b, os.RemoveAll(filepath.Join(work, "tunnel")))
		require.NoError(b, os.RemoveAll(filepath.Join(work, "local")))
	}

	b.Run("full", func(b *testing.B) {
		pb := newBench()
		b.SetBytes(size)
		b.StopTimer()
		for range b.N {
			clean()
			pb.pull(b)
			pb.copyLocal(b)
		}
		pb.report(b)
	})

	b.Run("incremental", func(b *testing.B) {
		pb := newBench()
		clean()
		b.StopTimer()
		pb.pull(b) // the first, full pull is not measured
		pb.copyLocal(b)
		*pb = *newBench()
		b.ResetTimer()
		rng := rand.New(rand.NewChaCha8([32]byte{2}))
		for i := range b.N {
			changeFiles(b, paths, i, rng)
			pb.pull(b)
			pb.copyLocal(b)
		}
		pb.report(b)
	})
}
