package cli

import (
	"context"
	"fmt"
	"os/signal"
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
	return cmd
}

// runServer starts a server and runs it until SIGINT or SIGTERM, then shuts
// it down gracefully (a leader hands over leadership first).
func runServer(ctx context.Context, opts *serverOptions) error {
	cfg, err := config.LoadServerConfig(opts.ConfigFile)
	if err != nil {
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
	srv, err := controlplane.NewServer(cfg, controlplane.Deps{Logger: logger, TLS: m})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
