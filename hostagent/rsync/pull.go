package rsync

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// pullFlags are the options of every pull, before -e and the paths:
//
//	-a                archive: recurse, keep symlinks as symlinks,
//	                  permissions, times, owner, group, devices and
//	                  special files
//	--delay-updates   write changed files into .~tmp~ directories and
//	                  rename them all into place at the end, so that an
//	                  interrupted pull leaves the previous tree (and
//	                  .~tmp~ leftovers the next pull reuses), not a mix
//	--numeric-ids     keep owners as uid/gid numbers: the two sites'
//	                  user databases may differ
//	--stats --no-h    the counters of Result, without digit grouping
//	--info=progress2  whole-transfer progress for PullOptions.Progress
//
// With PullOptions.Delete, --delete-delay is added: local files gone on
// the peer are found during the transfer and removed after it, together
// with the renames of --delay-updates. Hard links, ACLs and xattrs are not
// kept. Of these only -a's letters and --numeric-ids reach the serving
// side; allowlist.go accepts exactly those, so a change here must be
// matched there.
var pullFlags = []string{"-a", "--delay-updates", "--numeric-ids", "--stats", "--no-h", "--info=progress2"}

// remoteHost is the host of the "host:path" source. rsync needs one to
// start its remote shell; RunTunnel ignores it and dials Tunnel.PeerAddr.
const remoteHost = "peer"

// exitVanished is rsync's exit code when source files vanished during the
// transfer, which is expected of a live directory and not an error here.
const exitVanished = 24

// PullOptions describe one pull of a directory from a peer agent.
type PullOptions struct {
	// RsyncBin is the local rsync; "rsync", looked up in PATH, when empty.
	RsyncBin string
	// Self is the drplane binary, which rsync runs as its remote shell
	// (see RemoteShell).
	Self string
	// Tunnel says which peer, sync block and certificate to use.
	Tunnel TunnelOptions
	// RemotePath is the absolute path of a directory on the peer: one of
	// the sync block's declared paths or inside one. Its contents are
	// pulled.
	RemotePath string
	// LocalPath is the absolute path of the directory to pull into. It is
	// created if missing.
	LocalPath string
	// Delete removes local files the peer does not have, making LocalPath
	// a mirror. The zero value keeps them; the agent always sets it.
	Delete bool
	// Progress receives progress lines while rsync runs, from another
	// goroutine but never concurrently; nil discards them.
	Progress func(format string, args ...any)
}

// Result is what rsync's --stats reported for one pull.
type Result struct {
	// Files counts every entry of the peer's tree: files, directories,
	// symlinks and the rest.
	Files int64
	// TransferredFiles counts the regular files created or updated.
	TransferredFiles int64
	// DeletedFiles counts the local entries removed (Delete only).
	DeletedFiles int64
	// Bytes is the total size of the peer's files.
	Bytes int64
	// TransferredBytes is the total size of the files transferred.
	TransferredBytes int64
	// ReceivedBytes is what came through the tunnel, after rsync's delta
	// encoding.
	ReceivedBytes int64
	// Duration is how long rsync ran.
	Duration time.Duration
}

// Pull mirrors RemotePath on the peer agent into LocalPath by running the
// local rsync with pullFlags and RemoteShell as its remote shell. It
// blocks until rsync exits; ctx ending kills rsync and the tunnel. An
// rsync failure is returned as ErrRsyncFailed with the exit code and the
// tail of rsync's stderr.
func Pull(ctx context.Context, opts PullOptions) (Result, error) {
	if err := opts.validate(); err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(opts.LocalPath, 0o700); err != nil {
		return Result{}, fmt.Errorf("create %s: %w", opts.LocalPath, err)
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	progress("pulling %s of sync %s from %s into %s", opts.RemotePath, opts.Tunnel.SyncName, opts.Tunnel.PeerAddr, opts.LocalPath)
	res, err := runPull(ctx, opts, progress)
	if err != nil {
		return res, err
	}
	progress("pulled %d of %d files (%d of %d bytes, %d received), deleted %d, in %s",
		res.TransferredFiles, res.Files, res.TransferredBytes, res.Bytes, res.ReceivedBytes, res.DeletedFiles,
		res.Duration.Round(time.Millisecond))
	return res, nil
}

// validate checks the options and fills in defaults.
func (o *PullOptions) validate() error {
	if o.RsyncBin == "" {
		o.RsyncBin = "rsync"
	}
	switch {
	case o.Self == "":
		return fmt.Errorf("pull options: missing the drplane binary (Self)")
	case !filepath.IsAbs(o.RemotePath):
		return fmt.Errorf("pull options: remote path %q is not absolute", o.RemotePath)
	case !filepath.IsAbs(o.LocalPath):
		return fmt.Errorf("pull options: local path %q is not absolute", o.LocalPath)
	}
	return o.Tunnel.validate()
}

// runPull runs rsync and reads its output into a Result.
func runPull(ctx context.Context, opts PullOptions, progress func(string, ...any)) (Result, error) {
	cmd := pullCommand(ctx, opts)
	stdout := newStdoutParser(progress, progressInterval, time.Now)
	stderr := tailLines{max: stderrTailLines}
	outW, errW := newLineWriter(stdout.line), newLineWriter(stderr.add)
	cmd.Stdout, cmd.Stderr = outW, errW
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	outW.Flush()
	errW.Flush()
	if err := checkExit(ctx, err, &stderr, progress); err != nil {
		return Result{Duration: elapsed}, err
	}
	res, err := parseStats(stdout.tail.lines)
	res.Duration = elapsed
	return res, err
}

// pullCommand builds the rsync command of a pull.
func pullCommand(ctx context.Context, opts PullOptions) *exec.Cmd {
	args := slices.Clone(pullFlags)
	if opts.Delete {
		args = append(args, "--delete-delay")
	}
	args = append(args, "-e", RemoteShell(opts.Self, opts.Tunnel),
		remoteHost+":"+dirArg(opts.RemotePath), dirArg(opts.LocalPath))
	cmd := exec.CommandContext(ctx, opts.RsyncBin, args...)
	cmd.Env = rsyncEnv()
	// rsync runs the tunnel as its child. In a process group of their own
	// both are killed when ctx ends, so no tunnel outlives its pull.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	return cmd
}

// dirArg is p as rsync's "contents of directory p" argument.
func dirArg(p string) string {
	p = filepath.Clean(p)
	if p == "/" {
		return p
	}
	return p + "/"
}

// checkExit turns rsync's exit into the error Pull returns, if any.
func checkExit(ctx context.Context, runErr error, stderr *tailLines, progress func(string, ...any)) error {
	if ctx.Err() != nil {
		return fmt.Errorf("rsync interrupted: %w", ctx.Err())
	}
	code, ok := exitCode(runErr)
	switch {
	case !ok:
		return fmt.Errorf("run rsync: %w", runErr)
	case code == exitVanished:
		progress("some files vanished on the peer during the pull: %s", stderr)
		return nil
	case code != 0:
		return fmt.Errorf("%w with exit code %d: %s", ErrRsyncFailed, code, stderr)
	}
	return nil
}
