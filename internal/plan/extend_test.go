package plan

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// briefExample is the documented shape of operator extensions.
const briefExample = `objectives { rto = "15m"  rpo = "5m" }          # top-level defaults
plan "failover" {
  objectives { rto = "10m"  rpo = "1m" }
  max_data_loss = "30s"
  step "trip-breaker" {
    action = "hook"  target = "circuit-breaker-trip"  site = "active"   # or host = "app-1"
    before = "fence"
    timeout = "30s"  retries = 1  on_failure = "continue"
  }
  step "reconcile" { action = "hook"  target = "reconcile-positions"  site = "target"  after = "verify" }
  step "resume"    { action = "approval"  after = "verify"  depends_on = ["reconcile"] }
}
plan "failover-no-approval" { kind = "failover" }
`

// deriveWith parses src and derives its plan named name.
func deriveWith(t *testing.T, src, name string, topo Topology, opts DeriveOptions) (*Plan, error) {
	t.Helper()
	f, err := Parse([]byte(src), "plans.hcl")
	require.NoError(t, err)
	def := f.Definition(name)
	require.NotNil(t, def, name)
	return Derive(def.Kind, topo, def, opts)
}

func TestExtend_BriefExample(t *testing.T) {
	f, err := Parse([]byte(briefExample), "plans.hcl")
	require.NoError(t, err)
	p, err := Derive(KindFailover, testTopology(), f.Definition("failover"), DeriveOptions{To: "dr", Objectives: f.Objectives})
	require.NoError(t, err)
	require.Equal(t, Objectives{RTO: 10 * time.Minute, RPO: time.Minute}, p.Objectives)
	require.Equal(t, 30*time.Second, p.MaxDataLoss)
	require.Equal(t, []string{
		"trip-breaker@app-1", "fence@db-1", "fence@app-1", "guard", "activate:dr", "lease-wait:primary", "promote:postgres@db-2",
		"start:engine@app-2", "start:gateway@app-2", "check:postgres@db-2", "check:engine@app-2", "check:gateway@app-2",
		"reconcile@app-2", "resume",
	}, ids(p))
	requireTopological(t, p)
	s := steps(t, p)

	trip := s["trip-breaker@app-1"]
	require.Equal(t, Step{ID: "trip-breaker@app-1", Phase: PhaseFence, Action: ActionHook, Host: "app-1", Site: "primary",
		Target: "circuit-breaker-trip", Timeout: 30 * time.Second, Retries: 1, OnFailure: OnFailureContinue,
		Description: "operator step trip-breaker, before fence"}, trip)
	require.Equal(t, []string{"trip-breaker@app-1"}, s["fence@db-1"].DependsOn, "the first steps of the phase after wait for it")
	require.Equal(t, []string{"trip-breaker@app-1"}, s["fence@app-1"].DependsOn)

	checks := []string{"check:postgres@db-2", "check:engine@app-2", "check:gateway@app-2"}
	rec := s["reconcile@app-2"]
	require.Equal(t, "app-2", rec.Host, "site = target runs on the target's hosts that declare the hook")
	require.ElementsMatch(t, checks, rec.DependsOn, "after verify: the last steps of verify")
	require.Equal(t, OnFailureAbort, rec.OnFailure)
	require.Equal(t, 5*time.Minute, rec.Timeout)
	resume := s["resume"]
	require.Empty(t, resume.Host)
	require.Equal(t, ActionApproval, resume.Action)
	require.ElementsMatch(t, append(checks, "reconcile@app-2"), resume.DependsOn)

	// The named plan of the same kind carries none of those steps.
	q, err := Derive(KindFailover, testTopology(), f.Definition("failover-no-approval"), DeriveOptions{To: "dr", Objectives: f.Objectives})
	require.NoError(t, err)
	require.Equal(t, "failover-no-approval", q.Name)
	require.Len(t, q.Steps, 11)
	require.Equal(t, Objectives{RTO: 15 * time.Minute, RPO: 5 * time.Minute}, q.Objectives)
}

