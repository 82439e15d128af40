package daemon

import (
	"github.com/meshcd/meshcd/reconciler"
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
	commits  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		syncs:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_sync_total", Help: "Syncs of a design to a cluster, by result (ok, error)."}, []string{"cluster", "design", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meshcd_sync_duration_seconds", Help: "How long one sync took.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"cluster"}),
		objects:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshcd_managed_objects", Help: "Objects meshcd manages, by cluster and design."}, []string{"cluster", "design"}),
		actions:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_sync_objects_total", Help: "Objects by what a sync did to them (created, configured, unchanged, pruned, skipped, failed)."}, []string{"cluster", "action"}),
		gates:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_gate_runs_total", Help: "Gate runs by verdict."}, []string{"design", "gate", "cluster", "verdict"}),
		polls:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_git_polls_total", Help: "Git polls by result."}, []string{"result"}),
		commits:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_status_commits_total", Help: "Status commits by result."}, []string{"result"}),
	}
	reg.MustRegister(m.syncs, m.duration, m.objects, m.actions, m.gates, m.polls, m.commits)
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
