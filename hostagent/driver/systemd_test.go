package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeSystemctl is a systemctl that keeps each unit's state in a file
// named for the unit in its state dir and records its argv in "calls".
// A unit with a ".broken" file fails to start; "hang.service" never
// answers.
const fakeSystemctl = `#!/bin/sh
state=%s
echo "$*" >> "$state/calls"
verb=; unit=
for a in "$@"; do
	case "$a" in
	--*) ;;
	*) if [ -z "$verb" ]; then verb=$a; else unit=$a; fi ;;
	esac
done
[ "$unit" = hang.service ] && exec sleep 1000
case "$verb" in
start)
	if [ -e "$state/$unit.broken" ]; then
		echo "Job for $unit failed because the control process exited with error code." >&2
		exit 1
	fi
	echo active > "$state/$unit" ;;
stop)
	if [ ! -e "$state/$unit" ]; then
		echo "Failed to stop $unit: Unit $unit not loaded." >&2
		exit 5
	fi
	echo inactive > "$state/$unit" ;;
is-active)
	s=unknown
	[ -e "$state/$unit" ] && s=$(cat "$state/$unit")
	echo "$s"
	[ "$s" = active ] ;;
*)
	echo "Unknown command verb $verb." >&2
	exit 1 ;;
esac
`

// newFakeSystemctl writes a fake systemctl into a temp dir and returns
// its path and its state dir.
func newFakeSystemctl(t *testing.T) (path, state string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "systemctl")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(fakeSystemctl, dir)), 0o755))
	return path, dir
}

func setUnitState(t *testing.T, state, unit, word string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(state, unit), []byte(word+"\n"), 0o644))
}

func TestSystemd_StartStopStatus(t *testing.T) {
	t.Parallel()
	systemctl, state := newFakeSystemctl(t)
	s := NewSystemd(SystemdConfig{Name: "web", Unit: "nginx", Systemctl: systemctl}, procTestLogger(t))
	ctx := context.Background()

	st, err := s.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, Status{Role: RoleStopped, Message: "nginx.service is unknown"}, st)

	require.NoError(t, s.Start(ctx, procNoProgress))
	st, err = s.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, Status{Role: RolePrimary, Message: "nginx.service is active"}, st)
	require.NoError(t, s.Start(ctx, procNoProgress), "start on an active unit")

	require.NoError(t, s.Stop(ctx, procNoProgress))
	st, err = s.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, Status{Role: RoleStopped, Message: "nginx.service is inactive"}, st, "a non-zero is-active is an answer")
	require.NoError(t, s.Stop(ctx, procNoProgress), "stop on an inactive unit")

	calls, err := os.ReadFile(filepath.Join(state, "calls"))
	require.NoError(t, err)
	require.Equal(t, strings.Join([]string{
		"--no-ask-password is-active -- nginx.service",
		"--no-ask-password start -- nginx.service",
		"--no-ask-password is-active -- nginx.service",
		"--no-ask-password start -- nginx.service",
		"--no-ask-password stop -- nginx.service",
		"--no-ask-password is-active -- nginx.service",
		"--no-ask-password stop -- nginx.service",
	}, "\n")+"\n", string(calls))
}

func TestSystemd_Roles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		word string
		role Role
	}{
		{"active", RolePrimary},
		{"reloading", RolePrimary},
		{"activating", RolePrimary},
		{"deactivating", RolePrimary},
		{"inactive", RoleStopped},
		{"failed", RoleStopped},
		{"maintenance", RoleStopped},
	}
	systemctl, state := newFakeSystemctl(t)
	for _, tc := range cases {
		t.Run(tc.word, func(t *testing.T) {
			unit := tc.word + ".service"
			setUnitState(t, state, unit, tc.word)
			s := NewSystemd(SystemdConfig{Name: "svc", Unit: unit, Systemctl: systemctl}, procTestLogger(t))
			st, err := s.Status(context.Background())
			require.NoError(t, err)
			require.Equal(t, tc.role, st.Role)
			require.Equal(t, unit+" is "+tc.word, st.Message)
		})
	}
}

