package devenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// logTail is how much of each log a failed start shows.
const logTail = 2048

// poll calls f until it returns nil, every pollInterval, for up to
// timeout; the error says what was awaited and f's last answer.
func poll(ctx context.Context, timeout time.Duration, what string, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		last := f()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-time.After(pollInterval):
		}
	}
}

// status asks the control plane for its status over gRPC with the
// operator's certificate (a follower forwards to the leader). Polling
// through the CLI would start a process at every poll, and on a loaded
// machine, or under -race, those take the CPU the leader and the agents
// need for the agents to be probed within lease_ttl.
func (e *env) status(ctx context.Context) (*pb.GetStatusResponse, error) {
	client, err := e.c.Operator()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return client.GetStatus(ctx, &pb.GetStatusRequest{})
}

// pollStatus polls the status until check accepts it; a failure carries
// the end of every log.
func (e *env) pollStatus(ctx context.Context, what string, check func(*pb.GetStatusResponse) error) error {
	err := poll(ctx, startTimeout, what, func() error {
		st, err := e.status(ctx)
		if err != nil {
			return err
		}
		return check(st)
	})
	if err != nil {
		return e.withLogs(err)
	}
	return nil
}

// agentsReady accepts a status in which the leader's latest probe of
// every agent succeeded at its address and found it at the cluster's
// epoch: it registered, and a leader reaches it.
func (e *env) agentsReady(st *pb.GetStatusResponse) error {
	var errs []error
	for _, h := range e.hosts {
		a, err := probed(st, h.ID)
		switch {
		case err != nil:
			errs = append(errs, err)
		case a.GetAddress() != h.agent.GRPCAddr:
			errs = append(errs, fmt.Errorf("%s is registered at %s, not %s", h.ID, a.GetAddress(), h.agent.GRPCAddr))
		case a.GetProbe().GetEpoch() != st.GetEpoch():
			errs = append(errs, fmt.Errorf("%s is at epoch %d, the cluster at %d", h.ID, a.GetProbe().GetEpoch(), st.GetEpoch()))
		}
	}
	return errors.Join(errs...)
}

// postgresRolesReady accepts a status in which the agents adopted the
// primary on db-1 (and a leader renewed its lease, so it is not fenced)
// and the standby on db-2.
func (e *env) postgresRolesReady(st *pb.GetStatusResponse) error {
	return errors.Join(
		hasRole(st, "db-1", ServicePostgres, "primary"),
		hasRole(st, "db-2", ServicePostgres, "standby"),
	)
}

// waitReady waits until everything serves: the application runs and is
// healthy on app-1 only, the standby streams and its agent reports its
// replication position, and the leader knows what a failover to dr would
// lose (the standby's position was observed and the state synced once):
// until then the deployment is up but not yet protected.
func (e *env) waitReady(ctx context.Context) error {
	err := e.pollStatus(ctx, "every service in its role", func(st *pb.GetStatusResponse) error {
		errs := []error{hasRole(st, "app-1", ServiceApp, "primary"), hasRole(st, "app-2", ServiceApp, "stopped")}
		if e.pg != nil {
			errs = append(errs, e.postgresRolesReady(st))
			if a, err := probed(st, "db-2"); err == nil && service(a, ServicePostgres).GetReplication().GetPosition() == "" {
				errs = append(errs, errors.New("db-2 reports no replication position yet"))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return err
	}
	if e.pg != nil {
		if err := poll(ctx, startTimeout, "the standby streaming", func() error { return streaming(ctx, e.pg.standby) }); err != nil {
			return err
		}
	}
	app := e.host("app-1").app
	if err := poll(ctx, startTimeout, ServiceApp+" on app-1 answering /health", func() error { return healthy(ctx, app.Listen) }); err != nil {
		return err
	}
	return e.pollStatus(ctx, "the dr site protected", func(st *pb.GetStatusResponse) error {
		if a := st.GetAutomation(); !a.GetExposureKnown() {
			return fmt.Errorf("what a failover to dr would lose is not known yet: %s", a.GetExposureDetail())
		}
		return nil
	})
}

// probed returns hostID's registration when the leader's latest probe
// reached it.
func probed(st *pb.GetStatusResponse, hostID string) (*pb.Agent, error) {
	for _, a := range st.GetAgents() {
		if a.GetHostId() != hostID {
			continue
		}
		if p := a.GetProbe(); !p.GetReachable() {
			return nil, fmt.Errorf("%s is not reachable: %s", hostID, p.GetError())
		}
		return a, nil
	}
	return nil, fmt.Errorf("%s is not registered", hostID)
}

// service returns a service's state in the agent's latest probe.
func service(a *pb.Agent, name string) *pb.ServiceStatus {
	for _, s := range a.GetProbe().GetServices() {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

// hasRole checks one service's role in the leader's latest probe.
func hasRole(st *pb.GetStatusResponse, hostID, name, role string) error {
	a, err := probed(st, hostID)
	switch {
	case err != nil:
		return err
	case a.GetProbe().GetFenced():
		return fmt.Errorf("%s is fenced: %s", hostID, a.GetProbe().GetFenceReason())
	case structs.RoleName(service(a, name).GetRole()) != role:
		return fmt.Errorf("%s on %s is %q, not %s", name, hostID, structs.RoleName(service(a, name).GetRole()), role)
	}
	return nil
}

// healthy asks the application's /health.
func healthy(ctx context.Context, listen string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+listen+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/health answered %s", resp.Status)
	}
	return nil
}

// withLogs appends the end of every server and agent log to err, so a
// start that fails says why.
func (e *env) withLogs(err error) error {
	if e.c == nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v", err)
	for _, n := range e.c.Nodes {
		fmt.Fprintf(&b, "\n--- end of server %s log %s ---\n%s", n.ID, n.LogPath, devcluster.Tail(n.LogPath, logTail))
	}
	for _, a := range e.c.Agents {
		fmt.Fprintf(&b, "\n--- end of agent %s log %s ---\n%s", a.HostID, a.LogPath, devcluster.Tail(a.LogPath, logTail))
	}
	return errors.New(b.String())
}
