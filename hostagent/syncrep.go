package hostagent

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"strconv"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/fsutil"
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
	term, fenced, err := leaderTermArg(req)
	if err != nil {
		return nil, err
	}
	setter, ok := svc.driver.(driver.SyncStandbySetter)
	if !ok {
		return nil, invalidStep("%s: service %q (driver %s) has no synchronous standbys", actionName(req), svc.cfg.Name, svc.cfg.Driver)
	}
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		a.syncMu.Lock()
		defer a.syncMu.Unlock()
		if fenced {
			if err := a.takeSyncTermLocked(svc.cfg.Name, term); err != nil {
				return nil, err
			}
		}
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

// leaderTermArg reads a set-sync-standbys step's leader_term; false when
// a leader too old to send one sent none, whose step is not fenced.
func leaderTermArg(req *pb.ExecuteRequest) (uint64, bool, error) {
	v, ok := req.GetArgs()[structs.ArgLeaderTerm]
	if !ok {
		return 0, false, nil
	}
	term, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, invalidStep("%s: %s %q is not a term", actionName(req), structs.ArgLeaderTerm, v)
	}
	return term, true, nil
}

// takeSyncTermLocked records that service takes a setting from a leader
// of term, or refuses it when a leader of a later term already set one: a
// deposed leader's step, delayed in the network, must not stop the
// primary waiting for a standby its successor has since recorded
// synchronous (invariant 8). The caller holds syncMu until the setting
// is made, so check and setting are one. A later term is written to
// data_dir before the setting is made, so that a step delayed across an
// agent restart is refused too.
func (a *Agent) takeSyncTermLocked(service string, term uint64) error {
	seen := a.syncTerms[service]
	if term < seen {
		return fmt.Errorf("refused: a leader of term %d set the synchronous standbys of %s since this step's leader (term %d) sent it", seen, service, term)
	}
	if term == seen {
		return nil
	}
	terms := maps.Clone(a.syncTerms)
	if terms == nil {
		terms = map[string]uint64{}
	}
	terms[service] = term
	if err := a.dataDir.writeJSON(filepath.Join(a.config.DataDir, syncTermsFileName), terms); err != nil {
		return fmt.Errorf("record leader term %d of the synchronous standbys of %s: %w", term, service, err)
	}
	a.syncTerms = terms
	return nil
}

// syncTermsFileName is the file in data_dir that keeps, per data service,
// the highest leader term whose set-sync-standbys step the agent took.
const syncTermsFileName = "sync_terms"

// readSyncTerms reads dir's sync_terms file: none when it does not exist.
func readSyncTerms(dir string) (map[string]uint64, error) {
	terms := map[string]uint64{}
	if _, err := fsutil.ReadJSON(filepath.Join(dir, syncTermsFileName), &terms); err != nil {
		return nil, fmt.Errorf("%w (remove it only if no leader can still send a set-sync-standbys step to this host)", err)
	}
	return terms, nil
}
