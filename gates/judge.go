package gates

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/meshcd/meshcd/schema"
)

// Verdict is a gate's decision: every check with what was observed, the limit and whether it
// held. It passes only if every check passed and the run was not aborted.
type Verdict struct {
	Pass   bool    `json:"pass"`
	Checks []Check `json:"checks"`
	// Baseline is the run compared against, or empty for "no baseline yet".
	Baseline *HistoryLine `json:"baseline,omitempty"`
}

// Check is one threshold or regression check.
type Check struct {
	Name     string  `json:"name"`
	Observed float64 `json:"observed"`
	Limit    float64 `json:"limit"`
	Unit     string  `json:"unit"`
	Pass     bool    `json:"pass"`
	Note     string  `json:"note,omitempty"`
}

// String is one line per check, for people.
func (v Verdict) String() string {
	var b strings.Builder
	word := "FAIL"
	if v.Pass {
		word = "PASS"
	}
	b.WriteString(word + "\n")
	for _, c := range v.Checks {
		mark := "✗"
		if c.Pass {
			mark = "✓"
		}
		fmt.Fprintf(&b, "  %s %s: %s %s (limit %s)%s\n", mark, c.Name, num(c.Observed), c.Unit, num(c.Limit), note(c.Note))
	}
	return b.String()
}

// num prints a number with at most three decimals.
func num(f float64) string { return strconv.FormatFloat(math.Round(f*1000)/1000, 'f', -1, 64) }

func note(n string) string {
	if n == "" {
		return ""
	}
	return " — " + n
}

// Judge checks a result against the gate's thresholds and, when baseline is given, its
// regression budget: each latency percentile may be at most maxRegression worse than the
// baseline's. No baseline yet passes and says so.
func Judge(r *Result, g schema.Gate, baseline *HistoryLine) (Verdict, error) {
	v := Verdict{Pass: true, Baseline: baseline}
	add := func(c Check) {
		v.Checks = append(v.Checks, c)
		if !c.Pass {
			v.Pass = false
		}
	}
	if r.Aborted != "" {
		add(Check{Name: "run completed", Pass: false, Note: r.Aborted})
	}
	for _, p := range []struct {
		name string
		lim  *schema.Duration
		obs  float64
	}{{"p50", g.Thresholds.P50, r.Latencies.P50}, {"p90", g.Thresholds.P90, r.Latencies.P90}, {"p99", g.Thresholds.P99, r.Latencies.P99}} {
		if p.lim == nil {
			continue
		}
		limit := float64(p.lim.Microseconds()) / 1000
		add(Check{Name: p.name, Observed: p.obs, Limit: limit, Unit: "ms", Pass: p.obs <= limit})
	}
	if g.Thresholds.ErrorRate != nil {
		add(Check{Name: "error rate", Observed: r.ErrorRate, Limit: *g.Thresholds.ErrorRate, Pass: r.ErrorRate <= *g.Thresholds.ErrorRate})
	}
	if g.Thresholds.MinQPSRatio != nil && r.RequestedQPS > 0 {
		ratio := r.ActualQPS / r.RequestedQPS
		add(Check{Name: "achieved/requested QPS", Observed: ratio, Limit: *g.Thresholds.MinQPSRatio, Pass: ratio >= *g.Thresholds.MinQPSRatio})
	}
	if g.Compare != nil {
		if err := judgeCompare(add, r, *g.Compare); err != nil {
			return v, fmt.Errorf("gate %s: %w", r.Name, err)
		}
	}
	for _, p := range []struct {
		name string
		lim  *schema.Duration
		min  int64
	}{{"p90", g.Thresholds.P90, 10}, {"p99", g.Thresholds.P99, 100}} {
		if p.lim != nil && r.Requests < p.min {
			add(Check{Name: "enough requests for " + p.name, Observed: float64(r.Requests), Limit: float64(p.min), Pass: true,
				Note: fmt.Sprintf("a %s from fewer than %d requests is little more than the slowest one; run longer for a steady verdict", p.name, p.min)})
		}
	}
	if g.Baseline != nil {
		budget, err := ParsePercent(g.Baseline.MaxRegression)
		if err != nil {
			return v, fmt.Errorf("gate %s: baseline.maxRegression: %w", r.Name, err)
		}
		if baseline == nil {
			add(Check{Name: "regression vs baseline", Pass: true, Note: "no baseline yet on " + g.Baseline.Branch + "; this run becomes it if it passes"})
		} else {
			for _, p := range []struct {
				name      string
				obs, base float64
			}{{"p50", r.Latencies.P50, baseline.P50}, {"p90", r.Latencies.P90, baseline.P90}, {"p99", r.Latencies.P99, baseline.P99}} {
				limit := p.base * (1 + budget)
				add(Check{Name: p.name + " vs baseline", Observed: p.obs, Limit: limit, Unit: "ms", Pass: p.obs <= limit,
					Note: fmt.Sprintf("baseline %s ms at %s, budget +%g%%", num(p.base), short(baseline.Revision), budget*100)})
			}
		}
	}
	return v, nil
}

