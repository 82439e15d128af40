package gates

import (
	"bytes"
	"fmt"
	"html"
	"math"
)

// series is one distribution a chart draws.
type series struct {
	label     string
	buckets   []Bucket
	latencies Latencies
	fill      string
	line      string
}

// Chart draws a run as SVG, in pure Go: the latency histogram as bars and the percentiles as
// labelled vertical lines, so a Git host shows a picture beside the numbers. A side-by-side
// run draws both versions over one axis, the baseline in grey behind the candidate.
func Chart(r *Result) []byte {
	const w, h, left, right, top, bottom = 640.0, 320.0, 56.0, 16.0, 40.0, 40.0
	all := []series{{label: "", buckets: r.Histogram, latencies: r.Latencies, fill: "#4a90d9", line: "#d9534f"}}
	if c := r.Compare; c != nil {
		all = []series{
			{label: c.Baseline.Version, buckets: c.Baseline.Histogram, latencies: c.Baseline.Latencies, fill: "#9e9e9e", line: "#616161"},
			{label: c.Candidate.Version, buckets: c.Candidate.Histogram, latencies: c.Candidate.Latencies, fill: "#4a90d9", line: "#d9534f"},
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%g" y="20" font-size="14">%s — %s</text>`+"\n", left, html.EscapeString(r.Name), html.EscapeString(r.Target.Cluster))
	var maxX float64
	var maxCount int64
	for _, s := range all {
		maxX = math.Max(maxX, s.latencies.Max)
		for _, bk := range s.buckets {
			maxX = math.Max(maxX, bk.EndMs)
			maxCount = max(maxCount, bk.Count)
		}
	}
	if maxX <= 0 {
		maxX = 1
	}
	if maxCount == 0 {
		maxCount = 1
	}
	pw, ph := w-left-right, h-top-bottom
	x := func(ms float64) float64 { return left + ms/maxX*pw }
	y := func(c int64) float64 { return top + ph - float64(c)/float64(maxCount)*ph }
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", left, top+ph, left+pw, top+ph)
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", left, top, left, top+ph)
	for i, s := range all {
		opacity := 1.0
		if len(all) > 1 {
			opacity = 0.7
		}
		for _, bk := range s.buckets {
			x0, x1 := x(bk.StartMs), x(bk.EndMs)
			fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s" fill-opacity="%g"/>`+"\n", x0, y(bk.Count), math.Max(x1-x0, 1), top+ph-y(bk.Count), s.fill, opacity)
		}
		for j, p := range []struct {
			name string
			ms   float64
		}{{"p50", s.latencies.P50}, {"p90", s.latencies.P90}, {"p99", s.latencies.P99}} {
			px := x(p.ms)
			name := p.name
			if s.label != "" {
				name = s.label + " " + p.name
			}
			fmt.Fprintf(&b, `<line x1="%.2f" y1="%g" x2="%.2f" y2="%g" stroke="%s" stroke-dasharray="4 2"/>`+"\n", px, top, px, top+ph, s.line)
			fmt.Fprintf(&b, `<text x="%.2f" y="%g" fill="%s">%s %.2f ms</text>`+"\n", px+2, top+12+float64(i*3+j)*12*float64(len(all)-1)/2, s.line, html.EscapeString(name), p.ms)
		}
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g">0</text><text x="%g" y="%g" text-anchor="end">%.2f ms</text>`+"\n", left, h-20, left+pw, h-20, maxX)
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="end">%d</text>`+"\n", left-4, top+8, maxCount)
	if c := r.Compare; c != nil {
		fmt.Fprintf(&b, `<text x="%g" y="%g">%s (blue) vs %s (grey): p50 ×%.2f, p99 ×%.2f, %d + %d requests over %d slices each</text>`+"\n",
			left, h-6, html.EscapeString(c.Candidate.Version), html.EscapeString(c.Baseline.Version), c.Ratios.P50, c.Ratios.P99, c.Candidate.Requests, c.Baseline.Requests, c.Slices)
	} else {
		fmt.Fprintf(&b, `<text x="%g" y="%g">%d requests, %.1f QPS, error rate %.2f%%</text>`+"\n", left, h-6, r.Requests, r.ActualQPS, r.ErrorRate*100)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}
