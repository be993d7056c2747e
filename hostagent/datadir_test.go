package hostagent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

func TestNamedDir(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "services")
	dir, err := namedDir(parent, "postgres")
	require.NoError(t, err)
	require.Equal(t, filepath.Join(parent, "postgres"), dir)
	for _, name := range []string{"", ".", "..", "../../../../../x/escape", "a/b", "/etc", "ünï☃"} {
		_, err := namedDir(parent, name)
		require.Error(t, err, "%q", name)
	}
}

// A config built in code bypasses the loader's name check: the agent
// refuses the name itself before it creates anything, so no service name
// reaches a directory outside data_dir.
func TestAgent_New_RefusesNameOutsideDataDir(t *testing.T) {
	root, tlsDir := t.TempDir(), t.TempDir()
	require.NoError(t, tlsutil.CreateCA(tlsDir))
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: tlsDir, Name: "db-1", Role: tlsutil.RoleAgent})
	require.NoError(t, err)
	m, err := tlsutil.Load(filepath.Join(tlsDir, "ca.pem"), filepath.Join(tlsDir, "db-1.pem"), filepath.Join(tlsDir, "db-1-key.pem"))
	require.NoError(t, err)

	dataDir, escape := filepath.Join(root, "data"), filepath.Join(root, "x", "escape")
	rel, err := filepath.Rel(filepath.Join(dataDir, "services"), escape)
	require.NoError(t, err)
	cfg := &config.AgentConfig{HostID: "db-1", Site: "primary", DataDir: dataDir, Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0",
		Servers: []string{"127.0.0.1:1"}, LeaseTTL: time.Hour, LogLevel: "debug",
		Services: []config.ServiceConfig{{Name: rel, Driver: config.DriverProcess, Command: []string{"/bin/sleep", "60"}}}}
	_, err = New(cfg, Deps{TLS: m, NewDriver: func(config.ServiceConfig, string, hclog.Logger) (driver.Driver, error) {
		return driver.NewFake(driver.RoleStopped), nil
	}})
	require.ErrorContains(t, err, `service "../../x/escape": a name is one path element`)
	_, err = os.Stat(escape)
	require.ErrorIs(t, err, os.ErrNotExist, "nothing is created outside data_dir")
}

// A step's target follows the name rule the config checked: a target
// outside it is refused as malformed, naming the rule.
func TestAgent_Step_TargetOutsideNameRule(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	ta.observe(1)
	_, _, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "stop:x@db-1", Epoch: 1, Action: pb.StepAction_STEP_ACTION_STOP, Target: "ünï☃"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), `malformed step: target "ünï☃": 'ü', 'ï', '☃' are not allowed in a name; expected 1 to 63`)
}

// TestAddDirMode: the bits asked for are added, whatever the umask, and
// none is ever taken away.
func TestAddDirMode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing os.FileMode // 0: missing
		perm     os.FileMode
		want     os.FileMode
	}{
		{"missing", 0, 0o711, 0o711},
		{"private", 0o700, 0o001, 0o701},
		{"readable stays readable", 0o755, 0o001, 0o755},
		{"made for a process copy", 0o700, 0o711, 0o711},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			if tc.existing != 0 {
				require.NoError(t, os.Mkdir(dir, tc.existing))
				require.NoError(t, os.Chmod(dir, tc.existing))
			}
			require.NoError(t, addDirMode(dir, tc.perm))
			st, err := os.Stat(dir)
			require.NoError(t, err)
			require.Equal(t, tc.want, st.Mode().Perm())
		})
	}
}
