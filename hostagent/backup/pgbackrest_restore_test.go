package backup

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTargetArgs checks how a restore target is checked against the
// repository and turned into pgBackRest's options.
func TestTargetArgs(t *testing.T) {
	t0 := time.Date(2024, 1, 2, 3, 0, 0, 0, time.UTC)
	backups := []Backup{
		{Label: "F1", Kind: Full, Start: t0, Stop: t0.Add(10 * time.Second)},
		{Label: "F1_I2", Kind: Incr, Prior: "F1", Start: t0.Add(time.Hour), Stop: t0.Add(time.Hour + 5*time.Second)},
	}
	now := t0.Add(2 * time.Hour)
	cases := []struct {
		name    string
		target  RestoreTarget
		backups []Backup
		want    []string
		is      error
		msg     string
	}{
		{name: "latest", target: RestoreTarget{Latest: true}, backups: backups},
		{name: "label", target: RestoreTarget{Label: "F1"}, backups: backups, want: []string{"--set=F1"}},
		{name: "label as it left it", target: RestoreTarget{Label: "F1", Immediate: true}, backups: backups,
			want: []string{"--set=F1", "--type=immediate", "--target-action=promote"}},
		{name: "time after the incr", target: RestoreTarget{Time: t0.Add(90 * time.Minute)}, backups: backups,
			want: []string{"--set=F1_I2", "--type=time", "--target=2024-01-02 04:30:00+00", "--target-action=promote"}},
		{name: "time between", target: RestoreTarget{Time: t0.Add(30*time.Minute + 1500*time.Microsecond)}, backups: backups,
			want: []string{"--set=F1", "--type=time", "--target=2024-01-02 03:30:00.0015+00", "--target-action=promote"}},
		// The incr ended somewhere within its stop second: a target in it
		// starts from the full backup.
		{name: "time in the stop second", target: RestoreTarget{Time: t0.Add(time.Hour + 5*time.Second + 500*time.Millisecond)},
			backups: backups, want: []string{"--set=F1", "--type=time", "--target=2024-01-02 04:00:05.5+00", "--target-action=promote"}},
		{name: "unknown label", target: RestoreTarget{Label: "F9"}, backups: backups, is: ErrUnknownLabel,
			msg: `unknown backup label "F9": the repository holds F1, F1_I2`},
		{name: "time before the oldest", target: RestoreTarget{Time: t0.Add(5 * time.Second)}, backups: backups, is: ErrNoBackup,
			msg: "no backup ends before 2024-01-02T03:00:05Z; the oldest ends at 2024-01-02T03:00:10Z, so the earliest time to restore to is 2024-01-02T03:00:11Z"},
		{name: "time in the future", target: RestoreTarget{Time: now.Add(time.Minute)}, backups: backups, is: ErrInvalid, msg: "invalid: time 2024-01-02T05:01:00Z is in the future"},
		{name: "no backup", target: RestoreTarget{Latest: true}, is: ErrNoBackup, msg: "no backup in the repository"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.target.validate())
			got, err := targetArgs(tc.target, tc.backups, now)
			if tc.msg != "" {
				require.ErrorIs(t, err, tc.is)
				require.EqualError(t, err, tc.msg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestRestoreTarget_Validate(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name   string
		target RestoreTarget
		ok     bool
	}{
		{"latest", RestoreTarget{Latest: true}, true},
		{"label", RestoreTarget{Label: "F1"}, true},
		{"time", RestoreTarget{Time: now}, true},
		{"none", RestoreTarget{}, false},
		{"delta alone", RestoreTarget{Delta: true}, false},
		{"two", RestoreTarget{Label: "F1", Time: now}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.target.validate()
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}