// ParsePercent reads "10%" as 0.1.
func ParsePercent(s string) (float64, error) {
	t, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	if !ok {
		return 0, fmt.Errorf("%q is not a percentage like 10%%", s)
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a percentage like 10%%", s)
	}
	return f / 100, nil
}

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

// judgeCompare checks a side-by-side run: each percentile of the candidate within the
// budget of the baseline's, and its error rate at most maxErrorRateIncrease above the
// baseline's. A percentile regresses only when the candidate is slower by more than the
// budget over the whole run, by more than minDifference (which machine noise alone can make
// on a fast service), and in at least three quarters of all pairs of a candidate slice and a
// baseline slice, each by the budget and the floor (a burst of noise slows a few slices, a
// slower version all of them). A percentile from too few requests per
// version is reported, not judged.
func judgeCompare(add func(Check), r *Result, c schema.Compare) error {
	cmp := r.Compare
	if cmp == nil {
		return fmt.Errorf("the result has no side-by-side comparison")
	}
	budget, err := ParsePercent(c.MaxRegression)
	if err != nil {
		return fmt.Errorf("compare.maxRegression: %w", err)
	}
	floor := 0.0
	if c.MinDifference != nil {
		floor = float64(c.MinDifference.Microseconds()) / 1000
	}
	limit := 1 + budget
	b, k := cmp.Baseline, cmp.Candidate
	for _, p := range []struct {
		name       string
		base, cand float64
		ratio      float64
		slice      func(Ratios) float64
		min        int64
	}{
		{"p50", b.Latencies.P50, k.Latencies.P50, cmp.Ratios.P50, func(r Ratios) float64 { return r.P50 }, 1},
		{"p90", b.Latencies.P90, k.Latencies.P90, cmp.Ratios.P90, func(r Ratios) float64 { return r.P90 }, 10},
		{"p99", b.Latencies.P99, k.Latencies.P99, cmp.Ratios.P99, func(r Ratios) float64 { return r.P99 }, 100},
	} {
		// Every slice of the candidate against every slice of the baseline: a burst of
		// noise during one slice weighs in one row or one column, a slower version in all.
		slower, pairs, lo, hi := 0, 0, math.Inf(1), 0.0
		for i, ks := range k.Slices {
			for j, bs := range b.Slices {
				r := ratio(p.slice(ks), p.slice(bs))
				if i == j {
					lo, hi = math.Min(lo, r), math.Max(hi, r)
				}
				pairs++
				if r > limit && p.slice(ks)-p.slice(bs) >= floor {
					slower++
				}
			}
		}
		most := pairs > 0 && slower*4 >= pairs*3
		enough := min(b.Requests, k.Requests) >= p.min
		pass := p.ratio <= limit || p.cand-p.base < floor || !most || !enough
		share := 0
		if pairs > 0 {
			share = slower * 100 / pairs
		}
		note := fmt.Sprintf("%s %s ms vs %s %s ms; slower beyond the budget in %d%% of %d slice pairs (same-round ratios %s–%s)", k.Version, num(p.cand), b.Version, num(p.base), share, pairs, num(lo), num(hi))
		switch {
		case !enough:
			note += fmt.Sprintf("; not judged: fewer than %d requests per version, so this %s is little more than the slowest request (run longer)", p.min, p.name)
		case p.ratio > limit && p.cand-p.base < floor:
			note += fmt.Sprintf("; within the %s ms noise floor (minDifference)", num(floor))
		case p.ratio > limit && !most:
			note += "; slower in too few slice pairs (under 75%) to be the version rather than machine noise"
		}
		add(Check{Name: p.name + " " + k.Version + "/" + b.Version, Observed: p.ratio, Limit: limit, Unit: "×", Pass: pass, Note: note})
	}
	diff := k.ErrorRate - b.ErrorRate
	add(Check{Name: "error rate " + k.Version + " − " + b.Version, Observed: diff, Limit: c.MaxErrorRateIncrease, Pass: diff <= c.MaxErrorRateIncrease,
		Note: fmt.Sprintf("%s %s, %s %s", k.Version, num(k.ErrorRate), b.Version, num(b.ErrorRate))})
	return nil
}
