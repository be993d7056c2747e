package cli

import (
	"context"
	"fmt"

	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"github.com/spf13/cobra"
)

type membersOptions struct {
	f        *Factory
	JSON     bool
	Stale    bool
	RemoveID string
}

func newCmdMembers(f *Factory, runF func(*membersOptions) error) *cobra.Command {
	opts := &membersOptions{f: f}
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the control-plane servers and their Raft state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runMembers(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&opts.Stale, "stale", false, "let the server answer from its local state without a leader")
	cmd.AddCommand(&cobra.Command{
		Use:   "remove ID",
		Short: "Remove a server from the Raft configuration (refused for the last server or when it would cost the quorum)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.RemoveID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runMembersRemove(cmd.Context(), opts)
		},
	})
	return cmd
}

func runMembers(ctx context.Context, opts *membersOptions) error {
	client, closeFn, err := opts.f.Operator()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := client.ListMembers(ctx, &pb.ListMembersRequest{Read: &pb.ReadOptions{Stale: opts.Stale}})
	if err != nil {
		return explain(opts.f.addr, err)
	}
	out := MembersJSON{LeaderID: resp.GetLeaderId(), Servers: toServersJSON(resp.GetServers())}
	if opts.JSON {
		return printJSON(opts.f.IO.Out, out)
	}
	return printServers(opts.f.IO.Out, out.Servers)
}

func runMembersRemove(ctx context.Context, opts *membersOptions) error {
	client, closeFn, err := opts.f.Operator()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req := &pb.RemoveMemberRequest{Write: &pb.WriteOptions{RequestId: uuid.NewString()}, Id: opts.RemoveID}
	if _, err := client.RemoveMember(ctx, req); err != nil {
		return explain(opts.f.addr, err)
	}
	fmt.Fprintf(opts.f.IO.Out, "Removed server %s from the cluster.\n", opts.RemoveID)
	return nil
}
