package controlplane

import (
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	metrics "github.com/hashicorp/go-metrics/compat"
	promsink "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/drplane/drplane/internal/hostmetrics"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// Metrics (GET /metrics on every server). Every server reports its own
// view of Raft (drplane_server_*, and Raft's own drplane_raft_* bridged
// from go-metrics). The leader alone reports what only it knows or
// decides, so that a query needs no aggregation across servers: the
// probes of the agents (drplane_probe_*) and their latest answers
// (drplane_host_*, see package hostmetrics), replication as it manages
// it (drplane_replication_*), the automation controls, the RPO exposure,
// and the executions of the replicated state (drplane_executions_*,
// drplane_steps_*, drplane_drill_*), which a new leader reports on from
// the same record.

// metricsNamespace prefixes every metric drplane exports.
const metricsNamespace = "drplane"

// Execution and step durations are long: seconds to hours.
var durationBuckets = []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600}

// hostDescs describe what the agents report, as the leader last saw it.
var hostDescs = hostmetrics.NewDescs(hostPrefix)

const hostPrefix = metricsNamespace + "_host_"

var (
	raftSinkOnce     sync.Once
	raftSinkRegistry = prometheus.NewRegistry()
)

// bridgeRaftMetrics sends go-metrics, which hashicorp/raft emits into,
// to a Prometheus registry, once per process (go-metrics has one global
// sink): drplane_raft_commitTime and the like.
func bridgeRaftMetrics() {
	raftSinkOnce.Do(func() {
		sink, err := promsink.NewPrometheusSinkFrom(promsink.PrometheusOpts{Registerer: raftSinkRegistry, Expiration: time.Minute})
		if err != nil {
			return
		}
		cfg := metrics.DefaultConfig(metricsNamespace)
		cfg.EnableHostname, cfg.EnableHostnameLabel, cfg.EnableRuntimeMetrics = false, false, false
		_, _ = metrics.NewGlobal(cfg, sink)
	})
}

