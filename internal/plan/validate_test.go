package plan

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// good is a small valid plan on testTopology; each case breaks one thing.
func good() *Plan {
	return &Plan{Name: "x", Kind: KindSwitchover, From: "primary", To: "dr", Steps: []Step{
		{ID: "stop", Action: ActionStop, Host: "db-1", Site: "primary", Target: "postgres", Timeout: time.Minute, OnFailure: OnFailureAbort},
		{ID: "catchup", Action: ActionCheck, Host: "db-2", Target: "postgres", Timeout: time.Minute, OnFailure: OnFailureAbort,
			DependsOn: []string{"stop"}, ArgsFrom: map[string]string{"after_position": "stop.position"}},
		{ID: "activate", Action: ActionActivate, Target: "dr", Timeout: time.Minute, OnFailure: OnFailureAbort, DependsOn: []string{"catchup"}},
		{ID: "rsync", Action: ActionRsync, Host: "app-2", Target: "state", Timeout: time.Minute, OnFailure: OnFailureContinue},
		{ID: "hook", Action: ActionHook, Host: "app-1", Target: "circuit-breaker-trip", Timeout: time.Minute, OnFailure: OnFailureAbort},
		{ID: "fence", Action: ActionFence, Host: "app-1", Timeout: time.Second, OnFailure: OnFailureContinue},
		{ID: "wait", Action: ActionWait, Args: map[string]string{"duration": "1s"}, Timeout: time.Minute, OnFailure: OnFailureAbort},
	}}
}

func TestValidate(t *testing.T) {
	require.NoError(t, Validate(good(), testTopology()))
	cases := []struct {
		name string
		edit func(p *Plan)
		want string
	}{
		{"duplicate id", func(p *Plan) { p.Steps[1].ID = "stop" }, `step id "stop" is used twice`},
		{"empty id", func(p *Plan) { p.Steps[6].ID = "" }, `step 6 (wait) has no id`},
		{"unknown dependency", func(p *Plan) { p.Steps[2].DependsOn = []string{"catchpu"} }, `step "activate" depends on "catchpu", which is not a step of the plan`},
		{"cycle", func(p *Plan) { p.Steps[0].DependsOn = []string{"activate"} }, `steps depend on each other in a cycle: stop -> activate -> catchup -> stop`},
		{"self dependency", func(p *Plan) { p.Steps[3].DependsOn = []string{"rsync"} }, `cycle: rsync -> rsync`},
		{"unregistered host", func(p *Plan) { p.Steps[0].Host = "db-9" }, `step "stop": host "db-9" is not a registered agent`},
		{"host in another site", func(p *Plan) { p.Steps[0].Site = "dr" }, `step "stop": host "db-1" is in site "primary", not "dr"`},
		{"undeclared service", func(p *Plan) { p.Steps[0].Target = "redis" }, `step "stop": host "db-1" declares no service "redis"`},
		{"undeclared sync", func(p *Plan) { p.Steps[3].Target = "logs" }, `step "rsync": host "app-2" declares no sync block "logs"`},
		{"undeclared snapshot", func(p *Plan) { p.Steps[3].Action = ActionSnapshot }, `step "rsync": host "app-2" declares no snapshot block "state"`},
		{"undeclared hook", func(p *Plan) { p.Steps[4].Host = "app-2" }, `step "hook": host "app-2" declares no hook "circuit-breaker-trip"`},
		{"fence of an undeclared service", func(p *Plan) { p.Steps[5].Target = "postgres" }, `step "fence": host "app-1" declares no service "postgres"`},
		{"agent step without host", func(p *Plan) { p.Steps[0].Host = "" }, `step "stop": stop is an agent action and needs a host`},
		{"agent step without target", func(p *Plan) { p.Steps[0].Target = "" }, `step "stop": stop needs a target, the service on host "db-1"`},
		{"control step with host", func(p *Plan) { p.Steps[2].Host = "db-2" }, `step "activate": activate runs in the leader and takes no host (got "db-2")`},
		{"activate of a non-data site", func(p *Plan) { p.Steps[2].Target = "witness" }, `step "activate": activate needs target = a data site (primary, dr), got "witness"`},
		{"wait without duration", func(p *Plan) { p.Steps[6].Args = nil }, `step "wait": wait needs args duration`},
		{"notify without message", func(p *Plan) { p.Steps[6].Action = ActionNotify }, `step "wait": notify needs args message`},
		{"args_from of a non-ancestor", func(p *Plan) { p.Steps[1].DependsOn = nil },
			`step "catchup": args_from after_position = "stop.position": step "stop" is not one it depends on, directly or not`},
		{"args_from of an unknown step", func(p *Plan) { p.Steps[1].ArgsFrom["after_position"] = "stpo.position" }, `step "stpo" is not one it depends on`},
		{"args_from without key", func(p *Plan) { p.Steps[1].ArgsFrom["after_position"] = "stop" }, `args_from after_position = "stop" is not STEP_ID.OUTPUT_KEY`},
		{"zero timeout", func(p *Plan) { p.Steps[3].Timeout = 0 }, `step "rsync": timeout 0s must be positive`},
		{"negative retries", func(p *Plan) { p.Steps[3].Retries = -1 }, `step "rsync": retries -1 is negative`},
		{"bad on_failure", func(p *Plan) { p.Steps[3].OnFailure = "" }, `step "rsync": on_failure "" is not "abort" or "continue"`},
		{"unknown action", func(p *Plan) { p.Steps[3].Action = "rsnyc" }, `step "rsync": unknown action "rsnyc"; did you mean "rsync"?`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			tc.edit(p)
			err := Validate(p, testTopology())
			require.ErrorContains(t, err, tc.want)
			var perr *Error
			require.True(t, errors.As(err, &perr))
			for _, d := range perr.Diagnostics {
				require.Empty(t, d.File, "a plan built in code has no positions")
			}
		})
	}
}

