package hostagent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/osuser"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// backupAgent is an agent with a real PostgreSQL primary ("primary", a
// pgtest pair's) and a backup block "pg" of it into a fresh repository,
// its config dir under the agent's data_dir.
func backupAgent(t *testing.T, block config.BackupConfig) (*testAgent, *pgtest.Pair) {
	t.Helper()
	pair := pgtest.NewPair(t)
	pgtest.RequirePgBackRest(t)
	// A restore starts the server through the agent's driver, whose
	// socket directory is the data directory's parent, as in a
	// packaged installation (/var/lib/postgresql/15): postgres owns it.
	pg, err := osuser.Lookup(pgtest.RunAs)
	require.NoError(t, err)
	require.NoError(t, pg.Chown(filepath.Dir(pair.Primary.DataDir)))
	ta := newTestAgent(t, time.Hour, nil, func(ta *testAgent) {
		ta.real = true
		ta.backupTick = 200 * time.Millisecond
		// pgBackRest runs as postgres and reads its config in data_dir.
		ta.dataDir = pgtest.TempDir(t)
		ta.cfg.DataDir = ta.dataDir
		n := pair.Primary
		ta.cfg.Services = []config.ServiceConfig{{Name: "primary", Driver: config.DriverPostgres, DataDir: n.DataDir, Port: n.Port,
			BinDir: pgtest.BinDir, RunAs: pgtest.RunAs, StopTimeout: 10 * time.Second}}
		block.Name, block.Engine, block.Service = "pg", "pgbackrest", "primary"
		block.Repository = filepath.Join(pgtest.TempDir(t), "repo")
		block.ConfigDir = filepath.Join(ta.dataDir, "backup", "pg")
		block.KeepFull, block.ProcessMax = 2, 2
		ta.cfg.Backups = []config.BackupConfig{block}
	})
	return ta, pair
}

// restartForArchiving waits until the block asks for a restart of the
// primary (archive_mode, set by the agent, waits for one), and restarts
// it.
func (ta *testAgent) restartForArchiving(pair *pgtest.Pair) *pb.BackupStatus {
	ta.t.Helper()
	st := ta.waitBackupStatus("archiving waits for a restart", func(st *pb.BackupStatus) error {
		if len(st.GetWarnings()) == 0 || !strings.Contains(st.GetWarnings()[0], "archive_mode takes effect when primary restarts") {
			return fmt.Errorf("no restart warning")
		}
		return nil
	})
	pair.Stop(ta.t, pair.Primary)
	pair.Start(ta.t, pair.Primary)
	return st
}

// backupStatus is the agent's report of block pg.
func (ta *testAgent) backupStatus() *pb.BackupStatus {
	for _, b := range ta.quietProbe().GetBackups() {
		if b.GetName() == "pg" {
			return b
		}
	}
	return nil
}

// waitBackupStatus polls the agent's report of block pg until cond
// returns nil.
func (ta *testAgent) waitBackupStatus(what string, cond func(*pb.BackupStatus) error) *pb.BackupStatus {
	ta.t.Helper()
	var st *pb.BackupStatus
	testutil.WaitForResult(ta.t, 2*time.Minute, func() (bool, error) {
		st = ta.backupStatus()
		if err := cond(st); err != nil {
			return false, fmt.Errorf("%s: %w (status %v)", what, err, st)
		}
		return true, nil
	})
	return st
}

