package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/rpcerr"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeOperator answers the calls a test sets; the rest panic through
// the nil embedded interface.
type fakeOperator struct {
	pb.OperatorClient
	status  *pb.GetStatusResponse
	members *pb.ListMembersResponse
	err     error
	removed string
	// kpis and schedules answer GetKPIs and ListSchedules; nil is a
	// server too old to know them.
	kpis      *pb.GetKPIsResponse
	schedules *pb.ListSchedulesResponse
}

func (f *fakeOperator) GetKPIs(context.Context, *pb.GetKPIsRequest, ...grpc.CallOption) (*pb.GetKPIsResponse, error) {
	if f.kpis == nil {
		return nil, status.Error(codes.Unimplemented, "unknown method GetKPIs")
	}
	return f.kpis, f.err
}

func (f *fakeOperator) ListSchedules(context.Context, *pb.ListSchedulesRequest, ...grpc.CallOption) (*pb.ListSchedulesResponse, error) {
	if f.schedules == nil {
		return nil, status.Error(codes.Unimplemented, "unknown method ListSchedules")
	}
	return f.schedules, f.err
}

func (f *fakeOperator) GetStatus(context.Context, *pb.GetStatusRequest, ...grpc.CallOption) (*pb.GetStatusResponse, error) {
	return f.status, f.err
}

func (f *fakeOperator) ListMembers(context.Context, *pb.ListMembersRequest, ...grpc.CallOption) (*pb.ListMembersResponse, error) {
	return f.members, f.err
}

func (f *fakeOperator) RemoveMember(_ context.Context, req *pb.RemoveMemberRequest, _ ...grpc.CallOption) (*pb.RemoveMemberResponse, error) {
	if req.GetWrite().GetRequestId() == "" {
		return nil, status.Error(codes.InvalidArgument, "no request id")
	}
	f.removed = req.GetId()
	return &pb.RemoveMemberResponse{}, f.err
}

func testFactory(fake *fakeOperator) (*Factory, *bytes.Buffer) {
	out := &bytes.Buffer{}
	f := &Factory{IO: IOStreams{Out: out, ErrOut: out}, addr: "127.0.0.1:7400"}
	f.Operator = func() (pb.OperatorClient, func(), error) { return fake, func() {}, nil }
	return f, out
}

func sampleStatus() *pb.GetStatusResponse {
	return &pb.GetStatusResponse{
		Meta:       &pb.ResponseMeta{ServedBy: "s1"},
		LeaderId:   "s1",
		Epoch:      3,
		ActiveSite: "dr",
		Sites:      []*pb.Site{{Name: "primary", Kind: "data"}, {Name: "dr", Kind: "data", Active: true}, {Name: "witness", Kind: "witness"}},
		Servers: []*pb.Server{
			{Id: "s1", Site: "primary", Address: "127.0.0.1:7400", State: "leader", Voter: true},
			{Id: "s2", Site: "dr", Address: "127.0.0.1:7410", State: "unreachable", Voter: true},
		},
		Agents: []*pb.Agent{{HostId: "db-1", Site: "dr", Address: "127.0.0.1:7500", Services: []*pb.Service{{Name: "postgres"}},
			Probe: &pb.AgentProbe{Reachable: true, LeaseValid: true, LeaseGranted: true, Epoch: 3, Services: []*pb.ServiceStatus{{Name: "postgres", Role: pb.ServiceRole_SERVICE_ROLE_PRIMARY,
				Replication: &pb.Replication{Position: "0/3000060"}}}}}},
	}
}

func TestStatus_JSON(t *testing.T) {
	f, out := testFactory(&fakeOperator{status: sampleStatus()})
	require.NoError(t, runStatus(context.Background(), &statusOptions{f: f, JSON: true}))
	var got map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	require.Equal(t, "s1", got["leader_id"])
	require.Equal(t, float64(3), got["epoch"], "epoch is a JSON number, not a string")
	require.Equal(t, "dr", got["active_site"])
	servers := got["servers"].([]any)
	require.Len(t, servers, 2)
	s2 := servers[1].(map[string]any)
	for _, k := range []string{"id", "site", "address", "state", "voter"} {
		require.Contains(t, s2, k)
	}
	require.Equal(t, "unreachable", s2["state"])
	agent := got["agents"].([]any)[0].(map[string]any)
	require.Equal(t, "db-1", agent["host_id"])
	require.Equal(t, "dr", agent["site"])
	require.Equal(t, "127.0.0.1:7500", agent["address"])
}