func TestValidate_AllProblemsAtOnce(t *testing.T) {
	p := good()
	p.Steps[0].Host = "db-9"
	p.Steps[3].Timeout = 0
	err := Validate(p, testTopology())
	require.Len(t, strings.Split(err.Error(), "\n"), 2, "%v", err)
}

func TestFormat(t *testing.T) {
	topo := testTopology()
	topo.Agents[3].Services = topo.Agents[3].Services[:1]
	p, err := Derive(KindSwitchover, topo, nil, DeriveOptions{To: "dr", MaxDataLoss: 30 * time.Second, Objectives: Objectives{RTO: 15 * time.Minute}})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, p.Format(&buf))
	out := buf.String()
	lines := strings.Split(out, "\n")
	require.Equal(t, "plan switchover (switchover): primary -> dr", lines[0])
	require.Equal(t, "objectives: rto 15m, rpo none; max data loss 30s", lines[1])
	require.Regexp(t, `^PHASE\s+STEP\s+ACTION\s+HOST/SITE\s+TARGET\s+DEPENDS ON\s+TIMEOUT\s+ON FAILURE\s+NOTES$`, lines[3])
	require.Regexp(t, `(?m)^drain\s+stop:gateway@app-1\s+stop\s+app-1/primary\s+gateway\s+-\s+2m\s+abort\s+-$`, out)
	require.Regexp(t, `(?m)^sync\s+rsync:state@app-2\s+rsync\s+app-2/dr\s+state\s+stop:gateway@app-1,stop:engine@app-1\s+30m\s+abort\s+source=10.0.1.20:7500$`, out)
	require.Regexp(t, `(?m)^activate\s+activate:dr\s+activate\s+leader\s+dr\s+catchup:postgres@db-2\s+30s\s+abort\s+-$`, out)
	require.Regexp(t, `(?m)^demote\s+catchup:postgres@db-2\s+check .*retries 2; after_position<-stop:postgres@db-1.position$`, out)
	require.Regexp(t, `(?m)^promote\s+promote:postgres@db-2\s.*health gate$`, out)
	require.Contains(t, out, "\nwarnings:\n  - service \"gateway\" runs at primary (app-1) but no host at dr declares it")
	require.Len(t, lines, 4+len(p.Steps)+1+2+1, "heading, blank, header, steps, blank, warnings, trailing newline")

	p, err = Derive(KindDrill, testTopology(), nil, DeriveOptions{DrillID: "d1"})
	require.NoError(t, err)
	buf.Reset()
	require.NoError(t, p.Format(&buf))
	require.Regexp(t, `(?m)^teardown\s+stop:postgres@db-2\s.*continue\s+always; drill=d1$`, buf.String())
	require.NotContains(t, buf.String(), "warnings")
}
