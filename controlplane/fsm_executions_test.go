package controlplane

import (
	"fmt"
	"testing"

	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	"github.com/stretchr/testify/require"
)

var reqSeq int

func w() structs.WriteRequest {
	reqSeq++
	return structs.WriteRequest{RequestID: fmt.Sprintf("req-%d", reqSeq), Actor: "cli:ops"}
}

// startTestExecution starts an execution of two steps, "a" then the
// activate step "b".
func startTestExecution(t *testing.T, f *testFSM, id string) *structs.ApplyResult {
	t.Helper()
	ex := structs.Execution{ID: id, Kind: "failover", From: "primary", To: "dr", StartEpoch: f.view().Epoch,
		Plan: plan.Plan{Steps: []plan.Step{
			{ID: "a", Action: plan.ActionNotify, OnFailure: plan.OnFailureAbort},
			{ID: "b", Action: plan.ActionActivate, Target: "dr", DependsOn: []string{"a"}, OnFailure: plan.OnFailureAbort},
		}},
		Steps: []structs.ExecStep{{ID: "a", State: structs.StepPending}, {ID: "b", State: structs.StepPending}},
	}
	return f.apply(t, structs.StartExecutionRequestType, &structs.StartExecutionRequest{WriteRequest: w(), Execution: ex})
}

func stepUpdate(t *testing.T, f *testFSM, exID, step, state string, attempt int, activate *structs.ActivateSite) error {
	t.Helper()
	return f.apply(t, structs.StepUpdateRequestType, &structs.StepUpdateRequest{WriteRequest: w(), ExecutionID: exID,
		Step: structs.ExecStep{ID: step, State: state, Attempt: attempt}, Activate: activate}).Err()
}

func TestFSM_StartExecution_OneAtATime(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	require.NoError(t, startTestExecution(t, f, "ex-1").Err())
	err := startTestExecution(t, f, "ex-2").Err()
	require.ErrorContains(t, err, "execution ex-1 (failover to dr) is running")

	require.NoError(t, f.apply(t, structs.FinishExecutionRequestType, &structs.FinishExecutionRequest{WriteRequest: w(),
		ExecutionID: "ex-1", State: structs.ExecFailed, Message: "test"}).Err())
	require.NoError(t, startTestExecution(t, f, "ex-2").Err(), "once the first ended, the next may start")
}

func TestFSM_StartExecution_StaleEpochRefused(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	require.NoError(t, f.apply(t, structs.SetActiveSiteRequestType, &structs.SetActiveSiteRequest{WriteRequest: w(), Site: "dr", ExpectedEpoch: 1}).Err())
	ex := structs.Execution{ID: "ex-1", StartEpoch: 1}
	err := f.apply(t, structs.StartExecutionRequestType, &structs.StartExecutionRequest{WriteRequest: w(), Execution: ex}).Err()
	require.ErrorContains(t, err, "epoch is 2, not 1")
}

