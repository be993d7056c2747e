package config

import "time"

// Raft's timeouts at raft_multiplier 1, for servers on one LAN. The
// heartbeat timeout is tighter than hashicorp/raft's default (1s) so that
// a new leader is elected, and renews the active site's leases, well
// within the default lease_ttl of 3s (see ElectionBound). The election
// timeout only paces a candidate's retries after a split vote (a retry
// comes one to two of them later): it equals the heartbeat timeout, not
// raft's default 1s, because a split vote after a leader crash then
// delays the next leader's renewals by at most 900ms, where raft's default
// took up to 2s and let the active site's leases lapse (its primaries
// fenced and restarted in place, in
// TestNetns_LeaderChangesAndFlappingLink_ProductionKeepsRunning). A leader
// lease much shorter than 500ms makes a leader on a loaded machine step
// down on a late heartbeat, causing the very elections this avoids.
// raft_multiplier scales all three, so a WAN deployment trades detection
// speed for fewer spurious elections.
const (
	RaftHeartbeatTimeout = 450 * time.Millisecond
	RaftElectionTimeout  = 450 * time.Millisecond
	// RaftLeaderLeaseTimeout is how long a leader keeps leading without
	// reaching a quorum. It is not above the heartbeat timeout, the
	// least time a follower waits before it campaigns, so a leader cut
	// off from its quorum steps down, and stops renewing leases, before
	// another can be elected (DESIGN.md section 5).
	RaftLeaderLeaseTimeout = 450 * time.Millisecond
)

// RaftTimeouts returns the heartbeat, election and leader lease timeouts
// scaled by raft_multiplier (at least 1).
func (c *ServerConfig) RaftTimeouts() (heartbeat, election, leaderLease time.Duration) {
	m := time.Duration(max(c.RaftMultiplier, 1))
	return RaftHeartbeatTimeout * m, RaftElectionTimeout * m, RaftLeaderLeaseTimeout * m
}

// ElectionBound is how long the servers may be without a leader after the
// leader dies, in an election that is not a split vote (each split vote
// adds one to two election timeouts): 3 heartbeat
// timeouts. A follower's timer runs for one to two heartbeat timeouts and
// starts an election only when one full heartbeat timeout has passed
// since the leader's last contact, so it notices a dead leader within
// three; the other followers, which refuse their votes while they still
// follow the dead leader, notice within the same bound, and the vote then
// takes a round trip.
func (c *ServerConfig) ElectionBound() time.Duration {
	hb, _, _ := c.RaftTimeouts()
	return 3 * hb
}
