package hostagent

import (
	"context"
	"fmt"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"google.golang.org/grpc"
)

// registerRetry is the pause between registration attempts.
const registerRetry = time.Second

// register records this agent and its declared services with the control
// plane, trying each configured server in turn until one accepts (a
// follower forwards the write to the leader).
func (a *Agent) register(ctx context.Context) {
	req := &pb.RegisterAgentRequest{Write: &pb.WriteOptions{RequestId: uuid.NewString()}, Agent: a.registration()}
	for attempt := 0; ; attempt++ {
		addr := a.config.Servers[attempt%len(a.config.Servers)]
		err := a.registerWith(ctx, addr, req)
		if err == nil {
			a.logger.Info("registered with control plane", "server", addr)
			return
		}
		a.logger.Warn("failed to register", "server", addr, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(registerRetry):
		}
	}
}

func (a *Agent) registerWith(ctx context.Context, addr string, req *pb.RegisterAgentRequest) error {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(a.tls.ClientCredentials(tlsutil.RoleServer))}
	if a.dial != nil {
		opts = append(opts, grpc.WithContextDialer(a.dial))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = pb.NewAgentRegistryClient(conn).RegisterAgent(ctx, req)
	return err
}

// registration is the agent's record: host, site, address and services.
func (a *Agent) registration() *pb.Agent {
	ag := &pb.Agent{HostId: a.config.HostID, Site: a.config.Site, Address: a.config.Advertise, LeaseAnchors: true}
	// Without an explicit advertise address the listener's real address
	// counts, which also resolves a configured port 0.
	if ag.Address == "" || ag.Address == a.config.Listen {
		ag.Address = a.listener.Addr().String()
	}
	for _, name := range a.order {
		sc := a.services[name].cfg
		_, promotable := a.services[name].driver.(driver.Promoter)
		_, driller := a.services[name].driver.(driver.Driller)
		svc := &pb.Service{Name: sc.Name, Driver: sc.Driver, DependsOn: sc.DependsOn,
			Port: int32(sc.Port), Promotable: promotable, Drillable: driller && sc.Drill != nil}
		for _, b := range a.config.Backups {
			if b.Service == sc.Name {
				svc.Backup = b.Name
			}
		}
		for _, s := range a.config.Snapshots {
			if s.Service == sc.Name {
				svc.StateSnapshots = append(svc.StateSnapshots, s.Name)
			}
		}
		ag.Services = append(ag.Services, svc)
	}
	for _, s := range a.config.Syncs {
		ag.Syncs = append(ag.Syncs, s.Name)
	}
	for _, s := range a.config.Snapshots {
		ag.Snapshots = append(ag.Snapshots, s.Name)
	}
	for _, h := range a.config.Hooks {
		ag.Hooks = append(ag.Hooks, h.Name)
	}
	return ag
}
