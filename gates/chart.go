package gates

import (
	"bytes"
	"fmt"
	"html"
	"math"
)

// Chart draws a run as SVG, in pure Go: the latency histogram as bars and the percentiles as
// labelled vertical lines, so a Git host shows a picture beside the numbers.
func Chart(r *Result) []byte {
	const w, h, left, right, top, bottom = 640.0, 320.0, 56.0, 16.0, 40.0, 40.0
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%g" y="20" font-size="14">%s — %s</text>`+"\n", left, html.EscapeString(r.Name), html.EscapeString(r.Target.Cluster))
	maxX := r.Latencies.Max
	var maxCount int64
	for _, bk := range r.Histogram {
		maxX = math.Max(maxX, bk.EndMs)
		maxCount = max(maxCount, bk.Count)
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
	for _, bk := range r.Histogram {
		x0, x1 := x(bk.StartMs), x(bk.EndMs)
		fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="#4a90d9"/>`+"\n", x0, y(bk.Count), math.Max(x1-x0, 1), top+ph-y(bk.Count))
	}
	for _, p := range []struct {
		name string
		ms   float64
	}{{"p50", r.Latencies.P50}, {"p90", r.Latencies.P90}, {"p99", r.Latencies.P99}} {
		px := x(p.ms)
		fmt.Fprintf(&b, `<line x1="%.2f" y1="%g" x2="%.2f" y2="%g" stroke="#d9534f" stroke-dasharray="4 2"/>`+"\n", px, top, px, top+ph)
		fmt.Fprintf(&b, `<text x="%.2f" y="%g" fill="#d9534f">%s %.2f ms</text>`+"\n", px+2, top+12, p.name, p.ms)
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g">0</text><text x="%g" y="%g" text-anchor="end">%.2f ms</text>`+"\n", left, h-20, left+pw, h-20, maxX)
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="end">%d</text>`+"\n", left-4, top+8, maxCount)
	fmt.Fprintf(&b, `<text x="%g" y="%g">%d requests, %.1f QPS, error rate %.2f%%</text>`+"\n", left, h-6, r.Requests, r.ActualQPS, r.ErrorRate*100)
	b.WriteString("</svg>\n")
	return b.Bytes()
}
