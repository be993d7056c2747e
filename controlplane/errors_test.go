package controlplane

import (
	"context"
	"fmt"
	"testing"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/rpcerr"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestErrors_ToStatus_TypedDetails(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code codes.Code
		want *pb.ErrorInfo
	}{
		{"no leader", fmt.Errorf("%w: 1 of 3 servers reachable; quorum needs 2", errNoLeader), codes.Unavailable,
			&pb.ErrorInfo{Reason: pb.ErrorReason_ERROR_REASON_NO_LEADER}},
		{"defer to the longest log", deferTo("s4", "10.0.0.4:7400", "quorum lost; server s4 of this site has the longest log"), codes.FailedPrecondition,
			&pb.ErrorInfo{Reason: pb.ErrorReason_ERROR_REASON_DEFER_TO_SERVER, ServerId: "s4", Address: "10.0.0.4:7400"}},
		{"wrapped defer", fmt.Errorf("recover: %w", deferTo("s4", "a:1", "s4 leads")), codes.FailedPrecondition,
			&pb.ErrorInfo{Reason: pb.ErrorReason_ERROR_REASON_DEFER_TO_SERVER, ServerId: "s4", Address: "a:1"}},
		{"epoch mismatch", &epochMismatchError{expected: 3, current: 5, err: &structs.RejectedError{Reason: "epoch is 5, not 3"}}, codes.FailedPrecondition,
			&pb.ErrorInfo{Reason: pb.ErrorReason_ERROR_REASON_EPOCH_MISMATCH, Epoch: 5, RequestEpoch: 3}},
		{"other rejection", &structs.RejectedError{Reason: "an execution runs"}, codes.FailedPrecondition, nil},
		{"invalid", fmt.Errorf("%w: site is empty", errInvalidArgument), codes.InvalidArgument, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := toStatus(tc.err)
			require.Equal(t, tc.code, status.Code(err), "%v", err)
			require.Equal(t, tc.err.Error(), status.Convert(err).Message(), "the message is kept for display")
			info := rpcerr.Info(err)
			if tc.want == nil {
				require.Nil(t, info)
				return
			}
			require.NotNil(t, info, "the detail a caller acts on is missing")
			require.True(t, proto.Equal(tc.want, info), "got %v", info)
		})
	}
}

func TestErrors_DeferIsErrDefer(t *testing.T) {
	require.ErrorIs(t, deferTo("s4", "a:1", "s4 acts"), errDefer)
	require.True(t, isRejected(&epochMismatchError{err: &structs.RejectedError{Reason: "x"}}))
}

func TestErrors_RefuseWhenRemoved_CarriesServer(t *testing.T) {
	s := &Server{config: &config.ServerConfig{NodeID: "s1"}, grpcAddr: "10.0.0.1:7400", removed: "this server was removed from the cluster"}
	called := false
	handler := func(context.Context, any) (any, error) { called = true; return nil, nil }
	_, err := s.refuseWhenRemoved(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: pb.Operator_GetStatus_FullMethodName}, handler)
	require.False(t, called)
	require.Equal(t, codes.Unavailable, status.Code(err))
	info := rpcerr.Info(err)
	require.NotNil(t, info, "clients move on to other servers on this detail")
	require.Equal(t, pb.ErrorReason_ERROR_REASON_SERVER_REMOVED, info.GetReason())
	require.Equal(t, "s1", info.GetServerId())
	require.Equal(t, "10.0.0.1:7400", info.GetAddress())

	_, err = s.refuseWhenRemoved(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: pb.Peer_NodeInfo_FullMethodName}, handler)
	require.NoError(t, err)
	require.True(t, called, "NodeInfo still says why")
}
