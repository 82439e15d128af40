package gates

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"fortio.org/fortio/fhttp"
	"fortio.org/fortio/periodic"
	"fortio.org/fortio/stats"
	"github.com/meshcd/meshcd/schema"
)

// Comparison is what a side-by-side run measured: each version over the whole run, the
// candidate's percentiles divided by the baseline's, and how those ratios spread over the
// slices, so a reader sees whether a verdict is clear or marginal.
type Comparison struct {
	Baseline  VersionResult `json:"baseline"`
	Candidate VersionResult `json:"candidate"`
	// Slices is how many slices each version was loaded for.
	Slices int `json:"slices"`
	// Ratios are candidate ÷ baseline over the whole run.
	Ratios Ratios `json:"ratios"`
}

// VersionResult is one version's share of a side-by-side run.
type VersionResult struct {
	Version     string         `json:"version"`
	URL         string         `json:"url"`
	Requests    int64          `json:"total_requests"`
	ErrorRate   float64        `json:"error_rate"`
	Latencies   Latencies      `json:"latencies_ms"`
	Histogram   []Bucket       `json:"histogram"`
	StatusCodes map[string]int `json:"status_codes"`
	// Slices are the version's percentiles in each of its slices, in milliseconds: a
	// regression shows against most of the other version's slices, a burst of machine
	// noise in a few.
	Slices []Ratios `json:"slices"`
}

// Ratios are candidate ÷ baseline latencies, or (in Slices) one slice's percentiles in ms.
type Ratios struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// URLs are the targets a run of the gate loads: the gate's URL (or the override), or for a
// side-by-side gate one per version, baseline first.
func URLs(g schema.Gate, override string) []string {
	if g.GRPC != nil {
		return []string{grpcURL(g.GRPC)}
	}
	u := g.URL
	if override != "" {
		u = override
	}
	if g.Compare == nil {
		return []string{u}
	}
	return []string{g.Compare.VersionURL(u, g.Compare.Baseline), g.Compare.VersionURL(u, g.Compare.Candidate)}
}

// runCompare loads the baseline and the candidate version in alternating slices (the order
// flips every round, so neither always goes first), each for half the gate's duration, or
// for the gate's requests each, and merges each version's slices.
func runCompare(ctx context.Context, g schema.Gate, t Target) (*Result, error) {
	c := g.Compare
	urls := URLs(g, t.URL)
	name := t.Design + "/" + t.Gate
	slice := 250 * time.Millisecond
	if c.Slice != nil && c.Slice.Duration > 0 {
		slice = c.Slice.Duration
	}
	var rounds int
	perSlice := g.Load
	perSlice.Warmup = nil
	switch {
	case g.Load.Duration != nil && g.Load.Duration.Duration > 0:
		each := g.Load.Duration.Duration / 2
		rounds = max(1, int(math.Ceil(float64(each)/float64(slice))))
		perSlice.Requests, perSlice.Duration = 0, &schema.Duration{Duration: each / time.Duration(rounds)}
	default:
		rounds = max(1, g.Load.Requests/100)
		perSlice.Requests, perSlice.Duration = max(1, g.Load.Requests/rounds), nil
	}
	if g.Load.Warmup != nil && g.Load.Warmup.Duration > 0 {
		for _, u := range urls {
			warm := g
			warm.Load.Requests, warm.Load.Duration = 0, g.Load.Warmup
			if _, _, err := load(ctx, warm, u, t.pin(u), nil); err != nil {
				return nil, fmt.Errorf("gate %s: warm-up of %s: %w", name, u, err)
			}
		}
	}
	budgets := [2]*errorBudget{{}, {}}
	if g.Thresholds.ErrorRate != nil {
		expected := float64(perSlice.Requests * rounds)
		if perSlice.Duration != nil && g.Load.QPS > 0 {
			expected = g.Load.QPS * perSlice.Duration.Seconds() * float64(rounds)
		}
		for _, b := range budgets {
			if expected > 0 {
				b.max = int64(*g.Thresholds.ErrorRate*expected) + 1
			}
		}
	}
	sg := g
	sg.Load = perSlice
	start := time.Now()
	var runs [2][]*fhttp.HTTPRunnerResults
	aborted := ""
	for r := 0; r < rounds && aborted == "" && ctx.Err() == nil; r++ {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, v := range order {
			res, reason, err := load(ctx, sg, urls[v], t.pin(urls[v]), budgets[v])
			if err != nil {
				return nil, fmt.Errorf("gate %s: %s: %w", name, urls[v], err)
			}
			runs[v] = append(runs[v], res)
			if reason != "" {
				aborted = fmt.Sprintf("%s (%s)", reason, []string{c.Baseline, c.Candidate}[v])
				break
			}
		}
	}
	end := time.Now()
	cmp := &Comparison{
		Baseline:  mergeVersion(c.Baseline, urls[0], runs[0]),
		Candidate: mergeVersion(c.Candidate, urls[1], runs[1]),
		Slices:    min(len(runs[0]), len(runs[1])),
	}
	cmp.Ratios = Ratios{
		P50: ratio(cmp.Candidate.Latencies.P50, cmp.Baseline.Latencies.P50),
		P90: ratio(cmp.Candidate.Latencies.P90, cmp.Baseline.Latencies.P90),
		P99: ratio(cmp.Candidate.Latencies.P99, cmp.Baseline.Latencies.P99),
	}
	for v, vr := range []*VersionResult{&cmp.Baseline, &cmp.Candidate} {
		for _, run := range runs[v][:cmp.Slices] {
			l := newResult(run, time.Time{}, time.Time{}).Latencies
			vr.Slices = append(vr.Slices, Ratios{P50: l.P50, P90: l.P90, P99: l.P99})
		}
	}
	out := &Result{
		Name: name, StartTime: start.UTC(), EndTime: end.UTC(), LoadGenerator: loadGenerator(),
		Target:       TargetInfo{URL: urls[1], Cluster: t.Cluster, Design: t.Design, Gate: t.Gate, Revision: t.Revision, Digest: t.Digest, Spec: t.Spec},
		RequestedQPS: g.Load.QPS, Connections: max(1, g.Load.Connections), Duration: end.Sub(start).Round(time.Millisecond).String(),
		Requests: cmp.Candidate.Requests, Latencies: cmp.Candidate.Latencies, Histogram: cmp.Candidate.Histogram,
		ErrorRate: cmp.Candidate.ErrorRate, StatusCodes: cmp.Candidate.StatusCodes, Compare: cmp, Aborted: aborted,
	}
	var active time.Duration
	for _, r := range runs[1] {
		active += r.ActualDuration
	}
	if active > 0 {
		out.ActualQPS = float64(cmp.Candidate.Requests) / active.Seconds()
	}
	if ctx.Err() != nil && out.Aborted == "" {
		out.Aborted = "cancelled: " + ctx.Err().Error()
	}
	return out, nil
}

