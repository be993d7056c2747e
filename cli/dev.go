package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/drplane/drplane/internal/devenv"
	"github.com/drplane/drplane/internal/devenv/sampleapp"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
)

type devOptions struct {
	f           *Factory
	Dir         string
	Port        int
	Replication string
}

func newCmdDev(f *Factory) *cobra.Command {
	opts := &devOptions{f: f}
	cmd := &cobra.Command{
		Use:   "dev [--dir D] [--port P] [--replication async|sync|sync-strict]",
		Short: "Run a complete deployment on loopback (3 servers, 4 agents, PostgreSQL, a sample app) until Ctrl-C",
		Long: `Run a complete local deployment until SIGINT or SIGTERM: servers for the
primary, dr and witness sites; agents for db-1 and app-1 (primary) and db-2
and app-2 (dr); a PostgreSQL 15 primary on db-1 streaming to a standby on db-2
when PostgreSQL is installed and drplane runs as root (otherwise file-sync
services only); and a sample application on the app hosts that writes rows
while it is active and whose state directory a sync block replicates. Every
server, agent, postmaster and application is its own process, so a site can
be killed from outside.

Everything lives under D:
  D/env.sh                   exports DRPLANE_ADDR (every server), DRPLANE_CACERT,
                             DRPLANE_CLIENT_CERT, DRPLANE_CLIENT_KEY
  D/pids/<site>/<name>.pid   every process of a site, kept up to date:
                             kill -9 $(cat D/pids/primary/*.pid) is a site outage
  D/dev.json                 addresses, ports, logs and data directories

A line starting with "ready" is printed once everything serves. Ctrl-C stops
every process and removes D, unless --dir named it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDev(cmd.Context(), opts) },
	}
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "directory for everything; must be new or empty; kept on exit (default: a temp dir, removed on exit)")
	cmd.Flags().IntVar(&opts.Port, "port", devenv.DefaultPort, "gRPC port of the first server on 127.0.0.1 (0: the kernel chooses); the others get free ports")
	cmd.Flags().StringVar(&opts.Replication, "replication", "async", "how PostgreSQL replicates: async, sync (the leader keeps the standby synchronous, degrading to async while it is lost) or sync-strict (never degraded)")
	cmd.AddCommand(newCmdDevSampleApp())
	return cmd
}

// runDev runs the deployment until SIGINT or SIGTERM. The signals stay
// caught while it cleans up, so a second Ctrl-C cannot leave processes
// behind half way.
func runDev(ctx context.Context, opts *devOptions) error {
	replication, err := devenv.ParseReplication(opts.Replication)
	if err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the drplane executable the servers and agents run: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger := hclog.New(&hclog.LoggerOptions{Name: "drplane-dev", Output: opts.f.IO.ErrOut})
	return devenv.Run(ctx, devenv.Options{Dir: opts.Dir, Port: opts.Port, Bin: bin, Out: opts.f.IO.Out, Logger: logger, Replication: replication})
}

// newCmdDevSampleApp is the sample application the dev deployment's
// agents run (deploy/sampleapp is the same program on its own).
func newCmdDevSampleApp() *cobra.Command {
	var o sampleapp.Options
	cmd := &cobra.Command{
		Use:    "sampleapp",
		Short:  "Run the sample application of drplane dev (run by its agents)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			logger := hclog.New(&hclog.LoggerOptions{Name: "sampleapp", Output: cmd.ErrOrStderr()})
			return sampleapp.RunMode(ctx, o, logger)
		},
	}
	sampleapp.AddFlags(cmd.Flags(), &o)
	return cmd
}
