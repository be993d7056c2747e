package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/devenv"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// prometheus is a real Prometheus (Debian's package) scraping a drplane
// dev deployment with deploy/prometheus's alert rules.
type prometheus struct {
	url string
}

// startPrometheus runs Prometheus against the servers and agents of the
// drplane dev deployment in dir, scraping every second with the monitor
// certificate drplane dev made, and loading deploy/prometheus/alerts.yml.
// It skips without Prometheus, except in CI.
func startPrometheus(t *testing.T, dir string) *prometheus {
	t.Helper()
	bin := testutil.RequireProgram(t, "prometheus", "prometheus")
	b, err := os.ReadFile(filepath.Join(dir, "dev.json"))
	require.NoError(t, err)
	var info devenv.Info
	require.NoError(t, json.Unmarshal(b, &info))
	var servers, agents []string
	for _, s := range info.Servers {
		servers = append(servers, strconv.Quote(s.HTTP))
	}
	for _, h := range info.Hosts {
		agents = append(agents, strconv.Quote(h.HTTP))
	}
	rules, err := filepath.Abs("../deploy/prometheus/alerts.yml")
	require.NoError(t, err)
	tls := func(role string) string {
		return fmt.Sprintf(`{ca_file: %q, cert_file: %q, key_file: %q, server_name: %q}`, filepath.Join(dir, "tls", "ca.pem"),
			filepath.Join(dir, "tls", "prometheus.pem"), filepath.Join(dir, "tls", "prometheus-key.pem"), role+".drplane")
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - {job_name: drplane-servers, scheme: https, tls_config: %s, static_configs: [{targets: [%s]}]}
  - {job_name: drplane-agents, scheme: https, tls_config: %s, static_configs: [{targets: [%s]}]}
`, rules, tls("server"), strings.Join(servers, ", "), tls("agent"), strings.Join(agents, ", "))
	pdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(pdir, "prometheus.yml"), []byte(cfg), 0o600))
	ports, err := devcluster.FreePorts(1)
	require.NoError(t, err)
	listen := fmt.Sprintf("127.0.0.1:%d", ports[0])
	startLogged(t, exec.Command(bin, "--config.file="+filepath.Join(pdir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(pdir, "data"),
		"--web.listen-address="+listen), filepath.Join(pdir, "prometheus.log"))
	return &prometheus{url: "http://" + listen}
}

// query runs an instant PromQL query and returns its vector's samples:
// each series' labels (as "k=v,..." sorted by Prometheus) and value.
func (p *prometheus) query(ctx context.Context, q string) (map[string]float64, error) {
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := p.get(ctx, "/api/v1/query?query="+url.QueryEscape(q), &body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, body.Error)
	}
	out := map[string]float64{}
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", q, r.Value[1], err)
		}
		var labels []string
		for k, val := range r.Metric {
			labels = append(labels, k+"="+val)
		}
		slices.Sort(labels)
		out[strings.Join(labels, ",")] = v
	}
	return out, nil
}

// get decodes the JSON answer of Prometheus's API at path into v.
func (p *prometheus) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// rules lists the loaded alerting rules and their health.
func (p *prometheus) rules(ctx context.Context) (map[string]string, error) {
	var body struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
					Error  string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := p.get(ctx, "/api/v1/rules?type=alert", &body); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range body.Data.Groups {
		for _, r := range g.Rules {
			out[r.Name] = r.Health + r.Error
		}
	}
	return out, nil
}

// checkPrometheus: a real Prometheus scrapes every server and agent of
// the dev deployment in dir with the monitor certificate; one server
// leads, the active site is primary, every agent reports an epoch, the
// leader probes every agent, and every alert rule evaluates without
// error and none fires on the healthy deployment.
func checkPrometheus(t *testing.T, dir string) {
	p := startPrometheus(t, dir)
	ctx := context.Background()
	want := map[string]float64{
		`count(up{job="drplane-servers"} == 1)`:                                           3,
		`count(up{job="drplane-agents"} == 1)`:                                            4,
		`sum(drplane_server_is_leader)`:                                                   1,
		`max(drplane_active_site{site="primary"})`:                                        1,
		`count(drplane_agent_epoch >= 1)`:                                                 4,
		`count(drplane_probe_up == 1)`:                                                    4,
		`max(drplane_host_service_role{host="app-1",service="sampleapp",role="primary"})`: 1,
		`max(drplane_host_service_role{host="app-2",service="sampleapp",role="stopped"})`: 1,
	}
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		for q, v := range want {
			got, err := p.query(ctx, q)
			if err != nil {
				return false, err
			}
			if len(got) != 1 {
				return false, fmt.Errorf("%s: %v", q, got)
			}
			for _, g := range got {
				if g != v {
					return false, fmt.Errorf("%s = %v, want %v", q, g, v)
				}
			}
		}
		return true, nil
	})
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		rules, err := p.rules(ctx)
		if err != nil {
			return false, err
		}
		for name, health := range rules {
			if health != "ok" {
				return false, fmt.Errorf("rule %s: %s", name, health)
			}
		}
		return len(rules) == 13, fmt.Errorf("%d alerting rules loaded: %v", len(rules), rules)
	})
	firing, err := p.query(ctx, `ALERTS{alertstate="firing"}`)
	require.NoError(t, err)
	require.Empty(t, firing, "no alert fires on a healthy deployment")
	series, err := p.query(ctx, `count({__name__=~"drplane_.+"})`)
	require.NoError(t, err)
	t.Logf("prometheus at %s: 7 targets up, 13 alert rules healthy, none firing, %v drplane series", p.url, series)
}
