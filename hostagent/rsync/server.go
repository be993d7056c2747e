package rsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/drplane/drplane/internal/tlsutil"
	drplanev1 "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// chunkSize is the most rsync output sent in one SyncTunnel message,
	// and the size of the reads that fill it, in both directions. Big
	// messages keep gRPC's cost per message (a goroutine hand-off and a
	// wake-up on each side, an encode and a decode) small next to the cost
	// per byte; just under 1 MiB, a message with its protobuf framing
	// still fits the largest tier of gRPC's buffer pool rather than being
	// allocated afresh (TestChunkFitsBufferPool).
	chunkSize = 1<<20 - 16
	// pipeSize is the buffer asked for the pipes that carry rsync's bulk
	// data, the serving rsync's stdout and the pulling rsync's input (see
	// growPipe), so that a read can fill a whole chunk and rsync keeps
	// working while the tunnel sends.
	pipeSize = 1 << 20
	// waitDelay bounds how long Wait waits for rsync's output pipes after
	// rsync exited or was killed, should a child of it keep them open.
	waitDelay = 5 * time.Second
)

// Server serves peer agents' pulls of this agent's sync blocks over
// HostAgent.SyncTunnel. It is safe for concurrent use: every Serve call
// runs its own rsync.
type Server struct {
	syncs    map[string][]string
	rsyncBin string
	logger   hclog.Logger
}

// NewServer returns a Server for syncs, which maps each declared sync block
// name to its declared absolute paths; those paths and what lies below
// them are all a peer can ever pull. rsyncBin is the rsync to run ("rsync"
// when empty, looked up in PATH). A nil logger discards.
func NewServer(syncs map[string][]string, rsyncBin string, logger hclog.Logger) *Server {
	if rsyncBin == "" {
		rsyncBin = "rsync"
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{syncs: make(map[string][]string, len(syncs)), rsyncBin: rsyncBin, logger: logger}
	for name, paths := range syncs {
		s.syncs[name] = []string{} // declared, even with no usable path
		for _, p := range paths {
			if !filepath.IsAbs(p) {
				// A request must name an absolute path, so a relative
				// root could never match: say so rather than ignore it.
				logger.Warn("ignoring relative sync path", "sync", name, "path", p)
				continue
			}
			s.syncs[name] = append(s.syncs[name], filepath.Clean(p))
		}
	}
	return s
}

// Serve serves one SyncTunnel stream; the agent's HostAgent.SyncTunnel
// handler calls it and returns its error. The caller must hold an agent
// certificate, and the first message must name a declared sync block and
// carry the remote command checked by checkArgs. Serve then runs rsync
// --server --sender, copying the stream to its stdin and its stdout to the
// stream, and ends with its exit code. When the stream's context ends,
// rsync is killed.
func (s *Server) Serve(stream drplanev1.HostAgent_SyncTunnelServer) error {
	ctx := stream.Context()
	caller, err := authorize(ctx)
	if err != nil {
		s.logger.Warn("refused sync request", "caller", caller.Name, "reason", err)
		return status.Error(codes.PermissionDenied, err.Error())
	}
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return status.Error(codes.InvalidArgument, "sync tunnel closed before its first message")
	}
	if err != nil {
		return err
	}
	args, err := s.checkArgs(first.GetSync(), first.GetArgs())
	if err != nil {
		s.logger.Warn("refused sync request", "sync", first.GetSync(), "caller", caller.Name, "reason", err)
		return refusalStatus(err)
	}
	logger := s.logger.With("sync", first.GetSync(), "caller", caller.Name, "path", args[len(args)-1])
	return s.run(ctx, stream, first, args, logger)
}

// authorize returns the caller's identity, which must be an agent's.
func authorize(ctx context.Context) (tlsutil.Identity, error) {
	id, err := tlsutil.IdentityFromContext(ctx)
	if err != nil {
		return id, fmt.Errorf("identify caller: %w", err)
	}
	if id.Role != tlsutil.RoleAgent {
		return id, fmt.Errorf("%w: %s certificate %q", ErrNotAgent, id.Role, id.Name)
	}
	return id, nil
}

// checkArgs checks the first message against the allow-list and returns
// the arguments to run rsync with, rebuilt from the checked pieces.
func (s *Server) checkArgs(sync string, words []string) ([]string, error) {
	roots, ok := s.syncs[sync]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSync, sync)
	}
	flags, raw, err := parseServerArgs(words)
	if err != nil {
		return nil, err
	}
	path, err := checkPath(raw, roots)
	if err != nil {
		return nil, err
	}
	args := append([]string{"--server", "--sender"}, flags...)
	return append(args, ".", path), nil
}

