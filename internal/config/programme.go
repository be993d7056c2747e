package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/drplane/drplane/internal/calendar"
	"github.com/drplane/drplane/internal/names"
	"github.com/drplane/drplane/internal/plan"
)

// The DR programme's blocks: when the markets trade, and which drills run
// when (drplane schedule list).
//
//	trading_hours "us-equities" { timezone = "America/New_York"  days = ["mon", "tue", "wed", "thu", "fri"]  open = "09:30"  close = "16:00" }
//	schedule "restore-drill" { plan = "data-corruption"  drill = true  cron = "0 6 * * sat"  timezone = "America/New_York" }
//	schedule "site-drill"    { plan = "failover"  drill = true  every = "90d" }
type rawTradingHours struct {
	Name     string   `hcl:"name,label"`
	Timezone string   `hcl:"timezone"`
	Days     []string `hcl:"days"`
	Open     string   `hcl:"open"`
	Close    string   `hcl:"close"`
}

type rawSchedule struct {
	Name     string `hcl:"name,label"`
	Plan     string `hcl:"plan"`
	Drill    bool   `hcl:"drill,optional"`
	Cron     string `hcl:"cron,optional"`
	Every    string `hcl:"every,optional"`
	Timezone string `hcl:"timezone,optional"`
}

// ScheduleConfig is a schedule block: the leader runs Plan (as a drill
// when Drill) at Timing's slots, outside trading hours.
type ScheduleConfig struct {
	Name   string
	Plan   string
	Drill  bool
	Timing calendar.Schedule
}

// tradingHours checks the trading_hours blocks.
func (v *serverValidator) tradingHours(raw []rawTradingHours, cfg *ServerConfig) {
	bs := blocks(v.body, "trading_hours")
	seen := map[string]bool{}
	for i, r := range raw {
		what := fmt.Sprintf("trading_hours %q", r.Name)
		if !v.label(bs[i], what, r.Name, seen) {
			continue
		}
		h, err := calendar.NewTradingHours(r.Name, r.Timezone, r.Days, r.Open, r.Close)
		if err != nil {
			v.d.at(v.attrOfError(bs[i], err), "%s: %v", what, err)
			continue
		}
		cfg.TradingHours = append(cfg.TradingHours, h)
	}
}

// schedules checks the schedule blocks' timings; schedulePlans checks
// their plans once the plan blocks are read.
func (v *serverValidator) schedules(raw []rawSchedule, cfg *ServerConfig) {
	bs := blocks(v.body, "schedule")
	seen := map[string]bool{}
	for i, r := range raw {
		what := fmt.Sprintf("schedule %q", r.Name)
		if !v.label(bs[i], what, r.Name, seen) {
			continue
		}
		timing, err := calendar.NewSchedule(r.Cron, r.Every, r.Timezone)
		if err != nil {
			v.d.at(v.attrOfError(bs[i], err), "%s: %v", what, err)
			continue
		}
		cfg.Schedules = append(cfg.Schedules, ScheduleConfig{Name: r.Name, Plan: r.Plan, Drill: r.Drill, Timing: timing})
	}
}

// schedulePlans checks that every schedule names a plan it may run
// unattended: a drill of any plan that has one, or a restart in place.
// A real failover, switchover or restore moves or rewinds production; the
// programme schedules their drills, never them.
func (v *serverValidator) schedulePlans(cfg *ServerConfig) {
	bs := blocks(v.body, "schedule")
	for i, sc := range cfg.Schedules {
		b := findBlock(bs, sc.Name)
		if b == nil {
			b = bs[i]
		}
		what := fmt.Sprintf("schedule %q", sc.Name)
		kind, _, err := plan.Resolve(sc.Plan, cfg.Plans)
		switch {
		case err != nil:
			v.d.at(attrRange(b.Body, "plan"), "%s: %v", what, err)
		case kind == plan.KindRestart && sc.Drill:
			v.d.at(attrRange(b.Body, "drill"), "%s: a restart has no drill: it restarts production in place; set drill = false to schedule the restart itself", what)
		case kind != plan.KindRestart && !sc.Drill:
			v.d.at(b.DefRange(), "%s: plan %q is a %s plan, which moves or rewinds production; a schedule runs its drill: add drill = true", what, sc.Plan, kind)
		}
	}
}

// label checks a block's name label and that it is not taken; false
// when the block is to be skipped.
func (v *serverValidator) label(b *hclsyntax.Block, what, name string, seen map[string]bool) bool {
	if err := names.Check(name); err != nil {
		v.d.at(b.LabelRanges[0], "%s: %v", what, err)
		return false
	}
	if seen[name] {
		v.d.at(b.LabelRanges[0], "%s is declared twice", what)
		return false
	}
	seen[name] = true
	return true
}

// attrOfError is the range of the attribute a calendar error names
// ("days: ..."), or the block's when it names none.
func (v *serverValidator) attrOfError(b *hclsyntax.Block, err error) hcl.Range {
	if key, _, ok := strings.Cut(err.Error(), ":"); ok {
		if a, ok := b.Body.Attributes[key]; ok {
			return a.Expr.Range()
		}
	}
	return b.DefRange()
}

// findBlock is the block of bs labelled name.
func findBlock(bs []*hclsyntax.Block, name string) *hclsyntax.Block {
	for _, b := range bs {
		if len(b.Labels) > 0 && b.Labels[0] == name {
			return b
		}
	}
	return nil
}