// newMetricsRegistry is this server's registry: its own collector, Go's
// and the process's.
func (s *Server) newMetricsRegistry() prometheus.Gatherer {
	bridgeRaftMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(&serverCollector{s: s}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return prometheus.Gatherers{reg, raftSinkRegistry}
}

// serverDescs are every description desc made, for Describe and
// MetricNames.
var serverDescs = map[string]*prometheus.Desc{}

func desc(name, help string, labels ...string) *prometheus.Desc {
	name = metricsNamespace + "_" + name
	d := prometheus.NewDesc(name, help, labels, nil)
	serverDescs[name] = d
	return d
}

// MetricNames lists the metrics a server exports besides Raft's
// (drplane_raft_*, bridged as Raft emits them) and the Go runtime's and
// process's: what alert rules and dashboards may use.
func MetricNames() []string {
	names := append(slices.Collect(maps.Keys(serverDescs)), hostmetrics.Names(hostPrefix)...)
	slices.Sort(names)
	return names
}

var (
	descIsLeader    = desc("server_is_leader", "1 on the server that leads the cluster.")
	descLeaderKnown = desc("server_leader_known", "1 while this server knows a leader (0: no quorum it can reach).")
	descRaftTerm    = desc("server_raft_term", "This server's Raft term.")
	descRaftIndex   = desc("server_raft_applied_index", "The last Raft log index this server applied.")
	descEpoch       = desc("epoch", "The cluster's epoch: bumped by every activation of a site.")
	descActiveSite  = desc("active_site", "1 for the site that is active.", "site")

	descAutoEnabled  = desc("automation_enabled", "1 when automatic failover is configured.")
	descAutoPaused   = desc("automation_paused", "1 while automatic failover is paused by an operator.")
	descAutoCooldown = desc("automation_cooldown", "1 while automatic failover waits for an acknowledgement after the last one (cooldown).")
	descExposure     = desc("rpo_exposure_seconds", "What a failover from the active site to the target would lose now, in seconds of acknowledged writes; absent while unknown.", "from", "to")
	descExposureKnwn = desc("rpo_exposure_known", "1 when the RPO exposure from the active site to the target can be bounded.", "from", "to")

	descProbeUp       = desc("probe_up", "1 when the agent answered the leader's latest probe.", "host", "site")
	descProbeDuration = desc("probe_duration_seconds", "The round trip of the leader's latest answered probe of the agent.", "host", "site")
	descProbeFailures = desc("probe_failures_total", "Probes of the agent that failed, since this server became leader.", "host", "site")
	descSyncStandby   = desc("replication_synchronous", "1 when the replicated state records the standby as holding every acknowledged commit.", "service", "host")
	descStreaming     = desc("replication_streaming", "1 when the primary lists the standby as streaming.", "service", "host")
	descGuard         = desc("guard_max_data_loss_seconds", "The RPO guard's limit (failover.max_data_loss): a failover refuses to lose more unless told to.")
	descDegraded      = desc("replication_degraded", "1 while a data service in sync mode commits without a synchronous standby.", "service")

	descExecutions   = desc("executions_total", "Finished executions by kind and result.", "kind", "result")
	descExecDuration = desc("execution_duration_seconds", "Finished executions' start to end.", "kind")
	descExecRTO      = desc("execution_last_rto_seconds", "The RTO of the newest finished execution of a kind that recorded one.", "kind")
	descSteps        = desc("steps_total", "Ended steps of executions by action and result.", "action", "result")
	descStepDuration = desc("step_duration_seconds", "Ended steps' start to end.", "action")
	descDrillLast    = desc("drill_last_success_timestamp_seconds", "When the newest successful drill of a plan ended.", "plan")
)

// serverCollector reads the server's state at each scrape.
type serverCollector struct{ s *Server }

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range serverDescs {
		ch <- d
	}
	hostDescs.Describe(ch)
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	_, leaderID := s.raft.LeaderWithID()
	isLeader := s.raft.State() == raft.Leader
	gauge(descIsLeader, hostmetrics.B2F(isLeader))
	gauge(descLeaderKnown, hostmetrics.B2F(leaderID != ""))
	if term, err := strconv.ParseUint(s.raft.Stats()["term"], 10, 64); err == nil {
		gauge(descRaftTerm, float64(term))
	}
	gauge(descRaftIndex, float64(s.raft.AppliedIndex()))
	if !isLeader {
		return
	}
	v := s.fsm.view()
	gauge(descEpoch, float64(v.Epoch))
	for _, site := range v.Sites {
		gauge(descActiveSite, hostmetrics.B2F(site.Name == v.ActiveSite), site.Name)
	}
	auto := s.automationStatus(false)
	gauge(descAutoEnabled, hostmetrics.B2F(auto.GetEnabled()))
	gauge(descAutoPaused, hostmetrics.B2F(auto.GetPaused()))
	gauge(descAutoCooldown, hostmetrics.B2F(auto.GetBlocked() != ""))
	gauge(descGuard, s.config.Failover.MaxDataLoss.Seconds())
	if to := auto.GetExposureTarget(); to != "" {
		gauge(descExposureKnwn, hostmetrics.B2F(auto.GetExposureKnown()), v.ActiveSite, to)
		if auto.GetExposureKnown() {
			gauge(descExposure, auto.GetExposureSeconds(), v.ActiveSite, to)
		}
	}
	c.collectAgents(ch, v, gauge)
	for _, r := range s.replicationStatus(v) {
		gauge(descDegraded, hostmetrics.B2F(r.GetDegradedSince() != nil), r.GetService())
		for _, sb := range r.GetStandbys() {
			gauge(descSyncStandby, hostmetrics.B2F(sb.GetRecordedSynchronous()), r.GetService(), sb.GetHostId())
			gauge(descStreaming, hostmetrics.B2F(sb.GetState() == pb.WalSenderState_WAL_SENDER_STATE_STREAMING), r.GetService(), sb.GetHostId())
		}
	}
	collectExecutions(ch, s.fsm.executions())
}