func TestSystemd_Errors(t *testing.T) {
	t.Parallel()
	systemctl, state := newFakeSystemctl(t)
	ctx := context.Background()

	require.NoError(t, os.WriteFile(filepath.Join(state, "broken.service.broken"), nil, 0o644))
	s := NewSystemd(SystemdConfig{Name: "b", Unit: "broken", Systemctl: systemctl}, procTestLogger(t))
	err := s.Start(ctx, procNoProgress)
	require.ErrorContains(t, err, "start b: systemctl start broken.service: exit status 1: Job for broken.service failed")

	// Stopping a unit systemd does not know fails, but it is not running.
	s = NewSystemd(SystemdConfig{Name: "g", Unit: "gone.service", Systemctl: systemctl}, procTestLogger(t))
	require.NoError(t, s.Stop(ctx, procNoProgress))

	s = NewSystemd(SystemdConfig{Name: "h", Unit: "hang", Systemctl: systemctl, Timeout: 100 * time.Millisecond}, procTestLogger(t))
	start := time.Now()
	err = s.Start(ctx, procNoProgress)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "no answer within 100ms")
	_, err = s.Status(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)

	s = NewSystemd(SystemdConfig{Name: "m", Unit: "x", Systemctl: filepath.Join(t.TempDir(), "missing")}, procTestLogger(t))
	_, err = s.Status(ctx)
	require.ErrorContains(t, err, "status of m: systemctl is-active x.service")
}

func TestSystemd_SystemctlOnPath(t *testing.T) {
	systemctl, state := newFakeSystemctl(t)
	t.Setenv("PATH", filepath.Dir(systemctl)+string(os.PathListSeparator)+os.Getenv("PATH"))
	s := NewSystemd(SystemdConfig{Name: "web", Unit: "nginx.service"}, procTestLogger(t))
	require.NoError(t, s.Start(context.Background(), procNoProgress))
	require.FileExists(t, filepath.Join(state, "nginx.service"))
}

func TestSystemd_UnitNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		unit    string
		want    string
		wantErr bool
	}{
		{unit: "nginx", want: "nginx.service"},
		{unit: "nginx.service", want: "nginx.service"},
		{unit: "app@2.service", want: "app@2.service"},
		{unit: "app@2", want: "app@2.service"},
		{unit: "backup.timer", want: "backup.timer"},
		{unit: "srv-data.mount", want: "srv-data.mount"},
		{unit: "my.app", want: "my.app.service"},
		{unit: "a_b:c", want: "a_b:c.service"},
		{unit: "", wantErr: true},
		{unit: "--now", wantErr: true},
		{unit: "-H", wantErr: true},
		{unit: ".service", wantErr: true},
		{unit: "nginx; reboot", wantErr: true},
		{unit: "nginx service", wantErr: true},
		{unit: "a/b", wantErr: true},
		{unit: "ünit", wantErr: true},
		{unit: "nginx\n", wantErr: true},
		{unit: strings.Repeat("a", 250), wantErr: true},
	}
	systemctl, state := newFakeSystemctl(t)
	for _, tc := range cases {
		t.Run(tc.unit, func(t *testing.T) {
			got, err := normalizeUnit(tc.unit)
			if !tc.wantErr {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return
			}
			require.ErrorIs(t, err, ErrInvalidUnit)
			s := NewSystemd(SystemdConfig{Name: "x", Unit: tc.unit, Systemctl: systemctl}, procTestLogger(t))
			require.ErrorIs(t, s.Start(context.Background(), procNoProgress), ErrInvalidUnit)
			require.ErrorIs(t, s.Stop(context.Background(), procNoProgress), ErrInvalidUnit)
			_, err = s.Status(context.Background())
			require.ErrorIs(t, err, ErrInvalidUnit)
		})
	}
	require.NoFileExists(t, filepath.Join(state, "calls"), "an invalid unit never reaches systemctl")
}
