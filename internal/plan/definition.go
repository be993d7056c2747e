package plan

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// DefaultMaxDataLoss is the RPO guard's limit when the server's
// failover block does not set max_data_loss.
const DefaultMaxDataLoss = 30 * time.Second

// File is what a plan file (or the server's config file) declares about
// plans: the top-level objectives block and the plan blocks.
type File struct {
	// Objectives are the top-level defaults; a field not written is zero.
	Objectives Objectives
	// Plans are the plan blocks in file order.
	Plans []*Definition
	// Programme are the DR programme's KPI targets, from the top-level
	// objectives block.
	Programme Programme
}

// DefaultKPIWindow is the KPI window when the objectives block sets none:
// the plans state their availability targets per year.
const DefaultKPIWindow = 365 * 24 * time.Hour

// Programme are the DR programme's KPI targets (drplane report): a zero
// ratio or duration is no target.
//
//	objectives { drill_success_rate = 0.95  availability = 0.995  availability_trading_hours = 0.999  mttr = "15m"  window = "365d" }
type Programme struct {
	DrillSuccessRate         float64       `json:"drill_success_rate,omitempty"`
	Availability             float64       `json:"availability,omitempty"`
	AvailabilityTradingHours float64       `json:"availability_trading_hours,omitempty"`
	MTTR                     time.Duration `json:"mttr,omitempty"`
	// Window is how far back the KPIs look.
	Window time.Duration `json:"window"`
}

// Definition is one plan block: the default plan of Kind, with its own
// objectives, RPO limit and operator steps.
//
//	plan "failover" {
//	  objectives { rto = "10m"  rpo = "1m" }
//	  max_data_loss = "30s"
//	  step "trip-breaker" { action = "hook"  target = "circuit-breaker-trip"  site = "active"  before = "fence" }
//	}
type Definition struct {
	// Name is the block's label: a kind, or the name of a plan of Kind.
	Name string
	Kind Kind
	// RTO, RPO and MaxDataLoss override the defaults; nil when not
	// written.
	RTO, RPO    *time.Duration
	MaxDataLoss *time.Duration
	// Steps are the operator's steps in file order.
	Steps []StepDef
	// Range is where the block is opened (its type and label).
	Range hcl.Range
}

// ObjectivesOver returns o with the definition's own objectives written
// over it, field by field; d may be nil (a kind without a plan block).
func (d *Definition) ObjectivesOver(o Objectives) Objectives {
	if d == nil {
		return o
	}
	if d.RTO != nil {
		o.RTO = *d.RTO
	}
	if d.RPO != nil {
		o.RPO, o.ZeroRPO = *d.RPO, *d.RPO == 0
	}
	return o
}

// Scenario is one plan an operator can run, with the objectives it is
// measured against: every kind's default plan and every named plan.
type Scenario struct {
	Name       string
	Kind       Kind
	Objectives Objectives
}

// Scenarios lists the plans of the server's configuration: each kind (its
// plan block's objectives over the defaults, when it has one), then the
// named plans in file order.
func Scenarios(defaults Objectives, defs []*Definition) []Scenario {
	var out []Scenario
	for _, k := range Kinds {
		var def *Definition
		for _, d := range defs {
			if d.Name == string(k) {
				def = d
			}
		}
		out = append(out, Scenario{Name: string(k), Kind: k, Objectives: def.ObjectivesOver(defaults)})
	}
	for _, d := range defs {
		if slices.Contains(Kinds, Kind(d.Name)) {
			continue
		}
		out = append(out, Scenario{Name: d.Name, Kind: d.Kind, Objectives: d.ObjectivesOver(defaults)})
	}
	return out
}

// Operator step placements.
const (
	SiteActive = "active" // the site that is active when the plan is derived
	SiteTarget = "target" // the plan's target site
)

