// Command verdicts measures how steady a gate's verdict is on a loaded machine: two identical
// servers (the same version twice), judged 20 times side by side (one run, alternating slices)
// and 20 times history-based (one version measured, then the other, as a baseline from an
// earlier run is), while two busy processes keep both cores loaded. It prints the spread of
// the p99 ratio for each way and how many of the runs a 20% budget would have failed: every
// such fail is a wrong verdict, since the servers are the same.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"fortio.org/fortio/fhttp"
	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/schema"
)

func main() {
	runs := flag.Int("runs", 20, "runs of each way")
	d := flag.Duration("t", 4*time.Second, "load of one run (side by side: half for each version)")
	flag.Parse()
	if err := run(*runs, *d); err != nil {
		fmt.Fprintln(os.Stderr, "bench verdicts:", err)
		os.Exit(1)
	}
}

func server() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // a service that does a little work
		fhttp.EchoHandler(w, r)
	}))
}

func run(n int, d time.Duration) error {
	ctx := context.Background()
	a, b := server(), server()
	defer a.Close()
	defer b.Close()
	for range 2 {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return err
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
	}
	dur := func(d time.Duration) *schema.Duration { return &schema.Duration{Duration: d, Text: d.String()} }
	load := schema.LoadProfile{QPS: 200, Connections: 8, Duration: dur(d)}
	side := schema.Gate{Load: load, Compare: &schema.Compare{
		Baseline: "a", Candidate: "b", URLs: map[string]string{"a": a.URL + "/", "b": b.URL + "/"},
		MaxRegression: "20%", MinDifference: dur(5 * time.Millisecond), MaxErrorRateIncrease: 0.01, Slice: dur(250 * time.Millisecond),
	}}
	half := load
	half.Duration = dur(d / 2)
	var sideRatios, histRatios []float64
	sideFails, histFails := 0, 0
	for i := range n {
		res, err := gates.Run(ctx, side, gates.Target{Design: "bench", Gate: "side"})
		if err != nil {
			return err
		}
		v, err := gates.Judge(res, side, nil)
		if err != nil {
			return err
		}
		sideRatios = append(sideRatios, res.Compare.Ratios.P99)
		if !v.Pass {
			sideFails++
		}
		// History-based: the baseline was measured in its own run, the candidate in another,
		// with the same budget (20%) as a ratio of p99.
		ra, err := gates.Run(ctx, schema.Gate{URL: a.URL + "/", Load: half}, gates.Target{Design: "bench", Gate: "a"})
		if err != nil {
			return err
		}
		rb, err := gates.Run(ctx, schema.Gate{URL: b.URL + "/", Load: half}, gates.Target{Design: "bench", Gate: "b"})
		if err != nil {
			return err
		}
		r := rb.Latencies.P99 / ra.Latencies.P99
		histRatios = append(histRatios, r)
		if r > 1.2 {
			histFails++
		}
		fmt.Printf("run %2d: side by side p99 ratio %.2f (%s), history-based %.2f\n", i+1, res.Compare.Ratios.P99, word(v.Pass), r)
	}
	fmt.Printf("p99 ratio of two identical servers over %d runs each, two busy processes on the machine:\n", n)
	fmt.Printf("  side by side:   %s; wrong verdicts at a 20%% budget: %d of %d\n", describe(sideRatios), sideFails, n)
	fmt.Printf("  history-based:  %s; wrong verdicts at a 20%% budget: %d of %d\n", describe(histRatios), histFails, n)
	return nil
}

func word(pass bool) string {
	if pass {
		return "pass"
	}
	return "FAIL"
}

func describe(r []float64) string {
	s := slices.Clone(r)
	slices.Sort(s)
	var sum, sq float64
	for _, v := range s {
		sum += v
	}
	mean := sum / float64(len(s))
	for _, v := range s {
		sq += (v - mean) * (v - mean)
	}
	return fmt.Sprintf("min %.2f, median %.2f, max %.2f, stddev %.2f", s[0], s[len(s)/2], s[len(s)-1], math.Sqrt(sq/float64(len(s))))
}
