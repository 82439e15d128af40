package gates

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// HistoryLine is one run in a gate's append-only history: compact, one JSON object a line.
type HistoryLine struct {
	Time      time.Time `json:"time"`
	Revision  string    `json:"revision"`
	Pass      bool      `json:"pass"`
	P50       float64   `json:"p50"`
	P90       float64   `json:"p90"`
	P99       float64   `json:"p99"`
	ErrorRate float64   `json:"errorRate"`
	QPS       float64   `json:"qps"`
}

// Dir is the folder of a gate's status files for a design.
func Dir(design, gate string) string { return path.Join("status", "gates", design, gate) }

// ChartPath is where the SVG chart of the run that ended at end is committed.
func ChartPath(design, gate, cluster string, end time.Time, revision string) string {
	return path.Join(Dir(design, gate), "charts", cluster, end.UTC().Format("20060102T150405Z")+"-"+short(revision)+".svg")
}

// Files are a run's status files, keyed by path in the repo: the latest result and verdict,
// the history with this run appended to prior (the history file's current content, or nil),
// a Markdown summary and an SVG chart of this run.
func Files(r *Result, v Verdict, prior []byte) (map[string][]byte, error) {
	dir := Dir(r.Target.Design, r.Target.Gate)
	base := path.Join(dir, r.Target.Cluster)
	latest, err := json.MarshalIndent(struct {
		Result  *Result `json:"result"`
		Verdict Verdict `json:"verdict"`
	}{r, v}, "", "  ")
	if err != nil {
		return nil, err
	}
	line, err := json.Marshal(HistoryLine{Time: r.EndTime, Revision: r.Target.Revision, Pass: v.Pass,
		P50: r.Latencies.P50, P90: r.Latencies.P90, P99: r.Latencies.P99, ErrorRate: r.ErrorRate, QPS: r.ActualQPS})
	if err != nil {
		return nil, err
	}
	history := append(bytes.Clone(prior), append(line, '\n')...)
	if len(prior) > 0 && prior[len(prior)-1] != '\n' {
		history = append(append(bytes.Clone(prior), '\n'), append(line, '\n')...)
	}
	chartPath := ChartPath(r.Target.Design, r.Target.Gate, r.Target.Cluster, r.EndTime, r.Target.Revision)
	chartName := path.Base(chartPath)
	return map[string][]byte{
		base + ".json":          append(latest, '\n'),
		base + ".history.jsonl": history,
		base + ".md":            []byte(Summary(r, v, "charts/"+r.Target.Cluster+"/"+chartName)),
		chartPath:               Chart(r),
	}, nil
}

// Baseline returns the last passing run in a history file, or nil.
func Baseline(history []byte) (*HistoryLine, error) {
	var last *HistoryLine
	sc := bufio.NewScanner(bytes.NewReader(history))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l HistoryLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("history line %d: %w", n, err)
		}
		if l.Pass {
			last = &l
		}
	}
	return last, sc.Err()
}

// BaselineFrom reads the baseline of a gate for a cluster from a snapshot of the baseline
// branch; a missing history is no baseline.
func BaselineFrom(fsys fs.FS, design, gate, cluster string) (*HistoryLine, error) {
	data, err := fs.ReadFile(fsys, path.Join(Dir(design, gate), cluster+".history.jsonl"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return Baseline(data)
}

// Latest reads a gate's latest committed result and verdict for a cluster from a snapshot;
// ok is false when there is none (or it is unreadable).
func Latest(fsys fs.FS, design, gate, cluster string) (r *Result, v Verdict, ok bool) {
	data, err := fs.ReadFile(fsys, path.Join(Dir(design, gate), cluster+".json"))
	if err != nil {
		return nil, Verdict{}, false
	}
	var latest struct {
		Result  *Result `json:"result"`
		Verdict Verdict `json:"verdict"`
	}
	if json.Unmarshal(data, &latest) != nil || latest.Result == nil {
		return nil, Verdict{}, false
	}
	return latest.Result, latest.Verdict, true
}

// Summary is the Markdown a Git host shows for the gate's latest run.
func Summary(r *Result, v Verdict, chart string) string {
	var b strings.Builder
	word := "❌ failed"
	if v.Pass {
		word = "✅ passed"
	}
	fmt.Fprintf(&b, "# Gate %s on %s: %s\n\n", r.Name, r.Target.Cluster, word)
	fmt.Fprintf(&b, "Revision `%s`, %s, %s → %s, %d connections, requested %s QPS, achieved %.1f QPS, %d requests.\n\n",
		short(r.Target.Revision), r.EndTime.Format(time.RFC3339), r.Target.URL, r.Duration, r.Connections, qps(r.RequestedQPS), r.ActualQPS, r.Requests)
	if r.Aborted != "" {
		fmt.Fprintf(&b, "**Stopped early:** %s\n\n", r.Aborted)
	}
	b.WriteString("| check | observed | limit | |\n|---|---|---|---|\n")
	for _, c := range v.Checks {
		mark := "❌"
		if c.Pass {
			mark = "✅"
		}
		fmt.Fprintf(&b, "| %s | %s %s | %s %s | %s %s |\n", c.Name, num(c.Observed), c.Unit, num(c.Limit), c.Unit, mark, c.Note)
	}
	if c := r.Compare; c != nil {
		fmt.Fprintf(&b, "\nSide by side, %d slices each, candidate ÷ baseline: p50 ×%s · p90 ×%s · p99 ×%s\n\n", c.Slices, num(c.Ratios.P50), num(c.Ratios.P90), num(c.Ratios.P99))
		b.WriteString("| version | target | requests | error rate | p50 ms | p90 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|---|---|---|\n")
		for _, vr := range []VersionResult{c.Baseline, c.Candidate} {
			l := vr.Latencies
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s |\n", vr.Version, vr.URL, vr.Requests, num(vr.ErrorRate), num(l.P50), num(l.P90), num(l.P99), num(l.P999))
		}
		fmt.Fprintf(&b, "\n![latency](%s)\n", chart)
		return b.String()
	}
	l := r.Latencies
	fmt.Fprintf(&b, "\nLatency (ms): min %s · p50 %s · p75 %s · p90 %s · p99 %s · p99.9 %s · max %s\n\n![latency](%s)\n",
		num(l.Min), num(l.P50), num(l.P75), num(l.P90), num(l.P99), num(l.P999), num(l.Max), chart)
	return b.String()
}

func qps(q float64) string {
	if q <= 0 {
		return "max"
	}
	return fmt.Sprintf("%g", q)
}
