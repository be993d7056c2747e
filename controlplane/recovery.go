package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/drplane/drplane/internal/fsutil"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/raft"
)

// Quorum-loss recovery (DESIGN.md section 5, two sites without a witness).
//
// The servers of the surviving site cannot elect a leader: the lost site
// held part of the quorum. Once they have had no leader for
// quorum_loss_timeout and reach no server of the active site, and the
// active site is confirmed fenced (its STONITH hook exited 0, or an
// operator ran `drplane failover --force --confirm-primary-down`), the
// surviving server with the longest log recovers: it writes a recovery
// plan to its data dir and restarts; on start it rewrites its Raft
// configuration to itself alone (raft.RecoverCluster), elects itself and,
// as leader, starts the failover plan. Its site's other servers are then
// told to wipe their Raft state and join it again; servers of the lost site
// that come back are told they were removed and refuse to serve until an
// operator runs `drplane server rejoin`.

// recoveryFileName holds a pending recovery plan in data_dir.
const recoveryFileName = "recovery.json"

// recoveryPlan is one quorum-loss recovery as this server carries it out.
type recoveryPlan struct {
	ID            string    `json:"id"`
	Reason        string    `json:"reason"`
	Actor         string    `json:"actor"`
	FromSite      string    `json:"from_site"`
	ToSite        string    `json:"to_site"`
	TriggerTime   time.Time `json:"trigger_time"`
	Automatic     bool      `json:"automatic"`
	AllowDataLoss bool      `json:"allow_data_loss"`
	// Note is the operator's --note, kept with the failover.
	Note string `json:"note,omitempty"`
	// Recovered is set once the Raft configuration was rewritten; the
	// failover is still to be started by this server as leader.
	Recovered bool `json:"recovered"`
	// SiteFence is the STONITH hook's confirmation that FromSite is
	// fenced, when the recovery rests on one; the failover takes it as
	// its fence and lease-wait for that site.
	SiteFence *structs.SiteFence `json:"site_fence,omitempty"`
	// ConfirmedDownAt is when an operator confirmed FromSite down
	// (RecoverQuorum's confirm_primary_down); zero for an automatic one.
	ConfirmedDownAt time.Time `json:"confirmed_down_at,omitempty"`
}

// RestartRequested is closed when the server needs to be stopped and
// started again with the same configuration: after it prepared a
// quorum-loss recovery, was removed, or was told to rejoin.
func (s *Server) RestartRequested() <-chan struct{} { return s.restartCh }

func (s *Server) requestRestart(why string) {
	s.restartOnce.Do(func() {
		s.logger.Warn("server restart requested", "reason", why)
		close(s.restartCh)
	})
}

// recoverAtStart applies a pending recovery plan before Raft starts: the
// configuration becomes this server alone. It returns the plan whose
// failover is still to be started, or nil.
func (s *Server) recoverAtStart(rc *raft.Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, trans raft.Transport) (*recoveryPlan, error) {
	path := filepath.Join(s.config.DataDir, recoveryFileName)
	var p recoveryPlan
	ok, err := fsutil.ReadJSON(path, &p)
	if err != nil || !ok {
		return nil, err
	}
	if p.Recovered {
		return &p, nil
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(s.config.NodeID), Address: raft.ServerAddress(s.raftAddr)}}}
	// RecoverCluster replays the log into an FSM of its own; Raft restores
	// the server's FSM from the snapshot it leaves.
	if err := raft.RecoverCluster(rc, NewFSM(s.logger.Named("recovery")), logs, stable, snaps, trans, conf); err != nil {
		return nil, fmt.Errorf("recover raft configuration for recovery %s: %w", p.ID, err)
	}
	p.Recovered = true
	if err := fsutil.WriteJSONDurable(path, p); err != nil {
		return nil, fmt.Errorf("record recovery %s: %w", p.ID, err)
	}
	s.logger.Warn("raft configuration recovered after quorum loss: this server is the only voter until its site's servers rejoin",
		"recovery_id", p.ID, "reason", p.Reason, "from_site", p.FromSite, "to_site", p.ToSite)
	return &p, nil
}

