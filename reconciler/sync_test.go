package reconciler

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/render"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// TestSecondSyncOfTheSameRevisionCostsNothing syncs a design to three clusters (one per
// mesh), then again: the second sync sends no request at all, and the apiservers' own
// metrics show no write. A restarted meshcd (fresh clients, no memory) writes nothing either.
func TestSecondSyncOfTheSameRevisionCostsNothing(t *testing.T) {
	bundles, d := renderFleet(t, shopDesign("noop", ""), "noop", "r1")
	clusters := connect(t)
	r := New()
	for _, res := range r.SyncAll(t.Context(), jobs(clusters, bundles, options(d)), DefaultQueueOptions()) {
		if res.Error != "" {
			t.Fatalf("first sync to %s: %s", res.Cluster, res.Error)
		}
		if res.Count(Created) != len(bundles[res.Cluster].Objects) {
			t.Errorf("first sync to %s created %d of %d objects: %+v", res.Cluster, res.Count(Created), len(bundles[res.Cluster].Objects), res.Entries)
		}
	}

	before := map[string]map[string]float64{}
	sent := map[string]int64{}
	for name, c := range clusters {
		before[name] = apiserverRequests(t, c)
		sent[name] = c.Requests().Total
	}
	again, _ := renderFleet(t, shopDesign("noop", ""), "noop", "r2") // a new commit, same content
	for _, res := range r.SyncAll(t.Context(), jobs(clusters, again, options(d)), DefaultQueueOptions()) {
		if res.Error != "" || res.Count(Unchanged) != len(res.Entries) {
			t.Fatalf("second sync to %s: %s %+v", res.Cluster, res.Error, res.Entries)
		}
	}
	for name, c := range clusters {
		if n := c.Requests().Total - sent[name]; n != 0 {
			t.Errorf("%s: the second sync sent %d requests, want 0", name, n)
		}
		after := apiserverRequests(t, c)
		for _, verb := range []string{"POST", "PUT", "PATCH", "APPLY", "DELETE", "CREATE", "UPDATE"} {
			if d := after[verb] - before[name][verb]; d != 0 {
				t.Errorf("%s: apiserver counted %v %s requests during the second sync, want 0", name, d, verb)
			}
		}
	}

	// A restarted meshcd: it reads the inventory and lists each kind once, and writes nothing.
	restarted := connect(t)
	r2 := New()
	for _, res := range r2.SyncAll(t.Context(), jobs(restarted, again, options(d)), DefaultQueueOptions()) {
		c := restarted[res.Cluster]
		if res.Error != "" || res.Count(Unchanged) != len(res.Entries) {
			t.Fatalf("sync after restart to %s: %s %+v", res.Cluster, res.Error, res.Entries)
		}
		if w := c.Requests().Writes; w != 0 {
			t.Errorf("%s: a restarted meshcd wrote %d times for an unchanged revision", res.Cluster, w)
		}
		t.Logf("%s after restart: %d requests (inventory read, one list and watch per kind), 0 writes", res.Cluster, c.Requests().Total)
	}
}

