package plan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDerive_Restart: everything at the active site stops in reverse
// dependency order and starts in dependency order, health-gated, then is
// checked; nothing at another site is touched.
func TestDerive_Restart(t *testing.T) {
	p, err := Derive(KindRestart, testTopology(), nil, DeriveOptions{})
	require.NoError(t, err)
	require.Equal(t, "primary", p.From)
	require.Equal(t, "primary", p.To)
	require.Equal(t, []string{
		"stop:gateway@app-1", "stop:engine@app-1", "stop:postgres@db-1",
		"start:postgres@db-1", "start:engine@app-1", "start:gateway@app-1",
		"check:postgres@db-1", "check:engine@app-1", "check:gateway@app-1",
	}, ids(p))
	requireTopological(t, p)
	require.True(t, reaches(p, "stop:postgres@db-1", "stop:gateway@app-1"), "a service stops after what depends on it")
	require.True(t, reaches(p, "start:gateway@app-1", "stop:postgres@db-1"), "every start follows every stop")
	require.True(t, reaches(p, "start:engine@app-1", "start:postgres@db-1"), "a service starts after what it depends on")
	for _, st := range p.Steps {
		require.Equal(t, "primary", st.Site, "%s: a restart touches only the active site", st.ID)
		if st.Action == ActionStart || st.Action == ActionCheck {
			require.True(t, st.HealthGate, st.ID)
		}
	}
}

// TestDerive_Restart_Service: --service restarts the service and what
// depends on it, directly or not; what it depends on keeps running.
func TestDerive_Restart_Service(t *testing.T) {
	p, err := Derive(KindRestart, testTopology(), nil, DeriveOptions{Service: "engine"})
	require.NoError(t, err)
	require.Equal(t, []string{
		"stop:gateway@app-1", "stop:engine@app-1",
		"start:engine@app-1", "start:gateway@app-1",
		"check:engine@app-1", "check:gateway@app-1",
	}, ids(p))
	st := steps(t, p)
	require.Equal(t, []string{"stop:gateway@app-1", "stop:engine@app-1"}, st["start:engine@app-1"].DependsOn,
		"postgres is not restarted, and the engine's start waits for none of it")

	p, err = Derive(KindRestart, testTopology(), nil, DeriveOptions{Service: "gateway"})
	require.NoError(t, err)
	require.Equal(t, []string{"stop:gateway@app-1", "start:gateway@app-1", "check:gateway@app-1"}, ids(p))
}

func TestDerive_Restart_Errors(t *testing.T) {
	_, err := Derive(KindRestart, testTopology(), nil, DeriveOptions{Service: "engin"})
	require.EqualError(t, err, `no host at the active site "primary" declares service "engin"; did you mean "engine"?; declared: postgres, engine, gateway`)
	_, err = Derive(KindRestart, testTopology(), nil, DeriveOptions{To: "dr"})
	require.EqualError(t, err, `a restart runs at the active site "primary"; it takes no other target site (got "dr")`)
}

// TestDerive_Restart_OperatorSteps: a restart plan takes operator steps
// around its phases, such as a hook before the services stop.
func TestDerive_Restart_OperatorSteps(t *testing.T) {
	f, err := Parse([]byte(`plan "live-system-failure" {
  kind = "restart"
  objectives { rto = "15m"  rpo = "1m" }
  step "trip" { action = "hook"  target = "circuit-breaker-trip"  site = "active"  before = "drain" }
}
`), "server.hcl")
	require.NoError(t, err)
	p, err := Derive(KindRestart, testTopology(), f.Plans[0], DeriveOptions{})
	require.NoError(t, err)
	require.Equal(t, "live-system-failure", p.Name)
	require.True(t, reaches(p, "stop:gateway@app-1", "trip@app-1"), "the hook runs before anything stops: %v", ids(p))
}
