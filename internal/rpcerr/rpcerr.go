// Package rpcerr attaches and reads the ErrorInfo detail of gRPC status
// errors: what a caller acts on (no leader, a removed server, the server
// to defer to, an epoch refusal) travels as typed fields, never as text
// read back out of a message.
package rpcerr

import (
	"errors"

	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// New returns a status error with code and msg that carries info.
func New(code codes.Code, msg string, info *pb.ErrorInfo) error {
	st, err := status.New(code, msg).WithDetails(info)
	if err != nil {
		// Only a detail that cannot be marshalled fails, and ErrorInfo
		// always can; the plain status still says what happened.
		return status.Error(code, msg)
	}
	return st.Err()
}

// Info returns the ErrorInfo detail of err, or nil when it has none. err
// may wrap the status error.
func Info(err error) *pb.ErrorInfo {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return nil
	}
	for _, d := range se.GRPCStatus().Details() {
		if info, ok := d.(*pb.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// Reason returns the reason of err's ErrorInfo, or
// ERROR_REASON_UNSPECIFIED when it has none.
func Reason(err error) pb.ErrorReason {
	return Info(err).GetReason()
}

// Is reports whether err carries an ErrorInfo with reason.
func Is(err error, reason pb.ErrorReason) bool {
	return reason != pb.ErrorReason_ERROR_REASON_UNSPECIFIED && Reason(err) == reason
}
