package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/devcluster"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
)

// Status is `drplane status --json`.
type Status struct {
	cli.StatusJSON
}

// Agent returns the status of hostID, if it is registered.
func (s *Status) Agent(hostID string) (cli.AgentJSON, bool) {
	for _, a := range s.Agents {
		if a.HostID == hostID {
			return a, true
		}
	}
	return cli.AgentJSON{}, false
}

// Status runs `drplane status --json` against the first running server;
// the leader answers, with its probes of the agents.
func (c *Cluster) Status(ctx context.Context) (*Status, error) {
	n, err := c.firstRunning()
	if err != nil {
		return nil, err
	}
	out, err := c.CLI(ctx, n, "status", "--json")
	if err != nil {
		return nil, err
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("decode status --json: %w: %q", err, out)
	}
	return &st, nil
}

// Members runs `drplane members --json` against n.
func (c *Cluster) Members(ctx context.Context, n *devcluster.Node) (leaderID string, servers []cli.ServerJSON, err error) {
	out, err := c.CLI(ctx, n, "members", "--json")
	if err != nil {
		return "", nil, err
	}
	var resp cli.MembersJSON
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return "", nil, fmt.Errorf("decode members --json: %w: %q", err, out)
	}
	return resp.LeaderID, resp.Servers, nil
}

// SetActiveSite makes site the active site through the control plane, as
// a compare-and-set on the epoch it reads first, and returns the new
// epoch. The leader's probes carry it to the agents from then on. It calls
// with the stand-in's server certificate (StandInOperator): an operator's
// certificate may not set the active site outside a plan.
func (c *Cluster) SetActiveSite(ctx context.Context, site, reason string) (uint64, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return 0, err
	}
	client, err := c.StandInOperator()
	if err != nil {
		return 0, err
	}
	resp, err := client.SetActiveSite(ctx, &pb.SetActiveSiteRequest{
		Write: &pb.WriteOptions{RequestId: uuid.NewString()}, Site: site, ExpectedEpoch: st.Epoch, Reason: reason,
	})
	if err != nil {
		return 0, fmt.Errorf("set active site %s from epoch %d: %w", site, st.Epoch, err)
	}
	return resp.GetEpoch(), nil
}

// WaitForAgents polls `drplane status` until the leader's latest probe of
// every agent succeeded at its address and found it at the cluster's
// epoch: the agent registered, and a leader reaches it.
func (c *Cluster) WaitForAgents(ctx context.Context, poll time.Duration, agents ...*devcluster.Agent) error {
	var lastErr error
	for {
		lastErr = c.agentsReady(ctx, agents)
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agents not ready: %w (last: %v)", ctx.Err(), lastErr)
		case <-time.After(poll):
		}
	}
}

func (c *Cluster) agentsReady(ctx context.Context, agents []*devcluster.Agent) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	for _, a := range agents {
		as, ok := st.Agent(a.HostID)
		switch {
		case !ok:
			return fmt.Errorf("agent %s is not registered", a.HostID)
		case as.Address != a.GRPCAddr:
			return fmt.Errorf("agent %s is registered at %s, not %s", a.HostID, as.Address, a.GRPCAddr)
		case as.Reachable == nil || !*as.Reachable:
			return fmt.Errorf("agent %s is not reachable: %s", a.HostID, as.ProbeError)
		case as.Epoch != st.Epoch:
			return fmt.Errorf("agent %s is at epoch %d, the cluster at %d", a.HostID, as.Epoch, st.Epoch)
		}
	}
	return nil
}
