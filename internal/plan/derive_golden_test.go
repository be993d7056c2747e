package plan

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata from the current code")

// goldenTopology is testTopology with the cases that shape a plan beyond
// it: two hosts declaring the primary's database (catch-up per pair), a
// second application host at dr (parallel starts), a service only the
// primary runs (a warning) and one without a drill block (left out of a
// drill).
func goldenTopology() Topology {
	topo := testTopology()
	db3 := Agent{HostID: "db-3", Site: "primary", Address: "10.0.1.11:7500", Services: []Service{
		{Name: "postgres", Driver: "postgres", Port: 5432, Promotable: true, Drillable: true},
	}}
	app3 := Agent{HostID: "app-3", Site: "dr", Address: "10.0.2.21:7500", Services: []Service{
		{Name: "engine", Driver: "process", DependsOn: []string{"postgres"}, Drillable: true},
		{Name: "cache", Driver: "systemd"},
	}}
	topo.Agents[1].Services = append(topo.Agents[1].Services, Service{Name: "reports", Driver: "process", DependsOn: []string{"postgres"}})
	topo.Agents = append(topo.Agents, db3, app3)
	return topo
}

// TestDerive_Golden derives every plan kind, with and without operator
// steps, for goldenTopology and compares what `drplane plan show` prints
// (and its JSON) with testdata/derive.golden, so a refactoring of the
// derivation cannot change a plan unnoticed. Run with -update to accept a
// deliberate change, and review the diff.
func TestDerive_Golden(t *testing.T) {
	f, err := Parse([]byte(briefExample), "plans.hcl")
	require.NoError(t, err)
	defaults := DeriveOptions{Objectives: Objectives{RTO: 15 * time.Minute, RPO: 5 * time.Minute}, MaxDataLoss: 30 * time.Second}
	with := func(to, drill string) DeriveOptions {
		o := defaults
		o.To, o.DrillID = to, drill
		return o
	}
	drActive := goldenTopology()
	drActive.ActiveSite = "dr"
	// app-3's engine has no drill block: the drill copies app-2's alone,
	// and the gateway's copy waits only for it.
	partial := goldenTopology()
	partial.Agents[5].Services[0].Drillable = false
	drillPlans, err := Parse([]byte(`plan "drill-approved" {
  kind = "drill"
  step "look" { action = "approval"  after = "verify" }
}`), "drill.hcl")
	require.NoError(t, err)
	cases := []struct {
		name string
		kind Kind
		topo Topology
		def  *Definition
		opts DeriveOptions
	}{
		{"failover", KindFailover, goldenTopology(), nil, with("dr", "")},
		{"failover with operator steps", KindFailover, goldenTopology(), f.Definition("failover"), with("dr", "")},
		{"switchover", KindSwitchover, goldenTopology(), nil, with("dr", "")},
		{"failback", KindFailback, drActive, nil, with("", "")},
		{"drill", KindDrill, goldenTopology(), nil, with("", "drill-1")},
		{"drill with a partial copy and operator steps", KindDrill, partial, drillPlans.Definition("drill-approved"), with("dr", "drill-2")},
	}
	var out bytes.Buffer
	for _, tc := range cases {
		p, err := Derive(tc.kind, tc.topo, tc.def, tc.opts)
		require.NoError(t, err, tc.name)
		fmt.Fprintf(&out, "=== %s ===\n", tc.name)
		require.NoError(t, p.Format(&out))
		js, err := json.MarshalIndent(p, "", "  ")
		require.NoError(t, err)
		fmt.Fprintf(&out, "--- json ---\n%s\n\n", js)
	}
	path := filepath.Join("testdata", "derive.golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update to create it")
	require.Equal(t, string(want), out.String(), "derived plans differ from %s", path)
}