// StepDef is one operator step of a plan block. It becomes one step (a
// control action) or one step per host (an agent action) when the plan is
// derived.
//
// Placement: with Before = P the step goes between phase P and the phase
// before it; with After = P between P and the phase after it. Precisely,
// for the boundary between phases X (earlier) and Y (later) of the plan's
// kind, skipping phases that have no step in the derived plan:
//
//   - the step depends on the last steps of X: its steps on which no other
//     step of X depends (none when no phase precedes the boundary);
//   - the first steps of Y, those that depend on no other step of Y,
//     depend on the step (none when no phase follows the boundary).
//
// Several operator steps at one boundary run in parallel unless DependsOn
// orders them. A failback has phase reprotect twice: Before names its
// first occurrence, After its last.
type StepDef struct {
	Name   string
	Action string
	// Target is the service, sync block, snapshot block or hook on the
	// host; empty for control actions and for a fence of every
	// primary-role service.
	Target string
	// Site is SiteActive or SiteTarget: the step runs on every agent of
	// that site that declares Target. Host names one agent instead.
	// Control actions take neither.
	Site string
	Host string
	// Before and After name a phase; exactly one is set.
	Before string
	After  string
	// DependsOn names other operator steps of the same plan.
	DependsOn   []string
	Args        map[string]string
	Timeout     time.Duration // 0: the action's default
	Retries     int
	OnFailure   string // "" or an OnFailure constant
	Description string
	// Range is where the step block is opened; Ranges holds where each
	// written key's value is, by key.
	Range  hcl.Range
	Ranges map[string]hcl.Range
}

// rangeOf is where key is written, or the step block when it is not.
func (s *StepDef) rangeOf(key string) hcl.Range {
	if r, ok := s.Ranges[key]; ok {
		return r
	}
	return s.Range
}

// Definition returns the plan block named name, or nil.
func (f *File) Definition(name string) *Definition {
	i := slices.IndexFunc(f.Plans, func(d *Definition) bool { return d.Name == name })
	if i < 0 {
		return nil
	}
	return f.Plans[i]
}

// Resolve says what a plan name on the command line means: the plan
// block called name if defs has one (its Kind), or else the default plan
// of the kind called name (a nil definition).
func Resolve(name string, defs []*Definition) (Kind, *Definition, error) {
	for _, d := range defs {
		if d.Name == name {
			return d.Kind, d, nil
		}
	}
	if slices.Contains(Kinds, Kind(name)) {
		return Kind(name), nil, nil
	}
	names := make([]string, 0, len(Kinds)+len(defs))
	for _, k := range Kinds {
		names = append(names, string(k))
	}
	for _, d := range defs {
		if !slices.Contains(names, d.Name) {
			names = append(names, d.Name)
		}
	}
	return "", nil, fmt.Errorf("unknown plan %q%s; expected one of %s", name, didYouMean(name, names), strings.Join(names, ", "))
}

// kindPhases are the phases of each kind's default plan, in order.
var kindPhases = map[Kind][]string{
	KindFailover:   {PhaseFence, PhaseGuard, PhaseActivate, PhasePromote, PhaseStart, PhaseVerify},
	KindSwitchover: {PhaseDrain, PhaseSync, PhaseDemote, PhaseActivate, PhasePromote, PhaseStart, PhaseVerify, PhaseReprotect},
	KindFailback: {PhaseReprotect, PhaseDrain, PhaseSync, PhaseDemote, PhaseActivate, PhasePromote, PhaseStart, PhaseVerify,
		PhaseReprotect},
	KindDrill:   {PhaseStart, PhaseVerify, PhaseTeardown},
	KindRestart: {PhaseDrain, PhaseStart, PhaseVerify},
	KindRestore: {PhaseDrain, PhaseRestorePoint, PhaseRestore, PhaseStart, PhaseVerify, PhaseReprotect},
}

// PhasesOf returns the phases of kind's default plan in order (a
// failback has reprotect first and last), or nil for an unknown kind.
func PhasesOf(kind Kind) []string {
	return slices.Clone(kindPhases[kind])
}

