package hostagent

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/hostagent/health"
	"github.com/drplane/drplane/internal/config"
	"github.com/hashicorp/go-hclog"
)

// service is one declared service: its driver, its health monitor, and
// whether the agent fenced it.
type service struct {
	cfg     config.ServiceConfig
	driver  driver.Driver
	monitor *health.Monitor // nil without a health block

	mu     sync.Mutex
	fenced bool
	fence  fence
	// lastRole is the role the driver last reported, so a standby whose
	// status briefly cannot be read is not taken for a primary.
	lastRole driver.Role
}

// observe records the role a status read returned.
func (s *service) observe(st driver.Status, err error) {
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastRole = st.Role
}

// knownNotPrimary reports whether the last role read was not primary.
func (s *service) knownNotPrimary() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRole != "" && s.lastRole != driver.RolePrimary
}

// lastObservedRole is the role the driver last reported; empty before
// the first read.
func (s *service) lastObservedRole() driver.Role {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRole
}

// setFence marks the service fenced, for f's cause.
func (s *service) setFence(f fence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fenced, s.fence = true, f
}

// unfence lifts the service's fence: a leader made it run again.
func (s *service) unfence() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fenced, s.fence = false, fence{}
}

// isFenced reports whether the service is fenced, and why.
func (s *service) isFenced() (bool, fence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fenced, s.fence
}

// DriverFactory builds the driver for a declared service; tests inject
// fakes.
type DriverFactory func(cfg config.ServiceConfig, stateDir string, logger hclog.Logger) (driver.Driver, error)

// RealDrivers is the DriverFactory of the agent of hostID: it builds the
// real driver each service's config names.
func RealDrivers(hostID string) DriverFactory {
	return func(cfg config.ServiceConfig, stateDir string, logger hclog.Logger) (driver.Driver, error) {
		return newDriver(hostID, cfg, stateDir, logger)
	}
}

// newDriver builds the real driver cfg names for the agent of hostID.
func newDriver(hostID string, cfg config.ServiceConfig, stateDir string, logger hclog.Logger) (driver.Driver, error) {
	switch cfg.Driver {
	case config.DriverProcess:
		d, err := driver.NewProcess(driver.ProcessConfig{
			Name: cfg.Name, Command: cfg.Command, Env: cfg.Env, Dir: cfg.Dir,
			StopTimeout: cfg.StopTimeout, Restart: cfg.Restart, RunAs: cfg.RunAs,
			LogFile: filepath.Join(stateDir, cfg.Name+".log"), StateDir: stateDir,
		}, logger)
		if err != nil {
			// Returning d itself would hand back a non-nil interface
			// holding a nil pointer.
			return nil, err
		}
		return d, nil
	case config.DriverSystemd:
		return driver.NewSystemd(driver.SystemdConfig{Name: cfg.Name, Unit: cfg.Unit, Timeout: cfg.StopTimeout}, logger), nil
	case config.DriverPostgres:
		// A standby streams under its host id: the leader names it so in
		// the primary's synchronous_standby_names and finds it under it in
		// the primary's standbys. The config loader checked the host id
		// against the name rule, whose names are valid application names.
		d, err := driver.NewPostgres(driver.PostgresConfig{
			Name: cfg.Name, DataDir: cfg.DataDir, Port: cfg.Port, BinDir: cfg.BinDir, RunAs: cfg.RunAs,
			StopTimeout: cfg.StopTimeout, LogFile: filepath.Join(stateDir, cfg.Name+".log"),
			ApplicationName: hostID,
		}, logger)
		if err != nil {
			return nil, err
		}
		return d, nil
	}
	return nil, fmt.Errorf("service %s: unknown driver %q", cfg.Name, cfg.Driver)
}

// newHealthCheck builds a service's health check from its config.
func newHealthCheck(h *config.HealthConfig) health.Check {
	switch {
	case h.HTTP != "":
		return health.NewHTTP(h.HTTP, h.Timeout)
	case h.TCP != "":
		return health.NewTCP(h.TCP, h.Timeout)
	case len(h.Exec) > 0:
		return health.NewExec(h.Exec, h.Timeout)
	}
	return health.NewSQL(h.SQL, h.Query, h.Timeout)
}

// role is the service's role as reported: a fenced service that is not
// running reports fenced.
func (s *service) status(ctx context.Context) (driver.Status, error) {
	st, err := s.driver.Status(ctx)
	s.observe(st, err)
	if err != nil {
		return st, err
	}
	if fenced, f := s.isFenced(); fenced && st.Role == driver.RoleStopped {
		st.Role, st.Message = driver.RoleFenced, f.reason
	}
	return st, nil
}
