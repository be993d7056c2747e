package backup

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestParseInfo_Backups decodes what pgBackRest 2.45's info printed for a
// stanza with a full and an incremental backup.
func TestParseInfo_Backups(t *testing.T) {
	out, err := os.ReadFile("testdata/info.json")
	require.NoError(t, err)

	info, err := parseInfo(out, "exp")
	require.NoError(t, err)
	require.Len(t, info.Backups, 2)
	full, incr := info.Backups[0], info.Backups[1]

	require.Equal(t, Backup{
		Label: "20261203-194858F", Kind: Full,
		Start: time.Unix(1796327338, 0).UTC(), Stop: time.Unix(1796327339, 0).UTC(),
		DatabaseSize: 22992556, BackupSize: 22992556, RepositorySize: 22992556,
		WALStart: "000000010000000000000002", WALStop: "000000010000000000000003",
		LSNStart: "0/2000028", LSNStop: "0/3000050",
	}, full)
	require.Equal(t, Incr, incr.Kind)
	require.Equal(t, full.Label, incr.Prior)
	require.Equal(t, int64(1417482), incr.BackupSize)
	require.Equal(t, int64(23000748), incr.DatabaseSize)

	require.Equal(t, "000000010000000000000001", info.WALMin)
	require.Equal(t, "000000010000000000000005", info.WALMax)
	require.Equal(t, incr.Stop, info.RestorableUntil)
	require.Equal(t, full.Stop.Add(time.Second), info.RestorableFrom)
}

func TestParseInfo_Errors(t *testing.T) {
	missing, err := os.ReadFile("testdata/info-missing-stanza.json")
	require.NoError(t, err)
	cases := []struct {
		name   string
		out    string
		stanza string
		is     error
		msg    string
	}{
		{name: "missing stanza", out: string(missing), stanza: "nope", is: ErrNoStanza, msg: "missing stanza path"},
		{name: "other stanza", out: string(missing), stanza: "pg", msg: "not stanza pg alone"},
		{name: "not json", out: "WARN: something", stanza: "pg", msg: "decode info"},
		{name: "unknown kind", stanza: "pg", msg: `backup L: invalid: backup kind "weird"`,
			out: `[{"name":"pg","status":{"code":0},"backup":[{"label":"L","type":"weird"}]}]`},
		{name: "stanza status", stanza: "pg", msg: "stanza status 5: database mismatch",
			out: `[{"name":"pg","status":{"code":5,"message":"database mismatch"}}]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseInfo([]byte(tc.out), tc.stanza)
			require.ErrorContains(t, err, tc.msg)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
		})
	}
}

// TestParseInfo_NoBackup is a stanza without backups: empty, not an error.
func TestParseInfo_NoBackup(t *testing.T) {
	info, err := parseInfo([]byte(`[{"name":"pg","status":{"code":2,"message":"no valid backups"},"backup":[]}]`), "pg")
	require.NoError(t, err)
	require.Empty(t, info.Backups)
	require.True(t, info.RestorableUntil.IsZero())
}