// TestAgent_Backups_FollowRoleScheduleAndVerify: the block asks for a
// restart while archive_mode is off; once the primary restarts it
// archives, creates the stanza, takes its first full backup, then
// incremental ones on schedule, and verifies the newest by restoring it.
// A second look after a restart of the agent remembers the verification.
func TestAgent_Backups_FollowRoleScheduleAndVerify(t *testing.T) {
	ta, pair := backupAgent(t, config.BackupConfig{FullEvery: time.Hour, IncrEvery: 3 * time.Second, VerifyEvery: time.Hour})

	st := ta.restartForArchiving(pair)
	require.False(t, st.GetArchiving())
	require.False(t, st.GetScheduled())
	info, err := os.Stat(ta.dataDir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o001), info.Mode().Perm()&0o007, "data_dir is traversable for pgBackRest, not listable")

	st = ta.waitBackupStatus("a full backup, then an incremental one", func(st *pb.BackupStatus) error {
		if st.GetNewestFull() == nil || st.GetNewest().GetKind() != pb.BackupKind_BACKUP_KIND_INCR {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	require.True(t, st.GetArchiving())
	require.True(t, st.GetScheduled(), "the host holds its lease and runs the primary")
	require.Equal(t, st.GetNewestFull().GetLabel(), st.GetNewest().GetPrior()[:len(st.GetNewestFull().GetLabel())], "the incremental backup builds on the full one")
	require.NotNil(t, st.GetRestorableUntil())

	st = ta.waitBackupStatus("verified", func(st *pb.BackupStatus) error {
		if !st.GetLastVerification().GetOk() {
			return fmt.Errorf("not verified")
		}
		return nil
	})
	require.Empty(t, st.GetWarnings())

	// An operator's backup and verification, as `drplane backup create`
	// and `verify` send them.
	lines, out := ta.runStepOK(&pb.ExecuteRequest{ExecutionId: "op-1", StepId: "backup", Epoch: 1,
		Action: structs.ActionToProto(structs.ActionBackup), Target: "pg", Args: map[string]string{"kind": "full"}, TimeoutMs: uint64(time.Minute.Milliseconds())})
	require.Equal(t, "full", out["kind"], "progress: %q", lines)
	require.Regexp(t, `^\d{8}-\d{6}F$`, out["label"])
	_, out = ta.runStepOK(&pb.ExecuteRequest{ExecutionId: "op-2", StepId: "verify-backup", Epoch: 1,
		Action: structs.ActionToProto(structs.ActionVerifyBackup), Target: "pg", TimeoutMs: uint64(time.Minute.Milliseconds())})
	require.Equal(t, "true", out["ok"])

	resp, err := ta.client.ListBackups(ctxT(t), &pb.ListBackupsRequest{Name: "pg"})
	require.NoError(t, err)
	require.Len(t, resp.GetSets(), 1)
	require.GreaterOrEqual(t, len(resp.GetSets()[0].GetBackups()), 3)
	_, err = ta.client.ListBackups(ctxT(t), &pb.ListBackupsRequest{Name: "nope"})
	require.ErrorContains(t, err, `backup block "nope" is not declared`)

	ta.restart()
	require.True(t, ta.backupStatus().GetLastVerification().GetOk(), "the verification is remembered across a restart")
}

// TestAgent_RestoreBackup_ToTimeBetweenTwoRows: a restore-backup step to
// a time between two committed rows brings back the earlier row and not
// the later one, and leaves the server running as primary. Bad arguments
// and a running server are refused before anything changes.
func TestAgent_RestoreBackup_ToTimeBetweenTwoRows(t *testing.T) {
	ta, pair := backupAgent(t, config.BackupConfig{FullEvery: time.Hour})
	ta.restartForArchiving(pair)
	ta.waitBackupStatus("a full backup", func(st *pb.BackupStatus) error {
		if st.GetNewestFull() == nil {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	p := pair.Primary
	pair.Exec(t, p, "CREATE TABLE t (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
	pair.Exec(t, p, "INSERT INTO t (id) VALUES (1)")
	time.Sleep(1500 * time.Millisecond)
	between := time.Now()
	time.Sleep(1500 * time.Millisecond)
	pair.Exec(t, p, "INSERT INTO t (id) VALUES (2)")
	pair.Exec(t, p, "SELECT pg_switch_wal()") // row 2's segment reaches the archive

	step := func(id, action, target string, args map[string]string) *pb.ExecuteRequest {
		return &pb.ExecuteRequest{ExecutionId: "restore-1", StepId: id, Epoch: 1, Action: structs.ActionToProto(action),
			Target: target, Args: args, TimeoutMs: uint64(time.Minute.Milliseconds())}
	}
	for _, tc := range []struct {
		name string
		args map[string]string
		want string
	}{
		{"both", map[string]string{"to_time": between.Format(time.RFC3339Nano), "label": "20261203-090000F"}, "exclude each other"},
		{"bad time", map[string]string{"to_time": "yesterday"}, `to_time "yesterday" is not an RFC 3339 time`},
		{"bad label", map[string]string{"label": "../x"}, `label "../x" is not a pgBackRest backup label`},
		{"running", map[string]string{"to_time": between.Format(time.RFC3339Nano)}, "it is primary; a restore in place needs it stopped"},
	} {
		_, res, err := ta.execute(step("refused-"+strings.ReplaceAll(tc.name, " ", "-"), structs.ActionRestoreBackup, "pg", tc.args))
		if err == nil {
			require.False(t, res.GetOk(), tc.name)
			err = fmt.Errorf("%s", res.GetMessage())
		}
		require.ErrorContains(t, err, tc.want, tc.name)
	}
	require.Equal(t, "2", pair.QueryString(t, p, "SELECT count(*)::text FROM t"), "nothing changed")

	ta.runStepOK(step("stop", plan.ActionStop, "primary", nil))
	lines, out := ta.runStepOK(step("restore", structs.ActionRestoreBackup, "pg", map[string]string{"to_time": between.Format(time.RFC3339Nano)}))
	require.Contains(t, out["target"], "time ", "progress: %q", lines)
	// The agent's driver started it, with its socket beside the data.
	restored := *p
	restored.SocketDir = filepath.Dir(p.DataDir)
	require.Equal(t, "1", pair.QueryString(t, &restored, "SELECT string_agg(id::text, ',') FROM t"), "the earlier row is back, the later one is not")
	require.Equal(t, "false", pair.QueryString(t, &restored, "SELECT pg_is_in_recovery()::text"))
	auto, err := os.ReadFile(filepath.Join(p.DataDir, "postgresql.auto.conf"))
	require.NoError(t, err)
	require.NotContains(t, string(auto), "recovery_target", "a standby cloned from it must not inherit the restore's target")
	require.NotContains(t, string(auto), "restore_command")
	ta.waitBackupStatus("archiving again on the new timeline", func(st *pb.BackupStatus) error {
		if !st.GetArchiving() {
			return fmt.Errorf("not archiving")
		}
		return nil
	})
}
