// Command githost measures push to applied through a real Git host: two fleet repos on one
// Gitea, each with a design on 3 real clusters, one announced by Gitea's own webhook (and polled
// only every ten minutes), the other polled every few seconds with no webhook. Pushes alternate
// between them, and it prints the time from each push to its weight being live everywhere:
// with the webhook it should not wait for any poll.
package main

import (
	"context"
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
	"sync"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/hack/bench/benchfleet"
	"github.com/meshcd/meshcd/internal/daemon"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/schema"
)

func main() {
	schema.ServeWorkerIfRequested() // the daemon's evaluation workers are this binary
	gates.ServeLoadIfRequested()
	pushes := flag.Int("pushes", 12, "pushes measured per repo")
	interval := flag.Duration("interval", 5*time.Second, "poll interval of the repo without a webhook")
	flag.Parse()
	if err := run(*pushes, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "bench githost:", err)
		os.Exit(1)
	}
}

func run(nPushes int, interval time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{Names: []string{"east", "west", "central"}, StartTimeout: 5 * time.Minute})
	if err != nil {
		return err
	}
	defer env.Stop()
	host, err := testenv.StartGitHost(ctx, testenv.GitHostOptions{})
	if err != nil {
		return err
	}
	defer host.Close()
	dir, err := os.MkdirTemp("", "meshcd-bench-githost-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr, err := benchfleet.FreeAddr()
	if err != nil {
		return err
	}
	const secret = "bench-gitea-hook"
	os.Setenv("MESHCD_BENCH_GITEA_TOKEN", host.Token)
	os.Setenv("MESHCD_BENCH_GITEA_HOOK", secret)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "listen: %s\ncacheDir: %s\nwebhooks: {gitea: {env: MESHCD_BENCH_GITEA_HOOK}}\nrepos:\n", addr, filepath.Join(dir, "cache"))
	names := []string{"hooked", "polled"}
	repos := map[string]*testenv.HostRepo{}
	for _, name := range names {
		r, err := host.CreateRepo(ctx, name)
		if err != nil {
			return err
		}
		if _, err := r.Push(ctx, "main", benchfleet.Files(name, 50, ""), "first"); err != nil {
			return err
		}
		every := interval
		if name == "hooked" {
			every = 10 * time.Minute
		}
		fmt.Fprintf(&cfg, "- {url: %s, branch: main, interval: %s, allowHTTP: true, username: %s, password: {env: MESHCD_BENCH_GITEA_TOKEN}}\n", r.CloneURL(), every, host.User)
		repos[name] = r
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
	if err := repos["hooked"].AddWebhook(ctx, "http://"+addr+"/hooks/gitea", secret); err != nil {
		return err
	}
	// A second webhook to a listener of our own times Gitea's delivery alone.
	var mu sync.Mutex
	delivered := map[string]time.Time{} // pushed commit -> when its webhook arrived
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var push struct {
			After string `json:"after"`
		}
		if json.NewDecoder(r.Body).Decode(&push) == nil && push.After != "" {
			mu.Lock()
			delivered[push.After] = time.Now()
			mu.Unlock()
		}
	}))
	defer spy.Close()
	if err := repos["hooked"].AddWebhook(ctx, spy.URL, secret); err != nil {
		return err
	}

	live := func(name string, weight int) bool {
		for cluster, c := range clients {
			if benchfleet.LiveWeight(ctx, c, cluster, name) != weight {
				return false
			}
		}
		return true
	}
	wait := func(name string, weight int, limit time.Duration) error {
		deadline := time.Now().Add(limit)
		for !live(name, weight) {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: weight %d not live on every cluster within %s", name, weight, limit)
			}
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	}
	for _, name := range names {
		// The first revision comes with the first poll, webhook or not.
		if err := wait(name, 50, 3*time.Minute); err != nil {
			return err
		}
	}
	lat := map[string][]time.Duration{}
	for k := range nPushes {
		for _, name := range names {
			w := 10 + (k*7)%80
			if w == 50 {
				w = 51
			}
			var err error
			var sha string
			for range 20 { // a push that lost the race with meshcd's status commit goes again
				if sha, err = repos[name].Push(ctx, "main", benchfleet.Files(name, w, ""), fmt.Sprintf("push %d", k)); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				return err
			}
			pushed := time.Now()
			if err := wait(name, w, time.Minute+2*interval); err != nil {
				return err
			}
			lat[name] = append(lat[name], time.Since(pushed))
			if name == "hooked" {
				var at time.Time
				for deadline := time.Now().Add(10 * time.Second); at.IsZero(); time.Sleep(5 * time.Millisecond) {
					mu.Lock()
					at = delivered[sha]
					mu.Unlock()
					if time.Now().After(deadline) {
						return fmt.Errorf("push %d: Gitea delivered no webhook for %s within 10s", k, sha)
					}
				}
				lat["delivery"] = append(lat["delivery"], at.Sub(pushed))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	p := func(l []time.Duration, q float64) time.Duration {
		s := slices.Clone(l)
		slices.Sort(s)
		return s[min(len(s)-1, int(q*float64(len(s))))].Round(time.Millisecond)
	}
	fmt.Printf("push to applied on 3 clusters through a real Gitea, %d pushes each:\n", nPushes)
	fmt.Printf("  Gitea webhook (poll every 10m): p50 %s  max %s\n", p(lat["hooked"], 0.5), p(lat["hooked"], 1))
	fmt.Printf("    of which Gitea's delivery:   p50 %s  max %s (push returned to webhook received)\n", p(lat["delivery"], 0.5), p(lat["delivery"], 1))
	fmt.Printf("  polling every %s, no webhook:   p50 %s  max %s\n", interval, p(lat["polled"], 0.5), p(lat["polled"], 1))
	fmt.Printf("  ratio (polling / webhook, p50): %.1f\n", p(lat["polled"], 0.5).Seconds()/p(lat["hooked"], 0.5).Seconds())
	return nil
}
