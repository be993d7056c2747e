package plan

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testTopology is the brief's deployment: at the primary site db-1 runs
// PostgreSQL and app-1 the engine (on postgres) and the gateway (on the
// engine); the DR site mirrors it with db-2 and app-2.
func testTopology() Topology {
	app := func(id, site, addr string) Agent {
		return Agent{HostID: id, Site: site, Address: addr, Syncs: []string{"state"}, Services: []Service{
			{Name: "engine", Driver: "process", DependsOn: []string{"postgres"}, Drillable: true},
			{Name: "gateway", Driver: "process", DependsOn: []string{"engine"}, Drillable: true},
		}}
	}
	db := func(id, site, addr string, port int) Agent {
		return Agent{HostID: id, Site: site, Address: addr, Services: []Service{{Name: "postgres", Driver: "postgres", Port: port, Promotable: true, Drillable: true, Backup: "pg"}}}
	}
	app1 := app("app-1", "primary", "10.0.1.20:7500")
	app1.Hooks = []string{"circuit-breaker-trip"}
	app2 := app("app-2", "dr", "10.0.2.20:7500")
	app2.Hooks = []string{"reconcile-positions"}
	return Topology{ActiveSite: "primary", DataSites: []string{"primary", "dr"}, Agents: []Agent{
		db("db-1", "primary", "10.0.1.10:7500", 5432), app1,
		db("db-2", "dr", "10.0.2.10:7500", 5433), app2,
	}}
}

// steps indexes a plan's steps by id.
func steps(t *testing.T, p *Plan) map[string]Step {
	t.Helper()
	out := map[string]Step{}
	for _, s := range p.Steps {
		out[s.ID] = s
	}
	require.Len(t, out, len(p.Steps), "step ids are unique")
	return out
}

func ids(p *Plan) []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.ID
	}
	return out
}

// requireTopological checks that every step comes after its dependencies
// in Plan.Steps.
func requireTopological(t *testing.T, p *Plan) {
	t.Helper()
	pos := map[string]int{}
	for i, s := range p.Steps {
		pos[s.ID] = i
	}
	for i, s := range p.Steps {
		for _, d := range s.DependsOn {
			require.Less(t, pos[d], i, "%s comes after its dependency %s", s.ID, d)
		}
	}
}

// reaches reports whether from depends on to, directly or not.
func reaches(p *Plan, from, to string) bool {
	byID := map[string]Step{}
	for _, s := range p.Steps {
		byID[s.ID] = s
	}
	return ancestors(from, func(id string) []string { return byID[id].DependsOn })[to]
}

// requireIndependent checks that neither step depends on the other.
func requireIndependent(t *testing.T, p *Plan, a, b string) {
	t.Helper()
	require.False(t, reaches(p, a, b), "%s must not wait for %s", a, b)
	require.False(t, reaches(p, b, a), "%s must not wait for %s", b, a)
}

