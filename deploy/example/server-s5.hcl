# drplane server s5 (witness) of the example 2 + 2 + 1 deployment: two servers at
# each data site and one at a witness site, so that any one site can be
# lost without losing the Raft quorum. Install at /etc/drplane/server.hcl;
# deploy/systemd/drplane-server.service runs it.
node_id          = "s5"                  # the certificate's name: drplane tls cert create --server --name s5 --ip 10.0.3.5
site             = "witness"
data_dir         = "/var/lib/drplane"
bind_addr        = "10.0.3.5"
ports { grpc = 7400  raft = 7401  http = 7402 }
bootstrap_expect = 5
retry_join       = ["10.0.1.5:7400", "10.0.1.6:7400", "10.0.2.5:7400", "10.0.2.6:7400"]
tls {
  ca_file   = "/etc/drplane/tls/ca.pem"
  cert_file = "/etc/drplane/tls/s5.pem"
  key_file  = "/etc/drplane/tls/s5-key.pem"
}

site "primary" { kind = "data"  active = true }
site "dr"      { kind = "data" }
site "witness" { kind = "witness" }

failover {
  automatic     = true          # the DR site takes over by itself when the primary site is lost
  max_data_loss = "30s"         # the RPO guard
  cooldown      = "1h"          # after an automatic failover, none other until `drplane ack`
  # With two data sites and no witness, a STONITH hook lets the surviving
  # site act on a quorum loss; deploy/example/fence-site.sh is an example.
  # stonith "primary" { command = ["/etc/drplane/fence-site.sh", "primary"]  timeout = "30s" }
  # stonith "dr"      { command = ["/etc/drplane/fence-site.sh", "dr"] }
}

# Zero data loss: each primary waits for a standby at the other site.
replication {
  mode          = "sync"
  degrade_after = "2s"
}

# The plans' default targets, and the DR programme's KPIs (drplane report):
# drills that pass, availability over a year and inside trading hours,
# and the mean time to recover from real incidents.
objectives {
  rto                        = "15m"
  rpo                        = "5m"
  drill_success_rate         = 0.95
  availability               = 0.995
  availability_trading_hours = 0.999
  mttr                       = "15m"
}

# Scheduled drills never run while a market is open: a slot inside these
# hours moves to the close (drplane schedule list shows where).
trading_hours "us-equities" {
  timezone = "America/New_York"
  days     = ["mon", "tue", "wed", "thu", "fri"]
  open     = "09:30"
  close    = "16:00"
}
schedule "restore-drill" { plan = "data-corruption"  drill = true  cron = "0 6 * * sat"  timezone = "America/New_York" }
schedule "site-drill"    { plan = "failover"  drill = true  every = "90d" }

plan "failover" {
  objectives { rto = "10m"  rpo = "0s" }
  step "trip-breaker" {
    action = "hook"  target = "circuit-breaker-trip"  site = "active"  before = "fence"
    timeout = "30s"  on_failure = "continue"
  }
  step "reconcile" { action = "hook"  target = "reconcile-positions"  site = "target"  after = "verify" }
}
plan "data-corruption" {
  kind = "restore"
  objectives { rto = "10m"  rpo = "5m" }
}
plan "live-system-failure" {
  kind = "restart"
  objectives { rto = "15m"  rpo = "1m" }
}

# The communication plan: on-call and risk at once, managers after 15
# minutes, executives after an hour, until someone runs `drplane ack`.
notify "oncall" {
  webhook     = "https://events.pagerduty.com/v2/enqueue"
  format      = "pagerduty"
  routing_key = "REPLACE-WITH-THE-INTEGRATION-KEY"
  events      = ["failover", "execution_failed", "step_failed", "quorum_lost", "replication_degraded", "backup_failed", "approval_waiting", "drill_deferred"]
}
notify "managers" {
  webhook     = "https://hooks.slack.com/services/REPLACE/WITH/WEBHOOK"
  format      = "slack"
  after       = "15m"
  events      = ["failover", "quorum_lost"]
}
notify "execs" {
  webhook     = "https://hooks.example.com/drplane/execs"
  secret_file = "/etc/drplane/notify-execs.secret"   # signs each body: X-Drplane-Signature-256
  after       = "1h"
  events      = ["failover"]
}
