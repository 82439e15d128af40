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
	"net"
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
	"github.com/meshcd/meshcd/internal/daemon"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
)

const secret = "bench-webhook-secret"

const fleetCUE = `
cluster: east: {labels: {env: "prod"}, mesh: "istio"}
cluster: west: {labels: {env: "prod"}, mesh: "linkerd"}
cluster: central: {labels: {env: "prod"}, mesh: "gateway-api"}
`

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

func design(name string, weight int, gateURL string) string {
	gate := ""
	if gateURL != "" {
		gate = fmt.Sprintf(`gates: soak: {url: %q, load: {qps: 50, connections: 2, duration: "10m"}, thresholds: {p99: "5s"}, triggers: ["change"]}`, gateURL)
	}
	return fmt.Sprintf(`design: %q: {
	namespace: %q
	targets: matchLabels: env: "prod"
	services: checkout: {
		port: 8080
		versions: {stable: labels: version: "v1", canary: labels: version: "v2"}
		routes: [{to: {stable: %d, canary: %d}}]
	}
	manifests: [{yaml: "./raw"}]
	%s
}`, name, name, weight, 100-weight, gate)
}

func files(name string, weight int, gateURL string) map[string][]byte {
	return map[string][]byte{
		"clusters/fleet.cue":                 []byte(fleetCUE),
		"designs/" + name + "/design.cue":    []byte(design(name, weight, gateURL)),
		"designs/" + name + "/raw/conf.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\ndata: {k: v}\n"),
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
	addr, err := freeAddr()
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
		if _, err := r.Push(ctx, "main", files(name, 50, ""), "first"); err != nil {
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
			if liveWeight(ctx, c, cluster, name) != weight {
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
			if err := push(ctx, repos[i], files(name, w, ""), fmt.Sprintf("%s push %d", phase, k)); err != nil {
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
			if err := push(ctx, repos[i], files(name, w, url), fmt.Sprintf("gates %v", on)); err != nil {
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

// push pushes like a person does while meshcd commits status to the same branch: a push that
// lost the race is fetched and tried again.
func push(ctx context.Context, r *testenv.Repo, files map[string][]byte, msg string) error {
	var err error
	for range 20 {
		if _, err = r.Push(ctx, "main", files, msg); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
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

var (
	vsGVK    = k8sschema.FromAPIVersionAndKind("networking.istio.io/v1", "VirtualService")
	routeGVK = k8sschema.FromAPIVersionAndKind("gateway.networking.k8s.io/v1", "HTTPRoute")
)

// liveWeight is the stable version's weight as the cluster serves it (-1 when absent), read
// from a watch cache of the routes, so looking costs the apiservers nothing.
func liveWeight(ctx context.Context, c *fleet.Cluster, cluster, ns string) int {
	gvk := routeGVK
	if cluster == "east" {
		gvk = vsGVK
	}
	if _, err := c.Live.Watch(ctx, gvk); err != nil {
		return -1
	}
	var o *unstructured.Unstructured
	for _, obj := range c.Live.Objects() {
		if obj.GroupVersionKind() == gvk && obj.GetNamespace() == ns {
			o = obj
			break
		}
	}
	if o == nil {
		return -1
	}
	if cluster == "east" {
		return subsetWeight(o)
	}
	rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
	for _, r := range rules {
		refs, _ := r.(map[string]any)["backendRefs"].([]any)
		for _, ref := range refs {
			if rm := ref.(map[string]any); rm["name"] == "checkout-stable" {
				w, _ := rm["weight"].(int64)
				return int(w)
			}
		}
	}
	return -1
}

func subsetWeight(o *unstructured.Unstructured) int {
	http, _, _ := unstructured.NestedSlice(o.Object, "spec", "http")
	for _, h := range http {
		routes, _ := h.(map[string]any)["route"].([]any)
		for _, r := range routes {
			rm := r.(map[string]any)
			if dest, _ := rm["destination"].(map[string]any); dest["subset"] == "stable" {
				w, _ := rm["weight"].(int64)
				return int(w)
			}
		}
	}
	return -1
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
