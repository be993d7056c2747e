package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/drplane/drplane/internal/plan"
)

// programmeConfig is the DR programme of the example.
const programmeConfig = `
objectives { rto = "15m"  drill_success_rate = 0.95  availability = 0.995  availability_trading_hours = 0.999  mttr = "15m" }
trading_hours "us-equities" {
  timezone = "America/New_York"
  days     = ["mon", "tue", "wed", "thu", "fri"]
  open     = "09:30"
  close    = "16:00"
}
plan "data-corruption" { kind = "restore" }
schedule "restore-drill" { plan = "data-corruption"  drill = true  cron = "0 6 * * sat"  timezone = "America/New_York" }
schedule "site-drill"    { plan = "failover"  drill = true  every = "90d" }
schedule "weekly-restart" { plan = "restart"  cron = "0 3 * * sun" }
`

func TestParseServerConfig_Programme(t *testing.T) {
	cfg, _, err := parseExample(t, exampleConfig+programmeConfig)
	require.NoError(t, err)
	require.Equal(t, plan.Programme{DrillSuccessRate: 0.95, Availability: 0.995, AvailabilityTradingHours: 0.999, MTTR: 15 * time.Minute,
		Window: plan.DefaultKPIWindow}, cfg.Programme)
	require.Equal(t, 15*time.Minute, cfg.Objectives.RTO, "the plans' defaults stay in the same block")
	require.Len(t, cfg.TradingHours, 1)
	require.Equal(t, "us-equities", cfg.TradingHours[0].Name)
	require.Len(t, cfg.Schedules, 3)
	require.Equal(t, "restore-drill", cfg.Schedules[0].Name)
	require.Equal(t, "data-corruption", cfg.Schedules[0].Plan)
	require.True(t, cfg.Schedules[0].Drill)
	require.Equal(t, "0 6 * * sat", cfg.Schedules[0].Timing.Cron)
	require.Equal(t, 90*24*time.Hour, cfg.Schedules[1].Timing.Every)
	require.False(t, cfg.Schedules[2].Drill, "a restart is scheduled as itself")

	// A Friday inside the session, and the Saturday slot of the cron.
	ny, _ := time.LoadLocation("America/New_York")
	_, in := cfg.TradingHours.Inside(time.Date(2027, 3, 12, 10, 0, 0, 0, ny))
	require.True(t, in)
	require.Equal(t, time.Date(2027, 3, 13, 6, 0, 0, 0, ny), cfg.Schedules[0].Timing.NextAfter(time.Date(2027, 3, 12, 10, 0, 0, 0, ny)))
}

func TestParseServerConfig_ProgrammeErrors(t *testing.T) {
	base := exampleConfig + "plan \"data-corruption\" { kind = \"restore\" }\n" // line 12
	cases := []struct {
		name string
		add  string
		pos  string // line:col
		want string
	}{
		{"bad timezone", `trading_hours "x" { timezone = "America/NewYork"  days = ["mon"]  open = "09:30"  close = "16:00" }`, "13:32",
			`trading_hours "x": timezone:`},
		{"bad day", `trading_hours "x" { timezone = "UTC"  days = ["monday"]  open = "09:30"  close = "16:00" }`, "13:46",
			`trading_hours "x": days: "monday" is not a day`},
		{"bad open", `trading_hours "x" { timezone = "UTC"  days = ["mon"]  open = "9.30"  close = "16:00" }`, "13:62", `trading_hours "x": open: "9.30" is not a time`},
		{"trading hours twice", "trading_hours \"x\" { timezone = \"UTC\"  days = [\"mon\"]  open = \"09:30\"  close = \"16:00\" }\n" +
			`trading_hours "x" { timezone = "UTC"  days = ["tue"]  open = "09:30"  close = "16:00" }`, "14:15", `trading_hours "x" is declared twice`},
		{"cron and every", `schedule "s" { plan = "failover"  drill = true  cron = "0 6 * * sat"  every = "7d" }`, "13:1", "cron"},
		{"unknown plan", `schedule "s" { plan = "data-corupt"  drill = true  every = "7d" }`, "13:23",
			`schedule "s": unknown plan "data-corupt"; expected one of failover, switchover, failback, drill, restart, restore, data-corruption`},
		{"real failover scheduled", `schedule "s" { plan = "failover"  every = "7d" }`, "13:1",
			`schedule "s": plan "failover" is a failover plan, which moves or rewinds production; a schedule runs its drill: add drill = true`},
		{"restart as a drill", `schedule "s" { plan = "restart"  drill = true  every = "7d" }`, "13:42", `schedule "s": a restart has no drill`},
		{"availability as a percentage", `objectives { availability = 99.5 }`, "13:29", `objectives.availability = 99.5 is not a ratio; write 0.995 for 99.5 %`},
		{"bad mttr", `objectives { mttr = "fast" }`, "13:21", `objectives.mttr: invalid duration "fast"`},
		{"a KPI in a plan's objectives", "plan \"failover\" {\n  objectives { mttr = \"15m\" }\n}", "14:16", `unknown key "mttr"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, dir, err := parseExample(t, base+tc.add+"\n")
			require.Error(t, err)
			var cfgErr *Error
			require.True(t, errors.As(err, &cfgErr), "want a *config.Error, got %T", err)
			prefix := filepath.Join(dir, "server.hcl") + ":" + tc.pos + ": "
			for _, d := range cfgErr.Diagnostics {
				if strings.HasPrefix(d.String(), prefix) && strings.Contains(d.Message, tc.want) {
					return
				}
			}
			t.Fatalf("no diagnostic %q at %s in:\n%s", tc.want, tc.pos, err)
		})
	}
}
