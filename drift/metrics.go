package drift

import "github.com/prometheus/client_golang/prometheus"

// Metrics are drift's Prometheus metrics.
type Metrics struct {
	detected    *prometheus.CounterVec
	healed      *prometheus.CounterVec
	contested   *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	healLatency *prometheus.HistogramVec
}

// NewMetrics registers drift's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		detected:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_drift_detected_total", Help: "Drifted objects noticed, by cluster, design and kind (modified, deleted, ownership)."}, []string{"cluster", "design", "kind"}),
		healed:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_drift_healed_total", Help: "Drifted objects re-applied."}, []string{"cluster", "design"}),
		contested: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcd_drift_contested_total", Help: "Objects meshcd stopped healing because something keeps changing them."}, []string{"cluster", "design"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meshcd_drift_detection_seconds", Help: "From the watch event to the drift decision.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"cluster"}),
		healLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meshcd_drift_heal_seconds", Help: "From the drift decision to the object re-applied.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"cluster"}),
	}
	reg.MustRegister(m.detected, m.healed, m.contested, m.latency, m.healLatency)
	return m
}
