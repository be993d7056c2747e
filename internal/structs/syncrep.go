package structs

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Synchronous replication (DESIGN.md section 4, invariant 8). The leader
// decides which standbys a primary waits for and sends the primary's
// agent a set-sync-standbys step; the agent sets PostgreSQL's
// synchronous_standby_names to SyncStandbyNames of the names it got. Both
// sides format the setting with the same function, so the leader can
// tell from a probe whether the primary runs with what it asked for.

// ActionSetSyncStandbys sets the standbys a primary waits for. It is not
// a plan action: only the leader's replication manager sends it.
const ActionSetSyncStandbys = "set-sync-standbys"

const (
	// ArgSyncStandbys names, on a set-sync-standbys or promote step, the
	// standbys' application names, comma-separated: "" for none (commits
	// wait for no standby), SyncAnyStandby for any one (commits wait until
	// some standby is synchronous: strict mode with none known). A promote
	// step without it starts the new primary waiting for none.
	ArgSyncStandbys = "sync_standbys"
	// ArgLeaderTerm is, on a set-sync-standbys step, the Raft term in
	// which its leader was elected: the agent refuses a step of a lower
	// term than one it took, so a deposed leader's late step cannot undo
	// what its successor set.
	ArgLeaderTerm = "leader_term"
	// OutputSyncPosition is the output of a set-sync-standbys step: the
	// primary's WAL position once the setting took effect. A standby the
	// primary reports sync that flushed past it holds every commit the
	// primary acknowledged, also those acknowledged before the setting.
	OutputSyncPosition = "position"
)

// SyncAnyStandby in ArgSyncStandbys makes commits wait for any one standby.
const SyncAnyStandby = "*"

var applicationNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,63}$`)

// ValidApplicationName checks a standby's application name as drplane
// names it in synchronous_standby_names: letters, digits, '_', '.' and
// '-', at most 63 bytes (PostgreSQL's NAMEDATALEN).
func ValidApplicationName(name string) error {
	if !applicationNameRE.MatchString(name) {
		return fmt.Errorf("invalid standby application name %q: expected 1-63 letters, digits, '_', '.' or '-'", name)
	}
	return nil
}

// ParseSyncStandbys splits an ArgSyncStandbys value and checks each name.
func ParseSyncStandbys(arg string) ([]string, error) {
	if arg == "" {
		return nil, nil
	}
	if arg == SyncAnyStandby {
		return []string{SyncAnyStandby}, nil
	}
	names := strings.Split(arg, ",")
	seen := map[string]bool{}
	for _, n := range names {
		if err := ValidApplicationName(n); err != nil {
			return nil, err
		}
		if seen[n] {
			// FIRST 2 ("a", "a") is a setting no standby set satisfies.
			return nil, fmt.Errorf("standby application name %q is named twice", n)
		}
		seen[n] = true
	}
	return names, nil
}

// SyncStandbyNames is the synchronous_standby_names value that makes a
// primary wait for every one of names: "" for none, "*" for any one,
// otherwise FIRST n ("a", "b"). names must have passed ParseSyncStandbys.
func SyncStandbyNames(names []string) string {
	switch {
	case len(names) == 0:
		return ""
	case len(names) == 1 && names[0] == SyncAnyStandby:
		return SyncAnyStandby
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = `"` + n + `"`
	}
	return fmt.Sprintf("FIRST %d (%s)", len(names), strings.Join(quoted, ", "))
}

// SyncReplication is the replicated state of one data service's
// synchronous replication (invariant 8): which standbys hold every commit
// its primary acknowledged. A standby enters Synchronous only after its
// primary reported it sync and flushed past the setting's position, and
// leaves it before the primary stops waiting for it.
type SyncReplication struct {
	Service string `json:"service"`
	// Epoch and Primary say which primary the record is about: a record
	// of another epoch or primary host says nothing about the current one.
	Epoch   uint64 `json:"epoch"`
	Primary string `json:"primary"`
	// Synchronous are the host ids of the standbys that hold every
	// acknowledged commit.
	Synchronous []string `json:"synchronous,omitempty"`
	// DegradedSince is when the leader let the primary acknowledge
	// commits no standby had confirmed (async), and DegradedReason why;
	// zero while it is synchronous, or has not been yet.
	DegradedSince  time.Time `json:"degraded_since,omitempty"`
	DegradedReason string    `json:"degraded_reason,omitempty"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Index is the Raft index of the entry that wrote the record: the
	// next write names it, so a decision taken on a record that changed
	// since is refused.
	Index uint64 `json:"index"`
}

// SyncReplicationRequest replaces the record of Record.Service when the
// current one was written at ExpectIndex (0: there is none) and
// Record.Epoch is the current epoch. Reason is audited with the change.
type SyncReplicationRequest struct {
	WriteRequest
	Record      SyncReplication `json:"record"`
	ExpectIndex uint64          `json:"expect_index"`
	Reason      string          `json:"reason"`
}

// Degraded reports whether the primary may acknowledge commits no
// standby confirmed.
func (r SyncReplication) Degraded() bool { return !r.DegradedSince.IsZero() }

// IsSynchronous reports whether host holds every commit acknowledged by
// the record's primary.
func (r SyncReplication) IsSynchronous(host string) bool {
	for _, h := range r.Synchronous {
		if h == host {
			return true
		}
	}
	return false
}
