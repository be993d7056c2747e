package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/drplane/drplane/controlplane"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
)

type serverOptions struct {
	f          *Factory
	ConfigFile string
}

func newCmdServer(f *Factory, runF func(*serverOptions) error) *cobra.Command {
	opts := &serverOptions{f: f}
	cmd := &cobra.Command{
		Use:   "server --config FILE",
		Short: "Run a control-plane server (a Raft voter)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.ConfigFile == "" {
				return fmt.Errorf("--config is required: the server's HCL configuration file")
			}
			if runF != nil {
				return runF(opts)
			}
			return runServer(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.ConfigFile, "config", "", "server configuration file (HCL)")
	cmd.AddCommand(newCmdServerRejoin(f))
	return cmd
}

func newCmdServerRejoin(f *Factory) *cobra.Command {
	var configFile string
	var force bool
	cmd := &cobra.Command{
		Use:   "rejoin --config FILE",
		Short: "Wipe a removed server's Raft state so that it joins the cluster again",
		Long: `A server of a site that was lost and recovered around (quorum-loss failover)
refuses to serve when it comes back: its Raft state is older than the cluster's.
rejoin moves that state aside (data_dir/raft.removed-TIME; nothing is deleted)
and clears the mark. A running server then restarts by itself and joins
through retry_join; a stopped one does so when started.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				return fmt.Errorf("--config is required: the server's HCL configuration file")
			}
			cfg, err := config.LoadServerConfig(configFile)
			if err != nil {
				return err
			}
			reason, err := controlplane.ReadRemovedMark(cfg.DataDir)
			if err != nil {
				return err
			}
			if reason == "" && !force {
				return fmt.Errorf("server %s (data_dir %s) was not removed from its cluster; rejoin would discard its Raft state: to remove it on purpose, use `drplane members remove %s` first, or pass --force", cfg.NodeID, cfg.DataDir, cfg.NodeID)
			}
			moved, err := controlplane.WipeForRejoin(cfg.DataDir)
			if err != nil {
				return fmt.Errorf("rejoin %s: %w", cfg.NodeID, err)
			}
			if moved != "" {
				fmt.Fprintf(f.IO.Out, "moved the old Raft state of %s to %s\n", cfg.NodeID, moved)
			}
			fmt.Fprintf(f.IO.Out, "%s will join the cluster through retry_join (%s) when it (re)starts; a running server restarts by itself\n", cfg.NodeID, strings.Join(cfg.RetryJoin, ", "))
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "server configuration file (HCL)")
	cmd.Flags().BoolVar(&force, "force", false, "wipe even a server that was not removed")
	return cmd
}

// runServer starts a server and runs it until SIGINT or SIGTERM, then shuts
// it down gracefully (a leader hands over leadership first).
func runServer(ctx context.Context, opts *serverOptions) error {
	cfg, err := config.LoadServerConfig(opts.ConfigFile)
	if err != nil {
		return err
	}
	// A STONITH hook that cannot run would be found only when a site is
	// lost and the fence is needed.
	if err := cfg.Programs.Check(exec.LookPath); err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "drplane",
		Level:  hclog.LevelFromString(cfg.LogLevel),
		Output: opts.f.IO.ErrOut,
	})
	m, err := tlsutil.Load(cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return fmt.Errorf("%s: tls: %w", opts.ConfigFile, err)
	}
	if m.Identity().Role != tlsutil.RoleServer {
		return fmt.Errorf("%s: tls: %s is a %s certificate; a server needs one made with `drplane tls cert create --server`", opts.ConfigFile, cfg.TLS.CertFile, m.Identity().Role)
	}
	if err := cfg.CheckCertificateName(m.Identity().Name); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// A server restarts itself in place to apply a quorum-loss recovery or
	// a removal, with the same configuration and addresses.
	for {
		srv, err := controlplane.NewServer(cfg, controlplane.Deps{Logger: logger, TLS: m})
		if err != nil {
			return err
		}
		restart := false
		select {
		case <-ctx.Done():
			logger.Info("shutting down")
		case <-srv.RestartRequested():
			logger.Warn("restarting")
			restart = true
		}
		if !restart {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return srv.Shutdown(shutdownCtx)
		}
		if err := shutdownForRestart(srv, logger); err != nil {
			return err
		}
	}
}

// restartShutdownWait bounds the shutdown before an in-place restart. Raft
// waits for its in-flight vote requests, and one to a server of a lost site
// can hang until its dial times out (10s); the restart then re-executes
// the binary instead, which releases everything at once, as a crash
// would. Everything the restart needs is on disk already, and Raft and
// its bbolt store are crash-safe, so the wait is short: on a quorum-loss
// recovery, the usual reason to restart, it is time the failover waits.
const restartShutdownWait = time.Second

func shutdownForRestart(srv *controlplane.Server, logger hclog.Logger) error {
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			logger.Warn("shutdown before restart", "error", err)
		}
		return nil
	case <-time.After(restartShutdownWait):
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("restart: find own executable: %w", err)
	}
	logger.Warn("shutdown is slow; re-executing to restart", "waited", restartShutdownWait)
	if err := syscall.Exec(exe, os.Args, os.Environ()); err != nil {
		return fmt.Errorf("restart: exec %s: %w", exe, err)
	}
	return nil
}
