// Command demo is what `make demo` runs. It starts `drplane dev` (three
// servers for the primary, dr and witness sites; agents for db-1, app-1,
// db-2 and app-2; a PostgreSQL primary streaming to a standby; the sample
// application writing numbered rows) and drives it with the CLI as an
// operator would: status, a drill, a switchover to dr and back, then a
// primary site outage (kill -9 of every process of the site) and the
// automatic failover that follows, measured: RTO and RPO from the control
// plane, and the acknowledged rows the failover lost from the data
// itself. It ends with `drplane report --markdown` and removes
// everything, also when it fails or is interrupted.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drplane/drplane/internal/devenv"
)

const (
	// readyTimeout bounds the start of the deployment.
	readyTimeout = 2 * time.Minute
	// autoStartTimeout is how long the demo waits for the automatic
	// failover to start after the site is killed before it fails over by
	// command; autoRunTimeout how long a started one may take.
	autoStartTimeout = 60 * time.Second
	autoRunTimeout   = 2 * time.Minute
	// stopTimeout bounds drplane dev's cleanup after SIGINT.
	stopTimeout = time.Minute
)

func main() {
	bin := flag.String("bin", "bin/drplane", "path to the drplane binary")
	keep := flag.Bool("keep", false, "keep the deployment's directory (configs, logs, data) after the demo")
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
	if err := run(abs, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}

// demo is one run: the drplane dev process and what the demo measured.
type demo struct {
	bin, parent, dir string
	start            time.Time
	env              []string
	info             devenv.Info

	dev     *exec.Cmd
	devDone chan struct{}
	ready   chan struct{}
	outMu   sync.Mutex // serialises drplane dev's lines with the demo's

	stages []stage
	// What the outage measured, for the summary.
	failoverID, rto, rpo string
	lostRows             int64
	splitBrain           bool
	// htmlReport is where the report stage wrote the HTML report.
	htmlReport string
}

// stage is a timed part of the demo, for the summary.
type stage struct {
	name string
	took time.Duration
}

func run(bin string, keep bool) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	parent, err := os.MkdirTemp("", "drplane-demo-")
	if err != nil {
		return err
	}
	// PostgreSQL runs as its own user and must pass through the parent
	// to reach its data: o+x, as /var/lib is on a packaged install.
	if err := os.Chmod(parent, 0o711); err != nil {
		return err
	}
	d := &demo{bin: bin, parent: parent, dir: filepath.Join(parent, "dev"), start: time.Now(), lostRows: -1}
	// Whatever happens from here on, drplane dev is stopped (it stops
	// every process of the deployment) and the directory removed.
	defer func() {
		if cerr := d.cleanup(keep); err == nil {
			err = cerr
		}
	}()
	if err := d.startDev(ctx); err != nil {
		return err
	}
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"status", d.status},
		{"drill", d.drill},
		{"switchover to dr and back", d.switchovers},
		{"restart in place", d.restart},
		{"database corruption: restore", d.restore},
		{"primary site outage and recovery", d.outage},
		{"report", d.report},
	}
	for _, s := range steps {
		began := time.Now()
		if err := s.f(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted during %s", s.name)
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
		d.stages = append(d.stages, stage{s.name, time.Since(began)})
	}
	return nil
}

// say prints a stage header with the time since the demo started.
func (d *demo) say(format string, args ...any) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	fmt.Printf("\n==> [%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// note prints an indented line of the demo's own.
func (d *demo) note(format string, args ...any) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	fmt.Printf("    "+format+"\n", args...)
}

