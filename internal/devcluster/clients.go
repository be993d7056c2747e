package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"google.golang.org/grpc"
)

// LeaderStandIn is the name of the server certificate AgentClient holds.
const LeaderStandIn = "leader-stand-in"

// clients caches the gRPC connections of a Cluster until Close.
type clients struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (cs *clients) get(key string, dial func() (*grpc.ClientConn, error)) (*grpc.ClientConn, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if conn, ok := cs.conns[key]; ok {
		return conn, nil
	}
	conn, err := dial()
	if err != nil {
		return nil, err
	}
	if cs.conns == nil {
		cs.conns = map[string]*grpc.ClientConn{}
	}
	cs.conns[key] = conn
	return conn, nil
}

func (cs *clients) close() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, conn := range cs.conns {
		_ = conn.Close()
	}
	cs.conns = nil
}

// material loads the certificate name of the cluster CA, creating it with
// role first when it does not exist yet.
func (c *Cluster) material(name string, role tlsutil.Role) (*tlsutil.Material, error) {
	dir := c.tlsDir()
	cert, key := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if m, err := tlsutil.Load(filepath.Join(dir, tlsutil.CACertFile), cert, key); err == nil {
		return m, nil
	}
	if _, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: dir, Name: name, Role: role}); err != nil {
		return nil, fmt.Errorf("create %s certificate %s: %w", role, name, err)
	}
	return tlsutil.Load(filepath.Join(dir, tlsutil.CACertFile), cert, key)
}

// Operator returns an Operator client holding the operator's (cli)
// certificate, connected to the first running server; a follower forwards
// to the leader. It is for what the CLI has no command for, such as
// SetActiveSite, or a request re-sent with the same request id.
func (c *Cluster) Operator() (pb.OperatorClient, error) {
	n, err := c.firstRunning()
	if err != nil {
		return nil, err
	}
	conn, err := c.clients.get("cp "+n.GRPCAddr, func() (*grpc.ClientConn, error) {
		m, err := c.material("operator", tlsutil.RoleCLI)
		if err != nil {
			return nil, err
		}
		return grpc.NewClient(n.GRPCAddr, c.dialOptions(grpc.WithTransportCredentials(m.ClientCredentials(tlsutil.RoleServer)))...)
	})
	if err != nil {
		return nil, fmt.Errorf("connect to server %s: %w", n.ID, err)
	}
	return pb.NewOperatorClient(conn), nil
}

// AgentClient returns a HostAgent client for a that holds a server
// certificate of the cluster CA (LeaderStandIn). Agents take Probe and
// Execute from servers only, so with it a test stands in for the leader:
// it sends steps as the executor of an execution does, with an epoch of
// its choosing. The real leader keeps probing meanwhile.
func (c *Cluster) AgentClient(a *Agent) (pb.HostAgentClient, error) {
	conn, err := c.clients.get("agent "+a.GRPCAddr, func() (*grpc.ClientConn, error) {
		m, err := c.material(LeaderStandIn, tlsutil.RoleServer)
		if err != nil {
			return nil, err
		}
		return grpc.NewClient(a.GRPCAddr, c.dialOptions(grpc.WithTransportCredentials(m.ClientCredentials(tlsutil.RoleAgent)))...)
	})
	if err != nil {
		return nil, fmt.Errorf("connect to agent %s: %w", a.HostID, err)
	}
	return pb.NewHostAgentClient(conn), nil
}

// dialOptions adds the cluster's Dial, when set, to opts.
func (c *Cluster) dialOptions(opts ...grpc.DialOption) []grpc.DialOption {
	if c.Dial != nil {
		opts = append(opts, grpc.WithContextDialer(c.Dial))
	}
	return opts
}

// Execute sends one step to a through AgentClient and returns its
// progress lines and result. A step the agent refuses returns its gRPC
// status error (InvalidArgument, FailedPrecondition, ...) and no result.
func (c *Cluster) Execute(ctx context.Context, a *Agent, req *pb.ExecuteRequest) ([]string, *pb.StepResult, error) {
	client, err := c.AgentClient(a)
	if err != nil {
		return nil, nil, err
	}
	stream, err := client.Execute(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var lines []string
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return lines, nil, fmt.Errorf("%s %s on %s: stream ended without a result", req.GetAction(), req.GetTarget(), a.HostID)
		}
		if err != nil {
			return lines, nil, err
		}
		if r := ev.GetResult(); r != nil {
			return lines, r, nil
		}
		lines = append(lines, ev.GetProgress())
	}
}

// Status is `drplane status --json`.
type Status struct {
	LeaderID   string        `json:"leader_id"`
	Epoch      uint64        `json:"epoch"`
	ActiveSite string        `json:"active_site"`
	Agents     []AgentStatus `json:"agents"`
}

// AgentStatus is one agent in `drplane status --json`: its registration
// and the leader's latest probe of it.
type AgentStatus struct {
	HostID     string            `json:"host_id"`
	Site       string            `json:"site"`
	Address    string            `json:"address"`
	Services   []string          `json:"services"`
	Reachable  *bool             `json:"reachable"`
	LeaseValid bool              `json:"lease_valid"`
	Fenced     bool              `json:"fenced"`
	Epoch      uint64            `json:"epoch"`
	Roles      map[string]string `json:"roles"`
	Lag        map[string]Lag    `json:"lag"`
	ProbeError string            `json:"probe_error"`
}

// Lag is a service's replication position and lag.
type Lag struct {
	Position string `json:"position"`
	LagMs    uint64 `json:"lag_ms"`
	LagBytes uint64 `json:"lag_bytes"`
}

// Agent returns the status of hostID, if it is registered.
func (s *Status) Agent(hostID string) (AgentStatus, bool) {
	for _, a := range s.Agents {
		if a.HostID == hostID {
			return a, true
		}
	}
	return AgentStatus{}, false
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

// SetActiveSite makes site the active site through the control plane, as
// a compare-and-set on the epoch it reads first, and returns the new
// epoch. The leader's probes carry it to the agents from then on.
func (c *Cluster) SetActiveSite(ctx context.Context, site, reason string) (uint64, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return 0, err
	}
	client, err := c.Operator()
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
func (c *Cluster) WaitForAgents(ctx context.Context, poll time.Duration, agents ...*Agent) error {
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

func (c *Cluster) agentsReady(ctx context.Context, agents []*Agent) error {
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

// firstRunning returns the first server whose process runs.
func (c *Cluster) firstRunning() (*Node, error) {
	for _, n := range c.Nodes {
		if n.Running() {
			return n, nil
		}
	}
	return nil, errors.New("no server is running")
}
