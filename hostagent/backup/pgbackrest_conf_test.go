package backup

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// validConfig is a config that passes Validate once defaults are set.
func validConfig() PgBackRestConfig {
	return PgBackRestConfig{
		Stanza: "pg-main_1", Repository: "/var/lib/pgbackrest", DataDir: "/var/lib/postgresql/15/main",
		Port: 5432, SocketDir: "/var/run/postgresql", ConfigDir: "/var/lib/drplane/backup",
	}
}

// TestPgBackRestConfig_Validate refuses, before anything runs, what would
// reach the configuration file, a command line or archive_command
// unsafely.
func TestPgBackRestConfig_Validate(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*PgBackRestConfig)
		msg    string
	}{
		{"valid", func(*PgBackRestConfig) {}, ""},
		{"empty stanza", func(c *PgBackRestConfig) { c.Stanza = "" }, `stanza ""`},
		{"stanza with a space", func(c *PgBackRestConfig) { c.Stanza = "pg main" }, `stanza "pg main"`},
		{"stanza with a shell character", func(c *PgBackRestConfig) { c.Stanza = "pg;rm" }, `stanza "pg;rm"`},
		{"stanza with a dot", func(c *PgBackRestConfig) { c.Stanza = "pg.main" }, `stanza "pg.main"`},
		{"relative repository", func(c *PgBackRestConfig) { c.Repository = "repo" }, `repository "repo"`},
		{"repository with a quote", func(c *PgBackRestConfig) { c.Repository = "/var/lib/it's" }, "repository"},
		{"unclean data dir", func(c *PgBackRestConfig) { c.DataDir = "/var/lib/../main" }, "data_dir"},
		{"config dir with a newline", func(c *PgBackRestConfig) { c.ConfigDir = "/etc\nrepo1-path=/x" }, "config_dir"},
		{"port", func(c *PgBackRestConfig) { c.Port = 0 }, "port 0"},
		{"user", func(c *PgBackRestConfig) { c.User = "a b" }, `user name "a b"`},
		{"keep full", func(c *PgBackRestConfig) { c.KeepFull = -1 }, "keep_full (-1)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.modify(&cfg)
			cfg.setDefaults()
			err := cfg.Validate()
			if tc.msg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tc.msg)

			// NewPgBackRest validates before it looks for the binary.
			_, err = NewPgBackRest(cfg, hclog.NewNullLogger())
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

// TestPgBackRest_ConfSections checks the configuration file and the
// commands PostgreSQL runs.
func TestPgBackRest_ConfSections(t *testing.T) {
	cfg := validConfig()
	cfg.setDefaults()
	cfg.Binary = "/usr/bin/pgbackrest"
	e := &PgBackRest{cfg: cfg}

	conf := string(renderConf(e.confSections()))
	for _, line := range []string{
		"[global]\nrepo1-type=posix\nrepo1-path=/var/lib/pgbackrest\nrepo1-retention-full=2\n",
		"start-fast=y\n", "process-max=2\n", "log-level-console=off\n", "log-level-file=off\n",
		"lock-path=/var/lib/drplane/backup/lock\n",
		"[pg-main_1]\npg1-path=/var/lib/postgresql/15/main\npg1-port=5432\npg1-socket-path=/var/run/postgresql\npg1-user=postgres\n",
	} {
		require.Contains(t, conf, line)
	}
	require.True(t, strings.HasPrefix(conf, "# Written by drplane"))

	require.Equal(t, "/usr/bin/pgbackrest --config=/var/lib/drplane/backup/pgbackrest.conf --stanza=pg-main_1 archive-push %p", e.ArchiveCommand())
	require.Equal(t, `/usr/bin/pgbackrest --config=/var/lib/drplane/backup/pgbackrest.conf --stanza=pg-main_1 archive-get %f "%p"`, e.RestoreCommand())
}

func TestParseBackupKind(t *testing.T) {
	for _, k := range []BackupKind{Full, Diff, Incr} {
		got, err := ParseBackupKind(k.String())
		require.NoError(t, err)
		require.Equal(t, k, got)
	}
	_, err := ParseBackupKind("FULL")
	require.ErrorIs(t, err, ErrInvalid)
	require.Equal(t, "BackupKind(0)", BackupKind(0).String())
}

// TestPgBackRest_BackupRefusesUnknownKind refuses a kind before running
// anything (the engine has no binary to run).
func TestPgBackRest_BackupRefusesUnknownKind(t *testing.T) {
	e := &PgBackRest{logger: hclog.NewNullLogger()}
	_, err := e.Backup(t.Context(), BackupKind(9), nil)
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, "backup kind BackupKind(9)")
}