// startDev starts `drplane dev --dir D --port 0 --replication sync` and
// waits for its ready line, echoing its output.
func (d *demo) startDev(ctx context.Context) error {
	d.say("Starting a local deployment: drplane dev --dir %s --port 0 --replication sync", d.dir)
	d.note("(3 servers: primary, dr, witness; agents db-1, app-1 | db-2, app-2; PostgreSQL primary + standby, which the")
	d.note(" leader keeps synchronous: a commit is acknowledged once dr has it;")
	d.note(" a sample application writing numbered rows; every one its own process; output prefixed with 'dev |')")
	began := time.Now()
	d.dev = exec.Command(d.bin, "dev", "--dir", d.dir, "--port", "0", "--replication", "sync")
	// If the demo dies without cleaning up, drplane dev still does.
	d.dev.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdout, err := d.dev.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := d.dev.StderrPipe()
	if err != nil {
		return err
	}
	if err := d.dev.Start(); err != nil {
		return fmt.Errorf("start drplane dev: %w", err)
	}
	d.devDone, d.ready = make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); d.echo(stdout, true) }()
	go func() { defer wg.Done(); d.echo(stderr, false) }()
	go func() {
		wg.Wait()
		_ = d.dev.Wait()
		close(d.devDone)
	}()
	select {
	case <-d.ready:
	case <-d.devDone:
		return fmt.Errorf("drplane dev exited before it was ready: %v", d.dev.ProcessState)
	case <-time.After(readyTimeout):
		return fmt.Errorf("drplane dev was not ready within %s", readyTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	d.stages = append(d.stages, stage{"drplane dev until ready", time.Since(began)})
	if err := d.loadEnv(); err != nil {
		return err
	}
	d.note("ready after %s; `source %s/env.sh` points the CLI at it, as below", time.Since(began).Round(100*time.Millisecond), d.dir)
	return nil
}

// echo prints drplane dev's lines, prefixed, and closes ready at the
// ready line. The usage text after it is left out: the demo is the usage.
func (d *demo) echo(r io.Reader, isStdout bool) {
	sc := bufio.NewScanner(r)
	quiet := false
	for sc.Scan() {
		line := sc.Text()
		isReady := isStdout && strings.HasPrefix(line, "ready")
		if !quiet || strings.HasPrefix(line, "==>") || !isStdout {
			quiet = false
			d.outMu.Lock()
			fmt.Printf("    dev | %s\n", line)
			d.outMu.Unlock()
		}
		if isReady {
			quiet = true
			close(d.ready)
		}
	}
}

// loadEnv reads D/env.sh (the CLI's environment) and D/dev.json.
func (d *demo) loadEnv() error {
	b, err := os.ReadFile(filepath.Join(d.dir, "env.sh"))
	if err != nil {
		return err
	}
	d.env = os.Environ()
	for _, line := range strings.Split(string(b), "\n") {
		kv, ok := strings.CutPrefix(line, "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		d.env = append(d.env, k+"="+strings.ReplaceAll(strings.Trim(v, "'"), `'\''`, `'`))
	}
	b, err = os.ReadFile(filepath.Join(d.dir, "dev.json"))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, &d.info)
}

// sh runs a drplane command as the operator would type it, printing the
// command and its output as they come.
func (d *demo) sh(ctx context.Context, args ...string) error {
	d.outMu.Lock()
	fmt.Printf("\n$ drplane %s\n", strings.Join(args, " "))
	d.outMu.Unlock()
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = d.env
	out := &lockedWriter{mu: &d.outMu, w: os.Stdout}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("drplane %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// cliJSON runs a drplane command with --json and decodes its output.
func (d *demo) cliJSON(ctx context.Context, v any, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, append(args, "--json")...)
	cmd.Env = d.env
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("drplane %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return err
	}
	return json.Unmarshal(out, v)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// cleanup stops drplane dev with SIGINT, which stops every process of the
// deployment, and removes the directory. A dev that does not stop in
// time is killed, and what it left is reported.
func (d *demo) cleanup(keep bool) error {
	var err error
	if d.dev != nil && d.dev.Process != nil {
		d.say("Stopping drplane dev (SIGINT): it stops every server, agent, PostgreSQL server and application")
		_ = d.dev.Process.Signal(syscall.SIGINT)
		select {
		case <-d.devDone:
			if !d.dev.ProcessState.Success() {
				err = fmt.Errorf("drplane dev exited with %v", d.dev.ProcessState)
			}
		case <-time.After(stopTimeout):
			_ = d.dev.Process.Kill()
			<-d.devDone
			err = fmt.Errorf("drplane dev did not stop within %s of SIGINT; killed it (look for processes naming %s)", stopTimeout, d.dir)
		}
	}
	if keep {
		d.note("kept %s", d.parent)
	} else if rerr := os.RemoveAll(d.parent); rerr != nil {
		err = errors.Join(err, rerr)
	} else {
		d.note("removed %s", d.parent)
	}
	d.summary()
	return err
}

// summary prints how long each stage took.
func (d *demo) summary() {
	if len(d.stages) == 0 {
		return
	}
	fmt.Println("\nStages:")
	for _, s := range d.stages {
		fmt.Printf("  %-36s %6.1fs\n", s.name, s.took.Seconds())
	}
	fmt.Printf("  %-36s %6.1fs\n", "total (with cleanup)", time.Since(d.start).Seconds())
	if d.htmlReport != "" {
		fmt.Printf("\nThe HTML report (summary, RTO trends, DR test log, a timeline of every execution): %s\n", d.htmlReport)
	}
	if d.failoverID == "" {
		return
	}
	fmt.Printf("\nPrimary site lost: %s failed over to dr in RTO %s with RPO %s", d.failoverID, d.rto, d.rpo)
	if d.lostRows >= 0 {
		fmt.Printf(", %d acknowledged rows lost", d.lostRows)
	}
	if d.splitBrain {
		fmt.Println("; SPLIT BRAIN: two sites wrote at once (see the rows above).")
	} else {
		fmt.Println("; one writer at a time throughout, no split brain.")
	}
}
