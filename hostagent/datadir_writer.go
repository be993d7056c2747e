package hostagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/drplane/drplane/internal/fsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// WriteFileFunc writes data to path atomically (a temporary file and a
// rename, the temporary removed on failure); durable also syncs the file
// and its directory. fsutil.WriteFile is the real one; tests inject a
// full disk through Deps.WriteFile.
type WriteFileFunc func(path string, data []byte, durable bool) error

// dataDirWriter writes the agent's own files in data_dir: the epoch
// (invariant 2), the step journal (invariant 3), the lease record
// (invariant 4) and the synchronous standbys' leader terms (invariant 8).
// Every such write goes through it, so that a failure (a
// full disk, a read-only mount) is seen in one place: probes report the
// data_dir unwritable from the first failed write until a write succeeds
// again, where it used to show only as a warning in the agent's log.
type dataDirWriter struct {
	dir   string
	write WriteFileFunc

	mu    sync.Mutex
	err   error     // the last write's error; nil after a success
	since time.Time // when the current run of failures began
}

func newDataDirWriter(dir string, write WriteFileFunc) *dataDirWriter {
	if write == nil {
		write = fsutil.WriteFile
	}
	return &dataDirWriter{dir: dir, write: write}
}

// writeFile writes one file of data_dir and records the outcome.
func (w *dataDirWriter) writeFile(path string, data []byte, durable bool) error {
	err := w.write(path, data, durable)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.err, w.since = nil, time.Time{}
	case w.err == nil:
		w.err, w.since = err, time.Now()
	default:
		w.err = err
	}
	return err
}

// writeJSON writes v as JSON to path, durably.
func (w *dataDirWriter) writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return w.writeFile(path, data, true)
}

// problems are the host problems to report in a probe: data_dir not
// writable while the last write failed.
func (w *dataDirWriter) problems() []*pb.HostProblem {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		return nil
	}
	return []*pb.HostProblem{{
		Kind:    pb.HostProblemKind_HOST_PROBLEM_KIND_DATA_DIR_UNWRITABLE,
		Message: fmt.Sprintf("data_dir %s not writable: %s", w.dir, rootCause(w.err)),
		Since:   timestamppb.New(w.since),
	}}
}

// rootCause is the system's own words for err ("no space left on
// device"), or err itself when it carries no errno.
func rootCause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}
