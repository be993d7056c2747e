# drplane agent on app-1 (primary) of the example 2 + 2 + 1 deployment.
# Install at /etc/drplane/agent.hcl; deploy/systemd/drplane-agent.service
# runs it.
host_id  = "app-1"                          # the certificate's name: drplane tls cert create --agent --name app-1 --ip 10.0.1.20
site     = "primary"
data_dir = "/var/lib/drplane-agent"
listen   = "10.0.1.20:7500"
http     = "10.0.1.20:7501"                      # /v1/role/<service>, /v1/health, /metrics (mutual TLS)
servers  = ["10.0.1.5:7400", "10.0.1.6:7400", "10.0.2.5:7400", "10.0.2.6:7400", "10.0.3.5:7400"]
tls {
  ca_file   = "/etc/drplane/tls/ca.pem"
  cert_file = "/etc/drplane/tls/app-1.pem"
  key_file  = "/etc/drplane/tls/app-1-key.pem"
}
# The same read-only endpoints for load balancers that cannot present a
# client certificate (deploy/haproxy/haproxy.cfg).
check_endpoint {
  listen = "10.0.1.20:7502"
  tls    = "none"
}

service "engine" {
  driver     = "process"
  command    = ["/opt/trading/bin/engine", "--config", "/opt/trading/etc/production.toml"]
  depends_on = ["postgres"]
  run_as     = "trading"
  health { http = "http://127.0.0.1:8004/health"  interval = "1s"  timeout = "500ms" }
}
service "gateway" {
  driver     = "systemd"
  unit       = "fix-gateway.service"
  depends_on = ["engine"]
}

# The engine's state files follow the active site by rsync and are
# snapshotted with it for restores.
sync "state" {
  paths    = ["/opt/trading/state"]
  interval = "10s"
}
snapshot "state" {
  paths       = ["/opt/trading/state"]
  every       = "6h"
  keep_within = "720h"
  keep_last   = 10
  service     = "engine"
}

hook "circuit-breaker-trip" {
  command = ["/opt/trading/bin/halt", "--reason", "dr"]
  timeout = "30s"
}
hook "reconcile-positions" {
  command = ["/opt/trading/bin/reconcile", "--against", "broker"]
  timeout = "5m"
}
