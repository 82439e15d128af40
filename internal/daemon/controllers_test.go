package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"fortio.org/fortio/fhttp"
	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/sources"
	"github.com/meshcd/meshcd/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// The package's tests share three clusters started once; each test uses designs (and so
// namespaces) of its own names, so no test sees another's objects.
var (
	sharedOnce sync.Once
	sharedEnv  *testenv.Env
	sharedErr  error
)

func shared(t *testing.T) *testenv.Env {
	t.Helper()
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		sharedEnv, sharedErr = testenv.Start(ctx, testenv.Options{Names: []string{"east", "west", "central"}})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedEnv
}

// zonedFleet labels the clusters so designs can leave one out.
const zonedFleet = `
cluster: east: {labels: {env: "prod", zone: "a"}, mesh: "istio"}
cluster: west: {labels: {env: "prod", zone: "b"}, mesh: "linkerd"}
cluster: central: {labels: {env: "prod", zone: "c"}, mesh: "gateway-api"}
`

// everywhere and notCentral are design targets.
const (
	everywhere = `matchLabels: env: "prod"`
	notCentral = `matchExpressions: [{key: "zone", operator: "NotIn", values: ["c"]}]`
)

// named is a design called name in the namespace name: a service whose stable version gets
// weight, a ConfigMap settings with currency, and extra CUE (gates).
func named(name, targets string, weight int, currency, extra string) map[string][]byte {
	return map[string][]byte{
		"designs/" + name + "/design.cue": []byte(fmt.Sprintf(`design: %q: {
	namespace: %q
	targets: %s
	services: checkout: {
		port: 8080
		versions: {stable: labels: version: "v1", canary: labels: version: "v2"}
		routes: [{to: {stable: %d, canary: %d}}]
	}
	manifests: [{yaml: "./raw"}]
	%s
	sync: {prune: true, drift: "heal"}
}`, name, name, targets, weight, 100-weight, extra)),
		"designs/" + name + "/raw/settings.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {currency: " + currency + "}\n"),
	}
}

func withFleet(files map[string][]byte) map[string][]byte {
	files["clusters/fleet.cue"] = []byte(zonedFleet)
	return files
}

// changeGate is a gate run on change against url for duration.
func changeGate(url, duration string) string {
	return fmt.Sprintf(`gates: latency: {
		url: %q
		load: {qps: 10, connections: 1, duration: %q}
		thresholds: {p99: "5s"}
		triggers: ["change"]
	}`, url, duration)
}

// repoSpec is one fleet repo of a test: its first commit and its config entry's extra keys.
type repoSpec struct {
	name  string
	files map[string][]byte
	extra string
}

// fleetFixture is a Git server with the test's repos, a daemon config for them and the
// shared clusters, and meshcd clients to look at the clusters.
type fleetFixture struct {
	git     *testenv.GitServer
	repos   []*testenv.Repo
	first   []string
	config  string
	addr    string
	env     *testenv.Env
	clients map[string]*fleet.Cluster
}

