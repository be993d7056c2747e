package controlplane

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/structs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// testFSM is an FSM with a log index counter, applying encoded entries
// directly as Raft would.
type testFSM struct {
	*FSM
	index uint64
}

func newTestFSM(t *testing.T) *testFSM {
	t.Helper()
	return &testFSM{FSM: NewFSM(hclog.NewNullLogger())}
}

func (f *testFSM) apply(t *testing.T, mt structs.MessageType, cmd structs.Command) *structs.ApplyResult {
	t.Helper()
	if cmd.Write().Time.IsZero() {
		cmd.Write().Time = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	}
	buf, err := structs.Encode(mt, cmd)
	require.NoError(t, err)
	f.index++
	res, ok := f.Apply(&raft.Log{Index: f.index, Type: raft.LogCommand, Data: buf}).(*structs.ApplyResult)
	require.True(t, ok)
	return res
}

func initSites(t *testing.T, f *testFSM) {
	t.Helper()
	res := f.apply(t, structs.InitSitesRequestType, &structs.InitSitesRequest{
		WriteRequest: structs.WriteRequest{RequestID: "init", Actor: "server:s1"},
		Sites: []structs.Site{
			{Name: "primary", Kind: structs.SiteKindData},
			{Name: "dr", Kind: structs.SiteKindData},
			{Name: "witness", Kind: structs.SiteKindWitness},
		},
		ActiveSite: "primary",
	})
	require.NoError(t, res.Err())
}

func TestFSM_InitSites_OnlyOnce(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	v := f.view()
	require.Equal(t, uint64(1), v.Epoch)
	require.Equal(t, "primary", v.ActiveSite)

	res := f.apply(t, structs.InitSitesRequestType, &structs.InitSitesRequest{
		WriteRequest: structs.WriteRequest{RequestID: "init-2"},
		Sites:        []structs.Site{{Name: "other", Kind: structs.SiteKindData}},
		ActiveSite:   "other",
	})
	require.ErrorContains(t, res.Err(), "already initialized")
	require.Equal(t, "primary", f.view().ActiveSite, "a second init must not overwrite the agreed sites")
}

func TestFSM_SetActiveSite_CompareAndSet(t *testing.T) {
	cases := []struct {
		name      string
		site      string
		expected  uint64
		wantErr   string
		wantEpoch uint64
		wantSite  string
	}{
		{name: "matching epoch flips and bumps", site: "dr", expected: 1, wantEpoch: 2, wantSite: "dr"},
		{name: "stale epoch is rejected", site: "dr", expected: 7, wantErr: "epoch is 1, not 7", wantEpoch: 1, wantSite: "primary"},
		{name: "witness cannot be active", site: "witness", expected: 1, wantErr: "only data sites", wantEpoch: 1, wantSite: "primary"},
		{name: "unknown site", site: "mars", expected: 1, wantErr: `site "mars" is not declared`, wantEpoch: 1, wantSite: "primary"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t)
			initSites(t, f)
			res := f.apply(t, structs.SetActiveSiteRequestType, &structs.SetActiveSiteRequest{
				WriteRequest:  structs.WriteRequest{RequestID: "r1", Actor: "cli:ops"},
				Site:          tc.site,
				ExpectedEpoch: tc.expected,
			})
			if tc.wantErr != "" {
				var rejected *structs.RejectedError
				require.ErrorAs(t, res.Err(), &rejected)
				require.Contains(t, rejected.Reason, tc.wantErr)
			} else {
				require.NoError(t, res.Err())
			}
			v := f.view()
			require.Equal(t, tc.wantEpoch, v.Epoch)
			require.Equal(t, tc.wantSite, v.ActiveSite)
		})
	}
}

func TestFSM_RetriedRequest_AppliedOnce(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	req := &structs.SetActiveSiteRequest{
		WriteRequest:  structs.WriteRequest{RequestID: "same-id", Actor: "cli:ops"},
		Site:          "dr",
		ExpectedEpoch: 1,
	}
	first := f.apply(t, structs.SetActiveSiteRequestType, req)
	require.NoError(t, first.Err())
	// The retry arrives after a new log entry; without dedup its CAS would
	// now fail (epoch 2) or, worse, a blind write would bump again.
	second := f.apply(t, structs.SetActiveSiteRequestType, req)
	require.NoError(t, second.Err())
	require.True(t, second.Duplicate)
	require.Equal(t, first.Index, second.Index)
	require.Equal(t, uint64(2), f.view().Epoch)
	require.Len(t, auditActions(f.auditTrail(0), "set-active-site"), 1)
}