// phaseNames lists kind's phases once each, for messages.
func phaseNames(kind Kind) []string {
	var out []string
	for _, p := range kindPhases[kind] {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// extensionActions are the actions an operator step may take. Promote,
// guard, activate and lease-wait belong to the default plans alone: a
// promotion elsewhere than after activate would break invariant 1.
var extensionActions = []string{ActionHook, ActionCheck, ActionSnapshot, ActionStop, ActionStart, ActionRsync, ActionFence,
	ActionDemote, ActionApproval, ActionWait, ActionNotify}

// isControl reports whether action runs in the leader.
func isControl(action string) bool { return slices.Contains(ControlActions, action) }

// defaultTimeouts are the step timeouts when nothing else is said.
var defaultTimeouts = map[string]time.Duration{
	ActionFence:    10 * time.Second,
	ActionSnapshot: 30 * time.Minute,
	// A restore of a snapshot copies what the snapshot holds back.
	ActionRestoreSnapshot: 30 * time.Minute,
	ActionStop:            2 * time.Minute,
	ActionDemote:          10 * time.Minute,
	ActionRsync:           30 * time.Minute,
	ActionPromote:         2 * time.Minute,
	ActionStart:           5 * time.Minute,
	ActionCheck:           time.Minute,
	ActionHook:            5 * time.Minute,
	// A backup or a restore copies the database.
	ActionBackup:        6 * time.Hour,
	ActionRestoreBackup: 6 * time.Hour,
	ActionVerifyBackup:  6 * time.Hour,
	ActionApproval:      time.Hour,
	ActionWait:          time.Minute, // plus the wait's duration
	ActionNotify:        30 * time.Second,
	ActionGuard:         time.Minute,
	ActionActivate:      30 * time.Second,
	ActionLeaseWait:     5 * time.Minute,
}

// DefaultTimeout is the timeout of a step of action when neither the
// default plan nor the operator says otherwise. A wait's is its duration
// plus this.
func DefaultTimeout(action string) time.Duration { return defaultTimeouts[action] }

// defaultRetries are the retries of an action's step; check is retried
// because a service may take a moment to answer after it started.
func defaultRetries(action string) int {
	if action == ActionCheck {
		return 2
	}
	return 0
}

// Validate checks f's plans against a topology: every operator step's
// host is registered, and the hosts where it runs declare its target (a
// service, sync block, snapshot block or hook). Each plan is derived from
// the active site to every other data site, so the default plans' own
// problems (a dependency the target lacks, an rsync without a source)
// show too. Problems of operator steps carry their file positions.
func (f *File) Validate(topo Topology) error {
	var pr problems
	seen := map[string]bool{}
	record := func(d Diagnostic) {
		if !seen[d.String()] {
			seen[d.String()] = true
			pr.list = append(pr.list, d)
		}
	}
	for _, def := range f.Plans {
		for _, run := range validationRuns(def.Kind, topo) {
			_, err := Derive(def.Kind, topo, def, run.opts)
			var perr *Error
			switch {
			case err == nil:
			case errors.As(err, &perr):
				for _, d := range perr.Diagnostics {
					if d.File == "" {
						d.Message = fmt.Sprintf("plan %q %s: %s", def.Name, run.what, d.Message)
					}
					record(d)
				}
			default:
				record(Diagnostic{Message: fmt.Sprintf("plan %q %s: %v", def.Name, run.what, err)})
			}
		}
	}
	return pr.err()
}

// validationRun is one derivation File.Validate tries, and how its
// messages name it.
type validationRun struct {
	opts DeriveOptions
	what string
}

// validationRuns are the derivations that check a plan of kind: one per
// other data site for the kinds that move; once at the active site for a
// restart; once per data service with a backup block for a restore (once
// without, when there is none, which says what is missing).
func validationRuns(kind Kind, topo Topology) []validationRun {
	switch kind {
	case KindRestart:
		return []validationRun{{what: "at " + topo.ActiveSite}}
	case KindRestore:
		var runs []validationRun
		seen := map[string]bool{}
		for _, a := range topo.Agents {
			for _, svc := range a.Services {
				if a.Site == topo.ActiveSite && svc.Promotable && svc.Backup != "" && !seen[svc.Name] {
					seen[svc.Name] = true
					runs = append(runs, validationRun{opts: DeriveOptions{Service: svc.Name}, what: "of " + svc.Name + " at " + topo.ActiveSite})
				}
			}
		}
		if len(runs) == 0 {
			runs = []validationRun{{what: "at " + topo.ActiveSite}}
		}
		return runs
	}
	var runs []validationRun
	for _, to := range dataSites(topo) {
		if to != topo.ActiveSite {
			runs = append(runs, validationRun{opts: DeriveOptions{To: to, DrillID: "validate"}, what: "to " + to})
		}
	}
	return runs
}