// TestPruneOnlyWhatLeftTheDesign removes a service from the design: its objects are pruned on
// every target. A failed render prunes nothing, and neither does an empty bundle.
func TestPruneOnlyWhatLeftTheDesign(t *testing.T) {
	bundles, d := renderFleet(t, shopDesign("prune", ""), "prune", "r1")
	clusters := connect(t)
	r := New()
	mustSyncAll(t, r, jobs(clusters, bundles, options(d)))

	// A failed render for every cluster: nothing applied, nothing pruned.
	var broken []Job
	for name, c := range clusters {
		broken = append(broken, Job{Cluster: c, RenderErr: &render.Error{Design: "prune", Cluster: name, Message: "fault injection cannot be expressed"}})
	}
	for _, res := range r.SyncAll(t.Context(), broken, DefaultQueueOptions()) {
		if !strings.Contains(res.Error, "nothing pruned") {
			t.Errorf("%s: a failed render reported %q", res.Cluster, res.Error)
		}
	}
	for name, c := range clusters {
		if !exists(t, c, "v1", "ConfigMap", "prune", "settings") {
			t.Fatalf("%s: a failed render removed objects", name)
		}
	}

	// An empty bundle (only the Namespace): refused, nothing pruned.
	for name, c := range clusters {
		empty := *bundles[name]
		empty.Objects = empty.Objects[:1]
		res, err := r.Sync(t.Context(), c, &empty, options(d))
		if !errors.Is(err, ErrEmptyBundle) {
			t.Fatalf("%s: empty bundle: err %v, result %+v", name, err, res)
		}
		if !exists(t, c, "v1", "ConfigMap", "prune", "settings") {
			t.Fatalf("%s: an empty bundle pruned objects", name)
		}
	}

	// The frontend service leaves the design: its objects go, everything else stays.
	files := shopDesign("prune", "")
	files["designs/prune/design.cue"] = strings.Replace(files["designs/prune/design.cue"], "services: frontend", "_frontend", 1)
	smaller, _ := renderFleet(t, files, "prune", "r2")
	for _, res := range mustSyncAll(t, r, jobs(clusters, smaller, options(d))) {
		if res.Count(Pruned) == 0 {
			t.Errorf("%s: nothing pruned: %+v", res.Cluster, res.Entries)
		}
		for _, e := range res.Entries {
			if e.Action == Pruned && !strings.Contains(e.Object, "frontend") {
				t.Errorf("%s: pruned %s, which is still in the design", res.Cluster, e.Object)
			}
		}
	}
	for name, c := range clusters {
		if frontendExists(t, c, "prune") {
			t.Errorf("%s: frontend's objects survived the prune", name)
		}
		if !exists(t, c, "v1", "ConfigMap", "prune", "settings") {
			t.Errorf("%s: the prune removed an object still in the design", name)
		}
	}
	// The inventory in the cluster names exactly what is left.
	for name, c := range clusters {
		inv, err := ReadInventory(t.Context(), c, "prune")
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Objects) != len(smaller[name].Objects) || inv.Revision != "r2" {
			t.Errorf("%s: inventory has %d objects at %s, want %d at r2", name, len(inv.Objects), inv.Revision, len(smaller[name].Objects))
		}
	}
}

// TestPruneKeepsWhatItMustNot checks the objects a prune leaves: a Namespace without
// opt-in, an object annotated to be kept, and one relabelled for another design.
func TestPruneKeepsWhatItMustNot(t *testing.T) {
	extra := "manifests: [{yaml: \"./raw\"}, {yaml: \"./more\"}]"
	files := shopDesign("keep", "")
	files["designs/keep/design.cue"] = strings.Replace(files["designs/keep/design.cue"], `manifests: [{yaml: "./raw"}]`, extra, 1)
	files["designs/keep/more/objects.yaml"] = `apiVersion: v1
kind: Namespace
metadata: {name: keep-extra}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: pinned, annotations: {meshcd.io/prune: disabled}}
data: {k: v}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: handed-over}
data: {k: v}
`
	bundles, d := renderFleet(t, files, "keep", "r1")
	clusters := connect(t)
	c := clusters["east"]
	r := New()
	if _, err := r.Sync(t.Context(), c, bundles["east"], options(d)); err != nil {
		t.Fatal(err)
	}
	// Someone hands one object to another design.
	patch := []byte(`{"metadata":{"labels":{"meshcd.io/design":"other"}}}`)
	m, _ := c.Live.Mapping(get(t, c, "v1", "ConfigMap", "keep", "handed-over").GroupVersionKind())
	if _, err := c.Resource(m, "keep").Patch(t.Context(), "handed-over", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		o, ok := c.Live.Get(m.GroupVersionKind, "keep", "handed-over")
		return ok && o.GetLabels()["meshcd.io/design"] == "other"
	})

	delete(files, "designs/keep/more/objects.yaml")
	files["designs/keep/more/none.yaml"] = ""
	smaller, _ := renderFleet(t, files, "keep", "r2")
	res, err := r.Sync(t.Context(), c, smaller["east"], options(d))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pinned", "handed-over"} {
		if !exists(t, c, "v1", "ConfigMap", "keep", name) {
			t.Errorf("ConfigMap %s was pruned", name)
		}
	}
	if !exists(t, c, "v1", "Namespace", "", "keep-extra") {
		t.Error("a Namespace was pruned without sync.pruneNamespaces")
	}
	if res.Count(Skipped) != 3 {
		t.Errorf("want 3 skipped objects with their reasons, got %+v", res.Entries)
	}
}