func TestFSM_Agents_RegisterDeregister(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	agent := structs.Agent{HostID: "db-1", Site: "primary", Address: "127.0.0.1:7500",
		Services: []structs.Service{{Name: "postgres", Driver: "postgres"}, {Name: "engine", Driver: "process", DependsOn: []string{"postgres"}}}}

	require.NoError(t, f.apply(t, structs.RegisterAgentRequestType, &structs.RegisterAgentRequest{WriteRequest: structs.WriteRequest{RequestID: "a1"}, Agent: agent}).Err())
	require.NoError(t, f.apply(t, structs.RegisterAgentRequestType, &structs.RegisterAgentRequest{WriteRequest: structs.WriteRequest{RequestID: "a2"}, Agent: agent}).Err())
	v := f.view()
	require.Len(t, v.Agents, 1)
	require.Equal(t, agent.Services, v.Agents[0].Services)
	require.Len(t, auditActions(f.auditTrail(0), "register-agent"), 1, "an unchanged re-registration adds no audit line")

	witness := agent
	witness.HostID, witness.Site = "w-1", "witness"
	require.ErrorContains(t, f.apply(t, structs.RegisterAgentRequestType, &structs.RegisterAgentRequest{WriteRequest: structs.WriteRequest{RequestID: "a3"}, Agent: witness}).Err(), "agents run in data sites")

	require.NoError(t, f.apply(t, structs.DeregisterAgentRequestType, &structs.DeregisterAgentRequest{WriteRequest: structs.WriteRequest{RequestID: "d1"}, HostID: "db-1"}).Err())
	require.Empty(t, f.view().Agents)
	require.ErrorContains(t, f.apply(t, structs.DeregisterAgentRequestType, &structs.DeregisterAgentRequest{WriteRequest: structs.WriteRequest{RequestID: "d2"}, HostID: "db-1"}).Err(), "not registered")
}

func TestFSM_Servers_UpsertRemove(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	s1 := structs.Server{ID: "s1", Site: "primary", Address: "127.0.0.1:7400", RaftAddress: "127.0.0.1:7401"}
	require.NoError(t, f.apply(t, structs.UpsertServerRequestType, &structs.UpsertServerRequest{WriteRequest: structs.WriteRequest{RequestID: "u1"}, Server: s1}).Err())
	require.Equal(t, s1, f.view().Servers["s1"])
	bad := s1
	bad.ID, bad.Site = "s9", "mars"
	require.ErrorContains(t, f.apply(t, structs.UpsertServerRequestType, &structs.UpsertServerRequest{WriteRequest: structs.WriteRequest{RequestID: "u2"}, Server: bad}).Err(), "not declared")
	require.NoError(t, f.apply(t, structs.RemoveServerRequestType, &structs.RemoveServerRequest{WriteRequest: structs.WriteRequest{RequestID: "r1"}, ID: "s1"}).Err())
	require.NotContains(t, f.view().Servers, "s1")
}

func TestFSM_SnapshotRestore_RoundTrip(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	f.apply(t, structs.RegisterAgentRequestType, &structs.RegisterAgentRequest{WriteRequest: structs.WriteRequest{RequestID: "a1"},
		Agent: structs.Agent{HostID: "db-1", Site: "primary", Address: "127.0.0.1:7500", Services: []structs.Service{{Name: "pg", Driver: "postgres"}}}})
	f.apply(t, structs.UpsertServerRequestType, &structs.UpsertServerRequest{WriteRequest: structs.WriteRequest{RequestID: "u1"},
		Server: structs.Server{ID: "s1", Site: "primary", Address: "a:1", RaftAddress: "a:2"}})
	f.apply(t, structs.SetActiveSiteRequestType, &structs.SetActiveSiteRequest{WriteRequest: structs.WriteRequest{RequestID: "x"}, Site: "dr", ExpectedEpoch: 1})

	restored := roundTrip(t, f)
	require.Equal(t, f.view(), restored.view())
	require.Equal(t, f.auditTrail(0), restored.auditTrail(0))
	f.mu.RLock()
	defer f.mu.RUnlock()
	require.Equal(t, f.state.Requests, restored.state.Requests, "the dedup table survives a snapshot, so a retry after restore is still applied once")
}

// roundTrip snapshots f and restores the snapshot into a new FSM.
func roundTrip(t *testing.T, f *testFSM) *testFSM {
	t.Helper()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	restored := newTestFSM(t)
	require.NoError(t, restored.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))))
	return restored
}

func TestFSM_UnknownType(t *testing.T) {
	f := newTestFSM(t)
	require.Nil(t, f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{byte(structs.IgnoreUnknownTypeFlag | 77), '{', '}'}}))
	require.Panics(t, func() { f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: []byte{77, '{', '}'}}) })
}

func auditActions(entries []structs.AuditEntry, action string) []structs.AuditEntry {
	var out []structs.AuditEntry
	for _, e := range entries {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
