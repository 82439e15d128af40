// Command view measures the daemon's web view in a real headless Chromium: the fleet page of
// 200 designs × 20 clusters, from the request to the page loaded (its script and styles
// included), beside fetching and decoding the same fleet as JSON from the API. Target: the
// page under 1 s on the 2-core machine.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/meshcd/meshcd/internal/web"
)

func main() {
	designs := flag.Int("designs", 200, "designs")
	clusters := flag.Int("clusters", 20, "clusters")
	rounds := flag.Int("rounds", 7, "loads measured (the median is printed)")
	flag.Parse()
	if err := run(*designs, *clusters, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench view:", err)
		os.Exit(1)
	}
}

// source is a fixed fleet, as the daemon would publish it.
type source struct{ f web.Fleet }

func (s source) View() web.Fleet { return s.f }
func (s source) Subscribe() (<-chan struct{}, func()) {
	return make(chan struct{}), func() {}
}

func fleetOf(designs, clusters int) web.Fleet {
	r := web.Repo{URL: "https://git.example.com/platform/fleet.git", Branch: "main", Revision: "0123456789abcdef0123456789abcdef01234567",
		Web: "https://git.example.com/platform/fleet", CommitPath: "/commit/", Clusters: map[string]map[string]string{}}
	for c := range clusters {
		r.Clusters[fmt.Sprintf("cluster-%02d", c)] = map[string]string{"env": "prod", "region": fmt.Sprintf("r%d", c%4)}
	}
	for d := range designs {
		for c := range clusters {
			cell := web.Cell{Design: fmt.Sprintf("design-%03d", d), Cluster: fmt.Sprintf("cluster-%02d", c), Revision: r.Revision,
				Health: "Current", Objects: 12, Duration: "41ms", Gates: []web.GateMark{{Name: "latency", Measured: true, Pass: (d+c)%17 != 0}}}
			if (d*c)%97 == 1 {
				cell.Drift = web.DriftSummary{Detected: 2, Healed: 1}
			}
			if (d+c)%113 == 0 { // a broken revision: the last good one stays applied
				cell.Error, cell.Health = "apply refused: admission webhook denied the request", "Failed"
				cell.Revision = "89abcdef0123456789abcdef0123456789abcdef"
			}
			r.Cells = append(r.Cells, cell)
		}
	}
	return web.Fleet{Repos: []web.Repo{r}}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func run(designs, clusters, rounds int) error {
	src := source{fleetOf(designs, clusters)}
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		data, _ := json.Marshal(src.View())
		w.Header().Set("Content-Type", "application/json")
		w.Write(data)
	})
	h, err := web.NewHandler(src, web.Options{API: api})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	var jsonTimes []time.Duration
	var jsonBytes int
	for range rounds {
		start := time.Now()
		resp, err := http.Get(srv.URL + "/api/v1/status")
		if err != nil {
			return err
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var f web.Fleet
		if err := json.Unmarshal(data, &f); err != nil {
			return err
		}
		jsonTimes = append(jsonTimes, time.Since(start))
		jsonBytes = len(data)
	}

	path, err := exec.LookPath("chromium")
	if err != nil {
		return fmt.Errorf("chromium is not installed (make bench installs it): %w", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		return err
	}
	var pageTimes []time.Duration
	cells := ""
	for i := range rounds + 1 {
		start := time.Now()
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil { // returns once the page has loaded
			return err
		}
		took := time.Since(start)
		if i == 0 {
			continue // the browser's first load warms its own caches
		}
		pageTimes = append(pageTimes, took)
		if cells, err = chromedp.Run(ctx, chromedp.Evaluate[string](`String(document.querySelectorAll('td.cell').length)`)); err != nil {
			return err
		}
	}
	page := median(pageTimes)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		return err
	}
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("fleet page of %d designs × %d clusters (%s cells shown, %d KiB of HTML) in headless Chromium, median of %d loads:\n", designs, clusters, cells, len(html)>>10, rounds)
	fmt.Printf("  page loaded: %s (target < 1 s)\n", page.Round(time.Millisecond))
	fmt.Printf("  the same fleet as JSON from the API, fetched and decoded: %s (%d KiB)\n", median(jsonTimes).Round(time.Millisecond), jsonBytes>>10)
	fmt.Printf("  ratio (page / JSON): %.1f\n", page.Seconds()/median(jsonTimes).Seconds())
	return nil
}
