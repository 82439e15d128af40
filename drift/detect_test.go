package drift

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

var env *testenv.Env

var meshes = map[string]schema.Mesh{"east": schema.MeshIstio, "west": schema.MeshLinkerd, "central": schema.MeshGatewayAPI}

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	var err error
	env, err = testenv.Start(ctx, testenv.Options{Names: []string{"east", "west", "central"}})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting test clusters:", err)
		os.Exit(1)
	}
	code := m.Run()
	env.Stop()
	os.Exit(code)
}

// site is one connected test cluster with a running detector.
type site struct {
	c   *fleet.Cluster
	det *Detector
	reg *prometheus.Registry
}

func start(t *testing.T, opts Options) map[string]*site {
	t.Helper()
	out := map[string]*site{}
	for _, tc := range env.Clusters {
		c, err := fleet.Connect(schema.Cluster{Name: tc.Name, Mesh: meshes[tc.Name]}, tc.Config(), fleet.DefaultClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		o := opts
		o.Metrics = NewMetrics(reg)
		det := NewDetector(c, o)
		ctx, cancel := context.WithCancel(context.Background())
		go det.Run(ctx)
		t.Cleanup(func() { cancel(); c.Live.Stop() })
		out[tc.Name] = &site{c: c, det: det, reg: reg}
	}
	return out
}

// syncDesign renders the design for the site's mesh and syncs it, tracking it first.
func syncDesign(t *testing.T, s *site, fsys fs.FS, design string) *render.Bundle {
	t.Helper()
	fl, designs, err := schema.Load(t.Context(), fsys, schema.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := range designs {
		d := &designs[i]
		if d.Name != design {
			continue
		}
		c := schema.Cluster{Name: s.c.Name, Mesh: s.c.Mesh, Labels: map[string]string{"env": "prod"}}
		if len(fl.Clusters) > 0 {
			c = fl.Clusters[0]
			c.Name, c.Mesh = s.c.Name, s.c.Mesh
		}
		d.Targets = schema.Selector{}
		b, err := render.Render(t.Context(), d, &c, render.Options{Revision: "r1", Repo: render.NewRepo(fsys)})
		if err != nil {
			t.Fatal(err)
		}
		rules, err := NewRules(d.Sync.Ignore, d.Sync.Presets)
		if err != nil {
			t.Fatal(err)
		}
		s.det.Track(d.Name, b.Objects, d.Sync.Drift, rules)
		opts := reconciler.DefaultSyncOptions()
		opts.Policy = reconciler.PolicyFor(d.Sync)
		opts.BeforePrune = s.det.Untrack
		opts.Applied = s.det.Applied
		if _, err := reconciler.New().Sync(t.Context(), s.c, b, opts); err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("no design %s", design)
	return nil
}

func repo(t *testing.T, name, sync string) fs.FS {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"clusters/fleet.cue": `cluster: east: {labels: {env: "prod"}, mesh: "istio"}`,
		"designs/" + name + "/design.cue": fmt.Sprintf(`design: %q: {
	namespace: %q
	services: checkout: {
		port: 8080
		versions: {stable: labels: version: "v1", canary: labels: version: "v2"}
		routes: [{to: {stable: 90, canary: 10}}]
		outlierDetection: {consecutive5xxErrors: 5, interval: "10s", baseEjectionTime: "30s", maxEjectionPercent: 50}
	}
	manifests: [{yaml: "./raw"}]
	sync: %s
}`, name, name, sync),
		"designs/" + name + "/raw/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {currency: EUR}\n",
	}
	if err := testenv.WriteFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	return os.DirFS(dir)
}

func patch(t *testing.T, c *fleet.Cluster, apiVersion, kind, ns, name, body string) {
	t.Helper()
	m, err := c.Live.Mapping(k8sschema.FromAPIVersionAndKind(apiVersion, kind))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Dynamic.Resource(m.Resource).Namespace(ns).Patch(t.Context(), name, types.MergePatchType, []byte(body), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
}

func live(t *testing.T, c *fleet.Cluster, apiVersion, kind, ns, name string) (*unstructured.Unstructured, bool) {
	t.Helper()
	m, err := c.Live.Mapping(k8sschema.FromAPIVersionAndKind(apiVersion, kind))
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Dynamic.Resource(m.Resource).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
	return o, err == nil
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func currency(t *testing.T, c *fleet.Cluster, ns string) string {
	o, ok := live(t, c, "v1", "ConfigMap", ns, "settings")
	if !ok {
		return ""
	}
	v, _, _ := unstructured.NestedString(o.Object, "data", "currency")
	return v
}

// eventGVR is core/v1 Events, where events.k8s.io Events show too.
var eventGVR = k8sschema.GroupVersionResource{Version: "v1", Resource: "events"}

// TestOutOfBandEditsAreHealed edits a VirtualService weight and deletes a DestinationRule on
// istio, and changes a ConfigMap value on linkerd: each is noticed and put back, and the
// ledger, the metrics and a Kubernetes Event record it.
func TestOutOfBandEditsAreHealed(t *testing.T) {
	sites := start(t, DefaultOptions())
	fsys := repo(t, "heal", `{drift: "heal"}`)
	for _, s := range sites {
		syncDesign(t, s, fsys, "heal")
	}
	east, west := sites["east"], sites["west"]

	patch(t, east.c, "networking.istio.io/v1", "VirtualService", "heal", "checkout",
		`{"spec":{"http":[{"name":"checkout-0","route":[{"destination":{"host":"checkout.heal.svc.cluster.local","port":{"number":8080},"subset":"canary"},"weight":50},{"destination":{"host":"checkout.heal.svc.cluster.local","port":{"number":8080},"subset":"stable"},"weight":50}]}]}}`)
	defer func() {
		if t.Failed() {
			o, _ := live(t, east.c, "networking.istio.io/v1", "VirtualService", "heal", "checkout")
			t.Logf("ledger: %+v\nlive: %v", east.det.Report("heal"), o.Object["spec"])
		}
	}()
	eventually(t, 5*time.Second, "the VirtualService weight back at 90", func() bool {
		o, _ := live(t, east.c, "networking.istio.io/v1", "VirtualService", "heal", "checkout")
		routes, _, _ := unstructured.NestedSlice(o.Object, "spec", "http")
		r, _ := routes[0].(map[string]any)["route"].([]any)
		for _, d := range r {
			dest, _ := d.(map[string]any)["destination"].(map[string]any)
			if dest["subset"] == "stable" {
				return fmt.Sprint(d.(map[string]any)["weight"]) == "90" && len(r) == 2
			}
		}
		return false
	})
	m, _ := east.c.Live.Mapping(k8sschema.FromAPIVersionAndKind("networking.istio.io/v1", "DestinationRule"))
	if err := east.c.Dynamic.Resource(m.Resource).Namespace("heal").Delete(t.Context(), "checkout", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the deleted DestinationRule back", func() bool {
		_, ok := live(t, east.c, "networking.istio.io/v1", "DestinationRule", "heal", "checkout")
		return ok
	})
	patch(t, west.c, "v1", "ConfigMap", "heal", "settings", `{"data":{"currency":"USD"}}`)
	eventually(t, 5*time.Second, "the ConfigMap value back", func() bool { return currency(t, west.c, "heal") == "EUR" })

	kinds := map[Kind]bool{}
	for _, e := range east.det.Report("heal").Entries {
		if e.HealedAt != nil {
			kinds[e.Kind] = true
		}
		if e.Kind == Modified && (fmt.Sprint(e.Fields) != "[/spec/http/0/route/0/weight /spec/http/0/route/1/weight]" || e.By != "kubectl-edit") {
			t.Errorf("modified entry should name the route weights and the editor: %+v", e)
		}
	}
	if !kinds[Modified] || !kinds[Deleted] {
		t.Errorf("east ledger lacks a healed modified and deleted entry: %+v", east.det.Report("heal"))
	}
	if n := testutil.ToFloat64(east.det.opts.Metrics.healed.WithLabelValues("east", "heal")); n < 2 {
		t.Errorf("meshcd_drift_healed_total = %v, want >= 2", n)
	}
	cm, _ := live(t, west.c, "v1", "ConfigMap", "heal", "settings")
	eventually(t, 5*time.Second, "a DriftHealed Event on the ConfigMap, with its UID (what kubectl describe matches)", func() bool {
		evs, err := west.c.Dynamic.Resource(eventGVR).Namespace("heal").List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, ev := range evs.Items {
			reason, _, _ := unstructured.NestedString(ev.Object, "reason")
			name, _, _ := unstructured.NestedString(ev.Object, "involvedObject", "name")
			uid, _, _ := unstructured.NestedString(ev.Object, "involvedObject", "uid")
			if reason == "DriftHealed" && name == "settings" && uid != "" && uid == string(cm.GetUID()) {
				return true
			}
		}
		return false
	})
}

// TestReportModeAndWhatIsNotDrift: in report mode an edit is recorded and left alone; another
// manager's label is not drift, nor, with the istio preset, an injector's label change.
func TestReportModeAndWhatIsNotDrift(t *testing.T) {
	sites := start(t, DefaultOptions())
	fsys := repo(t, "report", `{drift: "report", presets: ["istio-sidecar"]}`)
	east := sites["east"]
	syncDesign(t, east, fsys, "report")

	patch(t, east.c, "v1", "ConfigMap", "report", "settings", `{"metadata":{"labels":{"team":"payments"}}}`)
	patch(t, east.c, "v1", "Namespace", "", "report", `{"metadata":{"labels":{"istio-injection":null,"istio.io/rev":"canary"}}}`)
	time.Sleep(time.Second)
	if r := east.det.Report("report"); len(r.Entries) != 0 {
		t.Fatalf("another manager's label and an injector's change are not drift: %+v", r.Entries)
	}

	patch(t, east.c, "v1", "ConfigMap", "report", "settings", `{"data":{"currency":"USD"}}`)
	eventually(t, 5*time.Second, "the edit recorded", func() bool { return len(east.det.Report("report").Entries) == 1 })
	time.Sleep(time.Second)
	if got := currency(t, east.c, "report"); got != "USD" {
		t.Errorf("report mode changed the object back (currency %s)", got)
	}
	e := east.det.Report("report").Entries[0]
	if e.Kind != Modified || e.HealedAt != nil || fmt.Sprint(e.Fields) != "[/data/currency]" {
		t.Errorf("report entry: %+v", e)
	}
}

// TestFightingControllerIsContested: a loop changes the object back every time meshcd heals
// it. meshcd heals a bounded number of times, then marks the object contested and stops.
func TestFightingControllerIsContested(t *testing.T) {
	opts := DefaultOptions()
	sites := start(t, opts)
	fsys := repo(t, "fight", `{drift: "heal"}`)
	west := sites["west"]
	syncDesign(t, west, fsys, "fight")

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var edits int
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			if currency(t, west.c, "fight") != "GBP" {
				m, _ := west.c.Live.Mapping(k8sschema.FromAPIVersionAndKind("v1", "ConfigMap"))
				if _, err := west.c.Dynamic.Resource(m.Resource).Namespace("fight").Patch(ctx, "settings", types.MergePatchType, []byte(`{"data":{"currency":"GBP"}}`), metav1.PatchOptions{FieldManager: "fighter"}); err == nil {
					edits++
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	eventually(t, 15*time.Second, "the ConfigMap contested", func() bool { return len(west.det.Contested()) == 1 })
	time.Sleep(2 * time.Second) // no heal after that
	cancel()
	wg.Wait()
	heals := 0
	for _, e := range west.det.Report("fight").Entries {
		if e.HealedAt != nil {
			heals++
		}
	}
	if heals > opts.MaxHeals {
		t.Errorf("%d heals against a fighting controller, want at most %d", heals, opts.MaxHeals)
	}
	last := west.det.Report("fight").Entries
	if !last[len(last)-1].Contested {
		t.Errorf("the last ledger entry should say contested: %+v", last[len(last)-1])
	}
	t.Logf("%d edits by the fighter, %d heals, then contested", edits, heals)
}

// TestQuietWindowAfterSyncingEveryExample syncs every example design to the three clusters
// (one per mesh) and watches for 60 seconds: nothing the apiserver or meshcd itself does
// after a clean sync may look like drift.
func TestQuietWindowAfterSyncingEveryExample(t *testing.T) {
	sites := start(t, DefaultOptions())
	namespaces := map[string]string{}
	synced := 0
	for _, ex := range []string{"shop", "fleet", "platform", "edge"} {
		root, err := os.OpenRoot(filepath.Join("../examples", ex))
		if err != nil {
			t.Fatal(err)
		}
		fsys := root.FS()
		fl, designs, err := schema.Load(t.Context(), fsys, schema.DefaultLoadOptions())
		if err != nil {
			t.Fatal(err)
		}
		for i := range designs {
			d := &designs[i]
			if owner, taken := namespaces[d.Namespace]; taken {
				t.Logf("left out %s/%s: namespace %s is already %s's", ex, d.Name, d.Namespace, owner)
				continue
			}
			namespaces[d.Namespace] = ex + "/" + d.Name
			base := d.TargetClusters(fl)[0]
			for name, s := range sites {
				c := base
				c.Name, c.Mesh = name, s.c.Mesh
				b, err := render.Render(t.Context(), d, &c, render.Options{Revision: "r1", Repo: render.NewRepo(fsys)})
				if err != nil {
					t.Logf("left out %s/%s on %s: %v", ex, d.Name, c.Mesh, err)
					continue
				}
				rules, err := NewRules(d.Sync.Ignore, d.Sync.Presets)
				if err != nil {
					t.Fatal(err)
				}
				s.det.Track(d.Name, b.Objects, schema.DriftReport, rules)
				opts := reconciler.DefaultSyncOptions()
				opts.Policy = reconciler.PolicyFor(d.Sync)
				if _, err := reconciler.New().Sync(t.Context(), s.c, b, opts); err != nil {
					t.Fatalf("%s/%s on %s: %v", ex, d.Name, name, err)
				}
				synced += len(b.Objects)
			}
		}
		root.Close()
	}
	t.Logf("synced %d objects; watching for 60s", synced)
	time.Sleep(60 * time.Second)
	for name, s := range sites {
		if got := s.det.CheckAll(); len(got) != 0 {
			t.Errorf("%s: drift after a clean sync: %+v", name, got)
		}
		for _, ns := range namespaces {
			design := ns[strings.Index(ns, "/")+1:]
			if r := s.det.Report(design); len(r.Entries) != 0 {
				t.Errorf("%s: design %s recorded drift in the quiet window: %+v", name, design, r.Entries)
			}
		}
	}
}

// normalised is a design whose raw manifests hold values the apiserver stores differently
// (2048Mi, 2000m, 0.5, an empty env value) and fields it defaults around (a Service's
// sessionAffinity, a Deployment's strategy).
func normalised(t *testing.T, name string) fs.FS {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"clusters/fleet.cue": `cluster: east: {labels: {env: "prod"}, mesh: "istio"}`,
		"designs/" + name + "/design.cue": fmt.Sprintf(`design: %q: {
	namespace: %q
	manifests: [{yaml: "./raw"}]
	sync: drift: "heal"
}`, name, name),
		"designs/" + name + "/raw/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: istiod}
spec:
  selector: {matchLabels: {app: istiod}}
  strategy: {type: RollingUpdate}
  template:
    metadata: {labels: {app: istiod}}
    spec:
      containers:
      - name: discovery
        image: istio/pilot:1.28.0
        env: [{name: PILOT_TRACE_SAMPLING, value: "1.0"}, {name: REVISION, value: ""}]
        resources:
          requests: {memory: 2048Mi, cpu: 0.5}
          limits: {memory: 4096Mi, cpu: 2000m}
---
apiVersion: v1
kind: Service
metadata: {name: istiod}
spec:
  selector: {app: istiod}
  sessionAffinity: None
  ports: [{name: grpc, port: 15010}]
`,
	}
	if err := testenv.WriteFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	return os.DirFS(dir)
}

// TestApiserverNormalisationIsNotDrift syncs objects the apiserver normalises: neither the
// watch (with meshcd's own apply results) nor a one-shot CheckAll of a detector that never
// saw the apply (a restart, the CLI) reports drift, nothing is healed, and a real change
// among the normalised values is still reported and healed.
func TestApiserverNormalisationIsNotDrift(t *testing.T) {
	sites := start(t, DefaultOptions())
	east := sites["east"]
	fsys := normalised(t, "norm")
	b := syncDesign(t, east, fsys, "norm")
	time.Sleep(2 * time.Second)
	if r := east.det.Report("norm"); len(r.Entries) != 0 {
		t.Fatalf("drift recorded right after a clean apply: %+v", r.Entries)
	}
	if got := east.det.CheckAll(); len(got) != 0 {
		t.Errorf("CheckAll after a clean apply: %+v", got)
	}
	// A detector that did not see the apply compares by value.
	fresh := NewDetector(east.c, Options{})
	fresh.Track("norm", b.Objects, schema.DriftReport, Rules{})
	if got := fresh.CheckAll(); len(got) != 0 {
		t.Errorf("a new detector (a restart) reports the apiserver's normalisation: %+v", got)
	}
	if n := testutil.ToFloat64(east.det.opts.Metrics.healed.WithLabelValues("east", "norm")); n != 0 {
		t.Errorf("%v heals of a clean apply", n)
	}

	dm, _ := east.c.Live.Mapping(k8sschema.FromAPIVersionAndKind("apps/v1", "Deployment"))
	if _, err := east.c.Dynamic.Resource(dm.Resource).Namespace("norm").Patch(t.Context(), "istiod", types.StrategicMergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"discovery","resources":{"requests":{"memory":"1Gi","cpu":"500m"}}}]}}}}`),
		metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the memory request back at 2Gi", func() bool {
		o, _ := live(t, east.c, "apps/v1", "Deployment", "norm", "istiod")
		c, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		mem, _, _ := unstructured.NestedString(c[0].(map[string]any), "resources", "requests", "memory")
		return mem == "2Gi"
	})
	var healed []Entry
	eventually(t, 5*time.Second, "the heal recorded", func() bool {
		healed = east.det.Report("norm").Entries
		return len(healed) == 1 && healed[0].HealedAt != nil
	})
	if want := "[/spec/template/spec/containers/0/resources/requests/memory]"; fmt.Sprint(healed[0].Fields) != want {
		t.Errorf("healed fields %v, want %s (cpu 500m is 0.5)", healed[0].Fields, want)
	}
	time.Sleep(time.Second)
	if r := east.det.Report("norm"); len(r.Entries) != 1 {
		t.Errorf("healed again and again: %+v", r.Entries)
	}
}

// TestMissingIsNotDeleted: an object meshcd never applied is "missing", and not healed by
// drift (the sync says why it is not there); one it applied and someone removed is "deleted".
func TestMissingIsNotDeleted(t *testing.T) {
	sites := start(t, DefaultOptions())
	east := sites["east"]
	b := syncDesign(t, east, repo(t, "gone", `{drift: "report"}`), "gone")
	never := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "never", "namespace": "gone", "annotations": map[string]any{render.AnnotationDigest: "x"}},
		"data":     map[string]any{"a": "b"},
	}}
	east.det.Track("gone", append(slices.Clone(b.Objects), never), schema.DriftReport, Rules{})
	m, _ := east.c.Live.Mapping(k8sschema.FromAPIVersionAndKind("v1", "ConfigMap"))
	if err := east.c.Dynamic.Resource(m.Resource).Namespace("gone").Delete(t.Context(), "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the deleted ConfigMap seen", func() bool {
		_, ok := east.c.Live.Get(k8sschema.FromAPIVersionAndKind("v1", "ConfigMap"), "gone", "settings")
		return !ok
	})
	kinds := map[string]Kind{}
	for _, e := range east.det.CheckAll() {
		kinds[e.Object] = e.Kind
	}
	want := map[string]Kind{"ConfigMap gone/settings": Deleted, "ConfigMap gone/never": Missing}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("drift kinds (-want +got)\n%s", diff)
	}
}
