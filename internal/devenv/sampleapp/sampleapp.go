// Package sampleapp is the application `drplane dev` runs on its app hosts
// (and deploy/sampleapp builds on its own): it writes numbered rows to
// PostgreSQL while it runs, appends each to a file in its state
// directory, and serves /health, which answers 200 while its writes
// succeed. The agents of a dev deployment run it as a process service,
// so a plan stops, starts and drills it like any real application.
//
// An instance runs only where the agent started it, which is on the
// active site: that makes it the active instance. Every (re)connection
// continues from the highest row id in the database, so after a
// switchover the rows go on without a gap, and after a failover the gap
// is the data the failover lost.
//
// With MODE=drill in its environment it uses its drill settings (listen
// address, database, state directory) instead, and refuses to start when
// one is missing: a drill copy never falls back to production.
package sampleapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
)

// Modes, from the MODE environment variable.
const (
	ModeLive  = "live"
	ModeDrill = "drill"
)

// StateFile is the file in the state directory each row is appended to.
const StateFile = "rows.log"

// Table holds the rows the application writes.
const Table = "sampleapp_rows"

// Options are the application's flags: one set of settings per mode.
type Options struct {
	// Host names the instance in its rows and its status.
	Host string
	// Live settings.
	Listen, DSN, StateDir string
	// Drill settings, used when MODE=drill.
	DrillListen, DrillDSN, DrillStateDir string
	// Interval is the pause between two writes.
	Interval time.Duration
}

// Config is what one instance runs with, resolved for its mode.
type Config struct {
	Host, Mode string
	// Listen is the HTTP address of /health and /status.
	Listen string
	// DSN is a PostgreSQL connection string; empty: the state file only.
	DSN      string
	StateDir string
	Interval time.Duration
}

// Resolve picks the settings of mode ("" is live).
func (o Options) Resolve(mode string) (Config, error) {
	cfg := Config{Host: o.Host, Mode: mode, Interval: o.Interval}
	switch mode {
	case "", ModeLive:
		cfg.Mode, cfg.Listen, cfg.DSN, cfg.StateDir = ModeLive, o.Listen, o.DSN, o.StateDir
	case ModeDrill:
		// Every drill setting must be given: a default would be the
		// production one.
		if o.DrillListen == "" || o.DrillStateDir == "" || (o.DSN != "" && o.DrillDSN == "") {
			return Config{}, errors.New("MODE=drill needs --drill-listen, --drill-state-dir and, when --dsn is set, --drill-dsn; refusing to run a drill against production settings")
		}
		cfg.Listen, cfg.DSN, cfg.StateDir = o.DrillListen, o.DrillDSN, o.DrillStateDir
	default:
		return Config{}, fmt.Errorf("MODE=%q is neither %s nor %s", mode, ModeLive, ModeDrill)
	}
	switch {
	case cfg.Listen == "":
		return Config{}, errors.New("--listen is required")
	case cfg.StateDir == "":
		return Config{}, errors.New("--state-dir is required")
	case cfg.Interval <= 0:
		return Config{}, fmt.Errorf("--interval %s must be positive", cfg.Interval)
	}
	return cfg, nil
}

// Status is the JSON of /status and /health.
type Status struct {
	Host    string `json:"host"`
	Mode    string `json:"mode"`
	Healthy bool   `json:"healthy"`
	// FirstID is the first row this instance wrote, LastID the last one
	// acknowledged; Rows counts what it wrote.
	FirstID int64     `json:"first_id"`
	LastID  int64     `json:"last_id"`
	Rows    int64     `json:"rows"`
	LastAt  time.Time `json:"last_at,omitzero"`
	Error   string    `json:"error,omitempty"`
	// Database is false when the instance keeps its state file only.
	Database bool `json:"database"`
}

// app is one running instance.
type app struct {
	cfg    Config
	logger hclog.Logger
	conn   *pgx.Conn
	file   *os.File
	nextID int64

	mu sync.Mutex
	st Status
}

