package driver

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseLSN(t *testing.T) {
	cases := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0/3000028", 0x3000028, true},
		{"0/0", 0, true},
		{"1/0", 1 << 32, true},
		{"FFFFFFFF/FFFFFFFF", 1<<64 - 1, true},
		{"a/b", 0xa<<32 | 0xb, true},
		{"", 0, false},
		{"3000028", 0, false},
		{"0/", 0, false},
		{"/1", 0, false},
		{"1/2/3", 0, false},
		{"123456789/0", 0, false},
		{"0/3000028 ", 0, false},
		{"0/30G0028", 0, false},
		{"-1/0", 0, false},
		{"0/3000028;rm", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLSN(tc.in)
			if !tc.ok {
				require.ErrorIs(t, err, ErrInvalidLSN)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestParseControlData reads the fields FinalPosition needs from
// pg_controldata's C-locale output, whose names hold spaces and whose
// values are aligned with blanks.
func TestParseControlData(t *testing.T) {
	out := `pg_control version number:            1300
Database cluster state:               shut down
Latest checkpoint location:           0/3000028
Latest checkpoint's REDO location:    0/3000028
Time of latest checkpoint:            Tue 01 Dec 2026 14:04:18 UTC
`
	f := parseControlData(out)
	require.Equal(t, "shut down", f["Database cluster state"])
	require.Equal(t, "0/3000028", f["Latest checkpoint location"])
	require.Equal(t, "Tue 01 Dec 2026 14:04:18 UTC", f["Time of latest checkpoint"], "only the first colon separates")
}
