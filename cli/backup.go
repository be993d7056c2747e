package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"github.com/spf13/cobra"
)

type backupOptions struct {
	f    *Factory
	Host string
	Name string
	Kind string
	JSON bool
}

// backupTimeout bounds a backup or verification run through the leader.
const backupTimeout = 6 * time.Hour

func newCmdBackup(f *Factory) *cobra.Command {
	opts := &backupOptions{f: f}
	cmd := &cobra.Command{Use: "backup", Short: "List, take and verify PostgreSQL backups (pgBackRest, through the control plane)",
		Long: `Backups of the agents' backup blocks. Without --host, the host whose service
is primary (it archives into the repository) is asked; without --name, the
only block, or every block for list.`}
	cmd.PersistentFlags().StringVar(&opts.Host, "host", "", "host id of the agent (default: the one whose service archives)")
	cmd.PersistentFlags().StringVar(&opts.Name, "name", "", "backup block name from the agents' config")
	cmd.PersistentFlags().BoolVar(&opts.JSON, "json", false, "print JSON")
	list := &cobra.Command{Use: "list [--host H] [--name N]", Short: "List the repository's backups and the block's state", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBackupList(cmd.Context(), opts) }}
	create := &cobra.Command{Use: "create [--host H] [--name N] [--kind full|diff|incr]", Short: "Take a backup now, on the primary", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBackupStep(cmd.Context(), opts, structs.ActionBackup)
		}}
	create.Flags().StringVar(&opts.Kind, "kind", "incr", "full, diff or incr (an incr or diff without a full backup before it is taken full)")
	verify := &cobra.Command{Use: "verify [--host H] [--name N]", Short: "Restore the newest backup into a scratch directory, start and query it", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBackupStep(cmd.Context(), opts, structs.ActionVerifyBackup)
		}}
	cmd.AddCommand(list, create, verify)
	return cmd
}

// connectAndList connects to the control plane and lists the backups
// of opts' host and block; the caller closes with closeFn.
func (opts *backupOptions) connectAndList(ctx context.Context) (pb.OperatorClient, func(), *pb.ListHostBackupsResponse, error) {
	client, closeFn, err := opts.f.Operator()
	if err != nil {
		return nil, nil, nil, err
	}
	resp, err := opts.list(ctx, client)
	if err != nil {
		closeFn()
		return nil, nil, nil, err
	}
	return client, closeFn, resp, nil
}

func (opts *backupOptions) list(ctx context.Context, client pb.OperatorClient) (*pb.ListHostBackupsResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := client.ListHostBackups(ctx, &pb.ListHostBackupsRequest{HostId: opts.Host, Name: opts.Name})
	if err != nil {
		return nil, explain(opts.f.addr, err)
	}
	return resp, nil
}

