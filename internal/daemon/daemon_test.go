package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fortio.org/fortio/fhttp"
	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// childEnv makes this test binary run the daemon, so tests run it as a separate process.
const childEnv = "MESHCD_DAEMON_TEST_CONFIG"

func TestMain(m *testing.M) {
	schema.ServeWorkerIfRequested()
	gates.ServeLoadIfRequested()
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	code := m.Run()
	if sharedEnv != nil {
		sharedEnv.Stop()
	}
	os.Exit(code)
}

func runChild(path string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg, err := LoadConfig(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	shard := Shard{Of: 1}
	if v := os.Getenv("MESHCD_DAEMON_TEST_SHARDS"); v != "" {
		fmt.Sscanf(v, "%d/%d", &shard.ID, &shard.Of)
	}
	d, err := New(cfg, shard, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

const fleetFiles = `
cluster: east: {labels: {env: "prod"}, mesh: "istio"}
cluster: west: {labels: {env: "prod"}, mesh: "linkerd"}
cluster: central: {labels: {env: "prod"}, mesh: "gateway-api"}
`

func design(name string, weight int, gateURL string) string {
	return designWith(name, weight, gateURL, false)
}

// designWith is a design called name in the namespace name (the tests share their clusters, so
// each uses its own): a service whose stable version gets weight and a ConfigMap settings;
// with gateURL it has a gate run on change, and with cron also one run every two seconds.
func designWith(name string, weight int, gateURL string, cron bool) string {
	gate := ""
	if gateURL != "" {
		gate = fmt.Sprintf(`gates: latency: {
		url: %q
		load: {qps: 20, connections: 2, duration: "1s"}
		thresholds: {p99: "1s", errorRate: 0.01}
		triggers: ["change", "pr"]
	}
`, gateURL)
		if cron {
			gate += fmt.Sprintf(`
	gates: periodic: {
		url: %q
		load: {qps: 20, connections: 1, requests: 10}
		thresholds: {p99: "1s"}
		schedule: "@every 2s"
		triggers: ["cron"]
	}`, gateURL)
		}
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
	sync: {prune: true, drift: "heal"}
}`, name, name, weight, 100-weight, gate)
}

const settings = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {currency: EUR}\n"

// fixture is the package's three shared clusters (one per mesh), a Git server whose fleet repo
// holds the first commit, a daemon config for them, and meshcd clients to look at the clusters.
type fixture struct {
	repo    *testenv.Repo
	first   string
	config  string
	addr    string
	clients map[string]*fleet.Cluster
}

func setup(t *testing.T, ctx context.Context, files map[string][]byte) fixture {
	t.Helper()
	env := shared(t)
	git, err := testenv.StartGitServer(testenv.GitServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(git.Close)
	repo, err := git.CreateRepo(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	first, err := repo.Push(ctx, "main", files, "first design")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	var clusters strings.Builder
	for _, c := range env.Clusters {
		fmt.Fprintf(&clusters, "  %s: {kubeconfig: %q, context: %s}\n", c.Name, c.KubeconfigPath, c.Name)
	}
	config := filepath.Join(dir, "meshcd.yaml")
	must(t, os.WriteFile(config, []byte(fmt.Sprintf(`listen: %s
cacheDir: %s
repos:
- url: %s
  branch: main
  interval: 300ms
  allowHTTP: true
  pullRequests: refs/pull/*/head
gates: {allowLoopback: true, previewHosts: ["127.0.0.1"]}
clusters:
%s`, addr, filepath.Join(dir, "cache"), repo.HTTPURL(), clusters.String())), 0o644))
	clients := map[string]*fleet.Cluster{}
	for _, c := range env.Clusters {
		fc, err := fleet.Connect(schema.Cluster{Name: c.Name}, c.Config(), fleet.DefaultClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		clients[c.Name] = fc
	}
	return fixture{repo: repo, first: first, config: config, addr: addr, clients: clients}
}

// daemonProc is the daemon running as a child process.
type daemonProc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	addr string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startDaemon(t *testing.T, config, addr string) *daemonProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+config)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, logs: logs, addr: addr}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if strings.Contains(logs.String(), "WARNING: DATA RACE") {
			t.Errorf("the daemon reported a data race:\n%s", raceReport(logs.String()))
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", tail(logs.String(), 6000))
		}
	})
	return p
}

// raceReport is the race detector's first report in a daemon's output.
func raceReport(logs string) string {
	i := strings.Index(logs, "WARNING: DATA RACE")
	end := strings.Index(logs[i:], "==================")
	if end < 0 {
		return tail(logs[i:], 8000)
	}
	return logs[i : i+end]
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDaemonEndToEnd runs meshcd's daemon as a separate process against three real clusters
// (one per mesh) and a real Git server: a pushed design is applied everywhere and its status
// committed, a gate runs on the change, a weight change is applied, an out-of-band edit is
// healed and recorded, a SIGKILL and restart lose nothing and commit nothing new, and SIGTERM
// stops it cleanly. No status commit is ever empty.
func TestDaemonEndToEnd(t *testing.T) {
	const ns = "store"
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	echo := httptest.NewServer(http.HandlerFunc(fhttp.EchoHandler))
	defer echo.Close()
	f := setup(t, ctx, map[string][]byte{
		"clusters/fleet.cue":                   []byte(fleetFiles),
		"designs/" + ns + "/design.cue":        []byte(designWith(ns, 90, echo.URL+"/", true)),
		"designs/" + ns + "/raw/settings.yaml": []byte(settings),
	})
	repo, first, config, addr, clients := f.repo, f.first, f.config, f.addr, f.clients
	syncStatus := func(cluster string) status.Sync {
		var s status.Sync
		data, err := repo.ReadFile(ctx, "main", status.SyncPath(ns, cluster))
		if err == nil {
			_ = json.Unmarshal(data, &s)
		}
		return s
	}

	d := startDaemon(t, config, addr)
	eventually(t, 90*time.Second, "status committed for the first revision on every cluster", func() bool {
		for _, c := range []string{"east", "west", "central"} {
			if s := syncStatus(c); s.Revision != first || s.Health != "Current" || s.Error != "" {
				return false
			}
		}
		return true
	})
	for name, c := range clients {
		if v := configValue(t, c, ns); v != "EUR" {
			t.Errorf("%s: ConfigMap settings has currency %q", name, v)
		}
	}
	if w := stableWeight(t, clients["east"], ns); w != 90 {
		t.Errorf("east: stable weight %d, want 90", w)
	}
	eventually(t, 30*time.Second, "the gate's result committed", func() bool {
		s := syncStatus("east")
		for _, g := range s.Gates {
			if g.Name == "latency" && g.Pass && g.Revision == first {
				return true
			}
		}
		return false
	})
	eventually(t, 30*time.Second, "the cron gate run at least twice", func() bool {
		h, err := repo.ReadFile(ctx, "main", "status/gates/"+ns+"/periodic/east.history.jsonl")
		return err == nil && strings.Count(string(h), "\n") >= 2
	})
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := get(t, "http://"+addr+path); code != 200 {
			t.Errorf("%s: %d", path, code)
		}
	}
	if _, body := get(t, "http://"+addr+"/metrics"); !strings.Contains(body, fmt.Sprintf(`meshcd_sync_total{cluster="east",design=%q,result="ok"}`, ns)) || !strings.Contains(body, "meshcd_gate_runs_total") {
		t.Errorf("/metrics lacks sync and gate metrics")
	}
	if _, body := get(t, "http://"+addr+"/api/v1/status"); !strings.Contains(body, first) {
		t.Errorf("/api/v1/status does not name the applied revision:\n%s", body)
	}

	// A weight change is applied to every cluster.
	second, err := push(ctx, repo, "main", map[string][]byte{"designs/" + ns + "/design.cue": []byte(design(ns, 50, echo.URL+"/"))}, "50/50")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the weight change applied and its status committed", func() bool {
		return stableWeight(t, clients["east"], ns) == 50 && syncStatus("west").Revision == second && syncStatus("central").Revision == second
	})

	// A pull request gets a preview with the server-side diff; closing it removes the preview.
	head, err := push(ctx, repo, "feature", map[string][]byte{
		"clusters/fleet.cue":                   []byte(fleetFiles),
		"designs/" + ns + "/design.cue":        []byte(design(ns, 30, echo.URL+"/")),
		"designs/" + ns + "/raw/settings.yaml": []byte(settings),
	}, "30/70")
	if err != nil {
		t.Fatal(err)
	}
	must(t, repo.SetRef(ctx, "refs/pull/7/head", head))
	var lastMD string
	defer func() {
		if t.Failed() {
			t.Logf("status/pr/7.md:\n%s", lastMD)
		}
	}()
	eventually(t, 30*time.Second, "a preview of PR 7 in status/pr/7.md", func() bool {
		md, err := repo.ReadFile(ctx, "main", "status/pr/7.md")
		lastMD = string(md)
		return err == nil && strings.Contains(string(md), "networking.istio.io/VirtualService "+ns+"/checkout") && strings.Contains(string(md), "weight: 30") &&
			strings.Contains(string(md), "**Gate "+ns+"/latency** against "+echo.URL+"/: ✅ passed")
	})
	if w := stableWeight(t, clients["east"], ns); w != 50 {
		t.Errorf("a preview changed the cluster: weight %d", w)
	}
	must(t, repo.DeleteRef(ctx, "refs/pull/7/head"))
	eventually(t, 30*time.Second, "the preview of the closed PR removed", func() bool {
		_, err := repo.ReadFile(ctx, "main", "status/pr/7.md")
		return err != nil
	})

	// An out-of-band edit is healed and recorded in the drift ledger.
	m, _ := clients["west"].Live.Mapping(k8sschema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	if _, err := clients["west"].Dynamic.Resource(m.Resource).Namespace(ns).Patch(ctx, "settings", types.MergePatchType, []byte(`{"data":{"currency":"USD"}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the edit healed", func() bool { return configValue(t, clients["west"], ns) == "EUR" })
	eventually(t, 15*time.Second, "the drift recorded in status/drift/west.json", func() bool {
		data, err := repo.ReadFile(ctx, "main", status.DriftPath("west"))
		return err == nil && strings.Contains(string(data), "ConfigMap "+ns+"/settings") && syncStatus("west").Drift.Healed >= 1
	})

	// SIGKILL, then a restart: nothing lost, nothing pruned, no new status commit.
	must(t, d.cmd.Process.Signal(syscall.SIGKILL))
	_ = d.cmd.Wait()
	before := statusCommits(t, repo)
	d = startDaemon(t, config, addr)
	eventually(t, 60*time.Second, "the restarted daemon ready", func() bool { code, _ := get(t, "http://"+addr+"/readyz"); return code == 200 })
	time.Sleep(3 * time.Second)
	if after := statusCommits(t, repo); after != before {
		out, _ := exec.Command("git", "-C", repo.Dir, "show", "--format=%s", "main").Output()
		t.Errorf("a restart with nothing changed made %d status commits; the last:\n%s", after-before, tail(string(out), 3000))
	}
	for name, c := range clients {
		if v := configValue(t, c, ns); v != "EUR" {
			t.Errorf("%s lost its ConfigMap after the restart (currency %q)", name, v)
		}
	}
	if w := stableWeight(t, clients["east"], ns); w != 50 {
		t.Errorf("east: weight %d after the restart", w)
	}

	// Every status commit changed something.
	out, err := exec.Command("git", "-C", repo.Dir, "log", "--format=%H %s", "main").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		hash, subject, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(subject, "meshcd: status") {
			continue
		}
		files, err := exec.Command("git", "-C", repo.Dir, "diff-tree", "--no-commit-id", "--name-only", "-r", hash).Output()
		if err != nil || len(bytes.TrimSpace(files)) == 0 {
			t.Errorf("status commit %s is empty", hash[:7])
		}
		for _, f := range strings.Fields(string(files)) {
			if !strings.HasPrefix(f, "status/") {
				t.Errorf("status commit %s touched %s", hash[:7], f)
			}
		}
	}

	// One design breaks while another is added: the new one is applied everywhere, the broken
	// one keeps its last good state, and its status says why.
	broken := strings.Replace(design(ns, 50, echo.URL+"/"), "routes: [{to: {stable: 50, canary: 50}}]", "routes: [{to: {stable: 50, canary: 40}}]", 1)
	if _, err := push(ctx, repo, "main", map[string][]byte{
		"designs/" + ns + "/design.cue":     []byte(broken),
		"designs/billing/design.cue":        []byte(`design: billing: {namespace: "billing", targets: matchLabels: env: "prod", manifests: [{yaml: "./raw"}]}`),
		"designs/billing/raw/settings.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: billing}\ndata: {plan: gold}\n"),
	}, ns+": a typo; billing: new"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "billing applied everywhere and the broken design's status naming its error", func() bool {
		for _, c := range clients {
			m, _ := c.Live.Mapping(k8sschema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
			if _, err := c.Dynamic.Resource(m.Resource).Namespace("billing").Get(ctx, "billing", metav1.GetOptions{}); err != nil {
				return false
			}
		}
		return strings.Contains(syncStatus("east").Error, "weights sum to 90")
	})
	if w := stableWeight(t, clients["east"], ns); w != 50 {
		t.Errorf("the broken design's last good state did not stay: weight %d", w)
	}

	// SIGTERM stops it cleanly.
	must(t, d.cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("the daemon did not stop within 15 s of SIGTERM")
	}
}

// push pushes like a person does while meshcd commits status to the same branch: a rejected
// push is fetched and tried again.
func push(ctx context.Context, repo *testenv.Repo, branch string, files map[string][]byte, message string) (string, error) {
	var err error
	for range 50 {
		var h string
		if h, err = repo.Push(ctx, branch, files, message); err == nil {
			return h, nil
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
	}
	return "", err
}

func statusCommits(t *testing.T, repo *testenv.Repo) int {
	t.Helper()
	commits, err := repo.Log(t.Context(), "main")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range commits {
		if strings.HasPrefix(c.Subject, "meshcd: status") {
			n++
		}
	}
	return n
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func configValue(t *testing.T, c *fleet.Cluster, ns string) string {
	t.Helper()
	m, err := c.Live.Mapping(k8sschema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	if err != nil {
		return ""
	}
	o, err := c.Dynamic.Resource(m.Resource).Namespace(ns).Get(t.Context(), "settings", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	v, _, _ := unstructured.NestedString(o.Object, "data", "currency")
	return v
}

var (
	vsGVK      = k8sschema.FromAPIVersionAndKind("networking.istio.io/v1", "VirtualService")
	getOptions = metav1.GetOptions{}
)

func stableWeight(t *testing.T, c *fleet.Cluster, ns string) int {
	t.Helper()
	m, err := c.Live.Mapping(vsGVK)
	if err != nil {
		return -1
	}
	o, err := c.Dynamic.Resource(m.Resource).Namespace(ns).Get(t.Context(), "checkout", getOptions)
	if err != nil {
		return -1
	}
	return weightOf(o, "stable")
}

// weightOf is the weight of a subset in a VirtualService's routes (-1 when absent).
func weightOf(o *unstructured.Unstructured, subset string) int {
	http, _, _ := unstructured.NestedSlice(o.Object, "spec", "http")
	for _, h := range http {
		routes, _ := h.(map[string]any)["route"].([]any)
		for _, r := range routes {
			rm := r.(map[string]any)
			if dest, _ := rm["destination"].(map[string]any); dest["subset"] == subset {
				w, _ := rm["weight"].(int64)
				return int(w)
			}
		}
	}
	return -1
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDaemonSurvivesSIGKILL pushes ten changes (a new weight and a ConfigMap that replaces the
// previous round's) and SIGKILLs the daemon at a random moment of each round. Restarted at the
// end, it converges: the last weight everywhere, the last ConfigMap present, the earlier ones
// pruned, the shared ConfigMap never lost; no status commit is empty or touches anything but
// status/.
func TestDaemonSurvivesSIGKILL(t *testing.T) {
	const ns = "killed"
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	files := func(i int) map[string][]byte {
		return map[string][]byte{
			"designs/" + ns + "/design.cue":        []byte(design(ns, 10*(i%9+1), "")),
			"designs/" + ns + "/raw/settings.yaml": []byte(settings),
			"designs/" + ns + "/raw/extra.yaml":    []byte(fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra-%d}\ndata: {round: \"%d\"}\n", i, i)),
		}
	}
	first := files(0)
	first["clusters/fleet.cue"] = []byte(fleetFiles)
	f := setup(t, ctx, first)
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 10 {
		if i > 0 {
			if _, err := push(ctx, f.repo, "main", files(i), fmt.Sprintf("round %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		d := startDaemon(t, f.config, f.addr)
		time.Sleep(time.Duration(rng.IntN(2500)) * time.Millisecond)
		must(t, d.cmd.Process.Signal(syscall.SIGKILL))
		_ = d.cmd.Wait()
		for name, c := range f.clients {
			if v := configValue(t, c, ns); v != "EUR" && v != "" {
				t.Fatalf("round %d: %s has currency %q", i, name, v)
			}
		}
	}
	startDaemon(t, f.config, f.addr)
	const lastWeight = 10 // round 9's: 10*(9%9+1)
	eventually(t, 90*time.Second, "converged on the last round, earlier ConfigMaps pruned", func() bool {
		for name, c := range f.clients {
			if configValue(t, c, ns) != "EUR" || !configMapExists(t, c, ns, "extra-9") {
				return false
			}
			for i := range 9 {
				if configMapExists(t, c, ns, fmt.Sprintf("extra-%d", i)) {
					return false
				}
			}
			if name == "east" && stableWeight(t, c, ns) != lastWeight {
				return false
			}
		}
		return true
	})
	out, err := exec.Command("git", "-C", f.repo.Dir, "log", "--format=%H %s", "main").Output()
	if err != nil {
		t.Fatal(err)
	}
	commits := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		hash, subject, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(subject, "meshcd: status") {
			continue
		}
		commits++
		names, err := exec.Command("git", "-C", f.repo.Dir, "diff-tree", "--no-commit-id", "--name-only", "-r", hash).Output()
		if err != nil || len(bytes.TrimSpace(names)) == 0 {
			t.Errorf("status commit %s is empty", hash[:7])
		}
		for _, n := range strings.Fields(string(names)) {
			if !strings.HasPrefix(n, "status/") {
				t.Errorf("status commit %s touched %s", hash[:7], n)
			}
		}
	}
	t.Logf("%d status commits over 10 killed rounds and a final run", commits)
}

func configMapExists(t *testing.T, c *fleet.Cluster, ns, name string) bool {
	t.Helper()
	m, err := c.Live.Mapping(k8sschema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	if err != nil {
		return false
	}
	_, err = c.Dynamic.Resource(m.Resource).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
	return err == nil
}

// TestTwoReplicasOneLeader runs two replicas of the same shard with leader election on a
// Lease in a real cluster: only the holder acts; when it is SIGKILLed the other takes the
// Lease once it expires, and acts on the next push.
func TestTwoReplicasOneLeader(t *testing.T) {
	const ns = "replicas"
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	f := setup(t, ctx, map[string][]byte{
		"clusters/fleet.cue":                   []byte(fleetFiles),
		"designs/" + ns + "/design.cue":        []byte(design(ns, 90, "")),
		"designs/" + ns + "/raw/settings.yaml": []byte(settings),
	})
	cfg, err := os.ReadFile(f.config)
	if err != nil {
		t.Fatal(err)
	}
	east := strings.Split(strings.Split(string(cfg), "east: {kubeconfig: ")[1], ",")[0]
	const lease = 3 * time.Second
	withLease := string(cfg) + fmt.Sprintf("leaderElection: {kubeconfig: %s, context: east, namespace: default, leaseDuration: %s}\n", east, lease)
	must(t, os.WriteFile(f.config, []byte(withLease), 0o644))
	// The second replica listens elsewhere.
	second := filepath.Join(filepath.Dir(f.config), "second.yaml")
	addrB := freeAddr(t)
	must(t, os.WriteFile(second, []byte(strings.Replace(withLease, "listen: "+f.addr, "listen: "+addrB, 1)), 0o644))

	holder := func() string {
		m, err := f.clients["east"].Live.Mapping(k8sschema.GroupVersionKind{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"})
		if err != nil {
			return ""
		}
		l, err := f.clients["east"].Dynamic.Resource(m.Resource).Namespace("default").Get(ctx, "meshcd-shard-0", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		h, _, _ := unstructured.NestedString(l.Object, "spec", "holderIdentity")
		return h
	}
	a := startDaemon(t, f.config, f.addr)
	eventually(t, 60*time.Second, "replica A leading and syncing", func() bool {
		return strings.HasSuffix(holder(), fmt.Sprintf("-%d", a.cmd.Process.Pid)) && stableWeight(t, f.clients["east"], ns) == 90
	})
	b := startDaemon(t, second, addrB)
	time.Sleep(2 * lease)
	if strings.Contains(b.logs.String(), "msg=round") || strings.Contains(b.logs.String(), "msg=leading") {
		t.Fatalf("the standby replica acted while the leader was alive:\n%s", b.logs.String())
	}

	must(t, a.cmd.Process.Signal(syscall.SIGKILL))
	_ = a.cmd.Wait()
	killed := time.Now()
	eventually(t, 4*lease, "replica B holding the Lease", func() bool {
		return strings.HasSuffix(holder(), fmt.Sprintf("-%d", b.cmd.Process.Pid))
	})
	took := time.Since(killed)
	t.Logf("takeover %s after the leader was killed (lease %s)", took.Round(time.Millisecond), lease)
	// The Lease expires at most one lease duration after its last renewal; a retry period
	// later the standby holds it. A busy CI machine gets a second lease duration of slack.
	if took > 2*lease+time.Second {
		t.Errorf("takeover took %s, want about the lease duration (%s)", took, lease)
	}
	if _, err := push(ctx, f.repo, "main", map[string][]byte{"designs/" + ns + "/design.cue": []byte(design(ns, 40, ""))}, "40/60"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the new leader applies the next push", func() bool { return stableWeight(t, f.clients["east"], ns) == 40 })
}
