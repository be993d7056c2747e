package e2e

import (
	"bytes"
	"cmp"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// TestAgentRsync_PullDeclaredRefuseOthers runs two agent processes: the dr
// agent pulls the primary agent's sync blocks over their mutual TLS
// channel with the real rsync, on the leader's rsync step and on the
// block's interval, and new, changed and deleted files arrive. rsync run
// by hand with the dr agent's certificate shows that the serving agent
// itself refuses undeclared paths and blocks, and certificates of another
// CA.
func TestAgentRsync_PullDeclaredRefuseOthers(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skipf("rsync is not installed: %v", err)
	}
	// Both agents run on this machine, and a sync block mirrors a path
	// into the same path: the dr agent gets its own disk mounted there.
	if err := devcluster.MountNamespaces(); err != nil {
		t.Skipf("the dr agent needs its own mount namespace: %v", err)
	}
	root := t.TempDir()
	// state and logs are the paths both hosts declare; seen from here they
	// are the primary host's. drDisk holds what the dr host sees there.
	state, logs, secret := filepath.Join(root, "state"), filepath.Join(root, "logs"), filepath.Join(root, "secret")
	drState, drLogs := filepath.Join(root, "dr-disk", "state"), filepath.Join(root, "dr-disk", "logs")
	for _, d := range []string{state, logs, secret, drState, drLogs} {
		require.NoError(t, os.MkdirAll(d, 0o700))
	}
	writeFiles(t, secret, map[string]string{"key": "not for the dr site"})

	c := newAgentCluster(t, "primary")
	ctx := testContext(t, 2*time.Minute)
	primary := startAgent(t, c, devcluster.AgentSpec{HostID: "app-a", Site: "primary", Syncs: []config.SyncConfig{
		{Name: "state", Paths: []string{state}},
		{Name: "logs", Paths: []string{logs}},
	}})
	dr := startAgent(t, c, devcluster.AgentSpec{HostID: "app-b", Site: "dr",
		Syncs: []config.SyncConfig{
			// state is pulled by the leader's steps: its interval is too
			// long to ever come round during the test.
			{Name: "state", Paths: []string{state}, Interval: time.Hour},
			{Name: "logs", Paths: []string{logs}, Source: primary.GRPCAddr, Interval: 500 * time.Millisecond},
		},
		Mounts: []devcluster.Mount{{Source: drState, Target: state}, {Source: drLogs, Target: logs}},
	})

	// The leader's rsync step: new files arrive, then a changed file (of
	// another size, so rsync's quick check cannot miss it), a new one,
	// and a deletion.
	pull := func(stepID string) *pb.StepResult {
		t.Helper()
		lines, res, err := c.Execute(ctx, dr, &pb.ExecuteRequest{ExecutionId: "e2e-rsync", StepId: stepID, Epoch: 1,
			Action: pb.StepAction_STEP_ACTION_RSYNC, Target: "state", Args: map[string]string{"source": primary.GRPCAddr}})
		require.NoError(t, err)
		require.True(t, res.GetOk(), "%s: %s\n%s", stepID, res.GetMessage(), strings.Join(lines, "\n"))
		return res
	}
	writeFiles(t, state, map[string]string{"positions.db": "alpha", "orders.db": "bravo", "book/l2.db": "charlie"})
	res := pull("pull-1")
	require.Equal(t, "3", res.GetOutputs()["files"])
	require.Equal(t, readTree(t, state), readTree(t, drState))

	writeFiles(t, state, map[string]string{"positions.db": "alpha, changed", "fills.db": "delta"})
	require.NoError(t, os.Remove(filepath.Join(state, "orders.db")))
	res = pull("pull-2")
	require.Equal(t, "2", res.GetOutputs()["files"])
	require.Equal(t, readTree(t, state), readTree(t, drState))
	require.NoFileExists(t, filepath.Join(drState, "orders.db"))

	// The logs block follows on its interval, with no step at all.
	writeFiles(t, logs, map[string]string{"engine.log": "started\n", "gateway.log": "up\n"})
	waitForMirror(t, logs, drLogs)
	writeFiles(t, logs, map[string]string{"engine.log": "started\nhalted\n"})
	require.NoError(t, os.Remove(filepath.Join(logs, "gateway.log")))
	waitForMirror(t, logs, drLogs)

	// rsync by hand as the dr host. The first case proves the command
	// works; every other one must be refused by the serving agent, with
	// nothing transferred.
	otherCA := t.TempDir()
	require.NoError(t, tlsutil.CreateCA(otherCA))
	otherCert, otherKey, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: otherCA, Name: dr.HostID, Role: tlsutil.RoleAgent})
	require.NoError(t, err)
	// The tunnel checks its own certificate against --ca before it dials,
	// and the serving agent's against it in the handshake: trusting both
	// CAs gets the foreign certificate as far as the serving agent.
	bothCAs := filepath.Join(otherCA, "both-ca.pem")
	writeFiles(t, otherCA, map[string]string{"both-ca.pem": readFile(t, dr.CAFile) + readFile(t, filepath.Join(otherCA, tlsutil.CACertFile))})
	cases := []struct {
		name, sync, path string
		ca, cert, key    string // the dr agent's when empty
		refused          string // in rsync's output; empty: must succeed
		logged           string // in the serving agent's log
	}{
		{name: "declared path", sync: "state", path: state},
		{name: "declared path, sub directory", sync: "state", path: filepath.Join(state, "book")},
		{name: "undeclared path", sync: "state", path: secret, refused: "PermissionDenied desc = path not declared by sync block", logged: "path not declared by sync block"},
		{name: "path escaping the block", sync: "state", path: state + "/../secret", refused: "InvalidArgument desc = rsync arguments refused", logged: "holds a .. element"},
		{name: "undeclared sync block", sync: "keys", path: secret, refused: "PermissionDenied desc = sync block not declared", logged: "sync block not declared"},
		{name: "certificate of another CA", sync: "state", path: state, ca: bothCAs, cert: otherCert, key: otherKey, refused: "code = Unavailable", logged: "refused connection"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ca, cert, key := cmp.Or(tc.ca, dr.CAFile), cmp.Or(tc.cert, dr.CertFile), cmp.Or(tc.key, dr.KeyFile)
			dest := t.TempDir()
			logBefore := fileSize(t, primary.LogPath)
			out, err := handRsync(c.Env(c.Nodes[0]), primary.GRPCAddr, tc.sync, ca, cert, key, tc.path, dest)
			if tc.refused == "" {
				require.NoError(t, err, out)
				require.Equal(t, readTree(t, tc.path), readTree(t, dest))
				return
			}
			require.Error(t, err, "rsync must fail: %s", out)
			require.Contains(t, out, tc.refused)
			require.Empty(t, readTree(t, dest), "nothing may be transferred")
			testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
				logged := logSince(t, primary.LogPath, logBefore)
				return strings.Contains(logged, tc.logged), fmt.Errorf("the serving agent did not log %q; it logged:\n%s", tc.logged, logged)
			})
		})
	}

	// The serving agent keeps serving after the refusals.
	writeFiles(t, state, map[string]string{"after-refusals.db": "echo"})
	pull("pull-3")
	require.Equal(t, readTree(t, state), readTree(t, drState))
}

