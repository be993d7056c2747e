package controlplane

import (
	"strings"
	"testing"

	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestCluster_OversizeRequest_Refused sends each service of a server a
// request with an oversize id or string: each is refused as
// InvalidArgument with a short error that quotes the start of the value
// and says how long it was, and nothing is applied.
func TestCluster_OversizeRequest_Refused(t *testing.T) {
	c := newTestCluster(t, 1)
	leader := c.waitForLeader()
	huge := strings.Repeat("x", 100*1024)
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"Operator execution id", func() error {
			_, err := c.client(leader).GetExecution(testCtx(t), &pb.GetExecutionRequest{Id: huge})
			return err
		}, "id \"xxxx"},
		{"Operator request id", func() error {
			_, err := c.client(leader).CancelExecution(testCtx(t), &pb.CancelExecutionRequest{Write: &pb.WriteOptions{RequestId: strings.Repeat("r", 3<<20)}, Id: "e1"})
			return err
		}, "write.request_id"},
		{"Operator reason", func() error {
			_, err := c.client(leader).SetAutomation(testCtx(t), &pb.SetAutomationRequest{Action: "pause", Reason: huge})
			return err
		}, "reason"},
		{"AgentRegistry service name", func() error {
			_, err := c.agentClient(leader, "db-1").RegisterAgent(testCtx(t), &pb.RegisterAgentRequest{Agent: &pb.Agent{
				HostId: "db-1", Site: "primary", Address: "127.0.0.1:1", Services: []*pb.Service{{Name: huge, Driver: "process"}}}})
			return err
		}, "agent.services[0].name"},
		{"Peer site", func() error {
			_, err := c.standIn(leader).ObserveSite(testCtx(t), &pb.ObserveSiteRequest{Site: huge})
			return err
		}, "site"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%.300v", err)
			msg := status.Convert(err).Message()
			require.Contains(t, msg, tc.want)
			require.Contains(t, msg, " bytes)")
			require.Less(t, len(msg), 256, "the error stays short: %s", msg)
		})
	}
	v := leader.fsm.view()
	require.Empty(t, v.Agents, "nothing was registered")
	require.False(t, leader.fsm.automation().Paused, "nothing was paused")
}
