package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse_BriefExample(t *testing.T) {
	f, err := Parse([]byte(briefExample), "plans.hcl")
	require.NoError(t, err)
	require.Equal(t, Objectives{RTO: 15 * time.Minute, RPO: 5 * time.Minute}, f.Objectives)
	require.Len(t, f.Plans, 2)

	d := f.Plans[0]
	require.Equal(t, "failover", d.Name)
	require.Equal(t, KindFailover, d.Kind, "the label of a default kind needs no kind")
	require.Equal(t, 10*time.Minute, *d.RTO)
	require.Equal(t, time.Minute, *d.RPO)
	require.Equal(t, 30*time.Second, *d.MaxDataLoss)
	require.Equal(t, "plans.hcl", d.Range.Filename)
	require.Equal(t, 2, d.Range.Start.Line)
	require.Len(t, d.Steps, 3)

	trip := d.Steps[0]
	require.Equal(t, "trip-breaker", trip.Name)
	require.Equal(t, ActionHook, trip.Action)
	require.Equal(t, "circuit-breaker-trip", trip.Target)
	require.Equal(t, SiteActive, trip.Site)
	require.Equal(t, PhaseFence, trip.Before)
	require.Equal(t, 30*time.Second, trip.Timeout)
	require.Equal(t, 1, trip.Retries)
	require.Equal(t, OnFailureContinue, trip.OnFailure)
	require.Equal(t, 5, trip.Range.Start.Line)
	target := trip.Ranges["target"]
	require.Equal(t, [2]int{6, 31}, [2]int{target.Start.Line, target.Start.Column}, "positions are the operator's, not the rewritten source's")

	rec := d.Steps[1]
	require.Equal(t, 10, rec.Range.Start.Line)
	after := rec.Ranges["after"]
	require.Equal(t, [2]int{10, 96}, [2]int{after.Start.Line, after.Start.Column}, "keys of a one-line block keep their columns")
	require.Equal(t, []string{"reconcile"}, d.Steps[2].DependsOn)
	require.Equal(t, 0, d.Steps[2].Retries)

	named := f.Plans[1]
	require.Equal(t, "failover-no-approval", named.Name)
	require.Equal(t, KindFailover, named.Kind)
	require.Nil(t, named.RTO)
	require.Nil(t, named.MaxDataLoss)
	require.Same(t, named, f.Definition("failover-no-approval"))
	require.Nil(t, f.Definition("nope"))
}

func TestParse_ServerConfigParses(t *testing.T) {
	src := `node_id          = "s1"
site             = "primary"
data_dir         = "/var/lib/drplane"
ports { grpc = 7400  raft = 7401  http = 7402 }
tls { ca_file = "ca.pem"  cert_file = "s1.pem"  key_file = "s1-key.pem" }
site "primary" { kind = "data"  active = true }
site "dr"      { kind = "data" }
failover {
  max_data_loss = "30s"
}
` + briefExample
	f, err := Parse([]byte(src), "server.hcl")
	require.NoError(t, err, "every other top-level key and block is ignored")
	require.Len(t, f.Plans, 2)
	require.Equal(t, 12, f.Plans[0].Range.Start.Line)

	f, err = Parse([]byte(`node_id = "s1"`+"\n"), "server.hcl")
	require.NoError(t, err)
	require.Empty(t, f.Plans)
	require.Equal(t, Objectives{}, f.Objectives)
}

func TestParseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plans.hcl")
	require.NoError(t, os.WriteFile(path, []byte(briefExample), 0o600))
	f, err := ParseFile(path)
	require.NoError(t, err)
	require.Len(t, f.Plans, 2)
	require.Equal(t, path, f.Plans[0].Steps[0].Range.Filename)

	require.NoError(t, os.WriteFile(path, []byte(`plan "failover" {
  step "x" { action = "hok"  before = "fence" }
}`), 0o600))
	_, err = ParseFile(path)
	require.ErrorContains(t, err, path+":2:23: ")

	_, err = ParseFile(filepath.Join(t.TempDir(), "nope.hcl"))
	require.ErrorContains(t, err, "nope.hcl")
}

// posOf is the line:col where needle first occurs in src.
func posOf(t *testing.T, src, needle string) string {
	t.Helper()
	i := strings.Index(src, needle)
	require.GreaterOrEqual(t, i, 0, "needle %q is in the source", needle)
	line := strings.Count(src[:i], "\n") + 1
	col := i - strings.LastIndex(src[:i], "\n")
	return fmt.Sprintf("%d:%d", line, col)
}

