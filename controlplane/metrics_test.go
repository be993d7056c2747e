package controlplane

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/hostmetrics"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testing/metricstest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// scrape reads a server's /metrics over HTTPS as Prometheus does, with a
// monitor certificate.
func (c *testCluster) scrape(t *testing.T, ts *testServer) metricstest.Families {
	t.Helper()
	if _, err := os.Stat(filepath.Join(c.tlsDir, "prometheus.pem")); err != nil {
		_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.tlsDir, Name: "prometheus", Role: tlsutil.RoleMonitor})
		require.NoError(t, err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c.material("prometheus").ClientConfig(tlsutil.RoleServer)}}
	f, err := metricstest.Scrape(testCtx(t), client, "https://"+ts.httpListener.Addr().String()+"/metrics")
	require.NoError(t, err)
	return f
}

// value is one series' value; the test fails when it is missing.
func value(t *testing.T, f metricstest.Families, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok, err := f.Value(name, labels)
	require.NoError(t, err)
	require.True(t, ok, "no series %s%v", name, labels)
	return v
}

// TestMetrics_MatchStatus: the leader's /metrics, parsed with
// Prometheus's text parser, says what its status says: epoch, active
// site, every agent's probe, lease and service roles, a standby's lag,
// and the executions of the replicated record with their RTO. A
// follower reports its own Raft view and nothing the leader decides.
func TestMetrics_MatchStatus(t *testing.T) {
	ts := newTwoSites(t, nil)
	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "restart"})
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())

	leader := ts.c.waitForLeader()
	var f metricstest.Families
	var st *pb.GetStatusResponse
	// The probes run on: take a status and a scrape that saw the same
	// probes of every agent (each reachable, as in the status, and each
	// service in the role the status shows: a probe between the two,
	// while the restarted engine comes up, changes the role).
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		var err error
		if st, err = ts.c.client(leader).GetStatus(testCtx(t), &pb.GetStatusRequest{}); err != nil {
			return false, err
		}
		f = ts.c.scrape(t, leader)
		for _, a := range st.GetAgents() {
			if v, ok, _ := f.Value("drplane_probe_up", map[string]string{"host": a.GetHostId()}); !ok || v != 1 || !a.GetProbe().GetReachable() {
				return false, fmt.Errorf("%s: not reachable in both", a.GetHostId())
			}
			for _, svc := range a.GetProbe().GetServices() {
				role := structs.RoleName(svc.GetRole())
				if v, _, _ := f.Value("drplane_host_service_role", map[string]string{"host": a.GetHostId(), "service": svc.GetName(), "role": role}); v != 1 {
					return false, fmt.Errorf("%s %s: status says %s, the scrape a later or earlier probe", a.GetHostId(), svc.GetName(), role)
				}
			}
		}
		return true, nil
	})

	require.Equal(t, 1.0, value(t, f, "drplane_server_is_leader", nil))
	require.Equal(t, 1.0, value(t, f, "drplane_server_leader_known", nil))
	require.Equal(t, float64(st.GetEpoch()), value(t, f, "drplane_epoch", nil))
	require.Equal(t, 1.0, value(t, f, "drplane_active_site", map[string]string{"site": st.GetActiveSite()}))
	require.Equal(t, 0.0, value(t, f, "drplane_active_site", map[string]string{"site": "dr"}))
	require.Equal(t, 0.0, value(t, f, "drplane_automation_paused", nil))
	for _, a := range st.GetAgents() {
		host := map[string]string{"host": a.GetHostId(), "site": a.GetSite()}
		require.InDelta(t, float64(a.GetProbe().GetLeaseRemainingMs())/1000, value(t, f, "drplane_host_lease_remaining_seconds", host), 2,
			"%s: a lease renewed every probe", a.GetHostId())
		require.Positive(t, value(t, f, "drplane_probe_duration_seconds", host))
		for _, svc := range a.GetProbe().GetServices() {
			role := structs.RoleName(svc.GetRole())
			for _, r := range hostmetrics.Roles {
				want := 0.0
				if r == role {
					want = 1
				}
				require.Equal(t, want, value(t, f, "drplane_host_service_role", map[string]string{"host": a.GetHostId(), "service": svc.GetName(), "role": r}),
					"%s %s is %s", a.GetHostId(), svc.GetName(), role)
			}
			if role == structs.RoleStandby {
				lag := value(t, f, "drplane_host_replication_lag_seconds", map[string]string{"host": a.GetHostId(), "service": svc.GetName()})
				require.GreaterOrEqual(t, lag, 0.0)
			}
		}
	}
	require.Equal(t, 1.0, value(t, f, "drplane_executions_total", map[string]string{"kind": "restart", "result": "succeeded"}))
	require.Equal(t, ex.GetRtoSeconds(), value(t, f, "drplane_execution_last_rto_seconds", map[string]string{"kind": "restart"}))
	require.Equal(t, 1.0, value(t, f, "drplane_execution_duration_seconds", map[string]string{"kind": "restart"}), "one observation")
	require.Equal(t, 2.0, value(t, f, "drplane_steps_total", map[string]string{"action": "start", "result": "succeeded"}), "postgres and engine at primary")
	require.NotEmpty(t, raftFamilies(f), "Raft's own metrics are bridged")

	follower := ts.c.scrape(t, ts.c.follower())
	require.Equal(t, 0.0, value(t, follower, "drplane_server_is_leader", nil))
	require.Equal(t, 1.0, value(t, follower, "drplane_server_leader_known", nil))
	require.Positive(t, value(t, follower, "drplane_server_raft_term", nil))
	require.Zero(t, follower.Series("drplane_epoch"), "what the leader decides comes from the leader alone")
	require.Zero(t, follower.Series("drplane_executions_total"))

	_, err := ts.c.clientAs(leader, "prometheus").GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "a monitor certificate reads metrics and nothing else: %v", err)
}

// raftFamilies lists the families bridged from Raft's go-metrics.
func raftFamilies(f metricstest.Families) []string {
	var out []string
	for name := range f {
		if len(name) > len("drplane_raft_") && name[:len("drplane_raft_")] == "drplane_raft_" {
			out = append(out, name)
		}
	}
	return out
}
