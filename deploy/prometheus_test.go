// Package deploy holds the files an SRE installs drplane with; its tests
// check them with the tools that read them.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/drplane/drplane/controlplane"
	"github.com/drplane/drplane/internal/hostmetrics"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/stretchr/testify/require"
)

// requirePromtool skips without promtool (package prometheus), except in
// CI, where scripts/prerequisites installs it.
func requirePromtool(t *testing.T) string {
	t.Helper()
	return testutil.RequireProgram(t, "promtool", "prometheus")
}

func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(requirePromtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// TestPrometheus_AlertRules: the rules load, and their unit tests (each
// alert fires on its series and stays silent on healthy ones) pass.
func TestPrometheus_AlertRules(t *testing.T) {
	require.Contains(t, promtool(t, "prometheus", "check", "rules", "alerts.yml"), "SUCCESS")
	require.Contains(t, promtool(t, "prometheus", "test", "rules", "alerts_test.yml"), "SUCCESS")
}

// TestPrometheus_ScrapeConfig: the example scrape configuration loads,
// with its certificate files made by `drplane tls` for a monitor.
func TestPrometheus_ScrapeConfig(t *testing.T) {
	requirePromtool(t)
	dir := t.TempDir()
	require.NoError(t, tlsutil.CreateCA(dir))
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: dir, Name: "prometheus", Role: tlsutil.RoleMonitor})
	require.NoError(t, err)
	rules, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o600))
	cfg, err := os.ReadFile(filepath.Join("prometheus", "prometheus.yml"))
	require.NoError(t, err)
	require.Contains(t, string(cfg), "/etc/prometheus/drplane/")
	local := strings.ReplaceAll(string(cfg), "/etc/prometheus/drplane/", dir+"/")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(local), 0o600))
	out := promtool(t, dir, "check", "config", "prometheus.yml")
	require.Contains(t, out, "SUCCESS: 1 rule files found")
}

// metricRE finds drplane metric names in rules and dashboards.
var metricRE = regexp.MustCompile(`\bdrplane_[A-Za-z_]+\b`)

// TestMetricNames_InRulesAndDashboardExist: every drplane metric the
// alert rules, their tests and the Grafana dashboard use is one drplane
// exports, so that a renamed metric cannot leave an alert that never
// fires.
func TestMetricNames_InRulesAndDashboardExist(t *testing.T) {
	known := append(controlplane.MetricNames(), hostmetrics.Names("drplane_agent_")...)
	for _, file := range []string{"prometheus/alerts.yml", "prometheus/alerts_test.yml", "grafana/drplane.json"} {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		names := metricRE.FindAllString(string(b), -1)
		require.NotEmpty(t, names, file)
		for _, name := range names {
			if strings.HasPrefix(name, "drplane_raft_") {
				continue // bridged from Raft's go-metrics as Raft names them
			}
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				base = strings.TrimSuffix(base, suffix)
			}
			require.True(t, slices.Contains(known, base), "%s uses %s, which drplane does not export; it exports %s", file, name, strings.Join(known, ", "))
		}
	}
}