func TestFSM_StepUpdate_Transitions(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	require.NoError(t, startTestExecution(t, f, "ex-1").Err())

	cases := []struct {
		name    string
		step    string
		state   string
		attempt int
		wantErr string
	}{
		{name: "end before start is refused", step: "a", state: structs.StepSucceeded, attempt: 1, wantErr: "is pending"},
		{name: "start attempt 1", step: "a", state: structs.StepRunning, attempt: 1},
		{name: "re-sent start of the same attempt is accepted once", step: "a", state: structs.StepRunning, attempt: 1},
		{name: "end of another attempt is refused", step: "a", state: structs.StepSucceeded, attempt: 2, wantErr: "cannot end attempt 2"},
		{name: "retry starts attempt 2", step: "a", state: structs.StepRunning, attempt: 2},
		{name: "end attempt 2", step: "a", state: structs.StepSucceeded, attempt: 2},
		{name: "a second end is refused", step: "a", state: structs.StepFailed, attempt: 2, wantErr: "is succeeded"},
		{name: "unknown step", step: "zzz", state: structs.StepRunning, attempt: 1, wantErr: `no step "zzz"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := stepUpdate(t, f, "ex-1", tc.step, tc.state, tc.attempt, nil)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	ex, _ := f.execution("ex-1")
	require.Equal(t, structs.StepSucceeded, ex.Steps[0].State)
	require.Equal(t, 2, ex.Steps[0].Attempt)
}

func TestFSM_ActivateStep_FlipsOnceWithEpochCompareAndSet(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	require.NoError(t, startTestExecution(t, f, "ex-1").Err())
	require.NoError(t, stepUpdate(t, f, "ex-1", "b", structs.StepRunning, 1, nil))

	// A stale epoch (someone else flipped the site) fails the whole
	// update: the step does not end, nothing flips.
	err := stepUpdate(t, f, "ex-1", "b", structs.StepSucceeded, 1, &structs.ActivateSite{Site: "dr", ExpectedEpoch: 9})
	require.ErrorContains(t, err, "epoch is 1, not 9")
	require.Equal(t, "primary", f.view().ActiveSite)

	require.NoError(t, stepUpdate(t, f, "ex-1", "b", structs.StepSucceeded, 1, &structs.ActivateSite{Site: "dr", ExpectedEpoch: 1}))
	v := f.view()
	require.Equal(t, "dr", v.ActiveSite)
	require.Equal(t, uint64(2), v.Epoch)

	// A resumed executor re-sending the same success cannot flip twice.
	err = stepUpdate(t, f, "ex-1", "b", structs.StepSucceeded, 1, &structs.ActivateSite{Site: "dr", ExpectedEpoch: 2})
	require.Error(t, err)
	require.Equal(t, uint64(2), f.view().Epoch)
}

func TestFSM_ApproveAndCancel(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	require.NoError(t, startTestExecution(t, f, "ex-1").Err())

	err := f.apply(t, structs.ApproveStepRequestType, &structs.ApproveStepRequest{WriteRequest: w(), ExecutionID: "ex-1"}).Err()
	require.ErrorContains(t, err, "no step waiting for approval")

	require.NoError(t, stepUpdate(t, f, "ex-1", "a", structs.StepRunning, 1, nil))
	require.NoError(t, stepUpdate(t, f, "ex-1", "a", structs.StepWaiting, 1, nil))
	require.NoError(t, f.apply(t, structs.ApproveStepRequestType, &structs.ApproveStepRequest{WriteRequest: w(), ExecutionID: "ex-1"}).Err())
	ex, _ := f.execution("ex-1")
	require.Equal(t, structs.StepSucceeded, ex.Steps[0].State)
	require.Equal(t, "cli:ops", ex.Steps[0].ApprovedBy)

	require.NoError(t, f.apply(t, structs.CancelExecutionRequestType, &structs.CancelExecutionRequest{WriteRequest: w(), ExecutionID: "ex-1"}).Err())
	err = stepUpdate(t, f, "ex-1", "b", structs.StepRunning, 1, nil)
	require.ErrorContains(t, err, "being cancelled", "no new step starts after a cancel")

	require.NoError(t, f.apply(t, structs.FinishExecutionRequestType, &structs.FinishExecutionRequest{WriteRequest: w(),
		ExecutionID: "ex-1", State: structs.ExecCancelled, Skip: []string{"b"}}).Err())
	ex, _ = f.execution("ex-1")
	require.Equal(t, structs.ExecCancelled, ex.State)
	require.Equal(t, structs.StepSkipped, ex.Steps[1].State)
}

func TestFSM_Executions_SurviveSnapshot(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	require.NoError(t, startTestExecution(t, f, "ex-1").Err())
	require.NoError(t, stepUpdate(t, f, "ex-1", "a", structs.StepRunning, 1, nil))

	restored := roundTrip(t, f)
	ex, ok := restored.execution("ex-1")
	require.True(t, ok)
	require.Equal(t, structs.ExecRunning, ex.State)
	require.Equal(t, structs.StepRunning, ex.Steps[0].State)
	require.Equal(t, []string{"ex-1"}, restored.runningExecutionIDs())
}

// TestFSM_RollbackStep_OnlyWhileTheOriginalSiteIsActive: a rollback
// starts services at the site the execution started from; once another
// site was activated the FSM refuses to start one (invariant 1), even
// when the executor asks, a cancel or not.
func TestFSM_RollbackStep_OnlyWhileTheOriginalSiteIsActive(t *testing.T) {
	start := func(t *testing.T, f *testFSM, id string) {
		ex := structs.Execution{ID: id, Kind: "switchover", From: "primary", To: "dr", StartEpoch: f.view().Epoch,
			Plan: plan.Plan{Steps: []plan.Step{
				{ID: "stop", Action: plan.ActionStop, OnFailure: plan.OnFailureAbort},
				{ID: "activate:dr", Action: plan.ActionActivate, Target: "dr", DependsOn: []string{"stop"}, OnFailure: plan.OnFailureAbort},
				{ID: "rollback", Action: plan.ActionStart, DependsOn: []string{"stop"}, OnFailure: plan.OnFailureContinue, Rollback: true},
			}},
			Steps: []structs.ExecStep{{ID: "stop", State: structs.StepPending}, {ID: "activate:dr", State: structs.StepPending}, {ID: "rollback", State: structs.StepPending}},
		}
		require.NoError(t, f.apply(t, structs.StartExecutionRequestType, &structs.StartExecutionRequest{WriteRequest: w(), Execution: ex}).Err())
		require.NoError(t, stepUpdate(t, f, id, "stop", structs.StepRunning, 1, nil))
	}

	t.Run("original site active: cancelled, the rollback starts", func(t *testing.T) {
		f := newTestFSM(t)
		initSites(t, f)
		start(t, f, "ex-1")
		require.NoError(t, f.apply(t, structs.CancelExecutionRequestType, &structs.CancelExecutionRequest{WriteRequest: w(), ExecutionID: "ex-1"}).Err())
		require.NoError(t, stepUpdate(t, f, "ex-1", "stop", structs.StepCancelled, 1, nil))
		require.NoError(t, stepUpdate(t, f, "ex-1", "rollback", structs.StepRunning, 1, nil))
	})
	t.Run("target activated: refused", func(t *testing.T) {
		f := newTestFSM(t)
		initSites(t, f)
		start(t, f, "ex-1")
		require.NoError(t, stepUpdate(t, f, "ex-1", "stop", structs.StepSucceeded, 1, nil))
		require.NoError(t, stepUpdate(t, f, "ex-1", "activate:dr", structs.StepRunning, 1, nil))
		require.NoError(t, stepUpdate(t, f, "ex-1", "activate:dr", structs.StepSucceeded, 1, &structs.ActivateSite{Site: "dr", ExpectedEpoch: 1}))
		err := stepUpdate(t, f, "ex-1", "rollback", structs.StepRunning, 1, nil)
		require.ErrorContains(t, err, "step rollback of ex-1 rolls back to site primary in epoch 1, but site dr is active in epoch 2")
	})
}
