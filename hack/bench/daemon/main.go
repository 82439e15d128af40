// Command daemon measures `meshcd run` as a whole: 20 fleet repos on a real Git server, each
// with a design on 3 real clusters, pushes announced by webhook, and the time from a push to
// its weight being live on every cluster. It measures that with no gate running and while 3
// gates load (one per cluster, each for minutes), alternating the two conditions in blocks
// (none, gates, none, gates, ...) so that the machine's drift over the run falls on both
// alike, and prints the ratio: the gates must not slow anyone else's push down.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"fortio.org/fortio/fhttp"
	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/hack/bench/benchfleet"
	"github.com/meshcd/meshcd/internal/daemon"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/schema"
)

const secret = "bench-webhook-secret"

func main() {
	schema.ServeWorkerIfRequested() // the daemon's evaluation workers are this binary
	gates.ServeLoadIfRequested()    // and so are its gate loads
	repos := flag.Int("repos", 20, "fleet repos")
	pushes := flag.Int("pushes", 50, "pushes measured per block")
	blocks := flag.Int("blocks", 3, "blocks per condition (no gates, gates), alternated")
	gated := flag.Int("gates", 3, "designs whose gates load during the gated blocks")
	flag.Parse()
	if err := run(*repos, *pushes, *blocks, *gated); err != nil {
		fmt.Fprintln(os.Stderr, "bench daemon:", err)
		os.Exit(1)
	}
}

