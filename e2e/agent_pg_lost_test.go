package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/testing/clustertest"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/stretchr/testify/require"
)

// TestAgentPostgres_PromoteAnswerLost_ResentStepVerified fails over to a
// real PostgreSQL standby and SIGKILLs its agent during the promote, once
// the database is writable: the leader's stream breaks ("error reading
// from server: EOF"), the leader re-sends the same step to the restarted
// agent, and that agent finds the database primary and records success,
// verified, instead of "interrupted". pg_ctl is wrapped so that a promote
// holds after it took effect until the test ends: the kill always lands
// between the effect and the answer.
func TestAgentPostgres_PromoteAnswerLost_ResentStepVerified(t *testing.T) {
	pair := pgtest.NewPair(t)
	giveToPostgres(t, filepath.Dir(pair.Primary.DataDir))
	c := newAgentCluster(t, "primary")
	db1 := startAgent(t, c, devcluster.AgentSpec{HostID: "db-1", Site: "primary", Services: []config.ServiceConfig{pgService(pair.Primary)}})
	standby := pgService(pair.Standby)
	standby.BinDir = holdingPromoteBinDir(t)
	db2 := startAgent(t, c, devcluster.AgentSpec{HostID: "db-2", Site: "dr", Services: []config.ServiceConfig{standby}})
	waitForAgent(t, c, db1.HostID, 30*time.Second, hasRole("postgres", "primary", false))
	waitForAgent(t, c, db2.HostID, 30*time.Second, hasRole("postgres", "standby", false))

	type outcome struct {
		out string
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		out, err := cliAny(t, c, "failover", "--to", "dr", "--yes", "--allow-data-loss")
		done <- outcome{out, err}
	}()
	pair.WaitFor(t, pair.Standby, "false", "SELECT pg_is_in_recovery()::text")
	require.NoError(t, db2.Kill())
	require.NoError(t, db2.Start())

	var res outcome
	select {
	case res = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the failover did not end")
	}
	require.NoError(t, res.err, res.out)
	t.Logf("failover:\n%s", res.out)
	ex := lastExecutionOf(t, c)
	require.Equal(t, "succeeded", ex.Result, ex.Message)
	promote := stepJSONOf(t, ex, "promote:postgres@db-2")
	require.Equal(t, "succeeded", promote.State, promote.Message)
	require.True(t, promote.Verified, "the leader records the agent's verified answer: %+v", promote)
	require.Contains(t, promote.Message, "the step's effect is in place: postgres is primary")
	require.Equal(t, "false", pair.QueryString(t, pair.Standby, "SELECT pg_is_in_recovery()::text"))

	// The restarted agent's journal says the step was verified.
	data, err := os.ReadFile(filepath.Join(db2.DataDir, "journal", ex.ID, "promote:postgres@db-2.json"))
	require.NoError(t, err)
	var rec struct {
		Done   bool `json:"done"`
		Result struct {
			OK       bool `json:"ok"`
			Verified bool `json:"verified"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(data, &rec))
	require.True(t, rec.Done && rec.Result.OK && rec.Result.Verified, "journal: %s", data)
}

// holdingPromoteBinDir is a PostgreSQL bin directory whose pg_ctl, after
// a promote took effect, holds until the test ends, as a promote whose
// agent dies before it answers. The other programs are the real ones.
func holdingPromoteBinDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bin")
	require.NoError(t, os.Mkdir(dir, 0o755))
	traversable(t, dir)
	release := filepath.Join(dir, "release")
	t.Cleanup(func() { _ = os.WriteFile(release, nil, 0o644) })
	entries, err := os.ReadDir(pgtest.BinDir)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() != "pg_ctl" {
			require.NoError(t, os.Symlink(filepath.Join(pgtest.BinDir, e.Name()), filepath.Join(dir, e.Name())))
		}
	}
	script := fmt.Sprintf(`#!/bin/sh
%q "$@"
rc=$?
if [ "$1" = promote ]; then
	while [ ! -e %q ]; do sleep 0.1; done
fi
exit $rc
`, filepath.Join(pgtest.BinDir, "pg_ctl"), release)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg_ctl"), []byte(script), 0o755))
	return dir
}

// lastExecutionOf returns the newest execution with its steps.
func lastExecutionOf(t *testing.T, c *clustertest.Cluster) cli.ExecutionJSON {
	t.Helper()
	out, err := cliAny(t, c, "history", "--json")
	require.NoError(t, err, out)
	var list []cli.ExecutionJSON
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.NotEmpty(t, list)
	out, err = cliAny(t, c, "history", list[len(list)-1].ID, "--json")
	require.NoError(t, err, out)
	var ex cli.ExecutionJSON
	require.NoError(t, json.Unmarshal([]byte(out), &ex))
	return ex
}

// stepJSONOf returns the step id of ex.
func stepJSONOf(t *testing.T, ex cli.ExecutionJSON, id string) cli.StepJSON {
	t.Helper()
	for _, st := range ex.Steps {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("no step %s in %s: %+v", id, ex.ID, ex.Steps)
	return cli.StepJSON{}
}
