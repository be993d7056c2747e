package controlplane

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// readinessOf asks a follower (it forwards) whether a failover to site
// would succeed, and returns the verdict with each failed check.
func (ts *twoSites) readinessOf(t *testing.T, site string) (bool, map[string]string) {
	t.Helper()
	resp, err := ts.c.client(ts.c.follower()).CheckReadiness(testCtx(t), &pb.CheckReadinessRequest{To: site})
	require.NoError(t, err)
	failed := map[string]string{}
	for _, c := range resp.GetReadiness().GetChecks() {
		if !c.GetOk() {
			failed[c.GetName()] = c.GetDetail()
		}
	}
	require.Equal(t, len(failed) == 0, resp.GetReadiness().GetReady())
	return resp.GetReadiness().GetReady(), failed
}

// waitReadiness polls until the verdict on site has exactly the failed
// checks want (names), and returns their details.
func (ts *twoSites) waitReadiness(t *testing.T, site string, want ...string) map[string]string {
	t.Helper()
	var failed map[string]string
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		_, failed = ts.readinessOf(t, site)
		var names []string
		for n := range failed {
			names = append(names, n)
		}
		return len(names) == len(want) && func() bool {
			for _, w := range want {
				if _, ok := failed[w]; !ok {
					return false
				}
			}
			return true
		}(), fmt.Errorf("failed checks %v, want %v", failed, want)
	})
	return failed
}

// TestReadiness_YesAndNoWithEachReason: a failover to dr is not ready
// until its plan was drilled there; then it is, and status says so. A
// standby lagging past the guard, or a dr agent gone, makes it not ready
// again with that reason; the active site and an unknown one are no
// targets.
func TestReadiness_YesAndNoWithEachReason(t *testing.T) {
	ts := newTwoSites(t, nil)
	failed := ts.waitReadiness(t, "dr", readyDrill)
	require.Contains(t, failed[readyDrill], "no site drill ever succeeded at dr: run drplane drill --to dr")

	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "drill", To: "dr"})
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	ts.waitReadiness(t, "dr")
	st, err := ts.c.client(ts.c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.NoError(t, err)
	require.Len(t, st.GetReadiness(), 1)
	require.Equal(t, "dr", st.GetReadiness()[0].GetSite())
	require.True(t, st.GetReadiness()[0].GetReady(), "status gives the same verdict")

	ts.db2["postgres"].SetReplication(driver.Replication{Position: "0/1000000", ReceivePosition: "0/2000000",
		LagBytes: 16 << 20, LastReplayAt: time.Now().Add(-2 * time.Minute)})
	failed = ts.waitReadiness(t, "dr", readyReplication)
	require.Contains(t, failed[readyReplication], "over the guard max_data_loss")
	ts.db2["postgres"].ClearReplication()
	ts.waitReadiness(t, "dr")

	require.NoError(t, ts.agents["app-2"].Shutdown(testCtx(t)))
	failed = ts.waitReadiness(t, "dr", readyAgents)
	require.True(t, strings.HasPrefix(failed[readyAgents], "app-2 does not answer"), failed[readyAgents])

	_, failed = ts.readinessOf(t, "primary")
	require.Contains(t, failed[readySite], "primary is the active site")
	_, failed = ts.readinessOf(t, "witness")
	require.Contains(t, failed[readySite], `"witness" is not a data site`)
}
