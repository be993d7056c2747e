package devcluster

// The parts of the CLI's --json output that WaitForLeader and
// WaitForMembers read. They copy fields of cli.StatusJSON and
// cli.MembersJSON because devcluster cannot import cli: `drplane dev` runs
// on devcluster, so that would be a cycle. TestJSONContract_ViewsMatchTheCLI
// fails when a field here is missing from the CLI's type or typed
// differently there, which would make it read as zero.

// leaderView is what nodeLeader reads of `drplane status --json --stale`.
type leaderView struct {
	LeaderID string `json:"leader_id"`
}

// membersView is what membersReady reads of `drplane members --json`.
type membersView struct {
	Servers []memberView `json:"servers"`
}

// memberView is one server of membersView.
type memberView struct {
	ID    string `json:"id"`
	Site  string `json:"site"`
	State string `json:"state"`
}