// startRecoveredFailover runs, as leader, the failover of a recovery this
// server carried out, once: the request id is the recovery's, so a retry
// after a crash is applied once.
func (s *Server) startRecoveredFailover(ctx context.Context) {
	p := s.pendingRecovery
	if p == nil {
		return
	}
	path := filepath.Join(s.config.DataDir, recoveryFileName)
	done := func(msg string, args ...any) {
		s.logger.Warn(msg, args...)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.logger.Error("failed to remove recovery file", "path", path, "error", err)
		}
		s.pendingRecovery = nil
	}
	st := s.fsm.view()
	if st.ActiveSite == p.ToSite {
		done("recovered failover not needed: the target site is active already", "recovery_id", p.ID, "site", p.ToSite)
		return
	}
	ex, err := s.newExecution(&pb.StartExecutionRequest{Kind: string(plan.KindFailover), To: p.ToSite, AllowDataLoss: p.AllowDataLoss, Note: p.Note}, p.Actor, p.TriggerTime)
	if err != nil {
		s.logger.Error("failed to derive the failover of a quorum-loss recovery", "recovery_id", p.ID, "error", err)
		return
	}
	if p.Automatic {
		ex.Trigger = structs.TriggerAutomatic
	}
	if p.SiteFence != nil && p.SiteFence.Site == ex.From {
		ex.SiteFence = p.SiteFence
		s.recordExposure(ex) // its confirmation bounds the old primary's writes
	} else {
		// The old site's servers may have kept their own majority and
		// leader, renewing its leases: no lease this server counts bounds
		// when its primary stopped acknowledging writes, only the
		// operator's word that it was down.
		ex.DownConfirmed = nil
		if !p.ConfirmedDownAt.IsZero() {
			ex.DownConfirmed = &structs.DownConfirmation{Site: ex.From, At: p.ConfirmedDownAt, By: p.Actor}
		}
		s.recordExposure(ex)
	}
	if ex.OutageSince.IsZero() {
		// This server saw no leader from TriggerTime on; it noticed within
		// the heartbeat and leader-lease timeouts and one poll of the
		// quorum watch, and until then the cluster, and the site that
		// held part of its quorum, was alive.
		hb, _, lease := s.config.RaftTimeouts()
		ex.OutageSince = p.TriggerTime.Add(-(hb + lease + s.config.Failover.ProbeInterval))
		ex.RTODetail = fmt.Sprintf("from %s: this server had no leader from %s on, noticed within raft's heartbeat and leader-lease timeouts and a poll (%s)",
			ex.OutageSince.UTC().Format("15:04:05.000"), p.TriggerTime.UTC().Format("15:04:05.000"), hb+lease+s.config.Failover.ProbeInterval)
	}
	ex.RPODetail = "quorum lost; " + p.Reason + "; " + ex.RPODetail
	var cooldown time.Duration
	if p.Automatic {
		cooldown = s.config.Failover.Cooldown
	}
	_, err = s.raftApply(structs.StartExecutionRequestType, &structs.StartExecutionRequest{
		WriteRequest: structs.WriteRequest{RequestID: "recovery-" + p.ID, Actor: p.Actor},
		Execution:    *ex, Cooldown: cooldown,
	})
	var rejected *structs.RejectedError
	switch {
	case errors.As(err, &rejected):
		done("recovered failover not started", "recovery_id", p.ID, "reason", rejected.Reason)
		return
	case err != nil:
		s.logger.Error("failed to start the failover of a quorum-loss recovery; retrying on the next leadership", "recovery_id", p.ID, "error", err)
		return
	}
	done("quorum-loss recovery: failover started", "recovery_id", p.ID, "execution_id", ex.ID, "to", p.ToSite, "reason", p.Reason)
	s.startExecutor(ctx, ex.ID)
}

func (s *Server) newRecoveryPlan(st stateView, trigger time.Time, automatic, allowDataLoss bool, actor, reason string) recoveryPlan {
	p := recoveryPlan{
		ID: fmt.Sprintf("%s-%d", s.config.NodeID, time.Now().UnixNano()), Reason: reason, Actor: actor,
		FromSite: st.ActiveSite, ToSite: s.config.Site, TriggerTime: trigger.UTC(), Automatic: automatic, AllowDataLoss: allowDataLoss,
	}
	if !automatic {
		p.ConfirmedDownAt = time.Now().UTC()
	}
	return p
}

// prepareRecovery records the plan and restarts the server, which applies
// it before Raft starts.
func (s *Server) prepareRecovery(p recoveryPlan) error {
	if err := fsutil.WriteJSONDurable(filepath.Join(s.config.DataDir, recoveryFileName), p); err != nil {
		return fmt.Errorf("record recovery plan: %w", err)
	}
	s.logger.Warn("quorum-loss recovery prepared; restarting to apply it", "recovery_id", p.ID, "reason", p.Reason, "from_site", p.FromSite, "to_site", p.ToSite)
	s.requestRestart("quorum-loss recovery " + p.ID)
	return nil
}