// newFleet starts a Git server holding the repos and writes a config that polls them; creds
// replaces a cluster's credentials line, and more is appended to the config.
func newFleet(t *testing.T, ctx context.Context, specs []repoSpec, creds map[string]string, more string) fleetFixture {
	t.Helper()
	env := shared(t)
	git, err := testenv.StartGitServer(testenv.GitServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(git.Close)
	f := fleetFixture{git: git, env: env, addr: freeAddr(t), clients: map[string]*fleet.Cluster{}}
	dir := t.TempDir()
	var repos strings.Builder
	for _, s := range specs {
		r, err := git.CreateRepo(ctx, s.name)
		if err != nil {
			t.Fatal(err)
		}
		h, err := r.Push(ctx, "main", withFleet(s.files), s.name+": first")
		if err != nil {
			t.Fatal(err)
		}
		f.repos, f.first = append(f.repos, r), append(f.first, h)
		extra := s.extra
		if !strings.Contains(extra, "interval:") {
			extra += "\n  interval: 300ms"
		}
		fmt.Fprintf(&repos, "- url: %s\n  branch: main\n  allowHTTP: true%s\n", r.HTTPURL(), extra)
	}
	var clusters strings.Builder
	for _, c := range env.Clusters {
		line := fmt.Sprintf("{kubeconfig: %q, context: %s}", c.KubeconfigPath, c.Name)
		if l, ok := creds[c.Name]; ok {
			line = l
		}
		fmt.Fprintf(&clusters, "  %s: %s\n", c.Name, line)
		fc, err := fleet.Connect(schema.Cluster{Name: c.Name}, c.Config(), fleet.DefaultClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fc.Close)
		f.clients[c.Name] = fc
	}
	f.config = filepath.Join(dir, "meshcd.yaml")
	gates := "gates: {allowLoopback: true}\n" // the tests' targets are on loopback
	if strings.Contains(more, "gates:") {
		gates = ""
	}
	must(t, os.WriteFile(f.config, []byte(fmt.Sprintf("listen: %s\ncacheDir: %s\n%srepos:\n%sclusters:\n%s%s", f.addr, filepath.Join(dir, "cache"), gates, repos.String(), clusters.String(), more)), 0o644))
	return f
}

// clustersYAML is the daemon config's clusters section: each of env's clusters by its
// kubeconfig context.
func clustersYAML(env *testenv.Env) string {
	var b strings.Builder
	for _, c := range env.Clusters {
		fmt.Fprintf(&b, "  %s: {kubeconfig: %q, context: %s}\n", c.Name, c.KubeconfigPath, c.Name)
	}
	return b.String()
}

// connectAll is a fixture with a client for each of env's clusters, closed when the test ends.
func connectAll(t *testing.T, env *testenv.Env) fleetFixture {
	t.Helper()
	f := fleetFixture{env: env, clients: map[string]*fleet.Cluster{}}
	for _, c := range env.Clusters {
		fc, err := fleet.Connect(schema.Cluster{Name: c.Name}, c.Config(), fleet.DefaultClientOptions())
		must(t, err)
		t.Cleanup(fc.Close)
		f.clients[c.Name] = fc
	}
	return f
}

func (f fleetFixture) weight(t *testing.T, cluster, ns string) int {
	t.Helper()
	c := f.clients[cluster]
	m, err := c.Live.Mapping(vsGVK)
	if cluster != "east" {
		// linkerd and gateway-api: the stable Service's weight in the route's backends.
		return backendWeight(t, c, ns)
	}
	if err != nil {
		return -1
	}
	o, err := c.Dynamic.Resource(m.Resource).Namespace(ns).Get(t.Context(), "checkout", getOptions)
	if err != nil {
		return -1
	}
	return weightOf(o, "stable")
}

var httpRouteGVK = k8sschema.FromAPIVersionAndKind("gateway.networking.k8s.io/v1", "HTTPRoute")

// backendWeight is the weight of checkout-stable in the namespace's first HTTPRoute.
func backendWeight(t *testing.T, c *fleet.Cluster, ns string) int {
	t.Helper()
	m, err := c.Live.Mapping(httpRouteGVK)
	if err != nil {
		return -1
	}
	l, err := c.Dynamic.Resource(m.Resource).Namespace(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil || len(l.Items) == 0 {
		return -1
	}
	rules, _ := l.Items[0].Object["spec"].(map[string]any)["rules"].([]any)
	for _, r := range rules {
		refs, _ := r.(map[string]any)["backendRefs"].([]any)
		for _, ref := range refs {
			rm := ref.(map[string]any)
			if rm["name"] == "checkout-stable" {
				w, _ := rm["weight"].(int64)
				return int(w)
			}
		}
	}
	return -1
}

func (f fleetFixture) currency(t *testing.T, cluster, ns string) string {
	t.Helper()
	c := f.clients[cluster]
	m, err := c.Live.Mapping(k8sschema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	if err != nil {
		return ""
	}
	o, err := c.Dynamic.Resource(m.Resource).Namespace(ns).Get(t.Context(), "settings", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	v, _ := o.Object["data"].(map[string]any)["currency"].(string)
	return v
}

func (f fleetFixture) patchCurrency(t *testing.T, cluster, ns, value string) {
	t.Helper()
	if err := f.setCurrency(t.Context(), cluster, ns, value); err != nil {
		t.Fatal(err)
	}
}

// setCurrency edits the ConfigMap as kubectl would, out of band.
func (f fleetFixture) setCurrency(ctx context.Context, cluster, ns, value string) error {
	c := f.clients[cluster]
	m, err := c.Live.Mapping(k8sschema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	if err != nil {
		return err
	}
	_, err = c.Dynamic.Resource(m.Resource).Namespace(ns).Patch(ctx, "settings", types.MergePatchType, []byte(`{"data":{"currency":"`+value+`"}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"})
	return err
}

// syncFile is a design's status file on a cluster, at the tip of main.
func syncFile(ctx context.Context, repo *testenv.Repo, design, cluster string) status.Sync {
	var s status.Sync
	if data, err := repo.ReadFile(ctx, "main", status.SyncPath(design, cluster)); err == nil {
		_ = json.Unmarshal(data, &s)
	}
	return s
}

// apiStatus is /api/v1/status.
func apiStatus(t *testing.T, addr string) (out struct {
	Leading bool         `json:"leading"`
	Repos   []RepoStatus `json:"repos"`
}) {
	t.Helper()
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + addr + "/api/v1/status")
	if err != nil {
		t.Fatalf("/api/v1/status: %v", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("/api/v1/status: %v", err)
	}
	return out
}

// within waits for cond and returns how long it took, failing the test past limit.
func within(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("not within %s: %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("%s: %s", what, took.Round(time.Millisecond))
	return took
}

// TestNothingWaitsOnAGate: repo A's design has a 20 s gate on change. While it loads, a push
// to repo B is applied within 2 s, a kubectl patch of one of repo A's objects is healed within
// 1 s, and /healthz and /api/v1/status answer. West's credentials come from a Secret in the
// home cluster (east), as `secret:` credentials do in a real fleet.
func TestNothingWaitsOnAGate(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	env := shared(t)
	echo := httptest.NewServer(http.HandlerFunc(fhttp.EchoHandler))
	defer echo.Close()
	// West's kubeconfig in a Secret in east.
	cs, err := kubernetes.NewForConfig(env.Cluster("east").Config())
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := os.ReadFile(env.Cluster("west").KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "west-kubeconfig-gate", Namespace: "default"}, Data: map[string][]byte{"value": kubeconfig}}
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Secrets("default").Delete(context.Background(), secret.Name, metav1.DeleteOptions{})
	})
	f := newFleet(t, ctx, []repoSpec{
		{name: "a", files: named("gated", everywhere, 90, "EUR", changeGate(echo.URL+"/", "20s"))},
		{name: "b", files: named("other", everywhere, 90, "EUR", "")},
	}, map[string]string{"west": "{secret: {namespace: default, name: west-kubeconfig-gate}}"},
		fmt.Sprintf("home: {kubeconfig: %q, context: east}\n", env.Cluster("east").KubeconfigPath))
	startDaemon(t, f.config, f.addr)
	within(t, 90*time.Second, "both repos applied, repo A's gate loading", func() bool {
		if f.weight(t, "west", "other") != 90 || f.currency(t, "west", "gated") != "EUR" {
			return false
		}
		for _, r := range apiStatus(t, f.addr).Repos {
			if len(r.GatesRunning) > 0 {
				return true
			}
		}
		return false
	})
	gateStart := time.Now()

	if _, err := push(ctx, f.repos[1], "main", named("other", everywhere, 40, "EUR", ""), "other: 40/60"); err != nil {
		t.Fatal(err)
	}
	within(t, 2*time.Second, "repo B's push applied on every cluster during repo A's gate", func() bool {
		return f.weight(t, "east", "other") == 40 && f.weight(t, "west", "other") == 40 && f.weight(t, "central", "other") == 40
	})
	f.patchCurrency(t, "west", "gated", "USD")
	within(t, time.Second, "a patch of repo A's ConfigMap healed during its gate", func() bool {
		return f.currency(t, "west", "gated") == "EUR"
	})
	client := http.Client{Timeout: time.Second}
	for _, p := range []string{"/healthz", "/api/v1/status"} {
		resp, err := client.Get("http://" + f.addr + p)
		if err != nil {
			t.Fatalf("%s during the gate: %v", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s during the gate: %d", p, resp.StatusCode)
		}
	}
	if time.Since(gateStart) > 15*time.Second {
		t.Fatalf("the checks took %s: the gate may have ended before them", time.Since(gateStart))
	}
	running := false
	for _, r := range apiStatus(t, f.addr).Repos {
		running = running || len(r.GatesRunning) > 0
	}
	if !running {
		t.Error("the gate had finished before the checks; they proved nothing")
	}
	within(t, 60*time.Second, "the gate's verdict committed for every cluster", func() bool {
		for _, c := range []string{"east", "west", "central"} {
			s := syncFile(ctx, f.repos[0], "gated", c)
			if len(s.Gates) == 0 || !s.Gates[0].Pass {
				return false
			}
		}
		return true
	})
}

// TestTwentyPushesWhileHealing: another clone pushes 20 commits in a tight loop while drift is
// being healed. Every commit stays in the history, no status commit is empty, and every
// status file ever committed names a revision whose render has the digest it reports: what
// was applied, under its own name.
func TestTwentyPushesWhileHealing(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	f := newFleet(t, ctx, []repoSpec{{name: "busy", files: named("busy", everywhere, 10, "EUR", "")}}, nil, "")
	startDaemon(t, f.config, f.addr)
	within(t, 90*time.Second, "the first revision applied", func() bool {
		return syncFile(ctx, f.repos[0], "busy", "central").Revision == f.first[0] && f.weight(t, "east", "busy") == 10
	})
	other, err := f.git.CloneHandle(ctx, f.repos[0])
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	healing := make(chan struct{})
	go func() {
		defer close(healing)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(700 * time.Millisecond):
			}
			if err := f.setCurrency(ctx, []string{"east", "west", "central"}[i%3], "busy", "USD"); err != nil {
				t.Errorf("patching: %v", err)
				return
			}
		}
	}()
	var pushed []string
	for i := range 20 {
		h, err := push(ctx, other, "main", named("busy", everywhere, 10+i*4, "EUR", ""), fmt.Sprintf("busy: push %d", i))
		if err != nil {
			t.Fatal(err)
		}
		pushed = append(pushed, h)
	}
	last := pushed[len(pushed)-1]
	within(t, 60*time.Second, "the last push applied and named on every cluster", func() bool {
		for _, c := range []string{"east", "west", "central"} {
			if syncFile(ctx, f.repos[0], "busy", c).Revision != last {
				return false
			}
		}
		return f.weight(t, "east", "busy") == 10+19*4
	})
	close(stop)
	<-healing
	time.Sleep(2 * time.Second) // the last heals' status

	log, err := f.repos[0].Log(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	inLog := map[string]bool{}
	for _, c := range log {
		inLog[c.Hash] = true
	}
	for i, h := range pushed {
		if !inLog[h] {
			t.Errorf("push %d (%s) is not in the history", i, h[:7])
		}
	}
	digests := map[string]string{} // revision/cluster -> digest its render has
	statusCommits := 0
	for _, c := range log {
		if !sources.IsStatusCommit(c.Subject) {
			continue
		}
		statusCommits++
		names, err := runGit(f.repos[0].Dir, "diff-tree", "--no-commit-id", "--name-only", "-r", c.Hash)
		if err != nil || strings.TrimSpace(names) == "" {
			t.Errorf("status commit %s is empty", c.Hash[:7])
		}
		for _, cluster := range []string{"east", "west", "central"} {
			data, err := f.repos[0].ReadFile(ctx, c.Hash, status.SyncPath("busy", cluster))
			if err != nil {
				continue
			}
			var s status.Sync
			must(t, json.Unmarshal(data, &s))
			if s.Digest == "" {
				continue
			}
			want, ok := digests[s.Revision+"/"+cluster]
			if !ok {
				want = renderedDigest(t, f.repos[0], s.Revision, "busy", cluster)
				digests[s.Revision+"/"+cluster] = want
			}
			if s.Digest != want {
				t.Errorf("status commit %s says %s on %s is %s with digest %s, but %s renders to %s: mislabelled", c.Hash[:7], "busy", cluster, s.Revision[:7], s.Digest[:19], s.Revision[:7], want[:19])
			}
		}
	}
	t.Logf("%d status commits for 20 pushes and the heals among them", statusCommits)
}

// renderedDigest renders a design for a cluster at a revision of the repo, as meshcd would.
func renderedDigest(t *testing.T, repo *testenv.Repo, rev, design, cluster string) string {
	t.Helper()
	out, err := runGit(repo.Dir, "ls-tree", "-r", "--name-only", rev)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for _, name := range strings.Fields(out) {
		if strings.HasPrefix(name, "status/") {
			continue
		}
		data, err := repo.ReadFile(t.Context(), rev, name)
		if err != nil {
			t.Fatal(err)
		}
		fsys[name] = &fstest.MapFile{Data: data}
	}
	fl, designs, err := schema.Load(t.Context(), fsys, schema.DefaultLoadOptions())
	if err != nil {
		t.Fatalf("%s does not load: %v", rev[:7], err)
	}
	for i := range designs {
		if designs[i].Name != design {
			continue
		}
		for _, sc := range designs[i].TargetClusters(fl) {
			if sc.Name == cluster {
				b, err := render.Render(t.Context(), &designs[i], &sc, render.Options{Revision: rev, Repo: render.NewRepo(fsys)})
				if err != nil {
					t.Fatal(err)
				}
				return b.Digest
			}
		}
	}
	t.Fatalf("%s has no design %s for %s", rev[:7], design, cluster)
	return ""
}

func runGit(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.Output()
	return string(out), err
}

// TestUserPushDuringARound forces the interleaving: the daemon's first status push waits
// while a user pushes a new weight, so meshcd's status commit for revision A is rebuilt on
// top of the user's commit B. The next round applies B under B's own name and runs B's change
// gates; a restart does not take B for A either.
func TestUserPushDuringARound(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	echo := httptest.NewServer(http.HandlerFunc(fhttp.EchoHandler))
	defer echo.Close()
	gate := changeGate(echo.URL+"/", "1s")
	f := newFleet(t, ctx, []repoSpec{{name: "race", files: named("race", everywhere, 90, "EUR", gate)}}, nil, "")
	user, err := f.git.CloneHandle(ctx, f.repos[0])
	if err != nil {
		t.Fatal(err)
	}
	var b string
	var berr error
	pushedB := make(chan struct{})
	f.git.BeforeNextPush(func() {
		defer close(pushedB)
		b, berr = user.Push(ctx, "main", withFleet(named("race", everywhere, 30, "EUR", gate)), "race: 30/70")
	})
	d := startDaemon(t, f.config, f.addr)
	select {
	case <-pushedB:
	case <-time.After(90 * time.Second):
		t.Fatal("the daemon made no status push")
	}
	if berr != nil {
		t.Fatal(berr)
	}
	a := f.first[0]
	within(t, 60*time.Second, "B applied, named and gated under its own revision", func() bool {
		for _, c := range []string{"east", "west", "central"} {
			s := syncFile(ctx, f.repos[0], "race", c)
			if s.Revision != b || len(s.Gates) == 0 || s.Gates[0].Revision != b {
				return false
			}
		}
		return f.weight(t, "east", "race") == 30
	})
	// The interleaving happened: a status commit naming A sits on top of B.
	log, err := f.repos[0].Log(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := false
	for _, c := range log {
		if sources.IsStatusCommit(c.Subject) && len(c.Parents) == 1 && c.Parents[0] == b {
			data, _ := f.repos[0].ReadFile(ctx, c.Hash, status.SyncPath("race", "east"))
			rebuilt = strings.Contains(string(data), a)
		}
	}
	if !rebuilt {
		t.Fatalf("no status commit naming %s on top of %s: the race was not forced", a[:7], b[:7])
	}
	history := func() int {
		h, _ := f.repos[0].ReadFile(ctx, "main", "status/gates/race/latency/east.history.jsonl")
		return strings.Count(string(h), "\n")
	}
	// A's run may have finished before B arrived, or been cancelled by it (a change gate
	// measures the newest content); either way the last run measured B.
	runs := history()
	h, _ := f.repos[0].ReadFile(ctx, "main", "status/gates/race/latency/east.history.jsonl")
	lines := strings.Split(strings.TrimSpace(string(h)), "\n")
	if runs < 1 || runs > 2 || !strings.Contains(lines[len(lines)-1], b) {
		t.Errorf("east's gate history has %d runs, the last not of %s:\n%s", runs, b[:7], h)
	}
	// A restart names B again, and gates nothing again.
	must(t, d.cmd.Process.Signal(syscall.SIGTERM))
	_ = d.cmd.Wait()
	before := statusCommits(t, f.repos[0])
	startDaemon(t, f.config, f.addr)
	within(t, 60*time.Second, "the restarted daemon ready", func() bool { code, _ := get(t, "http://"+f.addr+"/readyz"); return code == 200 })
	time.Sleep(3 * time.Second)
	if s := syncFile(ctx, f.repos[0], "race", "west"); s.Revision != b {
		t.Errorf("after a restart west's status names %s, want %s", s.Revision, b)
	}
	if after := statusCommits(t, f.repos[0]); after != before || history() != runs {
		t.Errorf("a restart made %d status commits and %d gate runs", after-before, history()-runs)
	}
}

// TestStoppedClusterDelaysOnlyItself freezes central's apiserver (SIGSTOP) for 60 s: syncs to
// it and a pull request's preview (a server-side diff against it) hang. Pushes to both repos
// meanwhile reach the other clusters within 2 s, also 30 s in; once central resumes it gets
// the latest revision within 10 s, with no new commit.
func TestStoppedClusterDelaysOnlyItself(t *testing.T) {
	t.Parallel() // beside tests that stay off central
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	f := newFleet(t, ctx, []repoSpec{
		{name: "wide", files: named("wide", everywhere, 90, "EUR", ""), extra: "\n  pullRequests: refs/pull/*/head"},
		{name: "narrow", files: named("narrow", notCentral, 90, "EUR", "")},
	}, nil, "")
	startDaemon(t, f.config, f.addr)
	within(t, 90*time.Second, "both repos applied", func() bool {
		return f.weight(t, "central", "wide") == 90 && f.weight(t, "west", "narrow") == 90
	})
	central := f.env.Cluster("central")
	central.Pause()
	resumed := false
	defer func() {
		if !resumed {
			central.Resume()
		}
	}()
	paused := time.Now()
	// A pull request on repo wide: its preview diffs against central and hangs there.
	head, err := push(ctx, f.repos[0], "feature", withFleet(named("wide", everywhere, 20, "EUR", "")), "wide: 20/80")
	if err != nil {
		t.Fatal(err)
	}
	must(t, f.repos[0].SetRef(ctx, "refs/pull/3/head", head))
	if _, err := push(ctx, f.repos[0], "main", named("wide", everywhere, 60, "EUR", ""), "wide: 60/40"); err != nil {
		t.Fatal(err)
	}
	within(t, 2*time.Second, "repo wide's push on east and west while central hangs", func() bool {
		return f.weight(t, "east", "wide") == 60 && f.weight(t, "west", "wide") == 60
	})
	if _, err := push(ctx, f.repos[1], "main", named("narrow", notCentral, 60, "EUR", ""), "narrow: 60/40"); err != nil {
		t.Fatal(err)
	}
	within(t, 2*time.Second, "repo narrow's push applied while central hangs", func() bool {
		return f.weight(t, "east", "narrow") == 60 && f.weight(t, "west", "narrow") == 60
	})
	time.Sleep(time.Until(paused.Add(30 * time.Second)))
	last, err := push(ctx, f.repos[1], "main", named("narrow", notCentral, 30, "EUR", ""), "narrow: 30/70")
	if err != nil {
		t.Fatal(err)
	}
	within(t, 2*time.Second, "repo narrow's push applied 30 s into central's hang", func() bool {
		return f.weight(t, "east", "narrow") == 30 && f.weight(t, "west", "narrow") == 30
	})
	_ = last
	time.Sleep(time.Until(paused.Add(60 * time.Second)))
	commits, _ := f.repos[0].Log(ctx, "main")
	central.Resume()
	resumed = true
	within(t, 10*time.Second, "central converged to repo wide's latest revision after it resumed", func() bool {
		return f.weight(t, "central", "wide") == 60
	})
	after, _ := f.repos[0].Log(ctx, "main")
	for _, c := range after[:len(after)-len(commits)] {
		if !sources.IsStatusCommit(c.Subject) {
			t.Errorf("a commit other than meshcd's status after the resume: %s", c.Subject)
		}
	}
}

// TestGitOutage: with the Git server unreachable for 30 s, /api/v1/status and /readyz say so,
// status commits back off instead of retrying every second, and a push right after the
// server returns is applied within twice the poll interval. The interval is 2 s: with 1 s, a
// round's own second under CI's load (CUE, render, apply beside two other daemons) left no
// room in 2 × 1 s for the poll that finds the push.
func TestGitOutage(t *testing.T) {
	t.Parallel() // beside TestStoppedClusterDelaysOnlyItself, which freezes central: it stays off it
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	f := newFleet(t, ctx, []repoSpec{{name: "outage", files: named("outage", notCentral, 90, "EUR", ""), extra: "\n  interval: 2s"}}, nil, "")
	startDaemon(t, f.config, f.addr)
	within(t, 90*time.Second, "the first revision applied and its status committed", func() bool {
		return syncFile(ctx, f.repos[0], "outage", "east").Revision == f.first[0]
	})
	f.git.SetDown(true)
	down := time.Now()
	f.git.ResetRequests()
	// Drift during the outage: its status commit cannot land.
	f.patchCurrency(t, "west", "outage", "USD")
	within(t, 10*time.Second, "the outage in /api/v1/status and /readyz", func() bool {
		s := apiStatus(t, f.addr).Repos[0]
		code, body := get(t, "http://"+f.addr+"/readyz")
		return s.Git.Poll.Error != "" && s.Git.Commits.Failures > 0 && s.Git.Commits.Pending > 0 &&
			code == http.StatusServiceUnavailable && strings.Contains(body, "polls failed")
	})
	time.Sleep(time.Until(down.Add(30 * time.Second)))
	// A commit attempt starts with a fetch (a listing, then a pack exchange), so listings not
	// followed by a poll's are the committer's: count them apart from the polls.
	requests := len(f.git.Requests())
	s := apiStatus(t, f.addr).Repos[0]
	t.Logf("in 30 s of outage: %d requests refused (polls every 2 s and status commits), %d failed commits in a row", requests, s.Git.Commits.Failures)
	if s.Git.Commits.Failures > 8 {
		t.Errorf("%d failed status commits in 30 s: no backoff", s.Git.Commits.Failures)
	}
	if requests > 15+8+5 {
		t.Errorf("%d requests to a server that is down in 30 s: polls or commits retry too often", requests)
	}
	f.git.SetDown(false)
	h, err := push(ctx, f.repos[0], "main", named("outage", notCentral, 40, "EUR", ""), "outage: 40/60")
	if err != nil {
		t.Fatal(err)
	}
	_ = h
	within(t, 4*time.Second, "a push right after the outage applied (interval 2s)", func() bool {
		return f.weight(t, "east", "outage") == 40
	})
	within(t, 30*time.Second, "the status that waited on the outage committed", func() bool {
		s := apiStatus(t, f.addr).Repos[0]
		return s.Git.Commits.Pending == 0 && s.Git.Commits.Landed == s.Git.Commits.Requested
	})
	if code, _ := get(t, "http://"+f.addr+"/readyz"); code != 200 {
		t.Errorf("/readyz after the outage: %d", code)
	}
}

// TestManyPushesFlatHeapAndOwnIntervals pushes 50 changes to a repo polled every second whose
// design has a gate on a cron schedule, beside a repo polled every minute. The daemon's live
// heap after the 50th push is within 20% of after the 10th, and each repo is polled at its
// own interval (counted in the Git server's request log).
func TestManyPushesFlatHeapAndOwnIntervals(t *testing.T) {
	t.Parallel() // beside the outage tests; it stays off central, which one of them freezes
	// About 5 min alone, more on a loaded machine.
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	echo := httptest.NewServer(http.HandlerFunc(fhttp.EchoHandler))
	defer echo.Close()
	cronGate := fmt.Sprintf(`gates: periodic: {
		url: %q
		load: {qps: 20, connections: 1, requests: 5}
		thresholds: {p99: "5s"}
		schedule: "@every 5s"
		triggers: ["cron"]
	}`, echo.URL+"/")
	secretFile := filepath.Join(t.TempDir(), "webhook")
	must(t, os.WriteFile(secretFile, []byte(webhookSecret), 0o600))
	f := newFleet(t, ctx, []repoSpec{
		{name: "fast", files: named("fast", notCentral, 50, "EUR", cronGate), extra: "\n  interval: 1s"},
		{name: "slow", files: named("slow", notCentral, 90, "EUR", ""), extra: "\n  interval: 1m"},
	}, nil, fmt.Sprintf("webhooks: {generic: {file: %q}}\n", secretFile))
	f.git.ResetRequests()
	start := time.Now()
	startDaemon(t, f.config, f.addr)
	within(t, 90*time.Second, "both repos applied", func() bool {
		return f.weight(t, "west", "fast") == 50 && f.weight(t, "west", "slow") == 90
	})
	var heap10 float64
	for i := 1; i <= 50; i++ {
		w := 10 + i%2*50 + i%7
		if _, err := push(ctx, f.repos[0], "main", named("fast", notCentral, w, "EUR", cronGate), fmt.Sprintf("fast: push %d", i)); err != nil {
			t.Fatal(err)
		}
		hook(t, f.addr, f.repos[0].HTTPURL()) // polls at once; the interval polls go on beside
		deadline := time.Now().Add(30 * time.Second)
		for f.weight(t, "west", "fast") != w {
			if time.Now().After(deadline) {
				t.Fatalf("push %d not applied within 30 s", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if i == 10 {
			heap10 = steadyHeap(t, f.addr)
		}
	}
	heap50 := steadyHeap(t, f.addr)
	if n := apiStatus(t, f.addr).Repos[0].WorkerStarts; n != 1 {
		t.Errorf("51 revisions evaluated by %d worker processes, want one kept alive", n)
	}
	t.Logf("live heap after push 10: %.1f MiB, after push 50: %.1f MiB", heap10/(1<<20), heap50/(1<<20))
	if heap50 > 1.2*heap10 {
		t.Errorf("the heap grew %.0f%% from push 10 to push 50", 100*(heap50/heap10-1))
	}
	elapsed := time.Since(start)
	listings := map[string]int{}
	for _, r := range f.git.Requests() {
		if r.Service != "git-upload-pack" {
			continue
		}
		if r.Advertisement {
			listings[r.Repo]++
		} else {
			listings[r.Repo]-- // a fetch lists once more before it fetches
		}
	}
	// A status commit starts with a fetch, which lists the refs once more than it fetches
	// when nothing moved: those listings are the committer's, not the poll's.
	var commits, fastCommits int
	for _, r := range apiStatus(t, f.addr).Repos {
		switch {
		case strings.HasSuffix(r.URL, "/slow.git"):
			commits = int(r.Git.Commits.Attempts)
		case strings.HasSuffix(r.URL, "/fast.git"):
			fastCommits = int(r.Git.Commits.Attempts)
		}
	}
	t.Logf("in %s: %d listings of the 1s repo, %d of the 1m repo (at most %d of them by its status commits)", elapsed.Round(time.Second), listings["fast"], listings["slow"], commits)
	if max := int(elapsed/time.Minute) + 2 + commits; listings["slow"] < 1 || listings["slow"] > max {
		t.Errorf("the repo polled every minute was polled %d times in %s, want 1 to %d", listings["slow"], elapsed, max)
	}
	// Besides its interval polls, the fast repo is polled once per webhook (50).
	if lo, hi := int(elapsed.Seconds()/2), int(elapsed.Seconds()*1.2)+50+5+fastCommits; listings["fast"] < lo || listings["fast"] > hi {
		t.Errorf("the repo polled every second was polled %d times in %s, want %d to %d", listings["fast"], elapsed, lo, hi)
	}
}

const webhookSecret = "controllers-test-webhook"

// hook announces a push with a signed generic webhook, as a Git host would.
func hook(t *testing.T, addr, repo string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"repo": repo, "ref": "refs/heads/main"})
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write(body)
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/generic", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("webhook: %s", resp.Status)
	}
}

// liveHeap is the daemon's heap marked live by its last garbage collections, the smallest of
// a few samples a second apart.
func liveHeap(t *testing.T, addr string) float64 {
	t.Helper()
	best := math.Inf(1)
	for range 4 {
		_, body := get(t, "http://"+addr+"/metrics")
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "go_gc_heap_live_bytes "); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					best = min(best, f)
				}
			}
		}
		time.Sleep(time.Second)
	}
	if math.IsInf(best, 1) {
		t.Fatal("/metrics has no go_gc_heap_live_bytes")
	}
	return best
}

// steadyHeap is the smallest live heap the daemon reports over 3 s: each report is the heap
// marked live at the last GC, which includes whatever garbage a round in flight still held;
// the smallest is the closest to what the daemon keeps (single samples read 9.6 → 11.8 MiB in
// one CI run, 11.1 → 11.5 MiB in another).
func steadyHeap(t *testing.T, addr string) float64 {
	t.Helper()
	least := liveHeap(t, addr)
	for range 6 {
		time.Sleep(500 * time.Millisecond)
		least = min(least, liveHeap(t, addr))
	}
	return least
}

// bombDesign is a design that ships a chart; its one template renders a ConfigMap from body.
func bombDesign(body string) map[string][]byte {
	return map[string][]byte{
		"designs/bomb/design.cue":              []byte(`design: bomb: {namespace: "bomb", targets: matchLabels: env: "prod", manifests: [{helm: chart: "./chart"}]}`),
		"designs/bomb/chart/Chart.yaml":        []byte("apiVersion: v2\nname: bomb\nversion: 0.1.0\n"),
		"designs/bomb/chart/templates/cm.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  x: |\n    " + body + "\n"),
	}
}

// TestChartBombInOneRepo: one repo's chart turns into a template that loops for ever. Its
// render stops at the daemon's render budget (5 s here) with a clear error in its status,
// nothing of it is pruned, another repo's push is applied meanwhile, and the daemon's own
// memory does not grow: the render ran in the repo's worker process.
func TestChartBombInOneRepo(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	f := newFleet(t, ctx, []repoSpec{
		{name: "bombs", files: bombDesign("calm")},
		{name: "calm", files: named("calm", everywhere, 90, "EUR", "")},
	}, nil, "render: {timeout: 5s}\n")
	d := startDaemon(t, f.config, f.addr)
	within(t, 60*time.Second, "both repos applied", func() bool {
		return f.weight(t, "east", "calm") == 90 && syncFile(ctx, f.repos[0], "bomb", "east").Health == "Current"
	})
	rss := func() int64 {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		var kb int64
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				fmt.Sscan(rest, &kb)
			}
		}
		return kb << 10
	}
	before := rss()
	if _, err := f.repos[0].Push(ctx, "main", withFleet(bombDesign(`{{ range $i := until 100000 }}{{ range $j := until 100000 }}{{ end }}{{ end }}`)), "bomb: loop for ever"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the bomb's round has begun
	if _, err := f.repos[1].Push(ctx, "main", withFleet(named("calm", everywhere, 40, "EUR", "")), "calm: 40/60"); err != nil {
		t.Fatal(err)
	}
	took := within(t, 30*time.Second, "the calm repo's push applied while the bomb renders", func() bool { return f.weight(t, "east", "calm") == 40 })
	t.Logf("the calm push applied after %s", took)
	within(t, 60*time.Second, "the bomb's render stopped at its budget", func() bool {
		s := syncFile(ctx, f.repos[0], "bomb", "east")
		return strings.Contains(s.Error, "render took longer than 5s") && strings.Contains(s.Error, "nothing pruned")
	})
	m, err := f.clients["east"].Live.Mapping(k8sschema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := f.clients["east"].Dynamic.Resource(m.Resource).Namespace("bomb").Get(ctx, "bomb", getOptions)
	if err != nil || cm.Object["data"].(map[string]any)["x"] != "calm\n" {
		t.Fatalf("the bomb design's last good ConfigMap: %v %v", err, cm)
	}
	if grew := rss() - before; grew > 150<<20 {
		t.Errorf("the daemon's RSS grew by %d MiB while the bomb rendered", grew>>20)
	}
}
