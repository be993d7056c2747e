package hostagent

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/fsutil"
	"github.com/drplane/drplane/internal/names"
)

// stepResult is the outcome of one step, as journaled and as streamed.
type stepResult struct {
	OK        bool              `json:"ok"`
	Message   string            `json:"message"`
	Outputs   map[string]string `json:"outputs,omitempty"`
	StartedAt time.Time         `json:"started_at"`
	EndedAt   time.Time         `json:"ended_at"`
	// Interrupted is set when the agent stopped while the step ran: its
	// outcome is unknown (see resume.go).
	Interrupted bool `json:"interrupted,omitempty"`
	// Verified is set when a re-sent interrupted step found the step's
	// effect in place on the service, without running it again.
	Verified bool `json:"verified,omitempty"`
}

// interruptedMessage is the outcome of a step the agent stopped during.
const interruptedMessage = "interrupted: the agent stopped while this step ran; its outcome is unknown"

// interruptedResult is the result journaled for a step whose run the
// agent's stop cut short; cause, when set, is what the run returned.
func interruptedResult(startedAt time.Time, cause string) *stepResult {
	msg := interruptedMessage
	if cause != "" {
		msg += " (" + cause + ")"
	}
	return &stepResult{Message: msg, Interrupted: true, StartedAt: startedAt, EndedAt: time.Now().UTC()}
}

// journalRecord is what the journal keeps per (execution id, step id).
type journalRecord struct {
	Action string      `json:"action"`
	Target string      `json:"target"`
	Done   bool        `json:"done"`
	Result *stepResult `json:"result,omitempty"`
}

// validID keeps ids usable as file names and free of path tricks.
var validID = names.ID

// journal makes a step run at most once per (execution id, step id)
// (invariant 3): the intent is written before the step runs and the result
// after, both fsynced. A step re-sent while it runs attaches to the run in
// progress; one re-sent after it ended gets the recorded result. A step
// the agent stopped during has an unknown outcome: a re-sent one is
// claimed again only when its action can find out on the service itself
// (resume.go), and runs again only when its effect is absent and running
// it twice does what running it once does.
type journal struct {
	dir string
	w   *dataDirWriter

	mu      sync.Mutex
	running map[string]*stepRun
}

// stepRun is a step in progress that several streams may follow.
type stepRun struct {
	mu       sync.Mutex
	progress []string
	result   *stepResult
	changed  chan struct{} // closed and replaced on every change
}

func newStepRun() *stepRun { return &stepRun{changed: make(chan struct{})} }

// last returns the newest progress line, or "".
func (r *stepRun) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.progress) == 0 {
		return ""
	}
	return r.progress[len(r.progress)-1]
}

// add appends a progress line and wakes the followers.
func (r *stepRun) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progress = append(r.progress, line)
	close(r.changed)
	r.changed = make(chan struct{})
}

// finish records the result and wakes the followers for the last time.
func (r *stepRun) finish(res *stepResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.result = res
	close(r.changed)
	r.changed = make(chan struct{})
}

// since returns the progress lines from index i, the result if the run
// ended, and a channel closed on the next change.
func (r *stepRun) since(i int) ([]string, *stepResult, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var lines []string
	if i < len(r.progress) {
		lines = append(lines, r.progress[i:]...)
	}
	return lines, r.result, r.changed
}

func openJournal(dir string, w *dataDirWriter) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create journal dir %s: %w", dir, err)
	}
	return &journal{dir: dir, w: w, running: map[string]*stepRun{}}, nil
}

func (j *journal) path(execID, stepID string) string {
	return filepath.Join(j.dir, execID, stepID+".json")
}

// claim is what begin decided for a step.
type claim struct {
	// recorded is the result of a step that ended before: the answer.
	recorded *stepResult
	// run is the run to follow; owned says the caller must execute it
	// and finish it with end.
	run   *stepRun
	owned bool
	// resumed says the owned run is a step the agent stopped during: the
	// caller must find out whether its effect is in place first.
	resumed bool
}

// begin claims (execID, stepID). It returns the recorded result when the
// step ended before, the run to attach to when it is in progress, or a new
// run (owned) that the caller must execute and finish with end. A step
// whose intent was journaled but whose result never was (the agent died
// while it ran) is recorded as interrupted: running it again blindly could
// do twice what must happen once. When resumable, an interrupted step is
// claimed again (resumed): the caller checks its effect on the service.
func (j *journal) begin(execID, stepID, action, target string, resumable bool) (claim, error) {
	if !validID.MatchString(execID) || !validID.MatchString(stepID) {
		return claim{}, fmt.Errorf("execution id %q and step id %q must match %s", execID, stepID, validID)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	key := execID + "/" + stepID
	if run, ok := j.running[key]; ok {
		return claim{run: run}, nil
	}
	prev, err := j.read(execID, stepID)
	if err != nil {
		return claim{}, err
	}
	if prev != nil && !prev.Done {
		prev.Done, prev.Result = true, interruptedResult(time.Time{}, "")
		if err := j.write(execID, stepID, prev); err != nil {
			return claim{}, err
		}
	}
	resumed := prev != nil && prev.Result != nil && prev.Result.Interrupted
	if prev != nil && !(resumed && resumable) {
		return claim{recorded: prev.Result}, nil
	}
	if err := j.write(execID, stepID, &journalRecord{Action: action, Target: target}); err != nil {
		return claim{}, err
	}
	run := newStepRun()
	j.running[key] = run
	return claim{run: run, owned: true, resumed: resumed}, nil
}

// end journals the result of a run begun by this agent and releases it.
// The run leaves the running set before its followers get the result: a
// step re-sent once its first sender has the answer must find the
// journal's record (replayed), not the ended run.
func (j *journal) end(execID, stepID, action, target string, run *stepRun, res *stepResult) error {
	err := j.write(execID, stepID, &journalRecord{Action: action, Target: target, Done: true, Result: res})
	j.mu.Lock()
	delete(j.running, execID+"/"+stepID)
	j.mu.Unlock()
	run.finish(res)
	return err
}

func (j *journal) read(execID, stepID string) (*journalRecord, error) {
	var rec journalRecord
	ok, err := fsutil.ReadJSON(j.path(execID, stepID), &rec)
	if err != nil || !ok {
		return nil, err
	}
	return &rec, nil
}

func (j *journal) write(execID, stepID string, rec *journalRecord) error {
	if err := os.MkdirAll(filepath.Join(j.dir, execID), 0o700); err != nil {
		return fmt.Errorf("create journal dir for %s: %w", execID, err)
	}
	if err := j.w.writeJSON(j.path(execID, stepID), rec); err != nil {
		return fmt.Errorf("journal %s/%s: %w", execID, stepID, err)
	}
	return nil
}
