package plan

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDerive_Restore: the data service's dependents stop in reverse
// order; a restoration point (a backup, a snapshot of each snapshot
// block) is taken while it still runs; it and its standby stop; it is
// restored to the target; the dependents start in order, health-gated,
// and are checked; the standby rejoins the restored primary.
func TestDerive_Restore(t *testing.T) {
	topo := testTopology()
	topo.Agents[1].Snapshots = []string{"state", "logs"}
	topo.Agents[1].Services[0].StateSnapshots = []string{"state"} // the engine's
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	p, err := Derive(KindRestore, topo, nil, DeriveOptions{Service: "postgres", RestoreToTime: at})
	require.NoError(t, err)
	require.Equal(t, "primary", p.From)
	require.Equal(t, "primary", p.To)
	requireTopological(t, p)
	st := steps(t, p)
	require.ElementsMatch(t, []string{
		"stop:gateway@app-1", "stop:engine@app-1", "backup:postgres@db-1", "snapshot:state@app-1", "snapshot:logs@app-1",
		"stop:postgres@db-2", "stop:postgres@db-1", "restore:postgres@db-1", "restore-snapshot:state@app-1",
		"start:engine@app-1", "start:gateway@app-1",
		"check:postgres@db-1", "check:engine@app-1", "check:gateway@app-1", "demote:postgres@db-2",
	}, ids(p))
	require.True(t, reaches(p, "stop:engine@app-1", "stop:gateway@app-1"), "a service stops after what depends on it")
	require.True(t, reaches(p, "backup:postgres@db-1", "stop:engine@app-1"), "the restoration point follows the last writer's stop")
	require.True(t, reaches(p, "stop:postgres@db-1", "backup:postgres@db-1"), "the backup is taken while the database runs")
	require.True(t, reaches(p, "stop:postgres@db-1", "snapshot:state@app-1"))
	require.True(t, reaches(p, "restore:postgres@db-1", "stop:postgres@db-2"), "the standby stops before the restore")
	require.True(t, reaches(p, "start:engine@app-1", "restore:postgres@db-1"))
	require.True(t, reaches(p, "start:gateway@app-1", "start:engine@app-1"))
	require.True(t, reaches(p, "demote:postgres@db-2", "restore:postgres@db-1"))
	require.True(t, reaches(p, "restore-snapshot:state@app-1", "snapshot:state@app-1"), "the restoration point holds the state first")
	require.True(t, reaches(p, "restore-snapshot:state@app-1", "stop:engine@app-1"))
	require.True(t, reaches(p, "start:engine@app-1", "restore-snapshot:state@app-1"), "the engine starts on its restored state")
	files := st["restore-snapshot:state@app-1"]
	require.Equal(t, ActionRestoreSnapshot, files.Action)
	require.Equal(t, "state", files.Target)
	require.Equal(t, map[string]string{ArgSnapshotAt: "2026-12-03T09:00:00Z"}, files.Args, "the snapshot of the database's target time")

	restore := st["restore:postgres@db-1"]
	require.Equal(t, ActionRestoreBackup, restore.Action)
	require.Equal(t, "pg", restore.Target, "the target is the host's backup block")
	require.Equal(t, map[string]string{"to_time": "2026-12-03T09:00:00Z"}, restore.Args)
	require.Equal(t, map[string]string{"kind": "incr"}, st["backup:postgres@db-1"].Args)
	require.Equal(t, "pg", st["backup:postgres@db-1"].Target)
	demote := st["demote:postgres@db-2"]
	require.Equal(t, map[string]string{"upstream_host": "10.0.1.10", "upstream_port": "5432"}, demote.Args)
	require.Equal(t, OnFailureContinue, demote.OnFailure, "the restored site serves even if the standby cannot rejoin")
	require.True(t, st["start:engine@app-1"].HealthGate)
	require.True(t, st["check:postgres@db-1"].HealthGate)

	p, err = Derive(KindRestore, topo, nil, DeriveOptions{Service: "postgres", RestoreLabel: "20261203-090000F"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"label": "20261203-090000F"}, steps(t, p)["restore:postgres@db-1"].Args)
	require.Equal(t, map[string]string{ArgSnapshotAtBackup: "20261203-090000F"}, steps(t, p)["restore-snapshot:state@app-1"].Args,
		"the server puts the backup's end in its place")
	p, err = Derive(KindRestore, topo, nil, DeriveOptions{Service: "postgres"})
	require.NoError(t, err)
	require.Nil(t, steps(t, p)["restore:postgres@db-1"].Args, "the newest state")
	require.NotContains(t, ids(p), "restore-snapshot:state@app-1", "for the newest state the state stays as the engine left it")
}

// TestDerive_Restore_Refused: what cannot be restored is refused, naming
// what can.
func TestDerive_Restore_Refused(t *testing.T) {
	noBackup := testTopology()
	noBackup.Agents[0].Services[0].Backup = ""
	cases := []struct {
		name string
		topo Topology
		opts DeriveOptions
		want string
	}{
		{"no service", testTopology(), DeriveOptions{}, "a restore needs the data service to restore: one of postgres"},
		{"unknown service", testTopology(), DeriveOptions{Service: "postgre"}, `no host at the active site "primary" declares service "postgre"; did you mean "postgres"?`},
		{"not a data service", testTopology(), DeriveOptions{Service: "engine"}, `service "engine" is not a data service`},
		{"no backup block", noBackup, DeriveOptions{Service: "postgres"}, `db-1 declares no backup block of service "postgres"`},
		{"another site", testTopology(), DeriveOptions{Service: "postgres", To: "dr"}, `a restore runs at the active site "primary"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Derive(KindRestore, tc.topo, nil, tc.opts)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestDerive_RestoreDrill: a drill of the restore plan verifies the
// newest backup of each data service at the target site, on its host
// there, health-gated; nothing else runs, and it counts as the restore
// scenario's exercise.
func TestDerive_RestoreDrill(t *testing.T) {
	p, err := Derive(KindDrill, testTopology(), nil, DeriveOptions{DrillID: "d1", DrillOf: KindRestore})
	require.NoError(t, err)
	require.Equal(t, []string{"verify-backup:postgres@db-2"}, ids(p))
	st := p.Steps[0]
	require.Equal(t, ActionVerifyBackup, st.Action)
	require.Equal(t, "pg", st.Target)
	require.Equal(t, "dr", st.Site)
	require.True(t, st.HealthGate)
	require.Equal(t, string(KindRestore), p.Name)

	topo := testTopology()
	topo.Agents[2].Services[0].Backup = ""
	_, err = Derive(KindDrill, topo, nil, DeriveOptions{DrillID: "d1", DrillOf: KindRestore})
	require.ErrorContains(t, err, "nothing to drill: no host at site dr declares a backup block of a data service")
	_, err = Derive(KindFailover, testTopology(), nil, DeriveOptions{To: "dr", DrillOf: KindRestore})
	require.ErrorContains(t, err, "only a drill of a restore plan")
}