// TestExtend_Placement pins the placement rule of StepDef: a step placed
// between phases X and Y depends on X's last steps, and Y's first steps
// depend on it; empty phases are skipped.
func TestExtend_Placement(t *testing.T) {
	active := DeriveOptions{To: "dr", DrillID: "d"}
	back := testTopology()
	back.ActiveSite = "dr"
	cases := []struct {
		name       string
		plan       string // the plan block's label and placement
		kind       string
		topo       Topology
		deps       []string // of the operator step
		dependents []string // steps that depend on it directly
	}{
		{"before the first phase", `before = "fence"`, "failover", testTopology(),
			nil, []string{"fence@db-1", "fence@app-1"}},
		{"after fence equals before guard", `after = "fence"`, "failover", testTopology(),
			[]string{"fence@db-1", "fence@app-1"}, []string{"guard"}},
		{"before guard", `before = "guard"`, "failover", testTopology(),
			[]string{"fence@db-1", "fence@app-1"}, []string{"guard"}},
		{"after activate: after the lease wait, the last step of the phase", `after = "activate"`, "failover", testTopology(),
			[]string{"lease-wait:primary"}, []string{"promote:postgres@db-2"}},
		{"before start: only the first starts wait", `before = "start"`, "failover", testTopology(),
			[]string{"promote:postgres@db-2"}, []string{"start:engine@app-2"}},
		{"after the last phase", `after = "verify"`, "failover", testTopology(),
			[]string{"check:postgres@db-2", "check:engine@app-2", "check:gateway@app-2"}, nil},
		{"after drain: the last stop", `after = "drain"`, "switchover", testTopology(),
			[]string{"stop:engine@app-1"}, []string{"rsync:state@app-2"}},
		{"after demote: the catch-ups", `after = "demote"`, "switchover", testTopology(),
			[]string{"catchup:postgres@db-2"}, []string{"activate:dr"}},
		{"before reprotect in a switchover", `before = "reprotect"`, "switchover", testTopology(),
			[]string{"check:postgres@db-2", "check:engine@app-2", "check:gateway@app-2"}, []string{"demote:postgres@db-1"}},
		{"before reprotect in a failback is its first occurrence", `before = "reprotect"`, "failback", back,
			nil, []string{"demote:postgres@db-1"}},
		{"after reprotect in a failback is its last occurrence", `after = "reprotect"`, "failback", back,
			[]string{"demote:postgres@db-2"}, nil},
		{"drill before teardown", `before = "teardown"`, "drill", testTopology(),
			[]string{"check:postgres@db-2", "check:engine@app-2", "check:gateway@app-2"}, []string{"stop:gateway@app-2"}},
		{"drill after teardown", `after = "teardown"`, "drill", testTopology(),
			[]string{"stop:postgres@db-2"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := `plan "` + tc.kind + `" {
  step "note" {
    action = "notify"
    args   = { message = "hello" }
    ` + tc.plan + `
  }
}`
			opts := active
			if tc.kind == "failback" {
				opts.To = ""
			}
			p, err := deriveWith(t, src, tc.kind, tc.topo, opts)
			require.NoError(t, err)
			requireTopological(t, p)
			s := steps(t, p)
			require.ElementsMatch(t, tc.deps, s["note"].DependsOn)
			var dependents []string
			for _, st := range p.Steps {
				for _, d := range st.DependsOn {
					if d == "note" {
						dependents = append(dependents, st.ID)
					}
				}
			}
			require.ElementsMatch(t, tc.dependents, dependents)
		})
	}
}

func TestExtend_EmptyPhaseIsSkipped(t *testing.T) {
	topo := testTopology()
	for i := range topo.Agents {
		topo.Agents[i].Syncs = nil
	}
	p, err := deriveWith(t, `plan "switchover" {
  step "n" {
    action = "notify"
    args = { message = "synced" }
    after = "sync"
  }
}`, "switchover", topo, DeriveOptions{To: "dr"})
	require.NoError(t, err)
	s := steps(t, p)
	require.Equal(t, []string{"stop:engine@app-1"}, s["n"].DependsOn, "no sync phase: after the drain")
	require.Contains(t, s["stop:postgres@db-1"].DependsOn, "n", "and before the demote")
}

