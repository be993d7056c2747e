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
	"google.golang.org/protobuf/types/known/timestamppb"
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

// TestReadiness_SyncsAndBackups: the sync and backup checks judge what
// the agents last reported: a failed or never-run rsync at the target,
// a backup block that warns, failed its verification or was never
// verified, and no host archiving at all, each with its reason.
func TestReadiness_SyncsAndBackups(t *testing.T) {
	at := timestamppb.New(time.Now())
	v := stateView{Agents: []structs.Agent{{HostID: "db-1", Site: "primary"}, {HostID: "app-2", Site: "dr"}}}
	verified := &pb.BackupVerification{Label: "F1", Ok: true, At: at}
	cases := []struct {
		name          string
		syncs         []*pb.SyncStatus
		backups       []*pb.BackupStatus
		syncOK, bakOK bool
		want          string
	}{
		{"sound", []*pb.SyncStatus{{Name: "state", LastSuccessAt: at}}, []*pb.BackupStatus{{Name: "pg", Archiving: true, LastVerification: verified}}, true, true, "db-1 pg: verified F1"},
		{"rsync failed", []*pb.SyncStatus{{Name: "state", LastSuccessAt: at, LastError: "connection refused"}}, nil, false, true, "app-2 state: the last rsync failed: connection refused"},
		{"never synced", []*pb.SyncStatus{{Name: "state"}}, nil, false, true, "app-2 state has never synced"},
		{"backup warns", nil, []*pb.BackupStatus{{Name: "pg", Archiving: true, LastVerification: verified, Warnings: []string{"the newest backup is 2d old"}}}, true, false, "db-1 pg: the newest backup is 2d old"},
		{"verification failed", nil, []*pb.BackupStatus{{Name: "pg", Archiving: true, LastVerification: &pb.BackupVerification{Label: "F2", Reason: "pg_control missing", At: at}}}, true, false, "the verification of F2 failed: pg_control missing"},
		{"never verified", nil, []*pb.BackupStatus{{Name: "pg", Archiving: true}}, true, false, "db-1 pg: never verified"},
		{"nobody archives", nil, []*pb.BackupStatus{{Name: "pg"}}, true, false, "1 backup blocks declared, but no host archives"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{probes: newProbeTable()}
			now := time.Now()
			s.probes.put("db-1", probeResult{sentAt: now, answeredAt: now, resp: &pb.ProbeResponse{Backups: tc.backups}})
			s.probes.put("app-2", probeResult{sentAt: now, answeredAt: now, resp: &pb.ProbeResponse{Syncs: tc.syncs}})
			got := map[string]*pb.ReadinessCheck{}
			add := func(name string, ok bool, format string, args ...any) {
				got[name] = &pb.ReadinessCheck{Name: name, Ok: ok, Detail: fmt.Sprintf(format, args...)}
			}
			s.readySyncs(v, "dr", add)
			s.readyBackups(v, add)
			require.Equal(t, tc.syncOK, got[readySyncs].GetOk(), got[readySyncs].GetDetail())
			require.Equal(t, tc.bakOK, got[readyBackups].GetOk(), got[readyBackups].GetDetail())
			require.Contains(t, got[readySyncs].GetDetail()+" | "+got[readyBackups].GetDetail(), tc.want)
		})
	}
}