// pin is the address the policy checked for the URL's host, if any.
func (t Target) pin(rawURL string) (a addr) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return a
	}
	return t.Pinned[u.Hostname()]
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		if a <= 0 {
			return 1
		}
		return math.Inf(1)
	}
	return a / b
}

// mergeVersion adds up one version's slices: requests and status codes summed, the latency
// histograms merged into one fortio histogram (each bucket's count spread evenly over the
// bucket) and the percentiles read from it the way fortio reads a single run's.
func mergeVersion(version, u string, runs []*fhttp.HTTPRunnerResults) VersionResult {
	out := VersionResult{Version: version, URL: u, StatusCodes: map[string]int{}}
	h := stats.NewHistogram(0, resolution)
	var failed int64
	minimum, maximum := math.Inf(1), 0.0
	for _, r := range runs {
		one := newResult(r, time.Time{}, time.Time{})
		for code, n := range one.StatusCodes {
			out.StatusCodes[code] += n
			if c, err := strconv.Atoi(code); err != nil || c < 200 || c >= 300 {
				failed += int64(n)
			}
		}
		d := r.DurationHistogram
		if d == nil || d.Count == 0 {
			continue
		}
		minimum, maximum = math.Min(minimum, d.Min), math.Max(maximum, d.Max)
		for _, b := range d.Data {
			// Spread the bucket's requests over up to 10 points inside it.
			points := min(b.Count, 10)
			for i := range points {
				n := b.Count / points
				if i < b.Count%points {
					n++
				}
				h.RecordN(b.Start+(float64(i)+0.5)/float64(points)*(b.End-b.Start), int(n))
			}
		}
	}
	data := h.Export()
	if data.Count == 0 {
		return out
	}
	// The spread points lie inside the buckets; the true extremes are the runs' own.
	data.Min, data.Max = minimum, maximum
	data.CalcPercentiles([]float64{50, 75, 90, 99, 99.9})
	res := runResult(&periodic.RunnerResults{DurationHistogram: data}, nil, 0, time.Time{}, time.Time{})
	out.Requests, out.Latencies, out.Histogram = res.Requests, res.Latencies, res.Histogram
	out.ErrorRate = float64(failed) / float64(out.Requests)
	return out
}
