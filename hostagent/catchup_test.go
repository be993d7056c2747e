package hostagent

import (
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testing/pgtest"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// TestAgent_SwitchoverCatchUp runs the zero-data-loss half of a
// switchover through the agent: rows are written, the primary is
// stopped by a stop step that outputs its final position, and a check
// step with after_position on the standby waits until the standby
// replayed past it. Every row is then on the standby.
func TestAgent_SwitchoverCatchUp(t *testing.T) {
	t.Parallel()
	pair := pgtest.NewPair(t)
	ta := newTestAgent(t, time.Hour, nil, func(ta *testAgent) {
		ta.real = true
		ta.cfg.Services = nil
		for _, n := range []*pgtest.Node{pair.Primary, pair.Standby} {
			ta.cfg.Services = append(ta.cfg.Services, config.ServiceConfig{
				Name: n.Name, Driver: config.DriverPostgres, DataDir: n.DataDir, Port: n.Port,
				BinDir: pgtest.BinDir, RunAs: pgtest.RunAs, StopTimeout: 10 * time.Second,
			})
		}
	})
	step := func(id, action, target string, args map[string]string, timeout time.Duration) *pb.ExecuteRequest {
		return &pb.ExecuteRequest{ExecutionId: "switchover", StepId: id, Epoch: 1, Action: structs.ActionToProto(action), Target: target,
			Args: args, TimeoutMs: uint64(timeout.Milliseconds())}
	}

	pair.Exec(t, pair.Primary, "CREATE TABLE t (id int PRIMARY KEY)")
	pair.Exec(t, pair.Primary, "INSERT INTO t SELECT generate_series(1, 1000)")

	// Before the primary stops, the standby cannot be past a position far
	// ahead: the check reports its progress and fails at its timeout.
	lines, res, err := ta.execute(step("too-far", "check", "standby", map[string]string{"after_position": "FF/0"}, 300*time.Millisecond))
	require.NoError(t, err)
	require.False(t, res.GetOk())
	require.Contains(t, res.GetMessage(), "replay past FF/0")
	require.True(t, hasLine(lines, ", waiting for > FF/0"), "progress: %q", lines)

	pair.Exec(t, pair.Primary, "INSERT INTO t SELECT generate_series(1001, 2000)")
	lines, out := ta.runStepOK(step("stop-primary", "stop", "primary", nil, time.Minute))
	final := out["position"]
	require.Regexp(t, `^[0-9A-F]+/[0-9A-F]+$`, final, "progress: %q", lines)
	require.True(t, hasLine(lines, "final position "+final), "progress: %q", lines)

	lines, out = ta.runStepOK(step("catch-up", "check", "standby", map[string]string{"after_position": final}, time.Minute))
	require.True(t, hasLine(lines, "past "+final), "progress: %q", lines)
	replayed, err := driver.ParseLSN(out["position"])
	require.NoError(t, err)
	finalLSN, err := driver.ParseLSN(final)
	require.NoError(t, err)
	require.Greater(t, replayed, finalLSN, "the standby replayed the shutdown checkpoint")
	require.Equal(t, "2000", pair.QueryString(t, pair.Standby, "SELECT count(*)::text FROM t"), "no row is lost")

	// A stopped server has no replay position to wait for: fail at once.
	_, res, err = ta.execute(step("check-stopped", "check", "primary", map[string]string{"after_position": final}, time.Minute))
	require.NoError(t, err)
	require.False(t, res.GetOk())
	require.Contains(t, res.GetMessage(), "postgres is not running")

	// A stopped standby has no final position: the stop succeeds without.
	lines, out = ta.runStepOK(step("stop-standby", "stop", "standby", nil, time.Minute))
	require.NotContains(t, out, "position")
	require.True(t, hasLine(lines, `"shut down in recovery", not a cleanly shut down primary`), "progress: %q", lines)
}
