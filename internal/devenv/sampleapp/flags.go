package sampleapp

import (
	"context"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"
)

// EnvMode is the environment variable that selects the mode; a drill
// block sets it to drill.
const EnvMode = "MODE"

// AddFlags declares o's flags on fs. Each defaults to an environment
// variable (SAMPLEAPP_LISTEN, SAMPLEAPP_DSN, ...), so the application
// can also be configured the twelve-factor way.
func AddFlags(fs *pflag.FlagSet, o *Options) {
	fs.StringVar(&o.Host, "host", envOr("SAMPLEAPP_HOST", hostname()), "name of this instance, written into every row")
	fs.StringVar(&o.Listen, "listen", envOr("SAMPLEAPP_LISTEN", "127.0.0.1:8080"), "address of /health and /status")
	fs.StringVar(&o.DSN, "dsn", os.Getenv("SAMPLEAPP_DSN"), "PostgreSQL connection string; empty: keep the state file only")
	fs.StringVar(&o.StateDir, "state-dir", os.Getenv("SAMPLEAPP_STATE_DIR"), "directory of the state file (required)")
	fs.StringVar(&o.DrillListen, "drill-listen", os.Getenv("SAMPLEAPP_DRILL_LISTEN"), "MODE=drill: address of /health and /status")
	fs.StringVar(&o.DrillDSN, "drill-dsn", os.Getenv("SAMPLEAPP_DRILL_DSN"), "MODE=drill: the drill copy's connection string")
	fs.StringVar(&o.DrillStateDir, "drill-state-dir", os.Getenv("SAMPLEAPP_DRILL_STATE_DIR"), "MODE=drill: directory of the state file")
	fs.DurationVar(&o.Interval, "interval", 200*time.Millisecond, "pause between two writes")
}

// RunMode runs the application in the mode MODE names (live when unset)
// until ctx ends.
func RunMode(ctx context.Context, o Options, logger hclog.Logger) error {
	cfg, err := o.Resolve(os.Getenv(EnvMode))
	if err != nil {
		return err
	}
	return Run(ctx, cfg, logger)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
