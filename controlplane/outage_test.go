package controlplane

import (
	"errors"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestOutageEvidence: the RTO of a failover counts from the latest
// instant a survivor knew the failed site alive, never later: this
// leader's last answered probe of one of its hosts (its send time), or a
// standby's last message from its primary, less the clock skew margin.
func TestOutageEvidence(t *testing.T) {
	agents := []structs.Agent{{HostID: "app-1", Site: "primary"}, {HostID: "db-1", Site: "primary"}, {HostID: "db-2", Site: "dr"}}
	standby := func(heard time.Time) *pb.ProbeResponse {
		return &pb.ProbeResponse{Services: []*pb.ServiceStatus{{Name: "postgres", Role: pb.ServiceRole_SERVICE_ROLE_STANDBY,
			Replication: &pb.Replication{LastReceivedAt: timestamppb.New(heard)}}}}
	}
	answered := func(sent time.Duration) probeResult {
		return probeResult{sentAt: at(sent), answeredAt: at(sent + 10*time.Millisecond), resp: &pb.ProbeResponse{}}
	}
	missed := probeResult{err: errors.New("context deadline exceeded")}
	cases := []struct {
		name       string
		probes     map[string][]probeResult // in the order they were sent
		at         time.Duration
		hosts      []string
		wantSince  time.Duration
		wantDetail string
		wantNone   bool
	}{{
		name: "this leader saw the site answer: the last answered probe's send time",
		probes: map[string][]probeResult{
			"app-1": {answered(1 * time.Second), answered(1500 * time.Millisecond)},
			"db-1":  {answered(1 * time.Second)},
			"db-2":  {{sentAt: at(2 * time.Second), resp: standby(at(900 * time.Millisecond))}},
		},
		at: 5 * time.Second, wantSince: 1500 * time.Millisecond, wantDetail: "app-1 answered the leader's probe sent then",
	}, {
		name: "the loss of one host counts from that host's last answer, not the site's",
		probes: map[string][]probeResult{
			"app-1": {answered(1 * time.Second), answered(4500 * time.Millisecond)},
			"db-1":  {answered(1 * time.Second), {sentAt: at(1500 * time.Millisecond), err: missed.err}},
		},
		at: 5 * time.Second, hosts: []string{"db-1"}, wantSince: 1 * time.Second, wantDetail: "db-1 answered the leader's probe sent then",
	}, {
		name: "a new leader that saw nothing of the site: the standby's last receipt less the skew margin",
		probes: map[string][]probeResult{
			"db-1": {{sentAt: at(3 * time.Second), err: missed.err}},
			"db-2": {{sentAt: at(3 * time.Second), resp: standby(at(2 * time.Second))}},
		},
		at: 5 * time.Second, wantSince: 1500 * time.Millisecond,
		wantDetail: "postgres on db-2 last heard from its primary then (its clock, less clock_skew_margin 500ms)",
	}, {
		name:   "evidence after the trigger does not count",
		probes: map[string][]probeResult{"app-1": {answered(6 * time.Second)}},
		at:     5 * time.Second, wantNone: true,
	}, {
		name:     "nothing known",
		probes:   map[string][]probeResult{"db-1": {{sentAt: at(3 * time.Second), err: missed.err}}},
		at:       5 * time.Second,
		wantNone: true,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{config: &config.ServerConfig{Failover: leaseTimings()}, probes: newProbeTable()}
			for host, rs := range tc.probes {
				for _, r := range rs {
					s.probes.put(host, r)
				}
			}
			since, detail, ok := s.outageEvidence(stateView{Agents: agents}, "primary", at(tc.at), tc.hosts)
			if tc.wantNone {
				require.False(t, ok, "since %s: %s", since, detail)
				return
			}
			require.True(t, ok)
			require.Equal(t, at(tc.wantSince), since)
			require.Equal(t, tc.wantDetail, detail)
		})
	}
}
