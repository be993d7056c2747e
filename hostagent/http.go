package hostagent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/hostmetrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// setupHTTP creates the HTTPS endpoint (mutual TLS, like every port):
// GET /v1/role/<service> for load balancers, GET /v1/health and GET
// /metrics; and with a check_endpoint block the same read-only
// endpoints without client authentication, plain or server-only TLS.
func (a *Agent) setupHTTP() {
	readOnly := a.readOnlyHandler()
	a.httpServer = &http.Server{Handler: readOnly, TLSConfig: a.tls.ServerConfig(), ReadHeaderTimeout: 5 * time.Second}
	if c := a.config.CheckEndpoint; c != nil {
		a.checkServer = &http.Server{Handler: readOnly, ReadHeaderTimeout: 5 * time.Second}
		if c.TLS == config.CheckTLSServer {
			// The agent's own certificate, and no client certificate asked.
			a.checkServer.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{a.tls.Certificate}}
		}
	}
}

// readOnlyHandler serves what may be read without changing anything, and
// nothing else: the check endpoint shares it with the mutual-TLS port.
func (a *Agent) readOnlyHandler() http.Handler {
	mux := http.NewServeMux()
	reg := prometheus.NewRegistry()
	reg.MustRegister(&agentCollector{a: a}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/role/{service}", a.handleRole)
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"host_id": a.config.HostID, "site": a.config.Site, "epoch": a.epoch.current()})
	})
	return mux
}

// handleRole answers 200 only where the service is primary here with a
// valid lease (Patroni's /primary): a load balancer sends writes only to
// the host that may accept them.
func (a *Agent) handleRole(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.services[r.PathValue("service")]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "service not declared on this host"})
		return
	}
	st, err := svc.status(r.Context())
	role := string(st.Role)
	if err != nil {
		role = "unknown"
	}
	now := a.clock.Now()
	valid, remaining, _, _ := a.lease.snapshot(now)
	code := http.StatusServiceUnavailable
	if err == nil && st.Role == driver.RolePrimary && valid {
		code = http.StatusOK
	}
	writeJSON(w, code, map[string]any{
		"service":          svc.cfg.Name,
		"role":             role,
		"epoch":            a.epoch.current(),
		"lease_valid":      valid,
		"lease_expires_at": now.Add(remaining).UTC().Format(time.RFC3339Nano),
	})
}

// agentDescs are the agent's own metrics: what its probe answer says.
var agentDescs = hostmetrics.NewDescs("drplane_agent_")

// agentCollector reads the agent's state at each scrape, as a probe
// answer (without a probe's renewal).
type agentCollector struct{ a *Agent }

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) { agentDescs.Describe(ch) }

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsTimeout)
	defer cancel()
	agentDescs.Collect(ch, c.a.config.HostID, c.a.config.Site, c.a.probeResponse(ctx))
}

// metricsTimeout bounds a scrape's look at the services.
const metricsTimeout = 5 * time.Second

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
