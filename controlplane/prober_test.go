package controlplane

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent"
	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// startTestAgent runs a host agent with fake services that registers with
// the cluster.
func startTestAgent(t *testing.T, c *testCluster, hostID, site string, leaseTTL time.Duration, roles map[string]driver.Role) map[string]*driver.Fake {
	t.Helper()
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.tlsDir, Name: hostID, Role: tlsutil.RoleAgent})
	require.NoError(t, err)
	fakes := map[string]*driver.Fake{}
	cfg := &config.AgentConfig{
		HostID: hostID, Site: site, DataDir: t.TempDir(), Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", LeaseTTL: leaseTTL,
		TLS: config.TLSConfig{CAFile: filepath.Join(c.tlsDir, "ca.pem"), CertFile: filepath.Join(c.tlsDir, hostID+".pem"), KeyFile: filepath.Join(c.tlsDir, hostID+"-key.pem")},
	}
	for _, ts := range c.servers {
		cfg.Servers = append(cfg.Servers, ts.grpcAddr)
	}
	for name, role := range roles {
		fakes[name] = driver.NewFake(role)
		cfg.Services = append(cfg.Services, config.ServiceConfig{Name: name, Driver: config.DriverProcess})
	}
	a, err := hostagent.New(cfg, hostagent.Deps{
		Logger: testLogger(t, hostID, &lockedBuffer{}),
		TLS:    c.material(hostID),
		NewDriver: func(sc config.ServiceConfig, _ string, _ hclog.Logger) (driver.Driver, error) {
			return fakes[sc.Name], nil
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	return fakes
}

func agentStatus(t *testing.T, c *testCluster, hostID string) (*pb.Agent, uint64, error) {
	resp, err := c.client(c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	if err != nil {
		return nil, 0, err
	}
	for _, a := range resp.GetAgents() {
		if a.GetHostId() == hostID {
			return a, resp.GetEpoch(), nil
		}
	}
	return nil, 0, fmt.Errorf("agent %s not registered", hostID)
}

func TestProber_RenewsActiveSiteLeases_AndFlipFencesOldSite(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitForLeader()
	// The lease TTL equals the servers' default failover.lease_ttl (3s).
	fakes := startTestAgent(t, c, "app-1", "primary", 3*time.Second, map[string]driver.Role{"engine": driver.RolePrimary})

	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		a, _, err := agentStatus(t, c, "app-1")
		if err != nil {
			return false, err
		}
		p := a.GetProbe()
		return p.GetReachable() && p.GetLeaseValid() && p.GetEpoch() == 1,
			fmt.Errorf("probe %+v", p)
	})
	require.Equal(t, driver.RolePrimary, fakes["engine"].Role(), "renewed within lease_ttl, the primary keeps running past its boot window")

	// The active site moves on: the old site's leases are no longer
	// renewed, and its agent fences itself (invariants 1 and 4).
	_, err := c.client(c.follower()).SetActiveSite(testCtx(t), &pb.SetActiveSiteRequest{Site: "dr", ExpectedEpoch: 1, Reason: "test"})
	require.NoError(t, err)
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		a, _, err := agentStatus(t, c, "app-1")
		if err != nil {
			return false, err
		}
		return fakes["engine"].Role() == driver.RoleStopped && a.GetProbe().GetFenced() && a.GetProbe().GetEpoch() == 2,
			fmt.Errorf("engine %s, probe %+v", fakes["engine"].Role(), a.GetProbe())
	})
}
