package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// sealedExecution is what the evidence chain seals of a finished
// execution: everything the report and history show of it, and who.
type sealedExecution struct {
	ID          string       `json:"id"`
	Kind        string       `json:"kind"`
	Plan        string       `json:"plan"`
	From        string       `json:"from"`
	To          string       `json:"to"`
	Trigger     string       `json:"trigger"`
	Actor       string       `json:"actor"`
	Note        string       `json:"note"`
	TriggeredAt time.Time    `json:"triggered_at"`
	StartedAt   time.Time    `json:"started_at"`
	FinishedAt  time.Time    `json:"finished_at"`
	State       string       `json:"state"`
	Message     string       `json:"message"`
	RTOSeconds  *float64     `json:"rto_seconds"`
	RTODetail   string       `json:"rto_detail"`
	RPOSeconds  *float64     `json:"rpo_seconds"`
	RPODetail   string       `json:"rpo_detail"`
	Steps       []sealedStep `json:"steps"`
	// Added later: empty ones are left out, so that records sealed
	// before keep their hashes.
	Schedule     string     `json:"schedule,omitempty"`
	ScheduledFor *time.Time `json:"scheduled_for,omitempty"`
	Exercises    string     `json:"exercises,omitempty"`
}

type sealedStep struct {
	ID        string    `json:"id"`
	Action    string    `json:"action"`
	Host      string    `json:"host"`
	Target    string    `json:"target"`
	State     string    `json:"state"`
	Attempt   int       `json:"attempt"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	Message   string    `json:"message"`
}

// chainHash is the link hash of ex after prev: hex SHA-256 of prev and
// the sealed record's JSON (Go's encoding of a struct is deterministic,
// so every server computes the same).
func chainHash(prev string, ex *structs.Execution) string {
	s := sealedExecution{ID: ex.ID, Kind: ex.Kind, Plan: ex.PlanName, From: ex.From, To: ex.To, Trigger: ex.Trigger, Actor: ex.Actor,
		Note: ex.Note, TriggeredAt: ex.TriggeredAt.UTC(), StartedAt: ex.StartedAt.UTC(), FinishedAt: ex.FinishedAt.UTC(), State: ex.State,
		Message: ex.Message, RTOSeconds: ex.RTOSeconds, RTODetail: ex.RTODetail, RPOSeconds: ex.RPOSeconds, RPODetail: ex.RPODetail,
		Schedule: ex.Schedule, Exercises: ex.Exercises}
	if !ex.ScheduledFor.IsZero() {
		at := ex.ScheduledFor.UTC()
		s.ScheduledFor = &at
	}
	for i, st := range ex.Steps {
		ss := sealedStep{ID: st.ID, State: st.State, Attempt: st.Attempt, StartedAt: st.StartedAt.UTC(), EndedAt: st.EndedAt.UTC(), Message: st.Message}
		if i < len(ex.Plan.Steps) {
			p := ex.Plan.Steps[i]
			ss.Action, ss.Host, ss.Target = p.Action, p.Host, p.Target
		}
		s.Steps = append(s.Steps, ss)
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Errorf("seal execution %s: %w", ex.ID, err)) // plain values: cannot fail
	}
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// sealLocked appends ex, just finished, to the evidence chain.
func (f *FSM) sealLocked(ex *structs.Execution, index uint64, at time.Time) {
	prev := ""
	if n := len(f.state.Evidence); n > 0 {
		prev = f.state.Evidence[n-1].Hash
	}
	f.state.Evidence = append(f.state.Evidence, structs.EvidenceLink{ExecutionID: ex.ID, PrevHash: prev, Hash: chainHash(prev, ex), SealedAt: at, Index: index})
}

// verifyEvidence walks the chain against the executions it seals and
// returns the number of links, the head hash and every problem found: a
// record changed after it was sealed, a link that does not follow its
// predecessor, a sealed execution gone, an execution that ended after
// the chain began but is not in it.
func (f *FSM) verifyEvidence() (links int, head string, problems []string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	sealed := map[string]bool{}
	prev := ""
	for i, l := range f.state.Evidence {
		sealed[l.ExecutionID] = true
		if l.PrevHash != prev {
			problems = append(problems, fmt.Sprintf("link %d (%s) does not follow link %d: a link was removed or reordered", i+1, l.ExecutionID, i))
		}
		ex, ok := f.state.Executions[l.ExecutionID]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("execution %s, sealed at index %d, is gone from the record", l.ExecutionID, l.Index))
		case chainHash(l.PrevHash, ex) != l.Hash:
			problems = append(problems, fmt.Sprintf("execution %s changed after it was sealed at %s (index %d)", l.ExecutionID, l.SealedAt.UTC().Format(time.RFC3339), l.Index))
		}
		prev = l.Hash
	}
	if len(f.state.Evidence) > 0 {
		first := f.state.Evidence[0].SealedAt
		for _, id := range f.state.ExecutionOrder {
			ex := f.state.Executions[id]
			if ex.State != structs.ExecRunning && ex.State != structs.ExecPlanned && !ex.FinishedAt.Before(first) && !sealed[id] {
				problems = append(problems, fmt.Sprintf("execution %s ended %s but is not in the chain", id, ex.FinishedAt.UTC().Format(time.RFC3339)))
			}
		}
	}
	return len(f.state.Evidence), prev, problems
}

// VerifyEvidence checks the evidence chain of the finished executions.
func (e *operatorEndpoint) VerifyEvidence(ctx context.Context, req *pb.VerifyEvidenceRequest) (*pb.VerifyEvidenceResponse, error) {
	local := func(_ context.Context, req *pb.VerifyEvidenceRequest) (*pb.VerifyEvidenceResponse, error) {
		links, head, problems := e.srv.fsm.verifyEvidence()
		return &pb.VerifyEvidenceResponse{Meta: e.srv.meta(req.GetRead().GetStale()), Links: uint32(links), HeadHash: head, Problems: problems}, nil
	}
	if req.GetRead().GetStale() {
		return local(ctx, req)
	}
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.VerifyEvidence), local)
}
