package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeLookPath finds exactly the programs in have.
func fakeLookPath(have ...string) func(string) (string, error) {
	return func(name string) (string, error) {
		for _, h := range have {
			if h == name {
				return name, nil
			}
		}
		return "", errors.New("not found")
	}
}

func TestAgentConfig_Programs(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	file := filepath.Join(dir, "agent.hcl")
	src := exampleAgentConfig + `
service "web" {
  driver = "systemd"
}
snapshot "offsite" {
  paths         = ["/opt/app/state"]
  engine        = "restic"
  repository    = "/srv/restic"
  password_file = "pw"
}
`
	cfg, err := ParseAgentConfig([]byte(src), file)
	require.NoError(t, err)
	pg := func(p string) string { return "/usr/lib/postgresql/15/bin/" + p }
	everything := []string{"rsync", "restic", "systemctl", "/opt/app/engine", "/opt/app/bin/halt",
		pg("pg_ctl"), pg("postgres"), pg("pg_controldata"), pg("pg_rewind"), pg("pg_basebackup")}
	require.NoError(t, cfg.Programs.Check(fakeLookPath(everything...)))

	tests := []struct {
		name    string
		missing string
		want    string
	}{
		{"rsync for a sync block", "rsync",
			file + `:22:1: sync "state" runs rsync, which is not installed (not found in PATH); install it with ` + "`apt-get install rsync`"},
		{"restic for a restic engine", "restic",
			`snapshot "offsite" (engine restic) runs restic, which is not installed (not found in PATH); install it with ` + "`apt-get install restic`"},
		{"postgres bin_dir", pg("pg_rewind"),
			file + `:13:14: service "postgres" (bin_dir) runs /usr/lib/postgresql/15/bin/pg_rewind, which is not installed (no executable file at that path); install it with ` + "`apt-get install postgresql-15`"},
		{"process command", "/opt/app/engine",
			file + `:18:16: service "engine" runs /opt/app/engine, which is not installed (no executable file at that path); install it or correct the path`},
		{"hook command", "/opt/app/bin/halt", `hook "circuit-breaker-trip" runs /opt/app/bin/halt`},
		{"systemctl for a systemd service", "systemctl", `service "web" (driver systemd) runs systemctl`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var have []string
			for _, p := range everything {
				if p != tc.missing {
					have = append(have, p)
				}
			}
			err := cfg.Programs.Check(fakeLookPath(have...))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Equal(t, 1, strings.Count(err.Error(), "\n")+1, "only the missing program is named: %v", err)
		})
	}
}
