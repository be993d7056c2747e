package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"github.com/spf13/cobra"
)

type snapshotOptions struct {
	f    *Factory
	Host string
	Name string
	ID   string
	JSON bool
}

// snapshotTimeout bounds a snapshot or restore run through the leader.
const snapshotTimeout = 30 * time.Minute

func newCmdSnapshot(f *Factory) *cobra.Command {
	opts := &snapshotOptions{f: f}
	cmd := &cobra.Command{Use: "snapshot", Short: "List, take and restore a host's snapshots (through the control plane)"}
	cmd.PersistentFlags().StringVar(&opts.Host, "host", "", "host id of the agent")
	cmd.PersistentFlags().StringVar(&opts.Name, "name", "", "snapshot block name from the agent's config")
	list := &cobra.Command{Use: "list --host H [--name N]", Short: "List snapshots", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSnapshotList(cmd.Context(), opts) }}
	list.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	create := &cobra.Command{Use: "create --host H --name N", Short: "Take a snapshot now", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSnapshotStep(cmd.Context(), opts, plan.ActionSnapshot)
		}}
	restore := &cobra.Command{Use: "restore --host H --name N --id ID", Short: "Restore a snapshot (a pre-restore snapshot is taken first)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSnapshotStep(cmd.Context(), opts, structs.ActionRestore)
		}}
	restore.Flags().StringVar(&opts.ID, "id", "", "snapshot id to restore")
	cmd.AddCommand(list, create, restore)
	return cmd
}

func runSnapshotList(ctx context.Context, opts *snapshotOptions) error {
	if opts.Host == "" {
		return fmt.Errorf("--host is required")
	}
	client, closeFn, err := opts.f.Operator()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := client.ListHostSnapshots(ctx, &pb.ListHostSnapshotsRequest{HostId: opts.Host, Name: opts.Name})
	if err != nil {
		return explain(opts.f.addr, err)
	}
	out := []SnapshotJSON{}
	for _, s := range resp.GetSnapshots() {
		out = append(out, SnapshotJSON{s.GetId(), s.GetName(), s.GetEngine(), s.GetCreatedAt().AsTime(), s.GetFiles(), s.GetBytes(), s.GetReason()})
	}
	if opts.JSON {
		return printJSON(opts.f.IO.Out, out)
	}
	t := newTable(opts.f.IO.Out, "ID", "NAME", "CREATED", "FILES", "BYTES", "REASON")
	for _, s := range out {
		t.row(s.ID, s.Name, s.CreatedAt.Format(time.RFC3339), fmt.Sprint(s.Files), fmt.Sprint(s.Bytes), s.Reason)
	}
	return t.flush()
}

func runSnapshotStep(ctx context.Context, opts *snapshotOptions, action string) error {
	switch {
	case opts.Host == "" || opts.Name == "":
		return fmt.Errorf("--host and --name are required")
	case action == structs.ActionRestore && opts.ID == "":
		return fmt.Errorf("--id is required: the snapshot to restore (see `drplane snapshot list --host %s`)", opts.Host)
	}
	client, closeFn, err := opts.f.Operator()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	req := &pb.RunHostStepRequest{Write: &pb.WriteOptions{RequestId: uuid.NewString()}, HostId: opts.Host, Action: structs.ActionToProto(action), Target: opts.Name}
	if opts.ID != "" {
		req.Args = map[string]string{"id": opts.ID}
	}
	resp, err := client.RunHostStep(ctx, req)
	if err != nil {
		return explain(opts.f.addr, err)
	}
	for _, l := range resp.GetProgress() {
		fmt.Fprintln(opts.f.IO.Out, l)
	}
	res := resp.GetResult()
	if !res.GetOk() {
		return fmt.Errorf("%s", res.GetMessage())
	}
	for k, v := range res.GetOutputs() {
		fmt.Fprintf(opts.f.IO.Out, "%s: %s\n", k, v)
	}
	return nil
}
