package rsync

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
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

// pullBench times, for one tree, pulls through the tunnel and two local
// copies of the same tree:
//
//   - local, the baseline of tunnel/local: `rsync` with Pull's own options
//     (pullFlags and --delete-delay, which the agent always adds) and
//     --no-whole-file, into another directory. Only the transport differs
//     from a pull: rsync's sender, receiver and generator do the same
//     work, talking over a socketpair instead of the tunnel. Between two
//     local paths rsync copies whole files unless told --no-whole-file,
//     while a pull always uses the delta algorithm, so without it the
//     incremental case would compare two algorithms rather than a
//     transport with none.
//   - plain, for reference: `rsync -a --delete`, rsync's defaults for a
//     local copy (whole files, no --delay-updates), as earlier
//     measurements of the tunnel used.
//
// The tunnel's remote shell is this test binary (see TestMain), which
// starts somewhat faster than the drplane binary with its larger init.
//
// Besides wall time, pulls and the baseline report their CPU time: on a
// shared machine wall time follows the other load, while CPU time shows
// what the tunnel costs. A pull's counts both agents, since the serving
// one runs in this process, and every process of the pull.
type pullBench struct {
	opts                    PullOptions
	src, localDst, plainDst string
	tunnel, local, plain    time.Duration
	tunnelCPU, localCPU     time.Duration
	received, transferred   int64
}

// benchSteps rotates the order of the three copies from one step to the
// next, across runs too, so that none always runs while the writes of
// another one are being flushed.
var benchSteps atomic.Int64

// step pulls once and copies locally twice, in rotating order.
func (pb *pullBench) step(b *testing.B) {
	runs := []func(*testing.B){pb.pull, pb.copyLocal, pb.copyPlain}
	k := int(benchSteps.Add(1))
	for i := range runs {
		runs[(k+i)%len(runs)](b)
	}
}

// pull times one Pull; the benchmark timer runs only here.
func (pb *pullBench) pull(b *testing.B) {
	cpu := cpuTime()
	b.StartTimer()
	start := time.Now()
	res, err := Pull(b.Context(), pb.opts)
	pb.tunnel += time.Since(start)
	b.StopTimer()
	pb.tunnelCPU += cpuTime() - cpu
	require.NoError(b, err)
	pb.received += res.ReceivedBytes
	pb.transferred += res.TransferredFiles
}

// copyLocal times the baseline: the pull's rsync without the tunnel.
func (pb *pullBench) copyLocal(b *testing.B) {
	args := append(slices.Clone(pullFlags), "--delete-delay", "--no-whole-file", pb.src+"/", pb.localDst+"/")
	cpu := cpuTime()
	pb.local += runRsync(b, pb.opts.RsyncBin, args...)
	pb.localCPU += cpuTime() - cpu
}

// copyPlain times `rsync -a --delete src/ plain/`.
func (pb *pullBench) copyPlain(b *testing.B) {
	pb.plain += runRsync(b, pb.opts.RsyncBin, "-a", "--delete", pb.src+"/", pb.plainDst+"/")
}

// runRsync runs rsync with args and returns how long it took.
func runRsync(b *testing.B, rsyncBin string, args ...string) time.Duration {
	cmd := exec.Command(rsyncBin, args...)
	cmd.Env = rsyncEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run() // stdout, --stats and progress, is discarded
	elapsed := time.Since(start)
	require.NoError(b, err, "local rsync: %s", stderr.String())
	return elapsed
}

// cpuTime is the user and system time of this process and of its
// children, theirs included, that have been waited for.
func cpuTime() time.Duration {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano())
}

// report adds the per-pull metrics.
func (pb *pullBench) report(b *testing.B) {
	n := float64(b.N)
	b.ReportMetric(pb.tunnel.Seconds()*1000/n, "tunnel-ms/op")
	b.ReportMetric(pb.local.Seconds()*1000/n, "local-ms/op")
	b.ReportMetric(pb.plain.Seconds()*1000/n, "plain-ms/op")
	b.ReportMetric(pb.tunnel.Seconds()/pb.local.Seconds(), "tunnel/local")
	b.ReportMetric(pb.tunnel.Seconds()/pb.plain.Seconds(), "tunnel/plain")
	b.ReportMetric(pb.tunnelCPU.Seconds()*1000/n, "tunnel-cpu-ms/op")
	b.ReportMetric(pb.localCPU.Seconds()*1000/n, "local-cpu-ms/op")
	b.ReportMetric(pb.tunnelCPU.Seconds()/pb.localCPU.Seconds(), "tunnel/local-cpu")
	b.ReportMetric(float64(pb.transferred)/n, "files/op")
	b.ReportMetric(float64(pb.received)/n/(1<<20), "wire-MiB/op")
}

// BenchmarkPull pulls a generated tree through the tunnel (ns/op, MB/s
// and tunnel-ms/op) and copies it locally as pullBench describes
// (local-ms/op, plain-ms/op), reporting the ratios tunnel/local, the
// tunnel's cost, tunnel/plain and tunnel/local-cpu: "full" into empty
// directories, "incremental" after changing 1% of the files.
func BenchmarkPull(b *testing.B) {
	size, count := benchSize()
	rsyncBin := requireRsync(b)
	pki := newTestPKI(b)
	src, work := filepath.Join(b.TempDir(), "state"), b.TempDir()
	paths := generateTree(b, src, size, count)
	agent := startServingAgent(b, pki, map[string][]string{"app-state": {src}}, rsyncBin)
	dsts := []string{filepath.Join(work, "tunnel"), filepath.Join(work, "local"), filepath.Join(work, "plain")}
	newBench := func() *pullBench {
		return &pullBench{src: src, localDst: dsts[1], plainDst: dsts[2], opts: PullOptions{
			RsyncBin: rsyncBin, Self: self(b), Delete: true,
			Tunnel:     tunnelOptions(pki.dir, drAgent, agent.addr, "app-state"),
			RemotePath: src, LocalPath: dsts[0],
		}}
	}
	clean := func() {
		for _, d := range dsts {
			require.NoError(b, os.RemoveAll(d))
			require.NoError(b, os.MkdirAll(d, 0o700))
		}
	}

	b.Run("full", func(b *testing.B) {
		pb := newBench()
		b.SetBytes(size)
		b.StopTimer()
		for range b.N {
			clean()
			pb.step(b)
		}
		pb.report(b)
	})

	b.Run("incremental", func(b *testing.B) {
		pb := newBench()
		clean()
		b.StopTimer()
		pb.step(b) // the first, full copies are not measured
		*pb = *newBench()
		b.ResetTimer()
		rng := rand.New(rand.NewChaCha8([32]byte{2}))
		for i := range b.N {
			changeFiles(b, paths, i, rng)
			pb.step(b)
		}
		pb.report(b)
	})
}
