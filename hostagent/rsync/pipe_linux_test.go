package rsync

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestGrowPipe(t *testing.T) {
	// The kernel may refuse (fs.pipe-max-size, or a user over its pipe
	// quota); growPipe then leaves the pipe alone, which is not tested.
	probe, probeW, err := os.Pipe()
	require.NoError(t, err)
	_, err = unix.FcntlInt(probe.Fd(), unix.F_SETPIPE_SZ, pipeSize)
	_, _ = probe.Close(), probeW.Close()
	if err != nil {
		t.Skipf("this user may not have %d-byte pipes: %v", pipeSize, err)
	}

	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	growPipe(r)
	size, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0)
	require.NoError(t, err)
	require.Equal(t, pipeSize, size)

	// Not pipes: left alone.
	growPipe(&bytes.Buffer{})
	f, err := os.CreateTemp(t.TempDir(), "file")
	require.NoError(t, err)
	defer f.Close()
	growPipe(f)
}