func TestStatus_Table(t *testing.T) {
	f, out := testFactory(&fakeOperator{status: sampleStatus()})
	require.NoError(t, runStatus(context.Background(), &statusOptions{f: f}))
	s := out.String()
	require.Contains(t, s, "Leader:       s1")
	require.Contains(t, s, "Active site:  dr")
	require.Regexp(t, `s2\s+dr\s+127\.0\.0\.1:7410\s+\s*unreachable`, s)
	require.Regexp(t, `db-1\s+dr\s+127\.0\.0\.1:7500\s+yes\s+valid\s+postgres=primary`, s)
}

// An agent that cannot write its data_dir says so in status, human and
// --json, typed by kind.
func TestStatus_HostProblem_DataDirUnwritable(t *testing.T) {
	st := sampleStatus()
	st.Agents[0].Probe.Problems = []*pb.HostProblem{{Kind: pb.HostProblemKind_HOST_PROBLEM_KIND_DATA_DIR_UNWRITABLE,
		Message: "data_dir /x not writable: no space left on device"}}
	f, out := testFactory(&fakeOperator{status: st})
	require.NoError(t, runStatus(context.Background(), &statusOptions{f: f}))
	require.Contains(t, out.String(), "host db-1: data_dir /x not writable: no space left on device\n")

	f, out = testFactory(&fakeOperator{status: st})
	require.NoError(t, runStatus(context.Background(), &statusOptions{f: f, JSON: true}))
	var got StatusJSON
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	require.Equal(t, []HostProblemJSON{{Kind: "data_dir_unwritable", Message: "data_dir /x not writable: no space left on device"}}, got.Agents[0].Problems)

	f, out = testFactory(&fakeOperator{status: sampleStatus()})
	require.NoError(t, runStatus(context.Background(), &statusOptions{f: f}))
	require.NotContains(t, out.String(), "not writable")
}

