package snapshot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/tail"
	"github.com/hashicorp/go-hclog"
)

// ResticConfig configures the restic engine.
type ResticConfig struct {
	// Repository is restic's repository location. It is passed to restic
	// in the environment, not as an argument, since a URL may carry
	// credentials and arguments are visible to every user of the host.
	Repository string
	// PasswordFile holds the repository password; restic reads it itself,
	// so the password is never in an argument, the environment or a log.
	PasswordFile string
	// Binary is the restic executable; "restic" (found on PATH) if empty.
	Binary string
	// CacheDir is restic's cache directory; restic's default if empty.
	CacheDir string
}

// Restic is the engine backed by a restic repository. Snapshots carry the
// tags "drplane", "name=<name>" and "reason=<reason>", and List shows only
// this host's. Its ids are restic's snapshot ids.
type Restic struct {
	cfg      ResticConfig
	logger   hclog.Logger
	hostname string
}

var _ Engine = (*Restic)(nil)

// resticTag marks the snapshots this engine manages.
const resticTag = "drplane"

// NewRestic returns a restic engine. It does not run restic; Available
// tells whether the binary can be found.
func NewRestic(cfg ResticConfig, logger hclog.Logger) (*Restic, error) {
	if cfg.Binary == "" {
		cfg.Binary = "restic"
	}
	if cfg.Repository == "" || cfg.PasswordFile == "" {
		return nil, fmt.Errorf("%w: restic engine needs a repository and a password file", ErrInvalid)
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("restic engine: get hostname: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Restic{cfg: cfg, logger: logger.Named("restic"), hostname: host}, nil
}

// Available reports whether the restic binary exists.
func (r *Restic) Available() bool {
	_, err := exec.LookPath(r.cfg.Binary)
	return err == nil
}

// resticSnapshot is one element of `restic snapshots --json`.
type resticSnapshot struct {
	ID    string    `json:"id"`
	Time  time.Time `json:"time"`
	Paths []string  `json:"paths"`
	Tags  []string  `json:"tags"`
	// Summary is only reported by restic 0.17 and later.
	Summary *struct {
		TotalFilesProcessed int64 `json:"total_files_processed"`
		TotalBytesProcessed int64 `json:"total_bytes_processed"`
	} `json:"summary"`
}

// resticMessage is one line of `restic backup --json`.
type resticMessage struct {
	MessageType string `json:"message_type"`
	// status
	FilesDone int64 `json:"files_done"`
	BytesDone int64 `json:"bytes_done"`
	// summary
	TotalFilesProcessed int64  `json:"total_files_processed"`
	TotalBytesProcessed int64  `json:"total_bytes_processed"`
	SnapshotID          string `json:"snapshot_id"`
}

// Create runs restic backup on paths.
func (r *Restic) Create(ctx context.Context, name string, paths []string, reason string) (Meta, error) {
	meta, err := r.create(ctx, name, paths, reason)
	if err != nil {
		return Meta{}, fmt.Errorf("create restic snapshot %s: %w", name, err)
	}
	r.logger.Info("snapshot created", "id", meta.ID, "files", meta.Files, "bytes", meta.Bytes)
	return meta, nil
}

func (r *Restic) create(ctx context.Context, name string, paths []string, reason string) (Meta, error) {
	if err := checkName(name); err != nil {
		return Meta{}, err
	}
	// A comma would split the tag in two.
	if strings.Contains(reason, ",") {
		return Meta{}, fmt.Errorf("%w: reason %q contains a comma", ErrInvalid, reason)
	}
	clean, err := cleanPaths(paths)
	if err != nil {
		return Meta{}, err
	}
	args := append([]string{"backup", "--json", "--tag", resticTag, "--tag", "name=" + name, "--tag", "reason=" + reason, "--"}, clean...)
	summary, err := r.backup(ctx, name, args)
	if err != nil {
		return Meta{}, err
	}
	meta, err := r.snapshot(ctx, summary.SnapshotID)
	if err != nil {
		return Meta{}, err
	}
	meta.Files, meta.Bytes = summary.TotalFilesProcessed, summary.TotalBytesProcessed
	return meta, nil
}

// backup runs restic backup, turning its status lines into progress, and
// returns its summary.
func (r *Restic) backup(ctx context.Context, name string, args []string) (resticMessage, error) {
	meter := newProgressMeter(ctx, "snapshot "+name)
	var summary resticMessage
	err := r.stream(ctx, args, func(line []byte) {
		var msg resticMessage
		if json.Unmarshal(line, &msg) != nil {
			return
		}
		switch msg.MessageType {
		case "status":
			meter.add(msg.FilesDone-meter.files, msg.BytesDone-meter.bytes)
		case "summary":
			summary = msg
		}
	})
	if err != nil {
		return resticMessage{}, err
	}
	if summary.SnapshotID == "" {
		return resticMessage{}, errors.New("restic backup reported no snapshot id")
	}
	meter.files, meter.bytes = summary.TotalFilesProcessed, summary.TotalBytesProcessed
	meter.done()
	return summary, nil
}

// List returns this host's drplane snapshots of name (all when empty),
// newest first.
func (r *Restic) List(ctx context.Context, name string) ([]Meta, error) {
	tags := resticTag
	if name != "" {
		tags += ",name=" + name
	}
	snaps, err := r.snapshots(ctx, "--host", r.hostname, "--tag", tags)
	if err != nil {
		return nil, fmt.Errorf("list restic snapshots: %w", err)
	}
	out := make([]Meta, 0, len(snaps))
	for _, s := range snaps {
		out = append(out, s.meta())
	}
	sortNewestFirst(out)
	return out, nil
}

// Verify checks that the snapshot exists, then runs restic check
// --read-data, which reads and authenticates every pack in the repository:
// restic cannot check one snapshot's data alone. Any failure of the check
// wraps ErrCorrupt.
func (r *Restic) Verify(ctx context.Context, id string) error {
	if _, err := r.snapshot(ctx, id); err != nil {
		return fmt.Errorf("verify restic snapshot %s: %w", id, err)
	}
	if _, err := r.run(ctx, "check", "--read-data"); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("verify restic snapshot %s: %w: %w", id, ErrCorrupt, err)
	}
	return nil
}

// Restore restores each captured path into a staging directory beside it
// with restic restore --verify (restic authenticates every blob it reads,
// and --verify re-reads what it wrote), then swaps the staged trees in as
// the builtin engine does, so the restore is exact and a failure changes
// nothing. Restoring to --target / instead would leave files created since
// the snapshot in place.
func (r *Restic) Restore(ctx context.Context, id string) error {
	if err := r.restore(ctx, id); err != nil {
		return fmt.Errorf("restore restic snapshot %s: %w", id, err)
	}
	r.logger.Info("snapshot restored", "id", id)
	return nil
}

func (r *Restic) restore(ctx context.Context, id string) error {
	meta, err := r.snapshot(ctx, id)
	if err != nil {
		return err
	}
	// restic restores absolute paths below the target directory.
	st, err := newStaging(meta.Paths, func(target, tmp string) string { return filepath.Join(tmp, target) }, r.logger)
	if err != nil {
		return err
	}
	defer st.cleanup()
	progress := progressFrom(ctx)
	for _, p := range st.paths {
		args := []string{"restore", meta.ID, "--target", p.tmp, "--verify"}
		if len(st.paths) > 1 {
			args = append(args, "--include", escapeGlob(p.target))
		}
		if _, err := r.run(ctx, args...); err != nil {
			return err
		}
		progress("restore %s: staged %s", id, p.target)
	}
	return st.swap()
}

// Delete runs restic forget on the snapshot. The repository's space is
// freed by the next `restic prune`, which drplane leaves to the operator.
func (r *Restic) Delete(ctx context.Context, id string) error {
	meta, err := r.snapshot(ctx, id)
	if err == nil {
		_, err = r.run(ctx, "forget", meta.ID)
	}
	if err != nil {
		return fmt.Errorf("delete restic snapshot %s: %w", id, err)
	}
	r.logger.Info("snapshot deleted", "id", id)
	return nil
}

// snapshot returns the Meta of one drplane snapshot.
func (r *Restic) snapshot(ctx context.Context, id string) (Meta, error) {
	if !validName.MatchString(id) {
		return Meta{}, fmt.Errorf("%w: id %q", ErrNotFound, id)
	}
	snaps, err := r.snapshots(ctx, id)
	if err != nil {
		return Meta{}, err
	}
	// restic ignores --tag when given ids, so the tag is checked here: a
	// snapshot drplane did not take is not one it restores or deletes.
	if len(snaps) != 1 || !slices.Contains(snaps[0].Tags, resticTag) {
		return Meta{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return snaps[0].meta(), nil
}

// snapshots runs restic snapshots --json. It takes no lock: it only reads,
// and restic's lock costs a fixed wait.
func (r *Restic) snapshots(ctx context.Context, args ...string) ([]resticSnapshot, error) {
	out, err := r.run(ctx, append([]string{"snapshots", "--json", "--no-lock"}, args...)...)
	if err != nil {
		return nil, err
	}
	var snaps []resticSnapshot
	if err := json.Unmarshal(out, &snaps); err != nil {
		return nil, fmt.Errorf("decode restic snapshots: %w", err)
	}
	return snaps, nil
}

// meta converts a restic snapshot, reading name and reason from its tags.
func (s resticSnapshot) meta() Meta {
	m := Meta{ID: s.ID, Engine: EngineRestic, CreatedAt: s.Time.UTC(), Paths: s.Paths}
	for _, tag := range s.Tags {
		if v, ok := strings.CutPrefix(tag, "name="); ok {
			m.Name = v
		} else if v, ok := strings.CutPrefix(tag, "reason="); ok {
			m.Reason = v
		}
	}
	if s.Summary != nil {
		m.Files, m.Bytes = s.Summary.TotalFilesProcessed, s.Summary.TotalBytesProcessed
	}
	return m
}

// run runs restic and returns its standard output.
func (r *Restic) run(ctx context.Context, args ...string) ([]byte, error) {
	var out bytes.Buffer
	err := r.stream(ctx, args, func(line []byte) {
		out.Write(line)
		out.WriteByte('\n')
	})
	return out.Bytes(), err
}

// stream runs restic, handing each line of its standard output to line.
// The error carries the tail of restic's standard error.
func (r *Restic) stream(ctx context.Context, args []string, line func([]byte)) error {
	cmd := exec.CommandContext(ctx, r.cfg.Binary, r.globalArgs(args)...)
	cmd.Env = r.env()
	stderr := &tail.Buffer{Max: 4096}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("restic %s: %w", args[0], err)
	}
	r.logger.Debug("running restic", "args", args)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("restic %s: %w", args[0], err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line(sc.Bytes())
	}
	// Drain whatever the scanner refused so restic never blocks on a full
	// pipe.
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("restic %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// globalArgs puts the password file and cache options before args.
func (r *Restic) globalArgs(args []string) []string {
	out := []string{"--password-file", r.cfg.PasswordFile}
	if r.cfg.CacheDir != "" {
		out = append(out, "--cache-dir", r.cfg.CacheDir)
	}
	return append(out, args...)
}

// env is the agent's environment without restic's repository and password
// variables, plus the configured repository, so the password file is the
// only source of the password.
func (r *Restic) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND", "RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "RESTIC_REPOSITORY="+r.cfg.Repository)
}

// escapeGlob quotes the characters restic's --include treats as a pattern.
func escapeGlob(p string) string {
	var b strings.Builder
	for _, c := range p {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
