package devenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drplane/drplane/internal/config"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// TestPIDFiles_Sync checks that the pid files always equal the processes
// of each site: new ones written, changed ones rewritten, gone ones
// removed, and nothing left after removeAll.
func TestPIDFiles_Sync(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pids")
	p := &pidFiles{dir: dir, logger: hclog.NewNullLogger(), written: map[string]int{}}
	read := func() map[string]string {
		got := map[string]string{}
		files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
		require.NoError(t, err)
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			got[strings.TrimPrefix(f, dir+"/")] = string(b)
		}
		return got
	}
	require.NoError(t, p.sync([]pidEntry{{"primary", "server-s1", 10}, {"primary", "postgres-db-1", 11}, {"dr", "server-s2", 20}}))
	require.Equal(t, map[string]string{"primary/server-s1.pid": "10\n", "primary/postgres-db-1.pid": "11\n", "dr/server-s2.pid": "20\n"}, read())

	// The postmaster restarted, the server of dr is gone.
	require.NoError(t, p.sync([]pidEntry{{"primary", "server-s1", 10}, {"primary", "postgres-db-1", 12}}))
	require.Equal(t, map[string]string{"primary/server-s1.pid": "10\n", "primary/postgres-db-1.pid": "12\n"}, read())

	// A kill -9 of the site reads pids only.
	out, err := exec.Command("sh", "-c", "cat "+dir+"/primary/*.pid").Output()
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"10", "12"}, strings.Fields(string(out)))

	p.removeAll()
	require.NoDirExists(t, dir)
}

func TestShellQuote(t *testing.T) {
	out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(`/tmp/it's a "dir" $HOME`)).Output()
	require.NoError(t, err)
	require.Equal(t, `/tmp/it's a "dir" $HOME`, string(out))
}

func TestEmptyDir(t *testing.T) {
	base := t.TempDir()
	require.NoError(t, emptyDir(filepath.Join(base, "new", "dev")), "a new directory is created")
	require.DirExists(t, filepath.Join(base, "new", "dev"))
	require.NoError(t, emptyDir(filepath.Join(base, "new", "dev")), "an empty one is accepted")
	require.NoError(t, os.WriteFile(filepath.Join(base, "new", "dev", "env.sh"), nil, 0o600))
	require.ErrorContains(t, emptyDir(filepath.Join(base, "new", "dev")), "is not empty")
}

// TestAgentSpecs checks what the app and db hosts declare: the
// application depends on its site's database, its drill copy only
// switches MODE, both app hosts sync the same path from their own disks,
// and the db hosts drill on a port of their own.
func TestAgentSpecs(t *testing.T) {
	e := &env{opts: Options{Bin: "/usr/bin/drplane"}, dir: t.TempDir(), mounts: true}
	e.hosts = []*host{{ID: "db-1", Site: SitePrimary}, {ID: "db-2", Site: SiteDR}, {ID: "app-1", Site: SitePrimary}, {ID: "app-2", Site: SiteDR}}
	e.hosts[0].pg = &pgNode{Host: "db-1", DataDir: "/d/db-1/pg/data", Port: 5432, DrillPort: 15432}
	e.hosts[1].pg = &pgNode{Host: "db-2", DataDir: "/d/db-2/pg/data", Port: 5433, DrillPort: 15433}
	for _, h := range e.hosts[2:] {
		app, err := e.newAppHost(h.ID)
		require.NoError(t, err)
		h.app = app
	}

	db := e.agentSpec(e.hosts[1])
	require.Len(t, db.Services, 1)
	require.Equal(t, config.DriverPostgres, db.Services[0].Driver)
	require.Equal(t, &config.DrillConfig{Port: 15433}, db.Services[0].Drill)
	require.Empty(t, db.Backups, "no backup block without pgbackrest")
	e.pg = &pgPair{primary: e.hosts[0].pg, standby: e.hosts[1].pg, backups: true}
	db1, db2 := e.agentSpec(e.hosts[0]), e.agentSpec(e.hosts[1])
	require.Len(t, db2.Backups, 1)
	require.Equal(t, ServicePostgres, db2.Backups[0].Service)
	require.Equal(t, db1.Backups[0].Repository, db2.Backups[0].Repository, "one repository: one history across failovers")

	app1, app2 := e.agentSpec(e.hosts[2]), e.agentSpec(e.hosts[3])
	svc := app2.Services[0]
	require.Equal(t, []string{ServicePostgres}, svc.DependsOn)
	require.Equal(t, map[string]string{"MODE": "drill"}, svc.Drill.Env)
	cmd := strings.Join(svc.Command, " ")
	require.Contains(t, cmd, "--dsn "+e.hosts[1].pg.DSN("sampleapp-app-2"), "app-2 writes to the dr database")
	require.Contains(t, cmd, "--drill-dsn "+e.hosts[1].pg.DrillDSN("sampleapp-drill-app-2"))
	require.Equal(t, "http://"+e.hosts[3].app.DrillListen+"/health", svc.Drill.Health.HTTP)
	require.Equal(t, app1.Syncs[0].Paths, app2.Syncs[0].Paths, "a sync block mirrors a path into the same path")
	require.NotEqual(t, app1.Mounts[0].Source, app2.Mounts[0].Source, "each app host has its own disk")
	require.Equal(t, e.appDir(), app2.Mounts[0].Target)
}

func TestCheckPrerequisites(t *testing.T) {
	noRsync := func(string) (string, error) { return "", exec.ErrNotFound }
	withRsync := func(string) (string, error) { return "/usr/bin/rsync", nil }
	mounts := func() error { return nil }
	noMounts := func() error { return errors.New("not root") }

	err := checkPrerequisites(noRsync, mounts)
	require.ErrorContains(t, err, "drplane dev needs rsync")
	require.ErrorContains(t, err, "apt-get install rsync")
	require.NoError(t, checkPrerequisites(withRsync, mounts))
	// Without mount namespaces there is no sync block, so no rsync to run.
	require.NoError(t, checkPrerequisites(noRsync, noMounts))
}

// TestParseReplication: `drplane dev --replication` takes the three modes
// and names the flag when it does not know one.
func TestParseReplication(t *testing.T) {
	r, err := ParseReplication("sync-strict")
	require.NoError(t, err)
	require.Equal(t, config.ReplicationSync, r.Mode)
	require.True(t, r.Strict)
	require.Equal(t, config.DefaultServerConfig().Replication.DegradeAfter, r.DegradeAfter)
	r, err = ParseReplication("async")
	require.NoError(t, err)
	require.False(t, r.Sync())
	_, err = ParseReplication("synchronous")
	require.EqualError(t, err, `--replication "synchronous": expected async, sync or sync-strict`)
}
