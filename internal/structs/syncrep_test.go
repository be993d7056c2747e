package structs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseSyncStandbys(t *testing.T) {
	cases := []struct {
		arg     string
		names   []string
		setting string
		err     string
	}{
		{arg: "", setting: ""},
		{arg: "*", names: []string{"*"}, setting: "*"},
		{arg: "db-2", names: []string{"db-2"}, setting: `FIRST 1 ("db-2")`},
		{arg: "db-2,db_3.x", names: []string{"db-2", "db_3.x"}, setting: `FIRST 2 ("db-2", "db_3.x")`},
		{arg: "db-2,db-2", err: `standby application name "db-2" is named twice`},
		{arg: `db"2`, err: `invalid standby application name "db\"2"`},
		{arg: "db-2,", err: `invalid standby application name ""`},
		{arg: "db-2,*", err: `invalid standby application name "*"`},
	}
	for _, tc := range cases {
		t.Run(tc.arg, func(t *testing.T) {
			names, err := ParseSyncStandbys(tc.arg)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.names, names)
			require.Equal(t, tc.setting, SyncStandbyNames(names))
		})
	}
}
