package devcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/grpc"
)

// LeaderStandIn is the name of the server certificate AgentClient and
// StandInOperator hold.
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
// to the leader. It is for what the CLI has no command for, such as a
// request re-sent with the same request id.
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

// StandInOperator returns an Operator client holding the server
// certificate LeaderStandIn, connected to the first running server. Only a
// server certificate may call SetActiveSite (an operator's may not: only
// plans change the active site), so with it a test moves the active site
// and the epoch without a plan, as a plan's activate step would.
func (c *Cluster) StandInOperator() (pb.OperatorClient, error) {
	n, err := c.firstRunning()
	if err != nil {
		return nil, err
	}
	conn, err := c.standInConn("cp-stand-in "+n.GRPCAddr, n.GRPCAddr, tlsutil.RoleServer)
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
	conn, err := c.standInConn("agent "+a.GRPCAddr, a.GRPCAddr, tlsutil.RoleAgent)
	if err != nil {
		return nil, fmt.Errorf("connect to agent %s: %w", a.HostID, err)
	}
	return pb.NewHostAgentClient(conn), nil
}

// standInConn is the cached connection key to addr, holding the
// LeaderStandIn server certificate and verifying that the peer holds a
// certificate of role peer.
func (c *Cluster) standInConn(key, addr string, peer tlsutil.Role) (*grpc.ClientConn, error) {
	return c.clients.get(key, func() (*grpc.ClientConn, error) {
		m, err := c.material(LeaderStandIn, tlsutil.RoleServer)
		if err != nil {
			return nil, err
		}
		return grpc.NewClient(addr, c.dialOptions(grpc.WithTransportCredentials(m.ClientCredentials(peer)))...)
	})
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

// firstRunning returns the first server whose process runs.
func (c *Cluster) firstRunning() (*Node, error) {
	for _, n := range c.Nodes {
		if n.Running() {
			return n, nil
		}
	}
	return nil, errors.New("no server is running")
}
