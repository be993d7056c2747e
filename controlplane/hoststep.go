package controlplane

import (
	"context"
	"fmt"
	"time"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

func (e *operatorEndpoint) runHostStepLocal(ctx context.Context, req *pb.RunHostStepRequest) (*pb.RunHostStepResponse, error) {
	s := e.srv
	agent, err := s.registeredAgent(req.GetHostId())
	if err != nil {
		return nil, err
	}
	w := writeRequest(ctx, req.GetWrite(), s.config.NodeID)
	action := structs.ActionName(req.GetAction())
	if _, err := s.raftApply(structs.AuditRequestType, &structs.AuditRequest{WriteRequest: w,
		Action: "host-" + action, Detail: fmt.Sprintf("%s %s on %s %v", action, req.GetTarget(), req.GetHostId(), req.GetArgs())}); err != nil {
		return nil, err
	}
	// The request id names the step, so a retried request attaches to the
	// same run on the agent instead of starting a second one.
	step := &pb.ExecuteRequest{
		ExecutionId: "op-" + req.GetWrite().GetRequestId(), StepId: action,
		Epoch: s.fsm.view().Epoch, Action: req.GetAction(), Target: req.GetTarget(), Args: req.GetArgs(),
	}
	lines, res, err := s.executeOnAgent(ctx, agent, step)
	if err != nil {
		return nil, err
	}
	return &pb.RunHostStepResponse{Meta: s.meta(false), Progress: lines, Result: res}, nil
}

func (s *Server) registeredAgent(hostID string) (structs.Agent, error) {
	for _, a := range s.fsm.view().Agents {
		if a.HostID == hostID {
			return a, nil
		}
	}
	return structs.Agent{}, fmt.Errorf("%w: host %q is not registered", errNotFound, hostID)
}

// hostAgentClient is a HostAgent client of the registered host hostID,
// on the leader's shared connection to it.
func (s *Server) hostAgentClient(hostID string) (pb.HostAgentClient, error) {
	agent, err := s.registeredAgent(hostID)
	if err != nil {
		return nil, err
	}
	conn, err := s.agentConns.get(agent.Address)
	if err != nil {
		return nil, err
	}
	return pb.NewHostAgentClient(conn), nil
}

// executeOnAgent sends one step to an agent and collects its progress and
// result. The agent's journal makes re-sending the same step safe.
func (s *Server) executeOnAgent(ctx context.Context, agent structs.Agent, step *pb.ExecuteRequest) ([]string, *pb.StepResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	var lines []string
	res, err := s.sendStep(ctx, agent, step, func(line string) { lines = append(lines, line) }, deliverPatiently)
	return lines, res, err
}