func TestDerive_Failover(t *testing.T) {
	p, err := Derive(KindFailover, testTopology(), nil, DeriveOptions{To: "dr", MaxDataLoss: 30 * time.Second,
		Objectives: Objectives{RTO: 15 * time.Minute, RPO: 5 * time.Minute}})
	require.NoError(t, err)
	require.Equal(t, "failover", p.Name)
	require.Equal(t, "primary", p.From)
	require.Equal(t, "dr", p.To)
	require.Equal(t, 30*time.Second, p.MaxDataLoss)
	require.Equal(t, Objectives{RTO: 15 * time.Minute, RPO: 5 * time.Minute}, p.Objectives)
	require.Empty(t, p.Warnings)
	require.Equal(t, []string{
		"fence@db-1", "fence@app-1", "guard", "activate:dr", "lease-wait:primary", "promote:postgres@db-2",
		"start:engine@app-2", "start:gateway@app-2", "check:postgres@db-2", "check:engine@app-2", "check:gateway@app-2",
	}, ids(p))
	requireTopological(t, p)
	s := steps(t, p)

	fence := s["fence@db-1"]
	require.Equal(t, Step{ID: "fence@db-1", Phase: PhaseFence, Action: ActionFence, Host: "db-1", Site: "primary",
		Timeout: 10 * time.Second, OnFailure: OnFailureContinue, Description: fence.Description}, fence, "fence all primary-role services, best effort")
	requireIndependent(t, p, "fence@db-1", "fence@app-1")

	cases := []struct {
		id        string
		phase     string
		deps      []string
		target    string
		args      map[string]string
		gate      bool
		onFailure string
	}{
		{"guard", PhaseGuard, []string{"fence@db-1", "fence@app-1"}, "", map[string]string{"site": "dr"}, false, OnFailureAbort},
		{"activate:dr", PhaseActivate, []string{"guard"}, "dr", nil, false, OnFailureAbort},
		{"lease-wait:primary", PhaseActivate, []string{"activate:dr"}, "", map[string]string{"site": "primary"}, false, OnFailureAbort},
		{"promote:postgres@db-2", PhasePromote, []string{"lease-wait:primary"}, "postgres", nil, true, OnFailureAbort},
		{"start:engine@app-2", PhaseStart, []string{"lease-wait:primary", "promote:postgres@db-2"}, "engine", nil, true, OnFailureAbort},
		{"start:gateway@app-2", PhaseStart, []string{"lease-wait:primary", "start:engine@app-2"}, "gateway", nil, true, OnFailureAbort},
		{"check:gateway@app-2", PhaseVerify, []string{"promote:postgres@db-2", "start:engine@app-2", "start:gateway@app-2"}, "gateway", nil, true, OnFailureAbort},
	}
	for _, tc := range cases {
		st := s[tc.id]
		require.Equal(t, tc.phase, st.Phase, tc.id)
		require.ElementsMatch(t, tc.deps, st.DependsOn, tc.id)
		require.Equal(t, tc.target, st.Target, tc.id)
		require.Equal(t, tc.args, st.Args, tc.id)
		require.Equal(t, tc.gate, st.HealthGate, tc.id)
		require.Equal(t, tc.onFailure, st.OnFailure, tc.id)
		require.NotEmpty(t, st.Description, tc.id)
	}
	for id, st := range s {
		if isControl(st.Action) {
			require.Empty(t, st.Host, id)
		}
	}
	require.Equal(t, 2, s["check:engine@app-2"].Retries)
	require.Equal(t, time.Minute, s["check:engine@app-2"].Timeout)
	require.Equal(t, 0, s["start:engine@app-2"].Retries)
	require.Equal(t, 5*time.Minute, s["start:engine@app-2"].Timeout)
	require.Equal(t, 2*time.Minute, s["promote:postgres@db-2"].Timeout)
	// Invariant 1: no promotion before the target is active and the old
	// site's leases lapsed.
	require.True(t, reaches(p, "promote:postgres@db-2", "activate:dr"))
	require.True(t, reaches(p, "promote:postgres@db-2", "lease-wait:primary"))
}

func TestDerive_IndependentServicesStartInParallel(t *testing.T) {
	topo := testTopology()
	for i := range topo.Agents {
		if topo.Agents[i].HostID == "app-2" || topo.Agents[i].HostID == "app-1" {
			topo.Agents[i].Services = append(topo.Agents[i].Services, Service{Name: "reporter", Driver: "process"})
		}
	}
	topo.Agents = append(topo.Agents, Agent{HostID: "db-4", Site: "dr", Services: []Service{{Name: "postgres", Promotable: true, Port: 5432, Drillable: true}}})
	p, err := Derive(KindFailover, topo, nil, DeriveOptions{To: "dr"})
	require.NoError(t, err)
	s := steps(t, p)
	require.Equal(t, []string{"lease-wait:primary"}, s["start:reporter@app-2"].DependsOn, "a service without dependencies starts right after the lease wait")
	requireIndependent(t, p, "start:reporter@app-2", "start:engine@app-2")
	requireIndependent(t, p, "start:reporter@app-2", "promote:postgres@db-2")
	requireIndependent(t, p, "promote:postgres@db-2", "promote:postgres@db-4")
	require.ElementsMatch(t, []string{"lease-wait:primary", "promote:postgres@db-2", "promote:postgres@db-4"}, s["start:engine@app-2"].DependsOn,
		"a start waits for every host's promote of the service it depends on")

	// In a switchover the drain stops independent services in parallel.
	p, err = Derive(KindSwitchover, topo, nil, DeriveOptions{To: "dr"})
	require.NoError(t, err)
	requireIndependent(t, p, "stop:reporter@app-1", "stop:gateway@app-1")
	requireIndependent(t, p, "stop:reporter@app-1", "stop:engine@app-1")
}

