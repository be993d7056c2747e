package controlplane

import (
	"context"
	"errors"
	"fmt"

	"github.com/drplane/drplane/internal/structs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// errNoLeader means no leader could be reached within the hold time.
	errNoLeader = errors.New("no leader")
	// errInvalidArgument wraps a malformed request.
	errInvalidArgument = errors.New("invalid request")
	// errNotFound wraps a request for something that does not exist.
	errNotFound = errors.New("not found")
	// errPermissionDenied wraps a caller whose certificate role may not
	// make the request.
	errPermissionDenied = errors.New("permission denied")
	// errFailedPrecondition wraps a request the cluster's situation does
	// not allow now.
	errFailedPrecondition = errors.New("cannot recover")
)

// toStatus turns an error from the server's internals into the gRPC status
// a client can act on. Errors that already are statuses pass through.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var rejected *structs.RejectedError
	switch {
	case errors.As(err, &rejected):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, errFailedPrecondition), errors.Is(err, errDefer):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, errInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, errNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, errPermissionDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case isRetryableRaftError(err):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// refusal is a request refused by a safety check outside the FSM; it
// reaches the client as FailedPrecondition, like a rejected compare-and-set.
func refusal(format string, args ...any) error {
	return &structs.RejectedError{Reason: fmt.Sprintf(format, args...)}
}

func isRejected(err error) bool {
	var rejected *structs.RejectedError
	return errors.As(err, &rejected)
}