// TestParse_Errors has one row per validation error; at is the text
// whose first character is the position the operator must look at.
func TestParse_Errors(t *testing.T) {
	cases := []struct {
		name string
		src  string
		at   string
		want string
	}{
		// Structure.
		{"syntax error", `plan "failover" { kind = "failover }`, "$1:37", "unterminated template string"},
		{"unknown key in a step", `plan "failover" {
  step "x" {
    action  = "approval"
    after   = "verify"
    timout  = "1m"
  }
}`, `timout`, `unknown key "timout"; did you mean "timeout"?`},
		{"unknown key in a one-line step", `plan "failover" {
  step "x" { action = "approval"  after = "verify"  sight = "active" }
}`,
			`sight`, `unknown key "sight"; a step block takes action, after, args, before, depends_on, description, host, on_failure, retries, site, target, timeout`},
		{"unknown key in a plan", `plan "failover" { max_data_los = "1m" }`, `max_data_los`, `unknown key "max_data_los"; did you mean "max_data_loss"?`},
		{"unknown key in objectives", `objectives { rto = "1m"  rpx = "1m" }`, `rpx`, `unknown key "rpx"; did you mean "rpo"?`},
		{"unknown block in a plan", "plan \"failover\" {\n  stpe \"x\" { }\n}", `stpe`, `unknown block "stpe"; did you mean "step"?`},
		{"missing action", `plan "failover" {
  step "x" { after = "verify" }
}`, `step "x"`, `step "x": missing required key "action"`},
		{"missing step label", `plan "failover" {
  step { action = "approval" }
}`, `{ action`, `step block: missing its name label`},
		{"plan without label", `plan { }`, `plan {`, `plan block: expected one label, its name`},
		{"wrong type", `plan "failover" {
  step "x" { action = "approval"  after = "verify"  retries = "two" }
}`, `"two"`,
			`retries: wrong type: a number is required`},
		{"depends_on not a list", `plan "failover" {
  step "x" { action = "approval"  after = "verify"  depends_on = "y" }
}`, `"y"`,
			`depends_on: wrong type`},
		{"duplicate objectives", "objectives { rto = \"1m\" }\nobjectives { rpo = \"1m\" }\n", "objectives { rpo", "duplicate objectives block; only one is allowed"},
		{"duplicate objectives in a plan", `plan "failover" {
  objectives { rto = "1m" }
  objectives { rpo = "1m" }
}`, `objectives { rpo`, "duplicate objectives block"},
		{"key set twice", "plan \"failover\" {\n  kind = \"failover\"\n  kind = \"drill\"\n}", `kind = "drill"`, `key "kind" is set twice`},

		// Values.
		{"unknown action", `plan "failover" {
  step "x" { action = "hok"  site = "active"  before = "fence" }
}`, `"hok"`,
			`plan "failover": step "x": unknown action "hok"; did you mean "hook"?; expected one of "hook", "check", "snapshot", "stop", "start", "rsync", "fence", "demote", "approval", "wait", "notify"`},
		{"reserved action", `plan "failover" {
  step "x" { action = "promote"  target = "postgres"  site = "target"  before = "fence" }
}`, `"promote"`,
			`action "promote" is reserved to the default plans; expected one of "hook"`},
		{"bad duration", `plan "failover" {
  step "x" { action = "approval"  after = "verify"  timeout = "30 seconds" }
}`, `"30 seconds"`,
			`timeout: invalid duration "30 seconds": expected a number with a unit, e.g. "30s", "5m", "1h"`},
		{"zero timeout", `plan "failover" {
  step "x" { action = "approval"  after = "verify"  timeout = "0s" }
}`, `"0s"`, `timeout "0s" must be positive`},
		{"bad objectives duration", `objectives { rto = "fast" }`, `"fast"`, `rto: invalid duration "fast"`},
		{"bad plan objectives duration", "plan \"failover\" {\n  objectives { rpo = \"1 minute\" }\n}", `"1 minute"`, `objectives.rpo: invalid duration "1 minute"`},
		{"negative max_data_loss", `plan "failover" { max_data_loss = "-1s" }`, `"-1s"`, `max_data_loss: duration "-1s" is negative; expected zero or more`},
		{"unknown phase", `plan "failover" {
  step "x" { action = "approval"  after = "verfy" }
}`, `"verfy"`,
			`unknown phase "verfy" for a failover plan; did you mean "verify"?; expected one of "fence", "guard", "activate", "promote", "start", "verify"`},
		{"phase of another kind", `plan "failover" {
  step "x" { action = "approval"  before = "drain" }
}`, `"drain"`,
			`unknown phase "drain" for a failover plan`},
		{"site not active or target", `plan "failover" {
  step "x" { action = "hook"  target = "h"  site = "dr"  before = "fence" }
}`, `"dr"`,
			`site "dr" is not "active" or "target"; name one host with host = "..."`},
		{"both site and host", `plan "failover" {
  step "x" { action = "hook"  target = "h"  site = "active"  host = "app-1"  before = "fence" }
}`, `"app-1"`,
			`both site and host are set; expected one`},
		{"neither site nor host", `plan "failover" {
  step "x" { action = "hook"  target = "h"  before = "fence" }
}`, `step "x"`,
			`hook runs on agents; expected site = "active" or "target", or host = a host id`},
		{"control step with a site", `plan "failover" {
  step "x" { action = "approval"  site = "active"  before = "fence" }
}`, `"active"`,
			`approval runs in the leader and takes neither site nor host`},
		{"control step with a target", `plan "failover" {
  step "x" { action = "approval"  target = "y"  before = "fence" }
}`, `"y"`,
			`approval runs in the leader and takes no target`},
		{"agent step without target", `plan "failover" {
  step "x" { action = "hook"  site = "active"  before = "fence" }
}`, `step "x"`,
			`hook needs target = the hook on the host`},
		{"wait without duration", `plan "failover" {
  step "x" { action = "wait"  before = "fence" }
}`, `step "x"`, `wait needs args = { duration = "5m" }`},
		{"wait with a bad duration", `plan "failover" {
  step "x" { action = "wait"  args = { duration = "soon" }  before = "fence" }
}`, `{ duration`,
			`args.duration: invalid duration "soon"`},
		{"notify without message", `plan "failover" {
  step "x" { action = "notify"  before = "fence" }
}`, `step "x"`, `notify needs args = { message = "..." }`},
		{"before and after", `plan "failover" {
  step "x" { action = "approval"  before = "fence"  after = "guard" }
}`, `"guard"`,
			`both before and after are set; expected one of them`},
		{"neither before nor after", `plan "failover" {
  step "x" { action = "approval" }
}`, `step "x"`, `expected before = "<phase>" or after = "<phase>"`},
		{"negative retries", `plan "failover" {
  step "x" { action = "approval"  after = "verify"  retries = -1 }
}`, `-1`, `retries -1 is negative`},
		{"bad on_failure", `plan "failover" {
  step "x" { action = "approval"  after = "verify"  on_failure = "ignore" }
}`, `"ignore"`,
			`on_failure "ignore" is not "abort" or "continue"`},
		{"cycle among steps", `plan "failover" {
  step "a" {
    action     = "approval"
    after      = "verify"
    depends_on = ["b"]
  }
  step "b" {
    action     = "approval"
    after      = "verify"
    depends_on = ["a"]
  }
}`, `["b"]`, `plan "failover": steps depend on each other in a cycle: a -> b -> a`},
		{"step depends on itself", `plan "failover" {
  step "a" { action = "approval"  after = "verify"  depends_on = ["a"] }
}`, `["a"]`,
			`cycle: a -> a`},
		{"unknown dependency", `plan "failover" {
  step "resume" {
    action     = "approval"
    after      = "verify"
    depends_on = ["reconcil"]
  }
  step "reconcile" {
    action = "notify"
    args   = { message = "reconciled" }
    after  = "verify"
  }
}`, `["reconcil"]`, `step "resume" depends on "reconcil", which is not a step of this plan; did you mean "reconcile"?`},
		{"duplicate step", "plan \"failover\" {\n  step \"a\" { action = \"approval\"  after = \"verify\" }\n  step \"a\" { action = \"approval\"  after = \"verify\" }\n}",
			"step \"a\" { action = \"approval\"  after = \"verify\" }\n}", `step "a" is declared twice`},
		{"step named after an action", `plan "failover" {
  step "guard" { action = "approval"  after = "verify" }
}`, `"guard"`,
			`the name is an action's, which default steps use; choose another`},
		{"bad step name", `plan "failover" {
  step "a b" { action = "approval"  after = "verify" }
}`, `"a b"`, `step "a b": ' ' is not allowed in a name; expected 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit`},
		{"plan name with a path", `plan "../fast" { kind = "failover" }`, `"../fast"`,
			`plan "../fast": a name is one path element and cannot contain "/" or "\"; expected 1 to 63 letters`},
		{"named plan without kind", `plan "quick" { }`, `plan "quick"`, `plan "quick": missing kind; expected kind = one of "failover", "switchover", "failback", "drill"`},
		{"unknown kind", `plan "quick" { kind = "failovr" }`, `"failovr"`, `unknown kind "failovr"; did you mean "failover"?`},
		{"kind contradicts label", `plan "drill" { kind = "failover" }`, `"failover"`, `kind "failover" contradicts the label`},
		{"typo in a plan block", "plans \"failover\" {\n}\n", `plans`, `unknown block "plans"; did you mean "plan"?`},
		{"typo in objectives", "objective { rto = \"1m\" }\n", `objective`, `unknown block "objective"; did you mean "objectives"?`},
		{"step outside a plan", "step \"x\" {\n  action = \"approval\"\n}\n", `step`, `step blocks go inside a plan block`},
		{"duplicate plan", "plan \"failover\" { }\nplan \"failover\" { }\n", "\"failover\" { }\n", `plan "failover" is declared twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), "plans.hcl")
			at := tc.at
			if strings.HasPrefix(at, "$") { // an explicit line:col
				requireDiag(t, err, "plans.hcl:"+at[1:], tc.want)
				return
			}
			pos := posOf(t, tc.src, at)
			if tc.name == "duplicate step" || tc.name == "duplicate plan" {
				// The second occurrence.
				i := strings.LastIndex(tc.src, at)
				pos = posOf(t, tc.src[:i]+strings.Repeat("#", len(at))+tc.src[i+len(at):], strings.Repeat("#", len(at)))
			}
			requireDiag(t, err, "plans.hcl:"+pos, tc.want)
		})
	}
}

// TestParse_AllProblemsAtOnce checks that every value problem of a file
// comes in one error, sorted by position.
func TestParse_AllProblemsAtOnce(t *testing.T) {
	src := `plan "failover" {
  step "a" { action = "hok"  site = "active"  target = "x"  before = "fence" }
  step "b" { action = "approval"  after = "verfy" }
}
objectives { rto = "soon" }
`
	_, err := Parse([]byte(src), "plans.hcl")
	var perr *Error
	require.ErrorAs(t, err, &perr)
	var got []string
	for _, d := range perr.Diagnostics {
		got = append(got, fmt.Sprintf("%d:%d", d.Line, d.Column))
	}
	require.Equal(t, []string{"2:23", "3:43", "5:20"}, got)
	require.Len(t, strings.Split(err.Error(), "\n"), 3)
}

func TestResolve(t *testing.T) {
	f, err := Parse([]byte(briefExample), "plans.hcl")
	require.NoError(t, err)
	kind, def, err := Resolve("failover", f.Plans)
	require.NoError(t, err)
	require.Equal(t, KindFailover, kind)
	require.Same(t, f.Plans[0], def)
	kind, def, err = Resolve("failover-no-approval", f.Plans)
	require.NoError(t, err)
	require.Equal(t, KindFailover, kind)
	require.Same(t, f.Plans[1], def)
	kind, def, err = Resolve("drill", f.Plans)
	require.NoError(t, err)
	require.Equal(t, KindDrill, kind)
	require.Nil(t, def, "a kind without a plan block is the default plan")
	_, _, err = Resolve("failover-no-aproval", f.Plans)
	require.EqualError(t, err, `unknown plan "failover-no-aproval"; did you mean "failover-no-approval"?; expected one of failover, switchover, failback, drill, restart, restore, failover-no-approval`)
}

// TestParse_ZeroRPO: rpo = "0s" is the target of zero data loss, not the
// absence of a target.
func TestParse_ZeroRPO(t *testing.T) {
	f, err := Parse([]byte("objectives { rpo = \"0s\" }\nplan \"failover\" {\n  objectives { rpo = \"0s\" }\n}\n"), "server.hcl")
	require.NoError(t, err)
	require.True(t, f.Objectives.ZeroRPO)
	require.True(t, f.Objectives.HasRPO())
	require.True(t, f.Plans[0].RPO != nil && *f.Plans[0].RPO == 0)

	f, err = Parse([]byte("objectives { rto = \"5m\" }\n"), "server.hcl")
	require.NoError(t, err)
	require.False(t, f.Objectives.HasRPO(), "no rpo, no target")
}
