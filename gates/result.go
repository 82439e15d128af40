package gates

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"fortio.org/fortio/fhttp"
	"fortio.org/fortio/periodic"
	"fortio.org/fortio/stats"
)

// Result is one gate run. Field names follow Meshery's SMP performance result where the two
// overlap (start_time, end_time, load_generator, actual_qps, latencies_ms, ...), so SMP tools
// can read it.
type Result struct {
	Name          string         `json:"name"`
	StartTime     time.Time      `json:"start_time"`
	EndTime       time.Time      `json:"end_time"`
	LoadGenerator LoadGen        `json:"load_generator"`
	Target        TargetInfo     `json:"target"`
	RequestedQPS  float64        `json:"requested_qps"` // 0: as fast as possible
	ActualQPS     float64        `json:"actual_qps"`
	Connections   int            `json:"connections"`
	Duration      string         `json:"duration"`
	Requests      int64          `json:"total_requests"`
	Latencies     Latencies      `json:"latencies_ms"`
	Histogram     []Bucket       `json:"histogram"`
	ErrorRate     float64        `json:"error_rate"`
	StatusCodes   map[string]int `json:"status_codes"`
	// Aborted says why the run stopped before its duration, if it did.
	Aborted string `json:"aborted,omitempty"`
	// Compare is a side-by-side run's two versions; the fields above are the candidate's.
	Compare *Comparison `json:"compare,omitempty"`
}

// LoadGen is the load generator and its version.
type LoadGen struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// TargetInfo is where the load went and what it measured.
type TargetInfo struct {
	URL      string `json:"url"`
	Cluster  string `json:"cluster,omitempty"`
	Design   string `json:"design,omitempty"`
	Gate     string `json:"gate,omitempty"`
	Revision string `json:"revision,omitempty"`
	// Digest is the design's bundle digest on the cluster: what the run measured.
	Digest string `json:"digest,omitempty"`
	// Spec is a hash of the gate's own definition (target, load, thresholds) it ran with.
	Spec string `json:"spec,omitempty"`
}

// Latencies are in milliseconds.
type Latencies struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"average"`
	P50  float64 `json:"p50"`
	P75  float64 `json:"p75"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// Bucket is one histogram bucket, in milliseconds.
type Bucket struct {
	StartMs float64 `json:"start_ms"`
	EndMs   float64 `json:"end_ms"`
	Count   int64   `json:"count"`
}

func newResult(r *fhttp.HTTPRunnerResults, start, end time.Time) *Result {
	codes := map[string]int64{}
	var failed int64
	for code, n := range r.RetCodes {
		key := strconv.Itoa(code)
		if code < 0 {
			key = "connection error"
		}
		codes[key] += n
		if code < 200 || code >= 300 {
			failed += n
		}
	}
	return runResult(&r.RunnerResults, codes, failed, start, end)
}

// runResult is the Result of any fortio run: its timing and histogram, the outcomes counted
// by name (HTTP status codes, gRPC health states) and how many of them failed.
func runResult(r *periodic.RunnerResults, codes map[string]int64, failed int64, start, end time.Time) *Result {
	h := r.DurationHistogram
	out := &Result{
		StartTime: start.UTC(), EndTime: end.UTC(), LoadGenerator: loadGenerator(),
		ActualQPS: r.ActualQPS, Connections: r.NumThreads, Duration: r.ActualDuration.Round(time.Millisecond).String(),
		StatusCodes: map[string]int{},
	}
	if q, err := strconv.ParseFloat(r.RequestedQPS, 64); err == nil && q > 0 {
		out.RequestedQPS = q
	}
	if h != nil {
		out.Requests = h.Count
		ms := func(s float64) float64 { return s * 1000 }
		out.Latencies = Latencies{Min: ms(h.Min), Mean: ms(h.Avg), Max: ms(h.Max)}
		for _, p := range h.Percentiles {
			switch p.Percentile {
			case 50:
				out.Latencies.P50 = ms(p.Value)
			case 75:
				out.Latencies.P75 = ms(p.Value)
			case 90:
				out.Latencies.P90 = ms(p.Value)
			case 99:
				out.Latencies.P99 = ms(p.Value)
			case 99.9:
				out.Latencies.P999 = ms(p.Value)
			}
		}
		out.Histogram = buckets(h)
	}
	for _, code := range slices.Sorted(maps.Keys(codes)) {
		out.StatusCodes[code] = int(codes[code])
	}
	if out.Requests > 0 {
		out.ErrorRate = float64(failed) / float64(out.Requests)
	}
	return out
}

func buckets(h *stats.HistogramData) []Bucket {
	out := make([]Bucket, 0, len(h.Data))
	for _, b := range h.Data {
		out = append(out, Bucket{StartMs: b.Start * 1000, EndMs: b.End * 1000, Count: b.Count})
	}
	return out
}