// refusalStatus is the gRPC status for a refused first message: asking for
// what is not declared is PermissionDenied, a malformed or disallowed
// command InvalidArgument.
func refusalStatus(err error) error {
	code := codes.InvalidArgument
	if errors.Is(err, ErrUnknownSync) || errors.Is(err, ErrPathNotDeclared) {
		code = codes.PermissionDenied
	}
	return status.Error(code, err.Error())
}

// run runs the checked rsync and pumps the stream through it until it
// exits, then sends its exit code.
func (s *Server) run(ctx context.Context, stream drplanev1.HostAgent_SyncTunnelServer,
	first *drplanev1.SyncTunnelRequest, args []string, logger hclog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stderr := newLineWriter(func(line string) { logger.Warn("rsync stderr", "line", line) })
	cmd, stdin, stdout, err := s.start(ctx, args, stderr)
	if err != nil {
		logger.Error("failed to start rsync", "error", err)
		return status.Error(codes.Internal, err.Error())
	}
	growPipe(stdout)
	logger.Info("serving sync")
	start := time.Now()
	// Only this goroutine sends and only receiveInput receives, as gRPC
	// requires. receiveInput ends with the stream, once Serve returned.
	go receiveInput(stream, first, stdin, cancel)
	sendErr := sendOutput(stream, stdout)
	if sendErr != nil {
		cancel() // the peer is gone: stop rsync rather than let it block
	}
	waitErr := cmd.Wait()
	stderr.Flush()
	code, err := outcome(ctx, sendErr, waitErr, logger)
	if err != nil {
		return err
	}
	logger.Info("served sync", "exit_code", code, "duration", time.Since(start))
	return stream.Send(&drplanev1.SyncTunnelResponse{Exited: true, ExitCode: int32(code)})
}

// outcome is rsync's exit code to report, or the error to end the stream
// with when the session broke before rsync exited by itself.
func outcome(ctx context.Context, sendErr, waitErr error, logger hclog.Logger) (int, error) {
	if sendErr != nil {
		logger.Warn("sync tunnel broke before rsync exited", "error", sendErr)
		return 0, sendErr
	}
	if err := ctx.Err(); err != nil {
		logger.Warn("sync tunnel ended before rsync exited", "error", err)
		return 0, status.FromContextError(err).Err()
	}
	code, ok := exitCode(waitErr)
	if !ok {
		logger.Error("failed to wait for rsync", "error", waitErr)
		return 0, status.Errorf(codes.Internal, "wait for rsync: %v", waitErr)
	}
	return code, nil
}

// start starts rsync with args, directly and never through a shell, with
// its stderr going to stderr. ctx ending kills it.
func (s *Server) start(ctx context.Context, args []string, stderr io.Writer) (*exec.Cmd, io.WriteCloser, io.Reader, error) {
	cmd := exec.CommandContext(ctx, s.rsyncBin, args...)
	cmd.Env = rsyncEnv()
	cmd.WaitDelay = waitDelay
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("rsync stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("rsync stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, fmt.Errorf("start %s: %w", s.rsyncBin, err)
	}
	return cmd, stdin, stdout, nil
}

// receiveInput copies the data of first and of every later message to
// rsync's stdin, closing it on close_write or when the peer closes its
// side. Once rsync stops reading, further data is dropped. A broken
// stream cancels the session, which kills rsync.
func receiveInput(stream drplanev1.HostAgent_SyncTunnelServer, first *drplanev1.SyncTunnelRequest,
	stdin io.WriteCloser, cancel context.CancelFunc) {
	defer stdin.Close()
	open := true
	for req := first; ; {
		if data := req.GetData(); open && len(data) > 0 {
			if _, err := stdin.Write(data); err != nil {
				open = false
			}
		}
		if req.GetCloseWrite() && open {
			open = false
			_ = stdin.Close()
		}
		var err error
		if req, err = stream.Recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				cancel()
			}
			return
		}
	}
}

// sendOutput sends rsync's stdout to the stream in chunks of at most
// chunkSize until rsync closes it. gRPC serialises a message before Send
// returns, so the buffer is reused.
func sendOutput(stream drplanev1.HostAgent_SyncTunnelServer, stdout io.Reader) error {
	buf := make([]byte, chunkSize)
	for {
		n, err := stdout.Read(buf)
		if n > 0 {
			if serr := stream.Send(&drplanev1.SyncTunnelResponse{Data: buf[:n]}); serr != nil {
				return fmt.Errorf("send rsync output: %w", serr)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read rsync output: %w", err)
		}
	}
}
