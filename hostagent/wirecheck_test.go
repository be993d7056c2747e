package hostagent

import (
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestAgent_OversizeRequest_Refused sends Execute and Probe an oversize id
// or string: each is refused as InvalidArgument with a short error that
// quotes the start of the value and says how long it was, and the agent
// changes nothing (no epoch learnt, no step journaled).
func TestAgent_OversizeRequest_Refused(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	huge := strings.Repeat("x", 100*1024)
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"Execute execution id", func() error {
			_, _, err := ta.execute(&pb.ExecuteRequest{ExecutionId: huge, StepId: "s1", Epoch: 5, Action: pb.StepAction_STEP_ACTION_START, Target: "app"})
			return err
		}, "execution_id \"xxxx"},
		{"Execute argument", func() error {
			_, _, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e1", StepId: "s1", Epoch: 5, Action: pb.StepAction_STEP_ACTION_START, Target: "app",
				Args: map[string]string{"note": huge}})
			return err
		}, `args["note"]`},
		{"Probe leader id", func() error {
			_, err := ta.client.Probe(ctxT(t), &pb.ProbeRequest{Epoch: 5, LeaderId: huge, ActiveSite: "primary", LeaseTtlMs: 1000})
			return err
		}, "leader_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%.300v", err)
			msg := status.Convert(err).Message()
			require.Contains(t, msg, tc.want)
			require.Contains(t, msg, "(102400 bytes)")
			require.Less(t, len(msg), 256, "the error stays short: %s", msg)
		})
	}
	require.Less(t, ta.agent.epoch.current(), uint64(5), "no refused request may raise the epoch")
	st, err := ta.fakes["app"].Status(ctxT(t))
	require.NoError(t, err)
	require.Equal(t, driver.RoleStopped, st.Role, "no refused step may run")
}
