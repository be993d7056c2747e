package controlplane

import (
	"testing"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// TestEvidence_TamperedRecordCaught: every finished execution is sealed
// in a hash chain that every server computes alike; the chain verifies;
// a record edited afterwards (an RTO made better) is named, and so is a
// link removed.
func TestEvidence_TamperedRecordCaught(t *testing.T) {
	ts := newTwoSites(t, nil)
	var ids []string
	for range 2 {
		ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "restart"})
		ex = ts.waitEnded(t, ex.GetId())
		require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
		ids = append(ids, ex.GetId())
	}
	resp, err := ts.c.client(ts.c.follower()).VerifyEvidence(testCtx(t), &pb.VerifyEvidenceRequest{})
	require.NoError(t, err)
	require.Empty(t, resp.GetProblems())
	require.Equal(t, uint32(2), resp.GetLinks())
	require.Len(t, resp.GetHeadHash(), 64)

	// Every server sealed the same chain.
	ts.c.waitForLeader()
	for _, s := range ts.c.servers {
		n, head, problems := s.fsm.verifyEvidence()
		if n == 2 {
			require.Equal(t, resp.GetHeadHash(), head, s.cfg.NodeID)
			require.Empty(t, problems)
		}
	}

	leader := ts.c.waitForLeader()
	leader.fsm.mu.Lock()
	better := 0.1
	leader.fsm.state.Executions[ids[0]].RTOSeconds = &better
	leader.fsm.mu.Unlock()
	resp, err = ts.c.client(leader).VerifyEvidence(testCtx(t), &pb.VerifyEvidenceRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetProblems(), 1)
	require.Contains(t, resp.GetProblems()[0], "execution "+ids[0]+" changed after it was sealed")

	leader.fsm.mu.Lock()
	leader.fsm.state.Evidence = leader.fsm.state.Evidence[1:]
	leader.fsm.mu.Unlock()
	_, _, problems := leader.fsm.verifyEvidence()
	require.Contains(t, problems, "link 1 ("+ids[1]+") does not follow link 0: a link was removed or reordered")
}