// TestRejectedObjectFailsAlone: the apiserver rejects one object; it fails alone, the rest
// apply, and it stays in the inventory so a later prune still knows it.
func TestRejectedObjectFailsAlone(t *testing.T) {
	files := shopDesign("reject", "")
	files["designs/reject/raw/bad.yaml"] = "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: 99999}]}\n"
	bundles, d := renderFleet(t, files, "reject", "r1")
	clusters := connect(t)
	c := clusters["west"]
	res, err := New().Sync(t.Context(), c, bundles["west"], options(d))
	if err == nil || !strings.Contains(err.Error(), "Service reject/bad") {
		t.Fatalf("want an error naming the rejected Service, got %v", err)
	}
	if res.Count(Failed) != 1 || res.Count(Created) != len(bundles["west"].Objects)-1 {
		t.Fatalf("want 1 failed and the rest created: %+v", res.Entries)
	}
	inv, err := ReadInventory(t.Context(), c, "reject")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := inv.Objects["Service reject/bad"]; !ok {
		t.Error("the failed object is not in the inventory")
	}
}

// TestConflictsAreReportedUnlessTheDesignTakesOwnership: a field another manager set with
// another value is a conflict; sync.takeOwnership takes it over.
func TestConflictsAreReportedUnlessTheDesignTakesOwnership(t *testing.T) {
	bundles, d := renderFleet(t, shopDesign("owner", ""), "owner", "r1")
	clusters := connect(t)
	c := clusters["central"]
	// Someone else created the ConfigMap first, with another value.
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "settings", "namespace": "owner"}, "data": map[string]any{"currency": "USD"}}}
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "owner"}}}
	for _, o := range []*unstructured.Unstructured{ns, cm} {
		m, _ := c.Live.Mapping(o.GroupVersionKind())
		if _, err := c.Resource(m, o.GetNamespace()).Apply(t.Context(), o.GetName(), o, metav1.ApplyOptions{FieldManager: "someone-else"}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := New().Sync(t.Context(), c, bundles["central"], options(d))
	if err == nil || !strings.Contains(err.Error(), "conflict") || res.Count(Failed) != 1 {
		t.Fatalf("want one conflict, got %v %+v", err, res.Entries)
	}
	opts := options(d)
	opts.Policy.TakeOwnership = true
	if _, err := New().Sync(t.Context(), c, bundles["central"], opts); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(get(t, c, "v1", "ConfigMap", "owner", "settings").Object, "data", "currency"); v != "EUR" {
		t.Errorf("with takeOwnership the value is %q, want EUR", v)
	}
}

// TestHealthComesFromKstatus: ConfigMaps and mesh objects are Current at once; a Deployment
// with no controller to roll it out stays InProgress and is named.
func TestHealthComesFromKstatus(t *testing.T) {
	files := shopDesign("health", "")
	files["designs/health/raw/deploy.yaml"] = `apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout}
spec:
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout}}
    spec: {containers: [{name: app, image: example/checkout:1}]}
`
	bundles, d := renderFleet(t, files, "health", "r1")
	c := connect(t)["east"]
	opts := options(d)
	opts.Wait, opts.HealthTimeout = true, 2*time.Second
	res, err := New().Sync(t.Context(), c, bundles["east"], opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Health.Status != "InProgress" || len(res.Health.NotReady) != 1 || res.Health.NotReady[0].Object != "apps/Deployment health/checkout" {
		t.Fatalf("health: %+v", res.Health)
	}
}

// TestStoppedClusterDoesNotBlockTheOthers stops one apiserver while a sync of a few hundred
// objects to all three is running: the others finish, the stopped one reports an error, and
// after a restart it converges with nothing lost and nothing pruned.
func TestStoppedClusterDoesNotBlockTheOthers(t *testing.T) {
	files := shopDesign("outage", "")
	var many strings.Builder
	for i := range 300 {
		many.WriteString("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-" + strconv.Itoa(i) + "}\ndata: {k: v}\n")
	}
	files["designs/outage/raw/many.yaml"] = many.String()
	bundles, d := renderFleet(t, files, "outage", "r1")
	clusters := connect(t)
	r := New()
	victim := env.Cluster("west")
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for clusters["west"].Requests().Writes < 20 {
			time.Sleep(2 * time.Millisecond)
		}
		victim.Stop()
	}()
	qopts := DefaultQueueOptions()
	qopts.MaxAttempts, qopts.BaseDelay, qopts.AttemptTimeout = 2, 100*time.Millisecond, 20*time.Second
	opts := options(d)
	opts.Concurrency = 4 // slow enough that the stop lands mid-sync
	results := r.SyncAll(t.Context(), jobs(clusters, bundles, opts), qopts)
	<-stopped
	for _, res := range results {
		switch res.Cluster {
		case "west":
			if res.Error == "" {
				t.Error("west was stopped mid-sync but reports success")
			}
		default:
			if res.Error != "" || res.Count(Created) != len(bundles[res.Cluster].Objects) {
				t.Errorf("%s did not finish while west was down: %s", res.Cluster, res.Error)
			}
		}
	}
	if err := victim.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	res, err := r.Sync(t.Context(), clusters["west"], bundles["west"], opts)
	if err != nil {
		t.Fatalf("west after restart: %v", err)
	}
	if res.Count(Pruned) != 0 {
		t.Errorf("west after restart pruned %d objects", res.Count(Pruned))
	}
	for i := range 300 {
		if !exists(t, clusters["west"], "v1", "ConfigMap", "outage", "cm-"+strconv.Itoa(i)) {
			t.Fatalf("west lost ConfigMap cm-%d", i)
		}
	}
}

// TestKilledBetweenApplyAndPrune runs the sync in a child process that dies (os.Exit) right
// before pruning: the next run, from nothing but the stored inventory, prunes correctly.
func TestKilledBetweenApplyAndPrune(t *testing.T) {
	bundles, d := renderFleet(t, shopDesign("killed", ""), "killed", "r1")
	c := connect(t)["east"]
	if _, err := New().Sync(t.Context(), c, bundles["east"], options(d)); err != nil {
		t.Fatal(err)
	}
	files := shopDesign("killed", "")
	files["designs/killed/design.cue"] = strings.Replace(files["designs/killed/design.cue"], "services: frontend", "_frontend", 1)
	dir := writeRepo(t, files)

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, childKubeconfig+"="+env.Cluster("east").KubeconfigPath)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != childDied {
		t.Fatalf("the child should have died before pruning: %v\n%s", err, out)
	}
	if !frontendExists(t, c, "killed") {
		t.Fatal("the child pruned before dying")
	}

	smaller, _ := renderFleet(t, files, "killed", "r2")
	res, err := New().Sync(t.Context(), connect(t)["east"], smaller["east"], options(d))
	if err != nil {
		t.Fatal(err)
	}
	if frontendExists(t, c, "killed") || res.Count(Pruned) == 0 {
		t.Fatalf("the next run did not prune frontend: %+v", res.Entries)
	}
}

