package rpcerr

import (
	"errors"
	"fmt"
	"testing"

	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestRPCErr_Info(t *testing.T) {
	info := &pb.ErrorInfo{Reason: pb.ErrorReason_ERROR_REASON_DEFER_TO_SERVER, ServerId: "s2", Address: "10.0.0.2:7400"}
	typed := New(codes.FailedPrecondition, "server s2 acts", info)
	cases := []struct {
		name string
		err  error
		want *pb.ErrorInfo
	}{
		{"typed", typed, info},
		{"wrapped", fmt.Errorf("recover quorum: %w", typed), info},
		{"status without detail", status.Error(codes.FailedPrecondition, "server s2 acts"), nil},
		{"plain error", errors.New("server s2 acts"), nil},
		{"nil", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Info(tc.err)
			if tc.want == nil {
				require.Nil(t, got)
				require.Equal(t, pb.ErrorReason_ERROR_REASON_UNSPECIFIED, Reason(tc.err))
				require.False(t, Is(tc.err, pb.ErrorReason_ERROR_REASON_DEFER_TO_SERVER))
				return
			}
			require.True(t, proto.Equal(tc.want, got), "got %v", got)
			require.True(t, Is(tc.err, pb.ErrorReason_ERROR_REASON_DEFER_TO_SERVER))
			require.False(t, Is(tc.err, pb.ErrorReason_ERROR_REASON_NO_LEADER))
		})
	}
	require.Equal(t, codes.FailedPrecondition, status.Code(typed))
	require.Equal(t, "server s2 acts", status.Convert(typed).Message(), "the message is kept for display")
	require.False(t, Is(typed, pb.ErrorReason_ERROR_REASON_UNSPECIFIED), "the zero reason matches nothing")
}
