package hostagent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBootWindow_NeverOutlivesTheLastGrantedLease: a restarted agent waits
// for a leader at most until the end of the lease a leader last granted,
// so an adopted primary cannot outlive what the leader counted on when it
// promoted another site (invariant 4).
func TestBootWindow_NeverOutlivesTheLastGrantedLease(t *testing.T) {
	now := time.Now()
	ttl := 3 * time.Second
	cases := []struct {
		name    string
		file    string // "" writes none
		until   time.Time
		want    time.Duration
		wantErr bool
	}{
		{name: "never granted: a full lease_ttl", want: ttl},
		{name: "granted lease still runs: until its end", until: now.Add(time.Second), want: time.Second},
		{name: "granted lease lapsed: none", until: now.Add(-time.Minute), want: 0},
		{name: "granted further than lease_ttl: lease_ttl", until: now.Add(time.Hour), want: ttl},
		{name: "unreadable record: an error", file: "garbage", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			switch {
			case tc.file != "":
				require.NoError(t, os.WriteFile(filepath.Join(dir, leaseFileName), []byte(tc.file), 0o600))
			case !tc.until.IsZero():
				require.NoError(t, writeLeaseUntil(newDataDirWriter(dir, nil), tc.until))
			}
			got, err := bootWindow(dir, now, ttl)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.want.Seconds(), got.Seconds(), 0.001)
		})
	}
}