func TestStatus_Errors_SayWhatToDo(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"no leader", rpcerr.New(codes.Unavailable, "no leader: 1 of 3 servers reachable; quorum needs 2", &pb.ErrorInfo{Reason: pb.ErrorReason_ERROR_REASON_NO_LEADER}),
			"no leader: 1 of 3 servers reachable; quorum needs 2"},
		{"removed", rpcerr.New(codes.Unavailable, "server s1: this server was removed from the cluster", &pb.ErrorInfo{Reason: pb.ErrorReason_ERROR_REASON_SERVER_REMOVED, ServerId: "s1"}),
			"server s1: this server was removed from the cluster"},
		{"no leader in text only", status.Error(codes.Unavailable, "no leader: 1 of 3 servers reachable"), "is `drplane server` running there?"},
		{"server down", status.Error(codes.Unavailable, "connection error: dial tcp 127.0.0.1:7400: connect: connection refused"), "is `drplane server` running there? Set --addr or DRPLANE_ADDR"},
		{"refused", status.Error(codes.PermissionDenied, "permission denied: an agent certificate may not"), "refused by server 127.0.0.1:7400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := testFactory(&fakeOperator{err: tc.err})
			err := runStatus(context.Background(), &statusOptions{f: f})
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestMembersRemove_SendsRequestID(t *testing.T) {
	fake := &fakeOperator{}
	f, out := testFactory(fake)
	require.NoError(t, runMembersRemove(context.Background(), &membersOptions{f: f, RemoveID: "s3"}))
	require.Equal(t, "s3", fake.removed)
	require.Contains(t, out.String(), "Removed server s3")
}

func TestDialOperator_NoCertificate(t *testing.T) {
	f := NewFactory()
	_, _, err := f.dialOperator()
	require.ErrorContains(t, err, "--client-cert")
}

func TestStatus_ProductionDegraded(t *testing.T) {
	st := sampleStatus()
	f, out := testFactory(&fakeOperator{status: st})
	require.NoError(t, runStatus(context.Background(), &statusOptions{f: f}))
	require.Contains(t, out.String(), "Production:   up (every declared service of the active site runs and is healthy)")

	st.Degraded = []*pb.ProductionProblem{
		{HostId: "app-2", Service: "sampleapp", Problem: "stopped"},
		{HostId: "db-2", Problem: "does not answer the leader's probes: connection refused"},
		{Service: "postgres", Problem: "no primary at site dr"},
	}
	out.Reset()
	require.NoError(t, runStatus(context.Background(), &statusOptions{f: f}))
	require.Contains(t, out.String(), "Production:   degraded: sampleapp on app-2: stopped; host db-2: does not answer the leader's probes: connection refused; postgres: no primary at site dr")

	out.Reset()
	require.NoError(t, runStatus(context.Background(), &statusOptions{f: f, JSON: true}))
	var got StatusJSON
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	require.Equal(t, []ProductionProblemJSON{{HostID: "app-2", Service: "sampleapp", Problem: "stopped"},
		{HostID: "db-2", Problem: "does not answer the leader's probes: connection refused"},
		{Service: "postgres", Problem: "no primary at site dr"}}, got.Degraded)

	// A stale answer has no probes: it says nothing about production.
	st.Meta.Stale = true
	out.Reset()
	require.NoError(t, runStatus(context.Background(), &statusOptions{f: f, JSON: true}))
	require.Contains(t, out.String(), `"degraded": null`)
}

// TestPrintBackupStatuses: the section shows where backups are taken, the
// newest backup's age, the last verification and every warning; a host
// that only stands by is left out unless it has a warning.
func TestPrintBackupStatuses(t *testing.T) {
	stopped := time.Now().Add(-90 * time.Minute)
	var b strings.Builder
	printBackupStatuses(&b, []BackupStatusJSON{
		{HostID: "db-1", Name: "pg", Service: "postgres", Repository: "/var/lib/pgbackrest", Archiving: true, Scheduled: true, BackupCount: 3,
			Newest:       &BackupJSON{Label: "20261203-090000F_20261203-091500I", Kind: "incr", StoppedAt: stopped},
			Verification: &BackupVerificationJSON{Label: "20261203-090000F", OK: false, Reason: "the restored server did not start", At: stopped, DurationMs: 4200},
			Warnings:     []string{"the newest backup is 1h30m0s old, more than twice its interval 15m0s"}},
		{HostID: "db-2", Name: "pg", Service: "postgres", Repository: "/var/lib/pgbackrest", Warnings: []string{}},
	})
	out := b.String()
	require.Contains(t, out, "pg (service postgres) on db-1: archiving, takes the scheduled backups")
	require.Contains(t, out, "newest backup: 20261203-090000F_20261203-091500I (incr), 1h30m0s old; 3 in the repository")
	require.Contains(t, out, "last verification: backup 20261203-090000F FAILED: the restored server did not start")
	require.Contains(t, out, "WARNING: the newest backup is 1h30m0s old")
	require.NotContains(t, out, "db-2", "a standby host without warnings is not shown")
}

// TestJUnit_OneCasePerStep: the JUnit export parses back with a suite per
// execution and a case per step, a failed step as a failure.
func TestJUnit_OneCasePerStep(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC))
	later := timestamppb.New(at.AsTime().Add(1500 * time.Millisecond))
	ex := &pb.Execution{Id: "failover-1", Kind: "failover", From: "primary", To: "dr", StartedAt: at, FinishedAt: later,
		Steps: []*pb.ExecutionStep{
			{Step: &pb.PlanStep{Id: "fence:db-1"}, State: pb.StepState_STEP_STATE_SUCCEEDED, StartedAt: at, EndedAt: later},
			{Step: &pb.PlanStep{Id: "promote:postgres@db-2"}, State: pb.StepState_STEP_STATE_FAILED, Message: "pg_ctl promote: timeout", StartedAt: at, EndedAt: later},
			{Step: &pb.PlanStep{Id: "start:engine@app-2"}, State: pb.StepState_STEP_STATE_SKIPPED},
		}}
	path := filepath.Join(t.TempDir(), "drplane.xml")
	require.NoError(t, writeJUnit(path, []*pb.Execution{ex}))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var got junitSuites
	require.NoError(t, xml.Unmarshal(b, &got))
	require.Len(t, got.Suites, 1)
	s := got.Suites[0]
	require.Equal(t, 3, s.Tests)
	require.Equal(t, 1, s.Failures)
	require.Equal(t, 1, s.Skipped)
	require.Equal(t, 1.5, s.Time)
	require.Equal(t, "promote:postgres@db-2", s.Cases[1].Name)
	require.NotNil(t, s.Cases[1].Failure)
	require.Equal(t, "pg_ctl promote: timeout", s.Cases[1].Failure.Message)
	require.Nil(t, s.Cases[0].Failure)
}

func TestLeaseState(t *testing.T) {
	yes := true
	cases := []struct {
		name  string
		agent AgentJSON
		want  string
	}{
		{"never probed", AgentJSON{}, "-"},
		{"fenced", AgentJSON{Reachable: &yes, Fenced: true}, "fenced"},
		{"granted", AgentJSON{Reachable: &yes, LeaseValid: true, LeaseGranted: true}, "valid"},
		// No leader vouched for its primaries yet: the agent keeps them
		// on the window it gave itself at start.
		{"boot window", AgentJSON{Reachable: &yes, LeaseValid: true}, "boot window"},
		{"lapsed", AgentJSON{Reachable: &yes}, "none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, leaseState(tc.agent))
		})
	}
}