func TestExtend_Expansion(t *testing.T) {
	topo := testTopology()
	topo.Agents = append(topo.Agents, Agent{HostID: "app-3", Site: "dr", Address: "10.0.2.30:7500", Hooks: []string{"reconcile-positions"},
		Services: []Service{{Name: "engine"}}})
	src := `plan "switchover" {
  step "pre-snap"  { action = "snapshot"  target = "pre"  host = "db-1"  before = "drain" }
  step "warm"      { action = "hook"  target = "reconcile-positions"  site = "target"  after = "verify" }
  step "sync-more" { action = "rsync"  target = "state"  host = "app-2"  before = "sync" }
  step "rejoin"    { action = "demote"  target = "postgres"  site = "active"  after = "reprotect" }
  step "fence-all" { action = "fence"  site = "active"  after = "reprotect" }
  step "pause"     { action = "wait"  args = { duration = "2m" }  after = "verify"  depends_on = ["warm"] }
  step "probe"     { action = "check"  target = "engine"  site = "target"  after = "start"  retries = 0 }
  step "probe2"    { action = "check"  target = "engine"  host = "app-2"  after = "start" }
}`
	topo.Agents[0].Snapshots = []string{"pre"}
	p, err := deriveWith(t, src, "switchover", topo, DeriveOptions{To: "dr"})
	require.NoError(t, err)
	requireTopological(t, p)
	s := steps(t, p)
	require.Contains(t, s, "pre-snap@db-1")
	require.Contains(t, s, "warm@app-2")
	require.Contains(t, s, "warm@app-3", "one step per host of the site that declares the hook")
	require.NotContains(t, s, "warm@db-2", "hosts that do not declare it are skipped")
	requireIndependent(t, p, "warm@app-2", "warm@app-3")
	require.ElementsMatch(t, []string{"warm@app-2", "warm@app-3", "check:postgres@db-2", "check:engine@app-2", "check:gateway@app-2", "check:engine@app-3"},
		s["pause"].DependsOn, "depends_on names every step a definition became")
	require.Equal(t, 3*time.Minute, s["pause"].Timeout, "a wait's timeout covers its duration")
	require.Equal(t, 0, s["probe@app-2"].Retries, "an operator's retries = 0 stands")
	require.Equal(t, 2, s["probe2@app-2"].Retries, "a check's default retries")
	require.Equal(t, time.Minute, s["probe2@app-2"].Timeout)
	require.Equal(t, map[string]string{"source": "10.0.1.20:7500"}, s["sync-more@app-2"].Args, "an operator rsync pulls from the other site")
	require.Equal(t, map[string]string{"upstream_host": "10.0.2.10", "upstream_port": "5433"}, s["rejoin@db-1"].Args)
	require.Contains(t, s, "fence-all@db-1")
	require.Contains(t, s, "fence-all@app-1", "a fence without target runs on every host of the site")
	require.Empty(t, s["fence-all@app-1"].Target)
}

// TestExtend_TopologyErrors checks the problems only a topology reveals,
// each at the position of the key concerned.
func TestExtend_TopologyErrors(t *testing.T) {
	cases := []struct {
		name string
		step string // written on line 2, the step's keys from column 13
		pos  string
		want string
	}{
		{"unknown hook at the site", `step "x" { action = "hook"  target = "reconcile-positions"  site = "active"  after = "verify" }`, "2:40",
			`plan "failover": step "x": no host at the active site primary declares hook "reconcile-positions"; expected one of: circuit-breaker-trip`},
		{"typo in a hook", `step "x" { action = "hook"  target = "circuit-breaker-tirp"  host = "app-1"  after = "verify" }`, "2:40",
			`host app-1 declares no hook "circuit-breaker-tirp"; did you mean "circuit-breaker-trip"?`},
		{"unknown host", `step "x" { action = "hook"  target = "circuit-breaker-trip"  host = "app-9"  after = "verify" }`, "2:71",
			`host "app-9" is not a registered agent; did you mean "app-1"?`},
		{"unknown service", `step "x" { action = "check"  target = "redis"  site = "target"  after = "verify" }`, "2:41",
			`no host at the target site dr declares service "redis"; expected one of: postgres, engine, gateway`},
		{"unknown sync", `step "x" { action = "rsync"  target = "logs"  site = "target"  after = "verify" }`, "2:41",
			`no host at the target site dr declares sync block "logs"; expected one of: state`},
		{"rsync without a source", `step "x" { action = "rsync"  target = "state"  host = "app-1"  after = "verify" }`, "2:41",
			`no host at site "dr" declares sync "state"; expected one to pull from, or set args = { source = "host:port" }`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topo := testTopology()
			if tc.name == "rsync without a source" {
				topo.Agents[3].Syncs = nil // app-1 would pull from dr, which has none
			}
			_, err := deriveWith(t, "plan \"failover\" {\n  "+tc.step+"\n}\n", "failover", topo, DeriveOptions{To: "dr"})
			requireDiag(t, err, "plans.hcl:"+tc.pos, tc.want)
		})
	}
}

