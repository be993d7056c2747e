package devcluster

// The copies of the CLI's --json types, for the contract test in
// devcluster_test (which may import cli; this package may not).
type (
	LeaderView  = leaderView
	MembersView = membersView
)
