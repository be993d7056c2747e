// Package hostmetrics turns what an agent reports of its host (its probe
// answer) into Prometheus metrics. The agent exports its own answer at
// its /metrics (prefix drplane_agent_), and the leader the latest answer
// of every agent at its /metrics (prefix drplane_); one mapping serves
// both, so the two never disagree on names, labels or units.
package hostmetrics

import (
	"regexp"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// Roles is the service role state set: a service_role metric has one
// series per role, 1 for the current one.
var Roles = []string{structs.RolePrimary, structs.RoleStandby, structs.RoleStopped, structs.RoleFenced, structs.RoleUnknown}

// Descs are the metric descriptions under one prefix.
type Descs struct {
	epoch, leaseValid, leaseRemaining, fenced                   *prometheus.Desc
	role, healthy, lagSeconds, lagBytes                         *prometheus.Desc
	syncLast                                                    *prometheus.Desc
	backupNewest, backupArchiving, backupOK, backupAt, backupWn *prometheus.Desc
}

// NewDescs describes the metrics named prefix + name, e.g. "drplane_agent_".
func NewDescs(prefix string) *Descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prefix+name, help, append([]string{"host", "site"}, labels...), nil)
	}
	return &Descs{
		epoch:           d("epoch", "The highest epoch the agent has seen."),
		leaseValid:      d("lease_valid", "1 while the agent holds a valid lease: it may run services as primary."),
		leaseRemaining:  d("lease_remaining_seconds", "Seconds left on the agent's lease (0 when lapsed)."),
		fenced:          d("fenced", "1 when the agent has fenced a service."),
		role:            d("service_role", "The role of a declared service, as a state set: 1 for the current role.", "service", "role"),
		healthy:         d("service_healthy", "1 when a declared service runs and passes its health check.", "service"),
		lagSeconds:      d("replication_lag_seconds", "A standby's replay lag behind its primary.", "service"),
		lagBytes:        d("replication_lag_bytes", "A standby's replay position behind its primary's, in bytes.", "service"),
		syncLast:        d("sync_last_success_timestamp_seconds", "When a sync block's last successful rsync ended.", "sync"),
		backupNewest:    d("backup_newest_timestamp_seconds", "When the newest backup of a backup block ended.", "backup"),
		backupArchiving: d("backup_archiving", "1 where the backup block archives WAL (the service's primary).", "backup"),
		backupOK:        d("backup_verification_ok", "1 when the backup block's last verification restored, started and answered; 0 when it failed.", "backup"),
		backupAt:        d("backup_verification_timestamp_seconds", "When the backup block was last verified.", "backup"),
		backupWn:        d("backup_warnings", "The warnings the backup block reports (stale backup, failed or overdue verification, ...).", "backup"),
	}
}

// Describe sends every description.
func (d *Descs) Describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{d.epoch, d.leaseValid, d.leaseRemaining, d.fenced, d.role, d.healthy, d.lagSeconds, d.lagBytes,
		d.syncLast, d.backupNewest, d.backupArchiving, d.backupOK, d.backupAt, d.backupWn} {
		ch <- desc
	}
}

// Collect sends the metrics of one probe answer from host at site.
func (d *Descs) Collect(ch chan<- prometheus.Metric, host, site string, resp *pb.ProbeResponse) {
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append([]string{host, site}, labels...)...)
	}
	gauge(d.epoch, float64(resp.GetEpoch()))
	gauge(d.leaseValid, B2F(resp.GetLease().GetValid()))
	gauge(d.leaseRemaining, float64(resp.GetLease().GetRemainingMs())/1000)
	gauge(d.fenced, B2F(resp.GetFenced()))
	for _, svc := range resp.GetServices() {
		role := structs.RoleName(svc.GetRole())
		for _, r := range Roles {
			gauge(d.role, B2F(r == role), svc.GetName(), r)
		}
		gauge(d.healthy, B2F(svc.GetHealthy()), svc.GetName())
		if rep := svc.GetReplication(); rep != nil && role == structs.RoleStandby {
			gauge(d.lagSeconds, float64(rep.GetLagMs())/1000, svc.GetName())
			gauge(d.lagBytes, float64(rep.GetLagBytes()), svc.GetName())
		}
	}
	for _, s := range resp.GetSyncs() {
		if s.GetLastSuccessAt() != nil {
			gauge(d.syncLast, Seconds(s.GetLastSuccessAt().AsTime().UnixMilli()), s.GetName())
		}
	}
	for _, b := range resp.GetBackups() {
		gauge(d.backupArchiving, B2F(b.GetArchiving()), b.GetName())
		gauge(d.backupWn, float64(len(b.GetWarnings())), b.GetName())
		if n := b.GetNewest(); n.GetStoppedAt() != nil {
			gauge(d.backupNewest, Seconds(n.GetStoppedAt().AsTime().UnixMilli()), b.GetName())
		}
		if lv := b.GetLastVerification(); lv != nil {
			gauge(d.backupOK, B2F(lv.GetOk()), b.GetName())
			if lv.GetAt() != nil {
				gauge(d.backupAt, Seconds(lv.GetAt().AsTime().UnixMilli()), b.GetName())
			}
		}
	}
}

// Names lists the metric names the descriptions under prefix make.
func Names(prefix string) []string {
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		NewDescs(prefix).Describe(ch)
		close(ch)
	}()
	var out []string
	for d := range ch {
		out = append(out, Name(d))
	}
	return out
}

// fqNameRE finds the name in a Desc's String(), which is all that
// client_golang shows of it.
var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

// Name is a description's metric name.
func Name(d *prometheus.Desc) string {
	if m := fqNameRE.FindStringSubmatch(d.String()); m != nil {
		return m[1]
	}
	return ""
}

// B2F is a boolean as a metric value.
func B2F(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Seconds is a Unix time in milliseconds as seconds, a timestamp
// metric's unit.
func Seconds(unixMilli int64) float64 { return float64(unixMilli) / 1000 }