func TestDerive_Switchover(t *testing.T) {
	p, err := Derive(KindSwitchover, testTopology(), nil, DeriveOptions{To: "dr"})
	require.NoError(t, err)
	require.Equal(t, []string{
		"stop:gateway@app-1", "stop:engine@app-1", "rsync:state@app-2", "stop:postgres@db-1", "catchup:postgres@db-2",
		"activate:dr", "promote:postgres@db-2", "start:engine@app-2", "start:gateway@app-2",
		"check:postgres@db-2", "check:engine@app-2", "check:gateway@app-2", "demote:postgres@db-1",
		"rollback:postgres@db-1", "rollback:engine@app-1", "rollback:gateway@app-1",
	}, ids(p))
	requireTopological(t, p)
	s := steps(t, p)
	require.NotContains(t, s, "guard", "a switchover stops every primary explicitly: no guard")
	require.NotContains(t, s, "lease-wait:primary", "nor a lease wait")

	cases := []struct {
		id       string
		phase    string
		action   string
		deps     []string
		args     map[string]string
		argsFrom map[string]string
	}{
		// Drain in reverse dependency order: the gateway first.
		{"stop:gateway@app-1", PhaseDrain, ActionStop, nil, nil, nil},
		{"stop:engine@app-1", PhaseDrain, ActionStop, []string{"stop:gateway@app-1"}, nil, nil},
		{"rsync:state@app-2", PhaseSync, ActionRsync, []string{"stop:gateway@app-1", "stop:engine@app-1"}, map[string]string{"source": "10.0.1.20:7500"}, nil},
		{"stop:postgres@db-1", PhaseDemote, ActionStop, []string{"stop:gateway@app-1", "stop:engine@app-1", "rsync:state@app-2"}, nil, nil},
		{"catchup:postgres@db-2", PhaseDemote, ActionCheck, []string{"stop:postgres@db-1"}, nil,
			map[string]string{"after_position": "stop:postgres@db-1.position"}},
		{"activate:dr", PhaseActivate, ActionActivate, []string{"catchup:postgres@db-2"}, nil, nil},
		{"promote:postgres@db-2", PhasePromote, ActionPromote, []string{"activate:dr"}, nil, nil},
		{"start:engine@app-2", PhaseStart, ActionStart, []string{"activate:dr", "promote:postgres@db-2"}, nil, nil},
		{"demote:postgres@db-1", PhaseReprotect, ActionDemote, []string{"promote:postgres@db-2"},
			map[string]string{"upstream_host": "10.0.2.10", "upstream_port": "5433"}, nil},
		// The way back starts what was stopped at primary, in dependency
		// order, each after its own stop ended.
		{"rollback:postgres@db-1", PhaseRollback, ActionStart, []string{"stop:postgres@db-1"}, nil, nil},
		{"rollback:engine@app-1", PhaseRollback, ActionStart, []string{"stop:engine@app-1", "rollback:postgres@db-1"}, nil, nil},
		{"rollback:gateway@app-1", PhaseRollback, ActionStart, []string{"stop:gateway@app-1", "rollback:engine@app-1"}, nil, nil},
	}
	for _, tc := range cases {
		st := s[tc.id]
		require.Equal(t, tc.phase, st.Phase, tc.id)
		require.Equal(t, tc.action, st.Action, tc.id)
		require.ElementsMatch(t, tc.deps, st.DependsOn, tc.id)
		require.Equal(t, tc.args, st.Args, tc.id)
		require.Equal(t, tc.argsFrom, st.ArgsFrom, tc.id)
	}
	for id, st := range s {
		require.Equal(t, strings.HasPrefix(id, "rollback:"), st.Rollback, "%s: only the rollback steps are marked so", id)
		if st.Rollback {
			require.Equal(t, "primary", st.Site, id)
			require.Equal(t, OnFailureContinue, st.OnFailure, "%s: one failed start does not stop the others", id)
			require.False(t, st.HealthGate, "%s: a rollback is not the target serving: no RTO from it", id)
		}
	}
	demote := s["demote:postgres@db-1"]
	require.Equal(t, OnFailureContinue, demote.OnFailure)
	require.False(t, demote.HealthGate)
	require.Equal(t, 10*time.Minute, demote.Timeout)
	require.Equal(t, 30*time.Minute, s["rsync:state@app-2"].Timeout)
	require.Equal(t, "db-1", s["stop:postgres@db-1"].Host)
	require.Equal(t, "db-2", s["catchup:postgres@db-2"].Host)
	require.False(t, s["catchup:postgres@db-2"].HealthGate, "catching up is not serving")
}

