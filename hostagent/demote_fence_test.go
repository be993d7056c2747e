package hostagent

import (
	"fmt"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// TestAgent_Demote_LiftsFence checks that a fenced primary rejoined as a
// standby by a demote step is no longer reported fenced: the fence did its
// job, and an operator must not see a healthy standby as fenced.
func TestAgent_Demote_LiftsFence(t *testing.T) {
	ta := newTestAgent(t, 300*time.Millisecond, map[string]driver.Role{"pg": driver.RolePrimary, "app": driver.RoleStopped})
	// No leader vouches: the adopted primary is fenced after the boot
	// window.
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		role := ta.fakes["pg"].Role()
		return role == driver.RoleStopped, fmt.Errorf("pg is %s", role)
	})
	resp := ta.observe(1)
	require.True(t, resp.GetFenced())
	require.Equal(t, string(driver.RoleFenced), serviceRole(resp, "pg"))

	_, res, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "rejoin", Epoch: 1, Action: pb.StepAction_STEP_ACTION_DEMOTE, Target: "pg",
		Args: map[string]string{"upstream_host": "10.0.2.21", "upstream_port": "5432"}})
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	resp = ta.observe(1)
	require.False(t, resp.GetFenced(), "a rejoined standby is not fenced: %s", resp.GetFenceReason())
	require.Equal(t, string(driver.RoleStandby), serviceRole(resp, "pg"))
}
