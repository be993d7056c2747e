package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/drplane/drplane/hostagent"
	"github.com/drplane/drplane/hostagent/rsync"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
)

type agentOptions struct {
	f          *Factory
	ConfigFile string
}

func newCmdAgent(f *Factory, runF func(*agentOptions) error) *cobra.Command {
	opts := &agentOptions{f: f}
	cmd := &cobra.Command{
		Use:   "agent --config FILE",
		Short: "Run the host agent that owns this host's services",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.ConfigFile == "" {
				return fmt.Errorf("--config is required: the agent's HCL configuration file")
			}
			if runF != nil {
				return runF(opts)
			}
			return runAgent(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.ConfigFile, "config", "", "agent configuration file (HCL)")
	cmd.AddCommand(newCmdRsyncTunnel(f), newCmdLeaseGuard(f))
	return cmd
}

// runAgent runs an agent until SIGINT or SIGTERM. Services keep running
// when the agent stops; the next agent adopts them.
func runAgent(ctx context.Context, opts *agentOptions) error {
	cfg, err := config.LoadAgentConfig(opts.ConfigFile)
	if err != nil {
		return err
	}
	// Before anything starts: a missing rsync or pg_ctl would otherwise
	// surface as a step failing in the middle of a failover.
	if err := cfg.Programs.Check(exec.LookPath); err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "drplane-agent", Level: hclog.LevelFromString(cfg.LogLevel), Output: opts.f.IO.ErrOut})
	m, err := tlsutil.Load(cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return fmt.Errorf("%s: tls: %w", opts.ConfigFile, err)
	}
	if id := m.Identity(); id.Role != tlsutil.RoleAgent {
		return fmt.Errorf("%s: tls: %s is a %s certificate named %q; the agent needs one made with `drplane tls cert create --agent --name %s`", opts.ConfigFile, cfg.TLS.CertFile, id.Role, id.Name, cfg.HostID)
	}
	if err := cfg.CheckCertificateName(m.Identity().Name); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the drplane binary for the lease guard: %w", err)
	}
	a, err := hostagent.New(cfg, hostagent.Deps{Logger: logger, TLS: m, Self: self, LeaseGuard: []string{self, "agent", "lease-guard"}})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.Shutdown(shutdownCtx)
}

// newCmdRsyncTunnel is the remote shell rsync runs (`rsync -e`): it carries
// rsync's protocol to the peer agent over mutual TLS. Not for operators.
func newCmdRsyncTunnel(f *Factory) *cobra.Command {
	var opts rsync.TunnelOptions
	cmd := &cobra.Command{
		Use:    "rsync-tunnel --peer ADDR --sync NAME --ca F --cert F --key F -- ARGS...",
		Short:  "Carry one rsync session to a peer agent (run by rsync, not by operators)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := rsync.RunTunnel(cmd.Context(), opts, os.Stdin, os.Stdout, args)
			if err != nil {
				fmt.Fprintln(f.IO.ErrOut, "rsync-tunnel:", err)
				code = max(code, 1)
			}
			if code != 0 {
				// rsync reads the remote side's exit status from ours.
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.PeerAddr, "peer", "", "peer agent's HostAgent address")
	fl.StringVar(&opts.SyncName, "sync", "", "sync block name")
	fl.StringVar(&opts.CAFile, "ca", "", "CA certificate file")
	fl.StringVar(&opts.CertFile, "cert", "", "agent certificate file")
	fl.StringVar(&opts.KeyFile, "key", "", "agent key file")
	return cmd
}

// newCmdLeaseGuard is the lease guard the agent runs beside itself: it
// fences the host's primary-role services when the lease lapses while the
// agent is frozen or gone (hostagent/guard.go). SIGUSR1 tells it a newer
// guard took over. Not for operators.
func newCmdLeaseGuard(f *Factory) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "lease-guard --dir DATA_DIR",
		Short:  "Fence primary-role services when the agent's lease lapses (run by the agent, not by operators)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("--dir is required")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGUSR1)
			defer stop()
			logger := hclog.New(&hclog.LoggerOptions{Name: "drplane-agent.lease-guard", Output: f.IO.ErrOut})
			logger = logger.With("pid", os.Getpid())
			return hostagent.RunLeaseGuard(ctx, hostagent.GuardConfig{Dir: dir, In: os.Stdin, Ready: os.Stdout, Logger: logger})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the agent's data dir")
	return cmd
}