func TestDerive_SwitchoverErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Topology)
		want string
	}{
		{"sync without a source", func(t *Topology) { t.Agents[1].Syncs = nil },
			`rsync of sync block "state" to app-2: no host at site "primary" declares sync "state"`},
		{"sync with two sources", func(t *Topology) { t.Agents[0].Syncs = []string{"state"} },
			`several hosts at site "primary" declare sync "state" (db-1, app-1)`},
		{"dependency the target lacks", func(t *Topology) { t.Agents[3].Services[0].DependsOn = []string{"cache"} },
			`service "engine" at site "dr" depends on "cache", which no host at "dr" declares`},
		{"dependency cycle across hosts", func(t *Topology) { t.Agents[2].Services[0].DependsOn = []string{"gateway"} },
			`services at site "dr" depend on each other in a cycle: postgres -> gateway -> engine -> postgres`},
		{"host registered twice", func(t *Topology) { t.Agents[3].HostID = "app-1" }, `host "app-1" is registered twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topo := testTopology()
			tc.edit(&topo)
			_, err := Derive(KindSwitchover, topo, nil, DeriveOptions{To: "dr"})
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDerive_Failback(t *testing.T) {
	topo := testTopology()
	topo.ActiveSite = "dr" // after a failover
	p, err := Derive(KindFailback, topo, nil, DeriveOptions{})
	require.NoError(t, err)
	require.Equal(t, "dr", p.From)
	require.Equal(t, "primary", p.To, "a failback goes back to the other data site")
	require.Equal(t, []string{
		"demote:postgres@db-1",
		"stop:gateway@app-2", "stop:engine@app-2", "rsync:state@app-1", "stop:postgres@db-2", "catchup:postgres@db-1",
		"activate:primary", "promote:postgres@db-1", "start:engine@app-1", "start:gateway@app-1",
		"check:postgres@db-1", "check:engine@app-1", "check:gateway@app-1", "demote:postgres@db-2",
		"rollback:postgres@db-2", "rollback:engine@app-2", "rollback:gateway@app-2",
	}, ids(p))
	requireTopological(t, p)
	s := steps(t, p)
	first := s["demote:postgres@db-1"]
	require.Equal(t, PhaseReprotect, first.Phase)
	require.Empty(t, first.DependsOn)
	require.Equal(t, map[string]string{"upstream_host": "10.0.2.10", "upstream_port": "5433"}, first.Args, "db-1 follows the active primary db-2")
	require.Equal(t, OnFailureAbort, first.OnFailure, "no switchover back onto a site that did not rejoin")
	require.Equal(t, []string{"demote:postgres@db-1"}, s["stop:gateway@app-2"].DependsOn, "the switchover waits for the reprotect")
	for _, st := range p.Steps[1:] {
		require.True(t, reaches(p, st.ID, "demote:postgres@db-1"), "%s comes after the reprotect", st.ID)
	}
	require.Equal(t, map[string]string{"source": "10.0.2.20:7500"}, s["rsync:state@app-1"].Args)
	require.Equal(t, map[string]string{"after_position": "stop:postgres@db-2.position"}, s["catchup:postgres@db-1"].ArgsFrom)
	require.Equal(t, map[string]string{"upstream_host": "10.0.1.10", "upstream_port": "5432"}, s["demote:postgres@db-2"].Args)
	require.Equal(t, OnFailureContinue, s["demote:postgres@db-2"].OnFailure)
}

func TestDerive_Drill(t *testing.T) {
	p, err := Derive(KindDrill, testTopology(), nil, DeriveOptions{DrillID: "d-42"})
	require.NoError(t, err)
	require.Equal(t, "dr", p.To, "a drill defaults to the non-active data site")
	require.Equal(t, []string{
		"start:postgres@db-2", "start:engine@app-2", "start:gateway@app-2",
		"check:postgres@db-2", "check:engine@app-2", "check:gateway@app-2",
		"stop:gateway@app-2", "stop:engine@app-2", "stop:postgres@db-2",
	}, ids(p))
	requireTopological(t, p)
	s := steps(t, p)
	for _, st := range p.Steps {
		require.Equal(t, map[string]string{"drill": "d-42"}, st.Args, st.ID)
		require.Equal(t, "dr", st.Site, "production is untouched: %s", st.ID)
		require.NotContains(t, []string{ActionActivate, ActionFence, ActionPromote, ActionRsync, ActionGuard, ActionLeaseWait}, st.Action)
		switch st.Phase {
		case PhaseTeardown:
			require.True(t, st.Always, st.ID)
			require.Equal(t, OnFailureContinue, st.OnFailure, st.ID)
			require.Equal(t, ActionStop, st.Action)
			require.False(t, st.HealthGate)
		default:
			require.False(t, st.Always, st.ID)
			require.True(t, st.HealthGate, st.ID)
			require.Equal(t, OnFailureAbort, st.OnFailure, st.ID)
		}
	}
	require.Empty(t, s["start:postgres@db-2"].DependsOn)
	require.Equal(t, []string{"start:postgres@db-2"}, s["start:engine@app-2"].DependsOn)
	require.Equal(t, []string{"start:engine@app-2"}, s["start:gateway@app-2"].DependsOn)
	// Teardown in reverse order, each after its own start.
	require.ElementsMatch(t, []string{"start:gateway@app-2", "check:postgres@db-2", "check:engine@app-2", "check:gateway@app-2"}, s["stop:gateway@app-2"].DependsOn)
	require.ElementsMatch(t, []string{"start:engine@app-2", "stop:gateway@app-2"}, s["stop:engine@app-2"].DependsOn)
	require.ElementsMatch(t, []string{"start:postgres@db-2", "stop:engine@app-2"}, s["stop:postgres@db-2"].DependsOn)

	_, err = Derive(KindDrill, testTopology(), nil, DeriveOptions{})
	require.ErrorContains(t, err, "a drill needs a drill id")
}

func TestDerive_Sites(t *testing.T) {
	three := testTopology()
	three.DataSites = append(three.DataSites, "dr2")
	cases := []struct {
		name     string
		kind     Kind
		topo     Topology
		opts     DeriveOptions
		from, to string
		err      string
	}{
		{"failover needs a target", KindFailover, testTopology(), DeriveOptions{}, "", "", "a failover needs a target site: expected one of dr"},
		{"switchover needs a target", KindSwitchover, testTopology(), DeriveOptions{}, "", "", "a switchover needs a target site"},
		{"target is the active site", KindFailover, testTopology(), DeriveOptions{To: "primary"}, "", "", `target site "primary" is already the active site`},
		{"target is not a data site", KindFailover, testTopology(), DeriveOptions{To: "witness"}, "", "", `target site "witness" is not a data site; expected one of dr`},
		{"typo in the target", KindSwitchover, testTopology(), DeriveOptions{To: "dt"}, "", "", `target site "dt" is not a data site; did you mean "dr"?`},
		{"from is not a data site", KindFailover, testTopology(), DeriveOptions{From: "witness", To: "dr"}, "", "", `site "witness" is not a data site`},
		{"failback default", KindFailback, testTopology(), DeriveOptions{}, "primary", "dr", ""},
		{"failback with several candidates", KindFailback, three, DeriveOptions{}, "", "", "a failback needs a target site when there is not exactly one data site besides \"primary\": expected one of dr, dr2"},
		{"drill with several candidates", KindDrill, three, DeriveOptions{DrillID: "x"}, "", "", "a drill needs a target site"},
		{"drill to a chosen site", KindDrill, three, DeriveOptions{DrillID: "x", To: "dr"}, "primary", "dr", ""},
		{"explicit from", KindSwitchover, testTopology(), DeriveOptions{From: "dr", To: "primary"}, "dr", "primary", ""},
		{"unknown kind", Kind("rebuild"), testTopology(), DeriveOptions{}, "", "", `unknown plan kind "rebuild"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Derive(tc.kind, tc.topo, nil, tc.opts)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.from, p.From)
			require.Equal(t, tc.to, p.To)
		})
	}
}

