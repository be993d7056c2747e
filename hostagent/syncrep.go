package hostagent

import (
	"context"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// syncStandbysStep returns the set-sync-standbys step on svc: the
// leader's replication manager sets which standbys the primary waits for
// (invariant 8), and gets back the primary's position once the setting is
// in effect. The step is idempotent: re-sent, or resumed after the agent
// stopped, it runs again and outputs the position again.
func (a *Agent) syncStandbysStep(req *pb.ExecuteRequest, svc *service) (stepFunc, error) {
	// Without the argument the step says nothing; taking that for "none"
	// would silently stop the primary waiting.
	if _, ok := req.GetArgs()[structs.ArgSyncStandbys]; !ok {
		return nil, invalidStep("%s: %s is required (empty for none, %q for any standby)", actionName(req), structs.ArgSyncStandbys, structs.SyncAnyStandby)
	}
	names, err := syncStandbysArg(req)
	if err != nil {
		return nil, err
	}
	setter, ok := svc.driver.(driver.SyncStandbySetter)
	if !ok {
		return nil, invalidStep("%s: service %q (driver %s) has no synchronous standbys", actionName(req), svc.cfg.Name, svc.cfg.Driver)
	}
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		pos, err := setter.SetSyncStandbys(ctx, names, p)
		if err != nil {
			return nil, err
		}
		return map[string]string{structs.OutputSyncPosition: pos}, nil
	}, nil
}

// syncStandbysArg reads a set-sync-standbys or promote step's
// sync_standbys: none when absent or empty.
func syncStandbysArg(req *pb.ExecuteRequest) ([]string, error) {
	names, err := structs.ParseSyncStandbys(req.GetArgs()[structs.ArgSyncStandbys])
	if err != nil {
		return nil, invalidStep("%s: %s: %v", actionName(req), structs.ArgSyncStandbys, err)
	}
	return names, nil
}