// Run runs the application until ctx ends.
func Run(ctx context.Context, cfg Config, logger hclog.Logger) error {
	a := &app{cfg: cfg, logger: logger, st: Status{Host: cfg.Host, Mode: cfg.Mode, Database: cfg.DSN != ""}}
	if err := a.openState(); err != nil {
		return err
	}
	defer a.file.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen for /health on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	logger.Info("sample application started", "host", cfg.Host, "mode", cfg.Mode, "listen", cfg.Listen, "state_dir", cfg.StateDir, "database", cfg.DSN != "")

	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		a.writeOne(ctx)
		select {
		case <-ctx.Done():
			a.closeConn()
			logger.Info("sample application stopped", "last_id", a.status().LastID)
			return nil
		case <-t.C:
		}
	}
}

// openState opens the state file for appending and, for an instance
// without a database, continues its numbering.
func (a *app) openState() error {
	if err := os.MkdirAll(a.cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	path := filepath.Join(a.cfg.StateDir, StateFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open state file: %w", err)
	}
	a.file = f
	last, err := lastFileID(path)
	if err != nil {
		return err
	}
	a.nextID = last + 1
	return nil
}

// writeOne writes the next row, to the database (when there is one) and
// then to the state file, and records the outcome for /health.
func (a *app) writeOne(ctx context.Context) {
	id, err := a.writeRow(ctx)
	if err == nil {
		_, err = fmt.Fprintf(a.file, "%d %s %s %s\n", id, a.cfg.Host, a.cfg.Mode, time.Now().UTC().Format(time.RFC3339Nano))
		if err != nil {
			err = fmt.Errorf("append to state file: %w", err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		if a.st.Error != err.Error() {
			a.logger.Warn("write failed", "error", err)
		}
		a.st.Error = err.Error()
		return
	}
	if a.st.FirstID == 0 {
		a.st.FirstID = id
		a.logger.Info("first row written", "id", id)
	}
	a.st.LastID, a.st.LastAt, a.st.Error = id, time.Now(), ""
	a.st.Rows++
	if a.st.Rows%100 == 0 {
		a.logger.Info("rows written", "rows", a.st.Rows, "last_id", id)
	}
}

// writeRow inserts the next row and returns its id; without a database
// it only hands out the id.
func (a *app) writeRow(ctx context.Context) (int64, error) {
	if a.cfg.DSN == "" {
		id := a.nextID
		a.nextID++
		return id, nil
	}
	if err := a.connect(ctx); err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	id := a.nextID
	if _, err := a.conn.Exec(wctx, "INSERT INTO "+Table+" (id, host, mode) VALUES ($1, $2, $3)", id, a.cfg.Host, a.cfg.Mode); err != nil {
		a.closeConn()
		return 0, fmt.Errorf("insert row %d: %w", id, err)
	}
	a.nextID++
	return id, nil
}

// connect opens the connection when there is none, creates the table,
// and continues from the highest id in it.
func (a *app) connect(ctx context.Context) error {
	if a.conn != nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, a.cfg.DSN)
	if err != nil {
		return fmt.Errorf("connect to the database: %w", err)
	}
	_, err = conn.Exec(cctx, "CREATE TABLE IF NOT EXISTS "+Table+
		" (id bigint PRIMARY KEY, host text NOT NULL, mode text NOT NULL, written_at timestamptz NOT NULL DEFAULT now())")
	if err != nil {
		_ = conn.Close(context.Background())
		return fmt.Errorf("create table %s: %w", Table, err)
	}
	var maxID int64
	if err := conn.QueryRow(cctx, "SELECT coalesce(max(id), 0) FROM "+Table).Scan(&maxID); err != nil {
		_ = conn.Close(context.Background())
		return fmt.Errorf("read the last row id: %w", err)
	}
	a.conn, a.nextID = conn, maxID+1
	a.logger.Info("connected to the database", "next_id", a.nextID)
	return nil
}

func (a *app) closeConn() {
	if a.conn != nil {
		_ = a.conn.Close(context.Background())
		a.conn = nil
	}
}

// status returns the state of /status, judging health: the last write
// succeeded, recently.
func (a *app) status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.st
	fresh := max(3*a.cfg.Interval, 2*time.Second)
	st.Healthy = st.Error == "" && !st.LastAt.IsZero() && time.Since(st.LastAt) < fresh
	return st
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		st := a.status()
		code := http.StatusOK
		if !st.Healthy {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, st)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, a.status())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
