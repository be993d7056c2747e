package hostagent

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/fsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// A full disk: while the agent cannot write its data_dir (here the lease
// record a renewal writes), its probe answer says so, typed; once a write
// succeeds again, it no longer does.
func TestAgent_DataDirUnwritable_ReportedInProbe(t *testing.T) {
	var full atomic.Bool
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped}, func(ta *testAgent) {
		ta.writeFile = func(path string, data []byte, durable bool) error {
			if full.Load() {
				return fmt.Errorf("write %s: %w", path, &os.PathError{Op: "write", Path: path + ".tmp-1", Err: syscall.ENOSPC})
			}
			return fsutil.WriteFile(path, data, durable)
		}
	})
	renew := func() *pb.ProbeResponse {
		resp, err := ta.client.Probe(ctxT(t), &pb.ProbeRequest{Epoch: 1, LeaderId: "s1", ActiveSite: "primary", LeaseTtlMs: 60000})
		require.NoError(t, err)
		return resp
	}
	require.Empty(t, renew().GetProblems())

	full.Store(true)
	problems := renew().GetProblems()
	require.Len(t, problems, 1)
	require.Equal(t, pb.HostProblemKind_HOST_PROBLEM_KIND_DATA_DIR_UNWRITABLE, problems[0].GetKind())
	require.Equal(t, "data_dir "+ta.dataDir+" not writable: no space left on device", problems[0].GetMessage())
	since := problems[0].GetSince().AsTime()
	again := renew().GetProblems()
	require.Len(t, again, 1, "reported while writes keep failing")
	require.Equal(t, since, again[0].GetSince().AsTime(), "since is when the failures began")

	full.Store(false)
	require.Empty(t, renew().GetProblems(), "cleared once a write succeeds again")
}

// A write that fails leaves no temporary file behind (a full disk used to
// leave an empty lease.tmp).
func TestWriteFile_FailureLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "lease")
	// A non-empty directory in the way: the rename fails after the
	// temporary file was written.
	require.NoError(t, os.MkdirAll(filepath.Join(target, "x"), 0o700))
	for _, durable := range []bool{false, true} {
		require.Error(t, fsutil.WriteFile(target, []byte("1\n"), durable))
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Len(t, entries, 1, "only the directory in the way is left: %v", entries)
	}
}
