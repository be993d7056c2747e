package controlplane

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

func TestProductionProblems(t *testing.T) {
	pg := structs.Service{Name: "postgres", Driver: "postgres", Promotable: true}
	app := structs.Service{Name: "sampleapp", Driver: "process", DependsOn: []string{"postgres"}}
	view := stateView{ActiveSite: "primary", Agents: []structs.Agent{
		{HostID: "app-1", Site: "primary", Services: []structs.Service{app}},
		{HostID: "app-2", Site: "dr", Services: []structs.Service{app}},
		{HostID: "db-1", Site: "primary", Services: []structs.Service{pg}},
		{HostID: "db-2", Site: "dr", Services: []structs.Service{pg}},
	}}
	svc := func(name string, role pb.ServiceRole, healthy bool, msg string) *pb.ServiceStatus {
		return &pb.ServiceStatus{Name: name, Role: role, Healthy: healthy, Message: msg}
	}
	answered := func(services ...*pb.ServiceStatus) probeResult {
		return probeResult{resp: &pb.ProbeResponse{Services: services}}
	}
	const (
		primary = pb.ServiceRole_SERVICE_ROLE_PRIMARY
		standby = pb.ServiceRole_SERVICE_ROLE_STANDBY
		stopped = pb.ServiceRole_SERVICE_ROLE_STOPPED
		fenced  = pb.ServiceRole_SERVICE_ROLE_FENCED
	)
	whole := map[string]probeResult{
		"app-1": answered(svc("sampleapp", primary, true, "")),
		"db-1":  answered(svc("postgres", primary, true, "")),
		// The dr site's state does not count: it is not production.
		"app-2": answered(svc("sampleapp", stopped, false, "")),
		"db-2":  answered(svc("postgres", standby, true, "")),
	}
	with := func(host string, r probeResult) map[string]probeResult {
		out := map[string]probeResult{}
		for h, p := range whole {
			out[h] = p
		}
		out[host] = r
		return out
	}
	tests := []struct {
		name   string
		probes map[string]probeResult
		want   []*pb.ProductionProblem
	}{
		{"whole", whole, nil},
		{"application stopped after a failed switchover", with("app-1", answered(svc("sampleapp", stopped, false, "stopped by step stop:sampleapp@app-1"))),
			[]*pb.ProductionProblem{{HostId: "app-1", Service: "sampleapp", Problem: "stopped: stopped by step stop:sampleapp@app-1"}}},
		{"application running but unhealthy", with("app-1", answered(svc("sampleapp", primary, false, "GET /health: 503"))),
			[]*pb.ProductionProblem{{HostId: "app-1", Service: "sampleapp", Problem: "primary, unhealthy: GET /health: 503"}}},
		{"database fenced: no primary at the site", with("db-1", answered(svc("postgres", fenced, false, "lease expired"))),
			[]*pb.ProductionProblem{{Service: "postgres", Problem: "no primary at site primary"},
				{HostId: "db-1", Service: "postgres", Problem: "fenced: lease expired"}}},
		{"database a standby with nothing to follow", with("db-1", answered(svc("postgres", standby, true, ""))),
			[]*pb.ProductionProblem{{Service: "postgres", Problem: "no primary at site primary"}}},
		{"service not reported", with("app-1", answered()),
			[]*pb.ProductionProblem{{HostId: "app-1", Service: "sampleapp", Problem: "not reported by its agent"}}},
		{"agent silent", with("db-1", probeResult{err: errors.New("connection refused")}),
			[]*pb.ProductionProblem{{Service: "postgres", Problem: "no primary at site primary"},
				{HostId: "db-1", Problem: "does not answer the leader's probes: connection refused"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{probes: newProbeTable()}
			for host, r := range tc.probes {
				s.probes.put(host, r)
			}
			require.Equal(t, tc.want, s.productionProblems(view))
		})
	}

	// A host this leader has not probed yet is not judged.
	s := &Server{probes: newProbeTable()}
	s.probes.put("app-1", whole["app-1"])
	require.Nil(t, s.productionProblems(view))
}

// TestStatus_ProductionDegraded_FollowsTheActiveSite checks, through the
// API on a running cluster, that status names an active-site service
// that stops, and says production is whole again once it runs.
func TestStatus_ProductionDegraded_FollowsTheActiveSite(t *testing.T) {
	ts := newTwoSites(t, nil)
	degraded := func() ([]*pb.ProductionProblem, error) {
		resp, err := ts.c.client(ts.c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
		return resp.GetDegraded(), err
	}
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		d, err := degraded()
		return err == nil && len(d) == 0, fmt.Errorf("degraded %v: %v", d, err)
	})
	require.NoError(t, ts.app1["engine"].Stop(testCtx(t), func(string, ...any) {}))
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		d, err := degraded()
		ok := err == nil && len(d) == 1 && d[0].GetHostId() == "app-1" && d[0].GetService() == "engine" && strings.HasPrefix(d[0].GetProblem(), "stopped")
		return ok, fmt.Errorf("degraded %v: %v", d, err)
	})
	require.NoError(t, ts.app1["engine"].Start(testCtx(t), func(string, ...any) {}))
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		d, err := degraded()
		return err == nil && len(d) == 0, fmt.Errorf("degraded %v: %v", d, err)
	})
}
