// Command gates measures a gate run at a fixed QPS against fortio's echo server on loopback:
// achieved/requested QPS and p50/p99 as meshcd reports them, beside fortio's own CLI against
// the same target, and the time from the end of the load to the verdict committed to a real
// Git server.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"fortio.org/fortio/fhttp"
	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/sources"
)

func main() {
	fortio := flag.String("fortio", "", "fortio CLI binary")
	qps := flag.Float64("qps", 2000, "requests per second")
	d := flag.Duration("t", 20*time.Second, "duration of each load")
	flag.Parse()
	if err := run(*fortio, *qps, *d); err != nil {
		fmt.Fprintln(os.Stderr, "bench gates:", err)
		os.Exit(1)
	}
}

func run(fortio string, qps float64, d time.Duration) error {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(fhttp.EchoHandler))
	defer srv.Close()
	g := schema.Gate{URL: srv.URL + "/", Load: schema.LoadProfile{QPS: qps, Connections: 8, Duration: &schema.Duration{Duration: d}}}
	p99 := &schema.Duration{Duration: 250 * time.Millisecond, Text: "250ms"}
	g.Thresholds.P99 = p99

	git, err := testenv.StartGitServer(testenv.GitServerOptions{})
	if err != nil {
		return err
	}
	defer git.Close()
	repo, err := git.CreateRepo(ctx, "fleet")
	if err != nil {
		return err
	}
	if _, err := repo.Push(ctx, "main", map[string][]byte{"README.md": []byte("bench\n")}, "start"); err != nil {
		return err
	}
	cache, err := os.MkdirTemp("", "meshcd-bench-gates-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	poller := sources.NewPoller(cache)
	poller.Policy.AllowHTTP = true
	src := sources.Repo{URL: repo.HTTPURL()}
	if _, err := poller.Poll(ctx, src, []string{"main"}); err != nil {
		return err
	}
	res, err := gates.Run(ctx, g, gates.Target{Design: "bench", Gate: "qps", Cluster: "local", Revision: "bench"})
	if err != nil {
		return err
	}
	loadEnd := time.Now()
	v, err := gates.Judge(res, g, nil)
	if err != nil {
		return err
	}
	files, err := gates.Files(res, v, nil)
	if err != nil {
		return err
	}
	if _, err := poller.CommitFiles(ctx, src, sources.DefaultCommitOptions(), files); err != nil {
		return err
	}
	toCommit := time.Since(loadEnd)

	out := filepath.Join(cache, "fortio.json")
	cmd := exec.CommandContext(ctx, fortio, "load", "-qps", strconv.FormatFloat(qps, 'f', -1, 64), "-c", "8", "-t", d.String(), "-json", out, "-quiet", srv.URL+"/")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fortio load: %v: %s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	var f struct {
		ActualQPS         float64
		DurationHistogram struct {
			Percentiles []struct{ Percentile, Value float64 }
		}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	var fp50, fp99 float64
	for _, p := range f.DurationHistogram.Percentiles {
		switch p.Percentile {
		case 50:
			fp50 = p.Value * 1000
		case 99:
			fp99 = p.Value * 1000
		}
	}
	fmt.Printf("gate load at %.0f QPS for %s over 8 connections, fortio's echo server on loopback:\n", qps, d)
	fmt.Printf("  meshcd gates.Run   achieved/requested %.3f   p50 %.3f ms   p99 %.3f ms\n", res.ActualQPS/qps, res.Latencies.P50, res.Latencies.P99)
	fmt.Printf("  fortio CLI         achieved/requested %.3f   p50 %.3f ms   p99 %.3f ms\n", f.ActualQPS/qps, fp50, fp99)
	fmt.Printf("  ratio meshcd/fortio: QPS %.2fx, p50 %.2fx, p99 %.2fx\n", res.ActualQPS/f.ActualQPS, res.Latencies.P50/fp50, res.Latencies.P99/fp99)
	fmt.Printf("end of load to verdict committed on a real Git server: %s\n", toCommit.Round(time.Millisecond))
	return nil
}
