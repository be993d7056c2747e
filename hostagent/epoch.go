package hostagent

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/drplane/drplane/internal/fsutil"
)

// ErrStaleEpoch is returned for an instruction carrying an epoch older than
// the highest one this agent has seen.
var ErrStaleEpoch = errors.New("stale epoch")

// StaleEpochError is an instruction refused because it carries epoch Got,
// older than Seen, the highest this agent has seen (invariant 2). It
// reaches the leader with both epochs as fields.
type StaleEpochError struct {
	Got, Seen uint64
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("%v: instruction carries epoch %d, but this agent has seen epoch %d", ErrStaleEpoch, e.Got, e.Seen)
}

// Unwrap makes errors.Is(err, ErrStaleEpoch) hold.
func (e *StaleEpochError) Unwrap() error { return ErrStaleEpoch }

// epochStore keeps the highest epoch the agent has seen, fsynced in its
// data dir before any instruction carrying it is acted on (invariant 2).
type epochStore struct {
	path string
	w    *dataDirWriter

	mu    sync.Mutex
	epoch uint64
}

type epochFile struct {
	Epoch uint64 `json:"epoch"`
}

// openEpochStore reads dir/epoch, starting from 0 when it does not exist.
func openEpochStore(dir string, w *dataDirWriter) (*epochStore, error) {
	s := &epochStore{path: filepath.Join(dir, "epoch"), w: w}
	var f epochFile
	if _, err := fsutil.ReadJSON(s.path, &f); err != nil {
		return nil, fmt.Errorf("epoch file: %w", err)
	}
	s.epoch = f.Epoch
	return s, nil
}

// current returns the highest epoch seen.
func (s *epochStore) current() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// observe accepts an instruction's epoch: a lower one is refused, a higher
// one is made durable before observe returns.
func (s *epochStore) observe(epoch uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch < s.epoch {
		return &StaleEpochError{Got: epoch, Seen: s.epoch}
	}
	if epoch == s.epoch {
		return nil
	}
	if err := s.w.writeJSON(s.path, epochFile{Epoch: epoch}); err != nil {
		return fmt.Errorf("persist epoch %d: %w", epoch, err)
	}
	s.epoch = epoch
	return nil
}

// writeFileSync writes v as JSON to path atomically and durably.
func writeFileSync(path string, v any) error { return fsutil.WriteJSONDurable(path, v) }
