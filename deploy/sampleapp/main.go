// Command sampleapp is the sample application of `drplane dev` and the
// end-to-end tests, built on its own: it writes numbered rows to
// PostgreSQL and to a file in its state directory while it runs, and
// answers /health with 200 while those writes succeed. With MODE=drill
// it uses its --drill-* settings and never production's.
//
//	sampleapp --listen 127.0.0.1:8080 --state-dir /opt/app/state \
//	  --dsn 'host=127.0.0.1 port=5432 user=app dbname=app' \
//	  --drill-listen 127.0.0.1:18080 --drill-state-dir /opt/app/drill-state \
//	  --drill-dsn 'host=127.0.0.1 port=15432 user=app dbname=app'
//
// `drplane dev sampleapp` is the same program inside the drplane binary.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/drplane/drplane/internal/devenv/sampleapp"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"
)

func main() {
	var o sampleapp.Options
	fs := pflag.NewFlagSet("sampleapp", pflag.ExitOnError)
	sampleapp.AddFlags(fs, &o)
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger := hclog.New(&hclog.LoggerOptions{Name: "sampleapp", Output: os.Stderr})
	if err := sampleapp.RunMode(ctx, o, logger); err != nil {
		fmt.Fprintln(os.Stderr, "sampleapp:", err)
		os.Exit(1)
	}
}
