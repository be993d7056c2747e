package cli

import (
	"fmt"
	"net"

	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/spf13/cobra"
)

type tlsCertOptions struct {
	f                  *Factory
	Dir, Name          string
	Server, Agent, CLI bool
	Monitor            bool
	IPs                []string
	DNSNames           []string
}

func newCmdTLS(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "tls", Short: "Create the cluster CA and certificates for servers, agents and operators"}
	ca := &cobra.Command{Use: "ca", Short: "Manage the cluster CA"}
	var caDir string
	caCreate := &cobra.Command{
		Use:   "create",
		Short: "Create ca.pem and ca-key.pem in --dir",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := tlsutil.CreateCA(caDir); err != nil {
				return err
			}
			fmt.Fprintf(f.IO.Out, "Created %s/ca.pem and %s/ca-key.pem (keep the key offline).\n", caDir, caDir)
			return nil
		},
	}
	caCreate.Flags().StringVar(&caDir, "dir", ".", "directory for the CA files")
	ca.AddCommand(caCreate)

	cert := &cobra.Command{Use: "cert", Short: "Manage certificates signed by the cluster CA"}
	cert.AddCommand(newCmdTLSCertCreate(f))
	cmd.AddCommand(ca, cert)
	return cmd
}

func newCmdTLSCertCreate(f *Factory) *cobra.Command {
	opts := &tlsCertOptions{f: f}
	cmd := &cobra.Command{
		Use:   "create --name NAME (--server|--agent|--cli|--monitor)",
		Short: "Create NAME.pem and NAME-key.pem in --dir, signed by --dir/ca.pem",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runTLSCertCreate(opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Dir, "dir", ".", "directory holding ca.pem and ca-key.pem; the certificate is written there")
	fl.StringVar(&opts.Name, "name", "", "certificate name (a server's node_id, an agent's host_id, or an operator)")
	fl.BoolVar(&opts.Server, "server", false, "a certificate for a drplane server")
	fl.BoolVar(&opts.Agent, "agent", false, "a certificate for a drplane agent")
	fl.BoolVar(&opts.CLI, "cli", false, "a certificate for an operator's CLI")
	fl.BoolVar(&opts.Monitor, "monitor", false, "a certificate that reads /metrics, /v1/health and /v1/role/... alone (Prometheus, a load balancer)")
	fl.StringSliceVar(&opts.IPs, "ip", nil, "extra IP address SAN (repeatable)")
	fl.StringSliceVar(&opts.DNSNames, "dns", nil, "extra DNS name SAN (repeatable)")
	cmd.MarkFlagsMutuallyExclusive("server", "agent", "cli", "monitor")
	cmd.MarkFlagsOneRequired("server", "agent", "cli", "monitor")
	return cmd
}

func runTLSCertCreate(opts *tlsCertOptions) error {
	if opts.Name == "" {
		return fmt.Errorf("--name is required")
	}
	role := tlsutil.RoleCLI
	switch {
	case opts.Server:
		role = tlsutil.RoleServer
	case opts.Agent:
		role = tlsutil.RoleAgent
	case opts.Monitor:
		role = tlsutil.RoleMonitor
	}
	var ips []net.IP
	for _, s := range opts.IPs {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("--ip %q is not an IP address", s)
		}
		ips = append(ips, ip)
	}
	certPath, keyPath, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: opts.Dir, Name: opts.Name, Role: role, IPs: ips, DNSNames: opts.DNSNames})
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.f.IO.Out, "Created %s certificate %s and key %s.\n", role, certPath, keyPath)
	return nil
}