// handRsync pulls path's contents from the agent at peer into dest with
// the real rsync, tunnelled by `drplane agent rsync-tunnel` as a pulling
// agent does, and returns rsync's combined output. env is the harness's
// environment for drplane commands.
func handRsync(env []string, peer, sync, ca, cert, key, path, dest string) (string, error) {
	// rsync splits -e on blanks; the temp paths hold none.
	shell := strings.Join([]string{drplaneBin, "agent", "rsync-tunnel", "--peer", peer, "--sync", sync,
		"--ca", ca, "--cert", cert, "--key", key, "--"}, " ")
	cmd := exec.Command("rsync", "-a", "--numeric-ids", "-e", shell, "peer:"+path+"/", dest+"/")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// writeFiles writes files (relative path to content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	}
}

// readTree returns the regular files under dir, relative path to content.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := tree(dir)
	require.NoError(t, err)
	return files
}

func tree(dir string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel] = string(data)
		return nil
	})
	return files, err
}

// waitForMirror waits until dst holds exactly the files of src.
func waitForMirror(t *testing.T, src, dst string) {
	t.Helper()
	want := readTree(t, src)
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		got, err := tree(dst)
		if err != nil {
			return false, err
		}
		return maps.Equal(got, want), fmt.Errorf("%s holds %v, want %v", dst, got, want)
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Size()
}

// logSince returns what was appended to the log at path after offset.
func logSince(t *testing.T, path string, offset int64) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(bytes.TrimSpace(data[min(offset, int64(len(data))):]))
}