func TestDerive_ServiceMissingAtTarget(t *testing.T) {
	topo := testTopology()
	topo.Agents[3].Services = topo.Agents[3].Services[:1] // app-2 runs no gateway
	p, err := Derive(KindFailover, topo, nil, DeriveOptions{To: "dr"})
	require.NoError(t, err, "allowed, with a warning")
	require.Equal(t, []string{`service "gateway" runs at primary (app-1) but no host at dr declares it: the failover plan leaves it out`}, p.Warnings)
	require.NotContains(t, ids(p), "start:gateway@app-2")

	topo.Agents = topo.Agents[:2] // nothing registered at dr
	p, err = Derive(KindFailover, topo, nil, DeriveOptions{To: "dr"})
	require.NoError(t, err)
	require.Contains(t, p.Warnings, "no agent of site dr has registered: the plan runs no service there")
	require.Len(t, p.Warnings, 4)
}

func TestDerive_Deterministic(t *testing.T) {
	for _, kind := range Kinds {
		opts := DeriveOptions{To: "dr", DrillID: "d1"}
		if kind == KindRestart || kind == KindRestore {
			opts.To, opts.Service = "", map[Kind]string{KindRestore: "postgres"}[kind]
		}
		a, err := Derive(kind, testTopology(), nil, opts)
		if kind == KindFailback {
			topo := testTopology()
			topo.ActiveSite = "dr"
			opts.To = ""
			a, err = Derive(kind, topo, nil, opts)
		}
		require.NoError(t, err, kind)
		for range 5 {
			b, err := Derive(a.Kind, Topology{ActiveSite: a.From, DataSites: []string{"primary", "dr"}, Agents: testTopology().Agents}, nil, opts)
			require.NoError(t, err)
			require.Equal(t, a, b, "same inputs, same plan")
		}
		js, err := json.Marshal(a)
		require.NoError(t, err)
		var back Plan
		require.NoError(t, json.Unmarshal(js, &back))
		require.Equal(t, a, &back, "JSON round-trips")
		if kind == KindDrill {
			require.Contains(t, string(js), `"always":true`)
		}
	}
}