func run(nRepos, nPushes, nBlocks, nGated int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{Names: []string{"east", "west", "central"}, StartTimeout: 5 * time.Minute})
	if err != nil {
		return err
	}
	defer env.Stop()
	git, err := testenv.StartGitServer(testenv.GitServerOptions{})
	if err != nil {
		return err
	}
	defer git.Close()
	echo := httptest.NewServer(http.HandlerFunc(fhttp.EchoHandler))
	defer echo.Close()

	dir, err := os.MkdirTemp("", "meshcd-bench-daemon-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var repos []*testenv.Repo
	var cfg strings.Builder
	addr, err := benchfleet.FreeAddr()
	if err != nil {
		return err
	}
	fmt.Fprintf(&cfg, "listen: %s\ncacheDir: %s\ngates: {allowLoopback: true}\nwebhooks: {generic: {env: MESHCD_BENCH_WEBHOOK}}\nrepos:\n", addr, filepath.Join(dir, "cache"))
	for i := range nRepos {
		name := fmt.Sprintf("r%02d", i)
		r, err := git.CreateRepo(ctx, name)
		if err != nil {
			return err
		}
		if _, err := r.Push(ctx, "main", benchfleet.Files(name, 50, ""), "first"); err != nil {
			return err
		}
		repos = append(repos, r)
		fmt.Fprintf(&cfg, "- {url: %s, branch: main, interval: 30s, allowHTTP: true}\n", r.HTTPURL())
	}
	cfg.WriteString("clusters:\n")
	clients := map[string]*fleet.Cluster{}
	for _, c := range env.Clusters {
		fmt.Fprintf(&cfg, "  %s: {kubeconfig: %q, context: %s}\n", c.Name, c.KubeconfigPath, c.Name)
		fc, err := fleet.Connect(schema.Cluster{Name: c.Name}, c.Config(), fleet.DefaultClientOptions())
		if err != nil {
			return err
		}
		defer fc.Close()
		clients[c.Name] = fc
	}
	os.Setenv("MESHCD_BENCH_WEBHOOK", secret)
	conf, err := daemon.ParseConfig("meshcd.yaml", []byte(cfg.String()))
	if err != nil {
		return err
	}
	d, err := daemon.New(conf, daemon.Shard{Of: 1}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		return err
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = d.Run(ctx)
	}()
	defer func() { cancel(); <-stopped }()

	live := func(name string, weight int) bool {
		for cluster, c := range clients {
			if benchfleet.LiveWeight(ctx, c, cluster, name) != weight {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(3 * time.Minute)
	for i := range nRepos {
		for !live(fmt.Sprintf("r%02d", i), 50) {
			if time.Now().After(deadline) {
				return fmt.Errorf("repo %d not applied within 3 minutes", i)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	fmt.Printf("%d repos × 3 clusters applied\n", nRepos)

	seq := 0
	measure := func(phase string, from int) ([]time.Duration, error) {
		var lat []time.Duration
		for range nPushes {
			// One sequence over all blocks: a push always changes its repo's weight.
			k := seq
			seq++
			i := from + k%(nRepos-from)
			name := fmt.Sprintf("r%02d", i)
			w := 10 + (k*7)%80
			if w == 50 {
				w = 51
			}
			if err := benchfleet.Push(ctx, repos[i], benchfleet.Files(name, w, ""), fmt.Sprintf("%s push %d", phase, k)); err != nil {
				return nil, err
			}
			pushed := time.Now()
			if err := hook(addr, repos[i].HTTPURL()); err != nil {
				return nil, err
			}
			for !live(name, w) {
				if time.Since(pushed) > time.Minute {
					return nil, fmt.Errorf("%s push %d to %s not applied within a minute", phase, k, name)
				}
				time.Sleep(2 * time.Millisecond)
			}
			lat = append(lat, time.Since(pushed))
			time.Sleep(100 * time.Millisecond)
		}
		return lat, nil
	}
	// setGates pushes the first designs with a gate that loads for ten minutes on every
	// cluster (on) or without it, which cancels the runs (off), and waits until the daemon
	// says the loads run or stopped.
	setGates := func(on bool) error {
		url, w, want := "", 50, 0
		if on {
			url, w, want = echo.URL+"/", 60, nGated
		}
		for i := range nGated {
			name := fmt.Sprintf("r%02d", i)
			if err := benchfleet.Push(ctx, repos[i], benchfleet.Files(name, w, url), fmt.Sprintf("gates %v", on)); err != nil {
				return err
			}
			if err := hook(addr, repos[i].HTTPURL()); err != nil {
				return err
			}
		}
		deadline := time.Now().Add(time.Minute)
		for running(addr) != want {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d gate loads running after a minute, want %d", running(addr), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	}
	var none, withGates []time.Duration
	for b := range nBlocks {
		lat, err := measure(fmt.Sprintf("no gates %d", b), nGated)
		if err != nil {
			return err
		}
		none = append(none, lat...)
		if err := setGates(true); err != nil {
			return err
		}
		lat, err = measure(fmt.Sprintf("gates %d", b), nGated)
		if err != nil {
			return err
		}
		if n := running(addr); n < nGated {
			return fmt.Errorf("only %d gates still running at the end of block %d", n, b)
		}
		withGates = append(withGates, lat...)
		if err := setGates(false); err != nil {
			return err
		}
		fmt.Printf("block %d of %d done\n", b+1, nBlocks)
	}
	p := func(l []time.Duration, q float64) time.Duration {
		s := slices.Clone(l)
		slices.Sort(s)
		return s[min(len(s)-1, int(q*float64(len(s))))]
	}
	fmt.Printf("push to applied on 3 clusters (webhook), %d pushes per condition in %d alternating blocks, over %d repos:\n", len(none), nBlocks, nRepos-nGated)
	fmt.Printf("  no gate running:   p50 %s  p99 %s\n", p(none, 0.5).Round(time.Millisecond), p(none, 0.99).Round(time.Millisecond))
	fmt.Printf("  %d gates loading:   p50 %s  p99 %s\n", nGated, p(withGates, 0.5).Round(time.Millisecond), p(withGates, 0.99).Round(time.Millisecond))
	fmt.Printf("  ratio (no gates / gates, 1.0 = unaffected, target >= 0.9): p50 %.2f  p99 %.2f\n",
		p(none, 0.5).Seconds()/p(withGates, 0.5).Seconds(), p(none, 0.99).Seconds()/p(withGates, 0.99).Seconds())
	return nil
}

// hook announces a push with a signed generic webhook, as a Git host would.
func hook(addr, repo string) error {
	body, _ := json.Marshal(map[string]string{"repo": repo, "ref": "refs/heads/main"})
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/generic", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("webhook: %s", resp.Status)
	}
	return nil
}

// running counts the gate runs in flight, from /api/v1/status.
func running(addr string) int {
	resp, err := http.Get("http://" + addr + "/api/v1/status")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var s struct {
		Repos []daemon.RepoStatus `json:"repos"`
	}
	if json.NewDecoder(resp.Body).Decode(&s) != nil {
		return 0
	}
	n := 0
	for _, r := range s.Repos {
		n += len(r.GatesRunning)
	}
	return n
}