func mustSyncAll(t *testing.T, r *Reconciler, js []Job) []*SyncResult {
	t.Helper()
	results := r.SyncAll(t.Context(), js, DefaultQueueOptions())
	for _, res := range results {
		if res.Error != "" {
			t.Fatalf("sync to %s: %s", res.Cluster, res.Error)
		}
	}
	return results
}

// frontendExists looks for the frontend service's mesh object: its DestinationRule on istio,
// its version Service on linkerd and gateway-api.
func frontendExists(t *testing.T, c *fleet.Cluster, namespace string) bool {
	t.Helper()
	if c.Name == "east" {
		return exists(t, c, "networking.istio.io/v1", "DestinationRule", namespace, "frontend")
	}
	return exists(t, c, "v1", "Service", namespace, "frontend-stable")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func crdYAML(name, group, kind, plural, short string) string {
	return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: %s}
spec:
  group: %s
  names: {kind: %s, plural: %s, singular: %s, shortNames: [%s]}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
`, name, group, kind, plural, strings.ToLower(kind), short)
}

// TestBadCRDFailsOnlyWhatDependsOnIt syncs a bundle with a good CRD, one the apiserver refuses
// (its name is not plural.group), one whose short name another CRD already has (created,
// never served), a custom resource of each, and plain objects: the good CRD, its resource
// and the plain objects are created on the first run; the bad CRDs and their resources fail,
// naming the CRD; the sync does not wait out the Established timeout.
func TestBadCRDFailsOnlyWhatDependsOnIt(t *testing.T) {
	const group = "crdtest.example.com"
	clusters := connect(t)
	c := clusters["west"]
	taken := &unstructured.Unstructured{}
	must(t, yaml.Unmarshal([]byte(crdYAML("others."+group, group, "Other", "others", "gd")), &taken.Object))
	m, err := c.Live.Mapping(crdGVK)
	must(t, err)
	if _, err := c.Dynamic.Resource(m.Resource).Create(t.Context(), taken, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	files := shopDesign("crds", "")
	files["designs/crds/raw/crds.yaml"] = crdYAML("widgets."+group, group, "Widget", "widgets", "wd") + "---\n" +
		crdYAML("wrong-name."+group, group, "Broken", "brokens", "br") + "---\n" +
		crdYAML("gadgets."+group, group, "Gadget", "gadgets", "gd")
	files["designs/crds/raw/resources.yaml"] = "apiVersion: " + group + "/v1\nkind: Widget\nmetadata: {name: w}\n---\n" +
		"apiVersion: " + group + "/v1\nkind: Broken\nmetadata: {name: b}\n---\n" +
		"apiVersion: " + group + "/v1\nkind: Gadget\nmetadata: {name: g}\n"
	bundles, d := renderFleet(t, files, "crds", "r1")
	opts := options(d)
	res, err := New().Sync(t.Context(), c, bundles["west"], opts)
	t.Logf("sync took %s", res.Duration)
	if err == nil {
		t.Fatal("a sync with failed CRDs reported no error")
	}
	failed := map[string]string{}
	for _, e := range res.Entries {
		if e.Action == Failed {
			failed[e.Object] = e.Error
		}
	}
	wantFailed := map[string]string{
		"apiextensions.k8s.io/CustomResourceDefinition wrong-name." + group: "apply failed",
		"apiextensions.k8s.io/CustomResourceDefinition gadgets." + group:    "not served",
		group + "/Broken crds/b": "wrong-name." + group,
		group + "/Gadget crds/g": "gadgets." + group,
	}
	for obj, want := range wantFailed {
		if !strings.Contains(failed[obj], want) {
			t.Errorf("%s: error %q, want it to say %q", obj, failed[obj], want)
		}
	}
	if len(failed) != len(wantFailed) {
		t.Errorf("failed %d objects, want %d: %v", len(failed), len(wantFailed), failed)
	}
	if n := res.Count(Created); n != len(bundles["west"].Objects)-len(wantFailed) {
		t.Errorf("created %d of %d objects, want all but the %d failed", n, len(bundles["west"].Objects), len(wantFailed))
	}
	if res.Duration > opts.EstablishTimeout {
		t.Errorf("the sync waited out the Established timeout (%s)", res.Duration)
	}
	if !exists(t, c, group+"/v1", "Widget", "crds", "w") || !exists(t, c, "v1", "ConfigMap", "crds", "settings") {
		t.Error("the good CRD's resource or a plain object is not in the cluster")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
