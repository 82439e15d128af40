package gates

import (
	"encoding/xml"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshcd/meshcd/schema"
)

// busy keeps both cores of the machine busy for the rest of the test, as a loaded CI machine.
func busy(t *testing.T) {
	t.Helper()
	for range 2 {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
}

func sideBySide(base, cand string) schema.Gate {
	return schema.Gate{
		URL:  base,
		Load: schema.LoadProfile{QPS: 200, Connections: 8, Duration: dur("2s")},
		Compare: &schema.Compare{
			Baseline: "stable", Candidate: "canary",
			URLs:          map[string]string{"stable": base, "canary": cand},
			MaxRegression: "20%", MinDifference: dur("5ms"), MaxErrorRateIncrease: 0.01, Slice: dur("250ms"),
		},
	}
}

// TestSideBySideVerdictsHoldOnABusyMachine: with both cores kept busy by other processes, a
// candidate 30 ms slower than its baseline fails a 20% budget (its p50 every time), naming the
// p50 and p99 ratios,
// and two equal servers pass: ten runs each, no wrong verdict.
func TestSideBySideVerdictsHoldOnABusyMachine(t *testing.T) {
	base := echo(t) + "/?delay=1ms"
	busy(t)
	for i := range 10 {
		slow := sideBySide(base, echo(t)+"/?delay=31ms")
		res, err := Run(t.Context(), slow, Target{Design: "shop", Gate: "canary", Cluster: "east"})
		if err != nil {
			t.Fatal(err)
		}
		v, err := Judge(res, slow, nil)
		if err != nil {
			t.Fatal(err)
		}
		// p99 is named with its ratio; under heavy load the baseline's own p99 can reach the
		// candidate's, so only p50 must fail every time.
		if v.Pass || !strings.Contains(v.String(), "✗ p50 canary/stable") || !strings.Contains(v.String(), "p99 canary/stable: ") {
			t.Fatalf("run %d: a candidate 30 ms slower passed or named no ratio:\n%s", i, v)
		}
		if res.Compare.Slices < 3 || res.Compare.Baseline.Requests == 0 || res.Compare.Candidate.Requests == 0 {
			t.Fatalf("run %d: %d slices, %d/%d requests", i, res.Compare.Slices, res.Compare.Baseline.Requests, res.Compare.Candidate.Requests)
		}

		same := sideBySide(base, echo(t)+"/?delay=1ms")
		res, err = Run(t.Context(), same, Target{Design: "shop", Gate: "canary", Cluster: "east"})
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := Judge(res, same, nil); !v.Pass {
			t.Fatalf("run %d: two equal servers failed:\n%s", i, v)
		}
	}
}

// TestSideBySideAlternates: the versions take turns in slices, the order flipping every
// round, and each gets half the run.
func TestSideBySideAlternates(t *testing.T) {
	base, cand := echo(t)+"/?v=stable", echo(t)+"/?v=canary"
	g := sideBySide(base, cand)
	g.Load.Duration = dur("1s")
	g.Compare.Slice = dur("100ms")
	start := time.Now()
	res, err := Run(t.Context(), g, Target{Design: "d", Gate: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a 1 s side-by-side run took %s", took)
	}
	if res.Compare.Slices != 5 || len(res.Compare.Baseline.Slices) != 5 || res.Compare.Baseline.URL != base || res.Compare.Candidate.URL != cand || res.Target.URL != cand {
		t.Errorf("comparison: %d slices, %s vs %s, target %s", res.Compare.Slices, res.Compare.Baseline.URL, res.Compare.Candidate.URL, res.Target.URL)
	}
	for _, v := range []VersionResult{res.Compare.Baseline, res.Compare.Candidate} {
		l := v.Latencies
		if !(l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
			t.Errorf("%s's merged percentiles are out of order: %+v", v.Version, l)
		}
		var n int64
		for _, b := range v.Histogram {
			n += b.Count
		}
		if n != v.Requests {
			t.Errorf("%s's merged histogram holds %d requests of %d", v.Version, n, v.Requests)
		}
	}
	if d := res.Compare.Baseline.Requests - res.Compare.Candidate.Requests; d < -10 || d > 10 {
		t.Errorf("the versions got %d and %d requests; want about the same", res.Compare.Baseline.Requests, res.Compare.Candidate.Requests)
	}
}

// TestSideBySideFiles: the status files of a side-by-side run record both versions' numbers
// and the ratios, and its chart draws both distributions.
func TestSideBySideFiles(t *testing.T) {
	g := sideBySide(echo(t)+"/?delay=1ms", echo(t)+"/?delay=11ms")
	g.Load.Duration = dur("600ms")
	res, err := Run(t.Context(), g, Target{Design: "shop", Gate: "canary", Cluster: "east", Revision: "abcdef1234"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := Judge(res, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Files(res, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	var md, svg, js string
	for p, data := range files {
		switch {
		case strings.HasSuffix(p, ".md"):
			md = string(data)
		case strings.HasSuffix(p, ".svg"):
			svg = string(data)
		case strings.HasSuffix(p, "east.json"):
			js = string(data)
		}
	}
	for _, want := range []string{"| stable |", "| canary |", "candidate ÷ baseline: p50 ×"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	if !strings.Contains(svg, "stable p50") || !strings.Contains(svg, "canary p50") || strings.Count(svg, "fill-opacity") < 2 {
		t.Errorf("the chart does not draw both versions:\n%s", svg)
	}
	if !strings.Contains(js, `"compare"`) || !strings.Contains(js, `"slices"`) {
		t.Errorf("the result file lacks the comparison")
	}
	var doc struct {
		XMLName xml.Name `xml:"svg"`
	}
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Errorf("the chart is not SVG: %v", err)
	}
}