// requireDiag checks that err is an *Error with a diagnostic at pos
// (file:line:col) whose message contains want.
func requireDiag(t *testing.T, err error, pos, want string) {
	t.Helper()
	require.Error(t, err)
	var perr *Error
	require.True(t, errors.As(err, &perr), "want a *plan.Error, got %T: %v", err, err)
	for _, d := range perr.Diagnostics {
		if d.String() == pos+": "+d.Message && strings.Contains(d.Message, want) {
			return
		}
	}
	t.Fatalf("no diagnostic %q at %s in:\n%s", want, pos, err)
}

func TestExtend_PlacementCycle(t *testing.T) {
	src := `plan "failover" {
  step "late"  { action = "notify"  args = { message = "x" }  after = "verify" }
  step "early" {
    action     = "approval"
    before     = "fence"
    depends_on = ["late"]
  }
}`
	_, err := deriveWith(t, src, "failover", testTopology(), DeriveOptions{To: "dr"})
	requireDiag(t, err, "plans.hcl:6:18", `plan "failover": step "early", placed before fence, makes a cycle with its depends_on: early -> late -> check:postgres@db-2 -> promote:postgres@db-2 -> lease-wait:primary -> activate:dr -> guard -> fence@db-1 -> early; place it later or depend on earlier steps`)
}

func TestFile_Validate(t *testing.T) {
	f, err := Parse([]byte(briefExample), "plans.hcl")
	require.NoError(t, err)
	require.NoError(t, f.Validate(testTopology()))

	topo := testTopology()
	topo.Agents[3].Hooks = nil // app-2 has no reconcile hook
	err = f.Validate(topo)
	requireDiag(t, err, "plans.hcl:10:48", `no host at the target site dr declares hook "reconcile-positions"; none is declared there`)
}

// TestFile_Validate_InPlaceKinds: restart and restore plans are derived
// at the active site (a restore for each data service with a backup
// block), not towards another site; a restore plan without any backup
// block says so.
func TestFile_Validate_InPlaceKinds(t *testing.T) {
	f, err := Parse([]byte(`plan "live-system-failure" {
  kind = "restart"
  objectives { rto = "15m" }
  step "trip" { action = "hook"  target = "circuit-breaker-trip"  site = "active"  before = "drain" }
}
plan "data-corruption" {
  kind = "restore"
  objectives {
    rto = "10m"
    rpo = "5m"
  }
  step "trip" { action = "hook"  target = "circuit-breaker-trip"  site = "active"  before = "drain" }
  step "ok" {
    action = "approval"
    after  = "verify"
  }
}
`), "plans.hcl")
	require.NoError(t, err)
	require.NoError(t, f.Validate(testTopology()))

	topo := testTopology()
	topo.Agents[0].Services[0].Backup = ""
	err = f.Validate(topo)
	require.ErrorContains(t, err, `plan "data-corruption" at primary: a restore needs the data service to restore`)
}

// TestExtend_OperatorStopIsRolledBack: a switchover's way back starts
// again whatever a stop step stopped at the original site, an operator's
// included; no operator step can be placed around the rollback.
func TestExtend_OperatorStopIsRolledBack(t *testing.T) {
	src := `plan "switchover" {
  step "halt-engine" { action = "stop"  target = "engine"  host = "app-1"  before = "drain" }
}
`
	p, err := deriveWith(t, src, "switchover", testTopology(), DeriveOptions{To: "dr"})
	require.NoError(t, err)
	requireTopological(t, p)
	s := steps(t, p)
	require.ElementsMatch(t, []string{"halt-engine@app-1", "stop:engine@app-1", "rollback:postgres@db-1"}, s["rollback:engine@app-1"].DependsOn,
		"the engine comes back after both of its stops ended and after the database it depends on")
	require.True(t, s["rollback:engine@app-1"].Rollback)

	_, err = Parse([]byte(`plan "switchover" {
  step "late" { action = "notify"  after = "rollback"  args = { message = "x" } }
}
`), "plans.hcl")
	require.ErrorContains(t, err, `plans.hcl:2:44: plan "switchover": step "late": unknown phase "rollback" for a switchover plan`)
}
