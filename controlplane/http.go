package controlplane

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// setupHTTP creates the HTTPS endpoint (mutual TLS like every port) that
// health checkers and Prometheus use: GET /v1/health and GET /metrics.
func (s *Server) setupHTTP() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", s.handleHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.newMetricsRegistry(), promhttp.HandlerOpts{}))
	s.httpServer = &http.Server{
		Handler:           mux,
		TLSConfig:         s.tls.ServerConfig(),
		ReadHeaderTimeout: 5 * time.Second,
	}
}

// handleHealth answers 200 while this server knows a leader, 503 otherwise.
func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	info := s.localNodeInfo()
	code := http.StatusOK
	if info.LeaderId == "" {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"node_id":   info.Id,
		"site":      info.Site,
		"state":     info.State,
		"leader_id": info.LeaderId,
	})
}