func TestDerive_DefinitionOverrides(t *testing.T) {
	rto, mdl := 10*time.Minute, time.Duration(0)
	def := &Definition{Name: "failover-strict", Kind: KindFailover, RTO: &rto, MaxDataLoss: &mdl}
	p, err := Derive(KindFailover, testTopology(), def, DeriveOptions{To: "dr", MaxDataLoss: 30 * time.Second,
		Objectives: Objectives{RTO: 15 * time.Minute, RPO: 5 * time.Minute}})
	require.NoError(t, err)
	require.Equal(t, "failover-strict", p.Name)
	require.Equal(t, Objectives{RTO: 10 * time.Minute, RPO: 5 * time.Minute}, p.Objectives, "overridden field by field")
	require.Equal(t, time.Duration(0), p.MaxDataLoss, "zero is a limit too")

	_, err = Derive(KindDrill, testTopology(), def, DeriveOptions{DrillID: "x"})
	require.ErrorContains(t, err, `plan "failover-strict" is a failover plan, not a drill plan`)
}

func TestDerive_ValidatesItsOutput(t *testing.T) {
	for _, kind := range []Kind{KindFailover, KindSwitchover, KindDrill} {
		p, err := Derive(kind, testTopology(), nil, DeriveOptions{To: "dr", DrillID: "d"})
		require.NoError(t, err)
		require.NoError(t, Validate(p, testTopology()))
		for _, st := range p.Steps {
			require.False(t, strings.ContainsAny(st.ID, " #"), "step ids carry no spaces or '#': %q", st.ID)
			require.True(t, slices.Contains(Phases, st.Phase), st.ID)
		}
	}
}

