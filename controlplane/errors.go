package controlplane

import (
	"context"
	"errors"
	"fmt"

	"github.com/drplane/drplane/internal/rpcerr"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
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
	// errDefer means another server of this site acts; see deferError.
	errDefer = errors.New("another server acts")
)

// deferError is a quorum-loss recovery this server leaves to another
// server of its site, serverID at address. It reaches the client (and a
// server forwarding RecoverQuorum) with the server as typed fields.
type deferError struct {
	serverID, address string
	msg               string
}

// deferTo returns a deferError to server id at addr, explained by the
// formatted message.
func deferTo(id, addr, format string, args ...any) error {
	return &deferError{serverID: id, address: addr, msg: fmt.Sprintf(format, args...)}
}

func (e *deferError) Error() string { return errDefer.Error() + ": " + e.msg }

// Unwrap makes errors.Is(err, errDefer) hold.
func (e *deferError) Unwrap() error { return errDefer }

// epochMismatchError is a compare-and-set on the epoch that the state
// refused: the request expected one epoch, the state is at another.
type epochMismatchError struct {
	expected, current uint64
	err               error
}

func (e *epochMismatchError) Error() string { return e.err.Error() }

func (e *epochMismatchError) Unwrap() error { return e.err }

// toStatus turns an error from the server's internals into the gRPC status
// a client can act on. Errors that already are statuses pass through.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if st := typedStatus(err); st != nil {
		return st
	}
	var rejected *structs.RejectedError
	switch {
	case errors.As(err, &rejected):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, errFailedPrecondition):
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

// typedStatus returns the status, with an ErrorInfo detail, of the errors
// a caller must act on, or nil for any other error.
func typedStatus(err error) error {
	var (
		deferred *deferError
		mismatch *epochMismatchError
	)
	switch {
	case errors.As(err, &deferred):
		return rpcerr.New(codes.FailedPrecondition, err.Error(), &pb.ErrorInfo{
			Reason: pb.ErrorReason_ERROR_REASON_DEFER_TO_SERVER, ServerId: deferred.serverID, Address: deferred.address})
	case errors.As(err, &mismatch):
		return rpcerr.New(codes.FailedPrecondition, err.Error(), &pb.ErrorInfo{
			Reason: pb.ErrorReason_ERROR_REASON_EPOCH_MISMATCH, Epoch: mismatch.current, RequestEpoch: mismatch.expected})
	case errors.Is(err, errNoLeader):
		return rpcerr.New(codes.Unavailable, err.Error(), &pb.ErrorInfo{Reason: pb.ErrorReason_ERROR_REASON_NO_LEADER})
	}
	return nil
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
