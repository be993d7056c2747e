package config

import "time"

// Raft's timeouts at raft_multiplier 1, for servers on one LAN. They are
// tighter than hashicorp/raft's defaults (1s, 1s, 500ms) so that a new
// leader is elected, and renews the active site's leases, well within the
// default lease_ttl of 3s (see ElectionBound). raft_multiplier scales all
// three, so a WAN deployment trades detection speed for fewer spurious
// elections.
const (
	RaftHeartbeatTimeout = 400 * time.Millisecond
	RaftElectionTimeout  = 400 * time.Millisecond
	// RaftLeaderLeaseTimeout is how long a leader keeps leading without
	// reaching a quorum. It stays below the election timeout, so a leader
	// cut off from its quorum steps down, and stops renewing leases,
	// before another can be elected (DESIGN.md section 5).
	RaftLeaderLeaseTimeout = 200 * time.Millisecond
)

// RaftTimeouts returns the heartbeat, election and leader lease timeouts
// scaled by raft_multiplier (at least 1).
func (c *ServerConfig) RaftTimeouts() (heartbeat, election, leaderLease time.Duration) {
	m := time.Duration(max(c.RaftMultiplier, 1))
	return RaftHeartbeatTimeout * m, RaftElectionTimeout * m, RaftLeaderLeaseTimeout * m
}

// ElectionBound is how long the servers may be without a leader after the
// leader dies, in an election that is not a split vote: 3 heartbeat
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