func TestDerive_Drill_LeavesOutServicesWithoutDrillBlock(t *testing.T) {
	topo := testTopology()
	for i := range topo.Agents {
		for j := range topo.Agents[i].Services {
			if topo.Agents[i].Services[j].Name == "gateway" {
				topo.Agents[i].Services[j].Drillable = false
			}
		}
	}
	p, err := Derive(KindDrill, topo, nil, DeriveOptions{DrillID: "d1"})
	require.NoError(t, err)
	for _, st := range p.Steps {
		require.NotEqual(t, "gateway", st.Target, "step %s", st.ID)
	}
	require.Contains(t, strings.Join(p.Warnings, "\n"), "gateway")

	for i := range topo.Agents {
		for j := range topo.Agents[i].Services {
			topo.Agents[i].Services[j].Drillable = false
		}
	}
	_, err = Derive(KindDrill, topo, nil, DeriveOptions{DrillID: "d1"})
	require.ErrorContains(t, err, "nothing to drill")
}

func TestDerive_Finish(t *testing.T) {
	topo := testTopology()
	topo.ActiveSite = "dr" // activated by the execution that stopped

	p, err := Derive(KindSwitchover, topo, nil, DeriveOptions{From: "primary", To: "dr", FinishOf: "switchover-1"})
	require.NoError(t, err)
	require.Equal(t, "switchover-finish", p.Name)
	require.Equal(t, "switchover-1", p.Finishes)
	require.Equal(t, []string{
		"lease-wait:primary", "promote:postgres@db-2", "start:engine@app-2", "start:gateway@app-2",
		"check:postgres@db-2", "check:engine@app-2", "check:gateway@app-2", "demote:postgres@db-1",
	}, ids(p), "no stop, no activate: only what brings dr up, then the reprotection")
	requireTopological(t, p)
	require.Equal(t, []string{"lease-wait:primary"}, steps(t, p)["promote:postgres@db-2"].DependsOn)

	f, err := Derive(KindFailover, topo, nil, DeriveOptions{From: "primary", To: "dr", FinishOf: "failover-1"})
	require.NoError(t, err)
	require.NotContains(t, ids(f), "demote:postgres@db-1", "a failover leaves the old site to failback")

	cases := []struct {
		name string
		kind Kind
		opts DeriveOptions
		want string
	}{
		{"a drill", KindDrill, DeriveOptions{From: "primary", To: "dr", FinishOf: "x"}, "only a failover or a switchover can be finished, not a drill"},
		{"not the active site", KindSwitchover, DeriveOptions{From: "dr", To: "primary", FinishOf: "x"}, `finished at the active site "dr", not at "primary"`},
		{"from itself", KindSwitchover, DeriveOptions{From: "dr", To: "dr", FinishOf: "x"}, `site "dr" is not the data site a switchover to "dr" started from`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Derive(tc.kind, topo, nil, tc.opts)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
