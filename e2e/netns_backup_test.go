package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testing/netns"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// backupStatus is what `drplane status --json` says of block pg on host.
func backupStatus(t *testing.T, d *netns.Deployment, host string) (cli.BackupStatusJSON, error) {
	var st cli.StatusJSON
	if err := json.Unmarshal([]byte(d.MustCLI("status", "--json")), &st); err != nil {
		return cli.BackupStatusJSON{}, err
	}
	for _, b := range st.Backups {
		if b.HostID == host && b.Name == "pg" {
			return b, nil
		}
	}
	return cli.BackupStatusJSON{}, fmt.Errorf("no backup block pg reported by %s", host)
}

// waitBackupStatus waits until host reports block pg as cond wants.
func waitBackupStatus(t *testing.T, d *netns.Deployment, host, what string, cond func(cli.BackupStatusJSON) bool) cli.BackupStatusJSON {
	t.Helper()
	var b cli.BackupStatusJSON
	testutil.WaitForResult(t, 3*time.Minute, func() (bool, error) {
		var err error
		if b, err = backupStatus(t, d, host); err != nil {
			return false, err
		}
		return cond(b), fmt.Errorf("%s: not yet %s: %+v", host, what, b)
	})
	return b
}

// TestNetns_Backups_FollowTheSwitchover: both database hosts declare one
// backup block into a shared repository. The primary's agent archives
// and takes the first full backup by itself; an operator's incremental
// backup runs there. After a switchover to dr, db-2's agent archives
// into the same stanza, and its backup builds on db-1's: one history.
// The newest backup restores, starts and answers (verify), and the CLI
// lists every backup.
func TestNetns_Backups_FollowTheSwitchover(t *testing.T) {
	pgtest.RequirePgBackRest(t)
	d := netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Backup: &config.BackupConfig{FullEvery: time.Hour}})

	first := waitBackupStatus(t, d, "db-1", "archiving with a full backup", func(b cli.BackupStatusJSON) bool {
		return b.Archiving && b.Scheduled && b.NewestFull != nil
	})
	require.Empty(t, first.Warnings)
	standby, err := backupStatus(t, d, "db-2")
	require.NoError(t, err)
	require.False(t, standby.Archiving, "a standby does not archive")

	out := d.MustCLI("backup", "create", "--kind", "incr")
	require.Contains(t, out, "on db-1", "the command runs where the database is primary")
	var sets []cli.BackupSetJSON
	require.NoError(t, json.Unmarshal([]byte(d.MustCLI("backup", "list", "--json")), &sets))
	require.Len(t, sets, 1)
	require.Equal(t, "db-1", sets[0].Status.HostID)
	require.Len(t, sets[0].Backups, 2)
	incr := sets[0].Backups[1]
	require.Equal(t, "incr", incr.Kind)
	require.Equal(t, first.NewestFull.Label, incr.Prior)

	out = d.MustCLI("switchover", "--to", "dr", "--yes")
	require.Contains(t, out, "succeeded")
	waitBackupStatus(t, d, "db-2", "archiving after the switchover", func(b cli.BackupStatusJSON) bool { return b.Archiving && b.Scheduled })
	waitBackupStatus(t, d, "db-1", "standing by after the switchover", func(b cli.BackupStatusJSON) bool { return !b.Archiving })

	out = d.MustCLI("backup", "create", "--kind", "incr")
	require.Contains(t, out, "on db-2")
	require.NoError(t, json.Unmarshal([]byte(d.MustCLI("backup", "list", "--json")), &sets))
	require.Equal(t, "db-2", sets[0].Status.HostID)
	require.Len(t, sets[0].Backups, 3, "one history: db-1's backups and db-2's")
	require.Equal(t, incr.Label, sets[0].Backups[2].Prior, "db-2's backup builds on db-1's")

	out = d.MustCLI("backup", "verify")
	require.Contains(t, out, "restored, started and answered")
	b := waitBackupStatus(t, d, "db-2", "verified", func(b cli.BackupStatusJSON) bool { return b.Verification != nil })
	require.True(t, b.Verification.OK, b.Verification.Reason)
	require.Equal(t, sets[0].Backups[2].Label, b.Verification.Label)

	text := d.MustCLI("status")
	require.Contains(t, text, "pg (service postgres) on db-2: archiving, takes the scheduled backups")
	require.True(t, strings.Contains(text, "last verification: backup "+b.Verification.Label+" passed"), text)
}
