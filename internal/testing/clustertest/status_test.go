package clustertest

import (
	"encoding/json"
	"testing"

	"github.com/drplane/drplane/cli"
	"github.com/stretchr/testify/require"
)

// TestStatus_DecodesTheCLIOutput checks that `drplane status --json`, as
// the CLI encodes it, decodes into Status through the embedded
// cli.StatusJSON, and that Agent finds an agent by host id.
func TestStatus_DecodesTheCLIOutput(t *testing.T) {
	reachable := true
	want := cli.StatusJSON{LeaderID: "s1", Epoch: 3, ActiveSite: "dr", Agents: []cli.AgentJSON{
		{HostID: "db-1", Site: "primary", Address: "127.0.0.1:7500", Reachable: &reachable, Epoch: 3,
			Roles: map[string]string{"postgres": "standby"}, Lag: map[string]cli.LagJSON{"postgres": {Position: "0/3000000", LagBytes: 42}}},
	}}
	out, err := json.Marshal(want)
	require.NoError(t, err)
	var st Status
	require.NoError(t, json.Unmarshal(out, &st))
	require.Equal(t, want, st.StatusJSON)

	as, ok := st.Agent("db-1")
	require.True(t, ok)
	require.Equal(t, want.Agents[0], as)
	_, ok = st.Agent("db-9")
	require.False(t, ok)
}
