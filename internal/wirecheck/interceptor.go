package wirecheck

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// UnaryServerInterceptor refuses a request that Request rejects as
// InvalidArgument, before the handler runs.
func UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := checkMessage(req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor checks every message the client sends on a
// stream as UnaryServerInterceptor checks a request: the first one too
// long ends the stream with InvalidArgument.
func StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &checkedStream{ServerStream: ss})
	}
}

// checkedStream checks each message it receives.
type checkedStream struct {
	grpc.ServerStream
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkMessage(m)
}

func checkMessage(m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	if err := Request(pm); err != nil {
		return status.Error(codes.InvalidArgument, "invalid request: "+err.Error())
	}
	return nil
}
