package sampleapp

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

func TestResolve_DrillNeverFallsBackToLive(t *testing.T) {
	o := Options{Host: "app-1", Listen: "127.0.0.1:1", DSN: "port=5432", StateDir: "/s", Interval: time.Second}
	cfg, err := o.Resolve("")
	require.NoError(t, err)
	require.Equal(t, Config{Host: "app-1", Mode: ModeLive, Listen: "127.0.0.1:1", DSN: "port=5432", StateDir: "/s", Interval: time.Second}, cfg)

	_, err = o.Resolve(ModeDrill)
	require.ErrorContains(t, err, "refusing to run a drill against production settings")
	o.DrillListen, o.DrillStateDir = "127.0.0.1:2", "/d"
	_, err = o.Resolve(ModeDrill)
	require.Error(t, err, "a drill of an application with a database needs the drill database")
	o.DrillDSN = "port=15432"
	cfg, err = o.Resolve(ModeDrill)
	require.NoError(t, err)
	require.Equal(t, Config{Host: "app-1", Mode: ModeDrill, Listen: "127.0.0.1:2", DSN: "port=15432", StateDir: "/d", Interval: time.Second}, cfg)

	_, err = o.Resolve("prod")
	require.ErrorContains(t, err, `MODE="prod"`)
}

func TestParseLastID(t *testing.T) {
	require.Equal(t, int64(0), parseLastID(nil))
	require.Equal(t, int64(0), parseLastID([]byte("7 app-1 live")), "a line without its newline is torn")
	require.Equal(t, int64(8), parseLastID([]byte("7 a\n8 a\n")))
	require.Equal(t, int64(8), parseLastID([]byte("7 a\n8 a\n9 a torn")))
	require.Equal(t, int64(7), parseLastID([]byte("7 a\ngarbage\n")))
}

// TestRun_FileOnly runs an instance without a database: it continues the
// numbering of its state file and reports healthy while it writes.
func TestRun_FileOnly(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, StateFile), []byte("41 app-1 live x\n"), 0o644))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Host: "app-2", Mode: ModeLive, Listen: addr, StateDir: dir, Interval: 10 * time.Millisecond}, hclog.NewNullLogger())
	}()
	var st Status
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		resp, err := http.Get("http://" + addr + "/health")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return false, err
		}
		return resp.StatusCode == http.StatusOK && st.LastID >= 45, nil
	})
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, int64(42), st.FirstID)
	require.False(t, st.Database)
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(b), "41 app-1 live x\n42 app-2 live "), "%s", b)
}

// TestRun_Postgres runs an instance against a real primary (it writes
// rows, continuing the highest id, and is healthy) and one against the
// standby (it cannot write, so /health answers 503).
func TestRun_Postgres(t *testing.T) {
	pair := pgtest.NewPair(t)
	dsn := func(n *pgtest.Node) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable", n.Port, pgtest.User)
	}
	pair.Exec(t, pair.Primary, "CREATE TABLE "+Table+" (id bigint PRIMARY KEY, host text NOT NULL, mode text NOT NULL, written_at timestamptz NOT NULL DEFAULT now())")
	pair.Exec(t, pair.Primary, "INSERT INTO "+Table+" (id, host, mode) VALUES (100, 'app-1', 'live')")
	pair.WaitFor(t, pair.Standby, "1", "SELECT count(*)::text FROM "+Table)

	live := runApp(t, Config{Host: "app-2", Mode: ModeLive, DSN: dsn(pair.Primary), StateDir: t.TempDir(), Interval: 10 * time.Millisecond})
	st := waitStatus(t, live, func(st Status) bool { return st.Healthy && st.LastID >= 105 })
	require.Equal(t, int64(101), st.FirstID, "numbering continues from the table")
	require.True(t, st.Database)

	standby := runApp(t, Config{Host: "app-3", Mode: ModeLive, DSN: dsn(pair.Standby), StateDir: t.TempDir(), Interval: 10 * time.Millisecond})
	st = waitStatus(t, standby, func(st Status) bool { return st.Error != "" })
	require.False(t, st.Healthy)
	require.Contains(t, st.Error, "read-only")
	resp, err := http.Get("http://" + standby + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

// runApp runs an instance on a free port until the test ends and
// returns its address.
func runApp(t *testing.T, cfg Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg.Listen = ln.Addr().String()
	require.NoError(t, ln.Close())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, hclog.NewNullLogger()) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return cfg.Listen
}

// waitStatus polls /status until ok accepts it.
func waitStatus(t *testing.T, addr string, ok func(Status) bool) Status {
	t.Helper()
	var st Status
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		resp, err := http.Get("http://" + addr + "/status")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return false, err
		}
		return ok(st), fmt.Errorf("status %+v", st)
	})
	return st
}