func runBackupList(ctx context.Context, opts *backupOptions) error {
	_, closeFn, resp, err := opts.connectAndList(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	out := []BackupSetJSON{}
	for _, set := range resp.GetSets() {
		sj := BackupSetJSON{Status: toBackupStatusJSON(resp.GetHostId(), set.GetStatus()), Backups: []BackupJSON{}}
		for _, b := range set.GetBackups() {
			sj.Backups = append(sj.Backups, toBackupJSON(b))
		}
		out = append(out, sj)
	}
	if opts.JSON {
		return printJSON(opts.f.IO.Out, out)
	}
	w := opts.f.IO.Out
	for i, set := range out {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printBackupStatus(w, set.Status)
		if len(set.Backups) == 0 {
			fmt.Fprintln(w, "  (no backup in the repository)")
			continue
		}
		t := newTable(w, "LABEL", "KIND", "STARTED", "STOPPED", "DATABASE", "COPIED", "STORED")
		for _, b := range set.Backups {
			t.row(b.Label, b.Kind, b.StartedAt.UTC().Format(time.RFC3339), b.StoppedAt.UTC().Format(time.RFC3339),
				humanBytes(b.DatabaseBytes), humanBytes(b.BackupBytes), humanBytes(b.RepositoryBytes))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	return nil
}

// runBackupStep takes a backup or verifies one on the chosen host, and
// prints its progress and outcome.
func runBackupStep(ctx context.Context, opts *backupOptions, action string) error {
	if action == structs.ActionBackup && !validBackupKind(opts.Kind) {
		return fmt.Errorf("--kind %q is not full, diff or incr", opts.Kind)
	}
	// The server names the host (the primary's) and the blocks it has.
	client, closeFn, resp, err := opts.connectAndList(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	name := opts.Name
	if name == "" {
		var names []string
		for _, set := range resp.GetSets() {
			names = append(names, set.GetStatus().GetName())
		}
		if len(names) != 1 {
			return fmt.Errorf("%s declares %d backup blocks (%s): name one with --name", resp.GetHostId(), len(names), strings.Join(names, ", "))
		}
		name = names[0]
	}
	ctx, cancel := context.WithTimeout(ctx, backupTimeout)
	defer cancel()
	req := &pb.RunHostStepRequest{Write: &pb.WriteOptions{RequestId: uuid.NewString()}, HostId: resp.GetHostId(),
		Action: structs.ActionToProto(action), Target: name}
	if action == structs.ActionBackup {
		req.Args = map[string]string{"kind": opts.Kind}
	}
	step, err := client.RunHostStep(ctx, req)
	if err != nil {
		return explain(opts.f.addr, err)
	}
	res := step.GetResult()
	if opts.JSON {
		if err := printJSON(opts.f.IO.Out, map[string]any{"host_id": resp.GetHostId(), "name": name, "ok": res.GetOk(),
			"message": res.GetMessage(), "outputs": res.GetOutputs()}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(opts.f.IO.Out, "%s of backup block %s on %s\n", action, name, resp.GetHostId())
		for _, l := range step.GetProgress() {
			fmt.Fprintln(opts.f.IO.Out, "  "+l)
		}
	}
	if !res.GetOk() {
		return fmt.Errorf("%s", res.GetMessage())
	}
	if !opts.JSON {
		fmt.Fprintln(opts.f.IO.Out, res.GetMessage())
	}
	return nil
}

func validBackupKind(k string) bool { return k == "full" || k == "diff" || k == "incr" }

var backupKinds = map[pb.BackupKind]string{pb.BackupKind_BACKUP_KIND_FULL: "full", pb.BackupKind_BACKUP_KIND_DIFF: "diff", pb.BackupKind_BACKUP_KIND_INCR: "incr"}

func toBackupJSON(b *pb.BackupInfo) BackupJSON {
	return BackupJSON{Label: b.GetLabel(), Kind: backupKinds[b.GetKind()], Prior: b.GetPrior(),
		StartedAt: b.GetStartedAt().AsTime(), StoppedAt: b.GetStoppedAt().AsTime(), DatabaseBytes: b.GetDatabaseBytes(),
		BackupBytes: b.GetBackupBytes(), RepositoryBytes: b.GetRepositoryBytes(), ChecksumErrors: b.GetChecksumErrors()}
}

func toBackupStatusJSON(host string, b *pb.BackupStatus) BackupStatusJSON {
	out := BackupStatusJSON{HostID: host, Name: b.GetName(), Service: b.GetService(), Repository: b.GetRepository(),
		Archiving: b.GetArchiving(), Scheduled: b.GetScheduled(), BackupCount: b.GetBackupCount(), Warnings: b.GetWarnings()}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	if b.GetNewest() != nil {
		n := toBackupJSON(b.GetNewest())
		out.Newest = &n
	}
	if b.GetNewestFull() != nil {
		n := toBackupJSON(b.GetNewestFull())
		out.NewestFull = &n
	}
	if b.GetRestorableUntil() != nil {
		from, until := b.GetRestorableFrom().AsTime(), b.GetRestorableUntil().AsTime()
		out.RestorableFrom, out.RestorableUntil = &from, &until
	}
	if v := b.GetLastVerification(); v != nil {
		out.Verification = &BackupVerificationJSON{Label: v.GetLabel(), OK: v.GetOk(), Reason: v.GetReason(), At: v.GetAt().AsTime(), DurationMs: v.GetDurationMs()}
	}
	return out
}

// printBackupStatuses prints the Backups section of `drplane status`:
// the hosts that archive (where the schedule runs), and any host with a
// warning.
func printBackupStatuses(w io.Writer, statuses []BackupStatusJSON) {
	var shown []BackupStatusJSON
	for _, b := range statuses {
		if b.Archiving || len(b.Warnings) > 0 {
			shown = append(shown, b)
		}
	}
	if len(statuses) == 0 {
		return
	}
	fmt.Fprintln(w, "\nBackups")
	if len(shown) == 0 {
		fmt.Fprintln(w, "no host archives: the backed-up services run as primary nowhere")
	}
	for _, b := range shown {
		printBackupStatus(w, b)
	}
}

// printBackupStatus prints one block's state: where it runs, the newest
// backup's age, the restorable range, the last verification, warnings.
func printBackupStatus(w io.Writer, b BackupStatusJSON) {
	role := "standing by (its service is not primary here)"
	switch {
	case b.Scheduled:
		role = "archiving, takes the scheduled backups"
	case b.Archiving:
		role = "archiving (not the active site: no scheduled backups)"
	}
	fmt.Fprintf(w, "%s (service %s) on %s: %s; repository %s\n", b.Name, b.Service, b.HostID, role, b.Repository)
	now := time.Now()
	if b.Newest != nil {
		fmt.Fprintf(w, "  newest backup: %s (%s), %s old; %d in the repository\n", b.Newest.Label, b.Newest.Kind,
			now.Sub(b.Newest.StoppedAt).Round(time.Second), b.BackupCount)
	}
	if b.RestorableUntil != nil {
		fmt.Fprintf(w, "  restorable from %s to at least %s\n", b.RestorableFrom.UTC().Format(time.RFC3339), b.RestorableUntil.UTC().Format(time.RFC3339))
	}
	if v := b.Verification; v != nil {
		result := "passed"
		if !v.OK {
			result = "FAILED: " + v.Reason
		}
		fmt.Fprintf(w, "  last verification: backup %s %s at %s (%s)\n", v.Label, result, v.At.UTC().Format(time.RFC3339),
			(time.Duration(v.DurationMs) * time.Millisecond).Round(time.Millisecond))
	}
	for _, warning := range b.Warnings {
		fmt.Fprintln(w, "  WARNING: "+warning)
	}
}

// humanBytes prints n in binary units.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
