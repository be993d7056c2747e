# drplane agent on db-2 (dr) of the example 2 + 2 + 1 deployment.
# Install at /etc/drplane/agent.hcl; deploy/systemd/drplane-agent.service
# runs it.
host_id  = "db-2"                          # the certificate's name: drplane tls cert create --agent --name db-2 --ip 10.0.2.10
site     = "dr"
data_dir = "/var/lib/drplane-agent"
listen   = "10.0.2.10:7500"
http     = "10.0.2.10:7501"                      # /v1/role/<service>, /v1/health, /metrics (mutual TLS)
servers  = ["10.0.1.5:7400", "10.0.1.6:7400", "10.0.2.5:7400", "10.0.2.6:7400", "10.0.3.5:7400"]
tls {
  ca_file   = "/etc/drplane/tls/ca.pem"
  cert_file = "/etc/drplane/tls/db-2.pem"
  key_file  = "/etc/drplane/tls/db-2-key.pem"
}
# The same read-only endpoints for load balancers that cannot present a
# client certificate (deploy/haproxy/haproxy.cfg).
check_endpoint {
  listen = "10.0.2.10:7502"
  tls    = "none"
}

service "postgres" {
  driver   = "postgres"
  data_dir = "/var/lib/postgresql/15/main"
  port     = 5432
  bin_dir  = "/usr/lib/postgresql/15/bin"
  run_as   = "postgres"
  drill { port = 5433 }
}

# Backups with point-in-time recovery into a repository both database
# hosts reach (shared storage), so the stanza stays one history across
# failovers.
backup "pg" {
  engine       = "pgbackrest"
  service      = "postgres"
  repository   = "/srv/backup/pgbackrest"
  full_every   = "24h"
  incr_every   = "15m"
  keep_full    = 7
  verify_every = "24h"
}