// collectAgents reports the leader's latest probe of every registered
// agent.
func (c *serverCollector) collectAgents(ch chan<- prometheus.Metric, v stateView, gauge func(*prometheus.Desc, float64, ...string)) {
	for _, a := range v.Agents {
		r, ok := c.s.probes.get(a.HostID)
		if !ok {
			continue
		}
		host, site := a.HostID, a.Site
		gauge(descProbeUp, hostmetrics.B2F(r.err == nil), host, site)
		ch <- prometheus.MustNewConstMetric(descProbeFailures, prometheus.CounterValue, float64(c.s.probes.failures(host)), host, site)
		if !r.lastAnsweredAt.IsZero() && !r.lastAnsweredSent.IsZero() {
			gauge(descProbeDuration, r.lastAnsweredAt.Sub(r.lastAnsweredSent).Seconds(), host, site)
		}
		if r.lastResp != nil {
			hostDescs.Collect(ch, host, site, r.lastResp)
		}
	}
}

// collectExecutions reports the replicated record of executions: counts
// and duration histograms of executions and steps, the newest RTO per
// kind, and the newest successful drill per plan.
func collectExecutions(ch chan<- prometheus.Metric, all []structs.Execution) {
	type key struct{ a, b string }
	execCount := map[key]uint64{}
	stepCount := map[key]uint64{}
	execDur := map[string]*histogram{}
	stepDur := map[string]*histogram{}
	lastRTO := map[string]float64{}
	lastDrill := map[string]time.Time{}
	for _, ex := range all {
		if ex.State == structs.ExecRunning || ex.State == structs.ExecPlanned {
			continue
		}
		execCount[key{ex.Kind, ex.State}]++
		if !ex.StartedAt.IsZero() && !ex.FinishedAt.IsZero() {
			observe(execDur, ex.Kind, ex.FinishedAt.Sub(ex.StartedAt).Seconds())
		}
		if ex.RTOSeconds != nil {
			lastRTO[ex.Kind] = *ex.RTOSeconds
		}
		if ex.Kind == string(plan.KindDrill) && ex.State == structs.ExecSucceeded && ex.CleanupOf == "" {
			name := ex.PlanName
			if name == "" {
				name = string(plan.KindFailover)
			}
			lastDrill[name] = ex.FinishedAt
		}
		for i, st := range ex.Steps {
			if !st.Ended() || i >= len(ex.Plan.Steps) {
				continue
			}
			action := ex.Plan.Steps[i].Action
			stepCount[key{action, st.State}]++
			if !st.StartedAt.IsZero() && !st.EndedAt.IsZero() {
				observe(stepDur, action, st.EndedAt.Sub(st.StartedAt).Seconds())
			}
		}
	}
	for k, n := range execCount {
		ch <- prometheus.MustNewConstMetric(descExecutions, prometheus.CounterValue, float64(n), k.a, k.b)
	}
	for k, n := range stepCount {
		ch <- prometheus.MustNewConstMetric(descSteps, prometheus.CounterValue, float64(n), k.a, k.b)
	}
	for kind, h := range execDur {
		ch <- prometheus.MustNewConstHistogram(descExecDuration, h.count, h.sum, h.buckets, kind)
	}
	for action, h := range stepDur {
		ch <- prometheus.MustNewConstHistogram(descStepDuration, h.count, h.sum, h.buckets, action)
	}
	for kind, rto := range lastRTO {
		ch <- prometheus.MustNewConstMetric(descExecRTO, prometheus.GaugeValue, rto, kind)
	}
	for name, at := range lastDrill {
		ch <- prometheus.MustNewConstMetric(descDrillLast, prometheus.GaugeValue, hostmetrics.Seconds(at.UnixMilli()), name)
	}
}

// histogram is a cumulative histogram over durationBuckets.
type histogram struct {
	count   uint64
	sum     float64
	buckets map[float64]uint64
}

func observe(m map[string]*histogram, k string, v float64) {
	h := m[k]
	if h == nil {
		h = &histogram{buckets: map[float64]uint64{}}
		for _, b := range durationBuckets {
			h.buckets[b] = 0
		}
		m[k] = h
	}
	h.count++
	h.sum += v
	for _, b := range durationBuckets {
		if v <= b {
			h.buckets[b]++
		}
	}
}
