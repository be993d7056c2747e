package cli

import (
	"github.com/spf13/cobra"
)

// NewRootCmd builds the drplane command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:           "drplane",
		Short:         "Run disaster-recovery plans: Raft control plane, host agents, automatic site failover",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	pf := root.PersistentFlags()
	pf.StringVar(&f.addr, "addr", envOr(EnvAddr, DefaultAddr), "gRPC address of any drplane server, or several separated by commas, tried in turn (env "+EnvAddr+")")
	pf.StringVar(&f.caCert, "ca-cert", envOr(EnvCACert, ""), "CA certificate file (env "+EnvCACert+")")
	pf.StringVar(&f.clientCert, "client-cert", envOr(EnvClientCert, ""), "client certificate file (env "+EnvClientCert+")")
	pf.StringVar(&f.clientKey, "client-key", envOr(EnvClientKey, ""), "client key file (env "+EnvClientKey+")")

	root.AddCommand(
		newCmdServer(f, nil),
		newCmdAgent(f, nil),
		newCmdDev(f),
		newCmdStatus(f, nil),
		newCmdMembers(f, nil),
		newCmdTLS(f),
		newCmdSnapshot(f),
		newCmdBackup(f),
		newCmdFailover(f),
		newCmdSwitchover(f),
		newCmdFailback(f),
		newCmdDrill(f),
		newCmdRestart(f),
		newCmdRestore(f),
		newCmdApprove(f),
		newCmdCancel(f),
		newCmdHistory(f),
		newCmdReport(f),
		newCmdPlan(f),
		newCmdAutomation(f, "pause", "Stop all automatic action (probes, leases and reports continue)"),
		newCmdAutomation(f, "resume", "Restart automatic action after a pause"),
		newCmdAck(f),
		newCmdNotify(f),
		newCmdSchedule(f),
		newCmdReady(f),
		newCmdAudit(f),
	)
	return root
}
