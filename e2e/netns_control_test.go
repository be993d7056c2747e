package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testing/netns"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// waitAutomation polls the control plane's automation report until cond
// holds, and returns it.
func waitAutomation(t *testing.T, d *netns.Deployment, timeout time.Duration, cond func(*pb.Automation) bool) *pb.Automation {
	t.Helper()
	var a *pb.Automation
	testutil.WaitForResult(t, timeout, func() (bool, error) {
		st, err := d.Status(context.Background())
		if err != nil {
			return false, err
		}
		a = st.GetAutomation()
		return cond(a), fmt.Errorf("automation: %+v", a)
	})
	return a
}

func failovers(t testing.TB, d *netns.Deployment) []netns.Execution {
	t.Helper()
	exs, err := d.Executions(context.Background())
	require.NoError(t, err)
	var out []netns.Execution
	for _, ex := range exs {
		if ex.Kind == "failover" {
			out = append(out, ex)
		}
	}
	return out
}

// TestNetns_AutoFailover_PauseResumeCooldownAck: while automatic action is
// paused, the loss of the primary site is reported but nothing fails
// over; `resume` lets the automatic failover fire; afterwards further
// automatic failovers are blocked by the cooldown until `ack`.
func TestNetns_AutoFailover_PauseResumeCooldownAck(t *testing.T) {
	d := newNetnsDeployment(t, automaticFailover())
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 50, time.Minute)

	out := d.MustCLI("pause")
	require.Contains(t, out, "paused")
	killStart := time.Now()
	require.NoError(t, d.KillSite("primary"))
	killEnd := time.Now()
	a := waitAutomation(t, d, 2*time.Minute, func(a *pb.Automation) bool { return a.GetSiteLost() })
	require.False(t, a.GetWouldFire())
	require.Contains(t, a.GetReason(), "paused")
	status := d.MustCLI("status")
	require.Contains(t, status, "paused", "status shows that automatic action is paused")
	// The detector judges every probe round; a few rounds later still
	// nothing has started.
	judged := a.GetJudgedAt().AsTime()
	waitAutomation(t, d, time.Minute, func(a *pb.Automation) bool { return a.GetJudgedAt().AsTime().After(judged.Add(2 * time.Second)) })
	require.Empty(t, failovers(t, d), "a paused control plane must not fail over")
	require.Equal(t, "true", inRecovery(t, d, "db-2"))

	resumedAt := time.Now()
	d.MustCLI("resume")
	ex := automaticExecution(t, d)
	require.True(t, ex.StartedAt.After(resumedAt), "the failover started only after resume")
	require.Equal(t, "false", inRecovery(t, d, "db-2"))

	a = waitAutomation(t, d, time.Minute, func(a *pb.Automation) bool { return a.GetBlocked() != "" })
	require.Contains(t, a.GetBlocked(), "cooldown")
	require.Contains(t, d.MustCLI("status"), "cooldown")
	d.MustCLI("ack")
	waitAutomation(t, d, time.Minute, func(a *pb.Automation) bool { return a.GetBlocked() == "" })
	d.WaitForAcks(c, "dr", 50, time.Minute)
	r, _ := checkHistory(t, d, c, "db-2", lossPromise(d, killStart, killEnd))
	t.Logf("paused: no failover; resumed: %s started %s after resume, %s; cooldown lifted by ack; %d acknowledged rows lost",
		ex.ID, ex.StartedAt.Sub(resumedAt).Round(time.Millisecond), ex.Measured(), len(r.Lost))
}

// TestNetns_AutoFailover_LagAboveGuard_Refused pauses WAL replay on the
// standby while the primary keeps writing, so that dr falls further behind
// than max_data_loss; when the primary site is lost, the automatic
// failover refuses to promote and says why, and dr's database stays a
// standby.
func TestNetns_AutoFailover_LagAboveGuard_Refused(t *testing.T) {
	f := automaticFailover()
	f.MaxDataLoss = 2 * time.Second
	d := newNetnsDeployment(t, f)
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 50, time.Minute)

	require.NoError(t, d.PG["db-2"].Exec(context.Background(), "SELECT pg_wal_replay_pause()"))
	a := waitAutomation(t, d, time.Minute, func(a *pb.Automation) bool {
		return a.GetExposureKnown() && a.GetExposureSeconds() > 2*f.MaxDataLoss.Seconds()
	})
	t.Logf("exposure before the loss: %.1fs (%s)", a.GetExposureSeconds(), a.GetExposureDetail())
	require.NoError(t, d.KillSite("primary"))

	ex := d.WaitForExecution(2*time.Minute, func(ex netns.Execution) bool { return ex.Kind == "failover" })
	require.Equal(t, "automatic", ex.Trigger)
	require.Equal(t, "failed", ex.Result, "the RPO guard refuses an automatic failover beyond max_data_loss")
	require.Contains(t, ex.Message, "exceeds max_data_loss")
	require.Contains(t, ex.Message, "--allow-data-loss")
	guard := ex.Step("guard")
	require.NotNil(t, guard)
	require.Equal(t, "failed", guard.State)
	for _, st := range ex.Steps {
		if st.Action == "promote" {
			require.Nil(t, st.Started, "promotion %s must not start", st.ID)
		}
	}
	require.Equal(t, "true", inRecovery(t, d, "db-2"), "dr's database stays a standby")
	out, err := d.CLI(context.Background(), "history", ex.ID)
	require.NoError(t, err)
	require.True(t, strings.Contains(out, "exceeds max_data_loss"), out)
	h := c.Stop()
	t.Logf("lag above the guard: %s failed as it should: %s (%d writes)", ex.ID, ex.Message, len(h.Ops))
}
