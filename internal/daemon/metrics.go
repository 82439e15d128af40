package daemon

import (
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/sources"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the daemon's Prometheus metrics; drift registers its own.
type metrics struct {
	syncs    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	objects  *prometheus.GaugeVec
	actions  *prometheus.CounterVec
	gates    *prometheus.CounterVec
	polls    *prometheus.CounterVec
	// gatesRunning counts the gate loads running now.
	gatesRunning prometheus.Gauge
	// feedbackRateLimit is what a Git host's API said is left of its rate limit.
	feedbackRateLimit *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		syncs:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_sync_total", Help: "Syncs of a design to a cluster, by result (ok, error)."}, []string{"cluster", "design", "result"}),
		duration:     prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meshcd_sync_duration_seconds", Help: "How long one sync took.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"cluster"}),
		objects:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshcd_managed_objects", Help: "Objects meshcd manages, by cluster and design."}, []string{"cluster", "design"}),
		actions:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_sync_objects_total", Help: "Objects by what a sync did to them (created, configured, unchanged, pruned, skipped, failed)."}, []string{"cluster", "action"}),
		gates:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_gate_runs_total", Help: "Gate runs by verdict."}, []string{"design", "gate", "cluster", "verdict"}),
		polls:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_git_polls_total", Help: "Git polls by result."}, []string{"result"}),
		gatesRunning: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshcd_gates_running", Help: "Gate loads running now."}),
		feedbackRateLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshcd_feedback_rate_limit_remaining",
			Help: "Requests a Git host's API said are left of its rate limit, from its last answer to pull-request feedback."}, []string{"host"}),
	}
	reg.MustRegister(m.syncs, m.duration, m.objects, m.actions, m.gates, m.polls, m.gatesRunning, m.feedbackRateLimit)
	return m
}

func (m *metrics) observe(res *reconciler.SyncResult) {
	result := "ok"
	if res.Error != "" {
		result = "error"
	}
	m.syncs.WithLabelValues(res.Cluster, res.Design, result).Inc()
	m.duration.WithLabelValues(res.Cluster).Observe(res.Duration.Seconds())
	n := 0
	for _, e := range res.Entries {
		m.actions.WithLabelValues(res.Cluster, string(e.Action)).Inc()
		if e.Action != reconciler.Pruned && e.Action != reconciler.Skipped {
			n++
		}
	}
	m.objects.WithLabelValues(res.Cluster, res.Design).Set(float64(n))
}

// gitCollector reports each repo's committer: writes asked for and written, writes waiting,
// and failed commits in a row (a Git outage shows here first).
type gitCollector struct{ d *Daemon }

var (
	gitRequested = prometheus.NewDesc("meshcd_git_writes_requested_total", "Writes to Git asked for (status, drift, gates, previews, rollout steps).", []string{"repo"}, nil)
	gitLanded    = prometheus.NewDesc("meshcd_git_writes_landed_total", "Writes to Git whose files reached the remote.", []string{"repo"}, nil)
	gitPending   = prometheus.NewDesc("meshcd_git_commits_pending", "Commits waiting to be written.", []string{"repo"}, nil)
	gitFailures  = prometheus.NewDesc("meshcd_git_commit_failures", "Failed commits in a row (0 after a success).", []string{"repo"}, nil)
)

func (g gitCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- gitRequested
	ch <- gitLanded
	ch <- gitPending
	ch <- gitFailures
}

func (g gitCollector) Collect(ch chan<- prometheus.Metric) {
	t := g.d.term.Load()
	if t == nil {
		return
	}
	for _, c := range t.repos {
		s := c.commits.State()
		repo := sources.Redact(c.cfg.URL) + "@" + c.cfg.Branch
		ch <- prometheus.MustNewConstMetric(gitRequested, prometheus.CounterValue, float64(s.Requested), repo)
		ch <- prometheus.MustNewConstMetric(gitLanded, prometheus.CounterValue, float64(s.Landed), repo)
		ch <- prometheus.MustNewConstMetric(gitPending, prometheus.GaugeValue, float64(s.Pending), repo)
		ch <- prometheus.MustNewConstMetric(gitFailures, prometheus.GaugeValue, float64(s.Failures), repo)
	}
}
