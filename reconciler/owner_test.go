package reconciler

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/render"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
)

// plainDesign is a design in namespace ns with nothing but a folder of YAML; owns is its
// ownsNamespace field as CUE ("" leaves it unset) and extra goes into its sync section.
func plainDesign(name, ns, owns, sync string, yaml map[string]string) map[string]string {
	ownership := ""
	if owns != "" {
		ownership = "ownsNamespace: " + owns
	}
	files := map[string]string{
		"clusters/fleet.cue": clusterFiles,
		"designs/" + name + "/design.cue": fmt.Sprintf(`design: %q: {
	namespace: %q
	%s
	targets: matchLabels: env: "prod"
	manifests: [{yaml: "./raw"}]
	sync: {%s}
}`, name, ns, ownership, sync),
	}
	for file, body := range yaml {
		files["designs/"+name+"/raw/"+file] = body
	}
	return files
}

// merged is the union of several designs' files: one fleet repo.
func merged(parts ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, p := range parts {
		for k, v := range p {
			out[k] = v
		}
	}
	return out
}

func configMap(name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {value: %q}\n", name, value)
}

// syncEast syncs one design's bundle to east and returns the result.
func syncEast(t *testing.T, r *Reconciler, c *fleet.Cluster, files map[string]string, design string, prune bool) *SyncResult {
	t.Helper()
	bundles, d := renderFleet(t, files, design, "r1")
	opts := options(d)
	opts.Prune = prune
	res, _ := r.Sync(t.Context(), c, bundles["east"], opts)
	return res
}

func entryOf(res *SyncResult, object string) Entry {
	for _, e := range res.Entries {
		if e.Object == object {
			return e
		}
	}
	return Entry{}
}

// TestObjectOfAnotherDesignIsRefusedUnlessAdopted moves a ConfigMap from one design to a
// design of another repo (the case a render-time check cannot see): it is refused, naming both
// designs, until the new design says sync.adopt; adoption is reported; the old design can then
// neither take it back (no flapping label) nor prune it.
func TestObjectOfAnotherDesignIsRefusedUnlessAdopted(t *testing.T) {
	c := connect(t)["east"]
	r := New()
	const id = "ConfigMap adopt/moving"
	old := plainDesign("adopt-old", "adopt", "", "", map[string]string{"cm.yaml": configMap("moving", "old")})
	if res := syncEast(t, r, c, old, "adopt-old", true); res.Error != "" || entryOf(res, id).Action != Created {
		t.Fatalf("first sync: %s %+v", res.Error, res.Entries)
	}

	newRepo := plainDesign("adopt-new", "adopt", "false", "", map[string]string{"cm.yaml": configMap("moving", "new")})
	res := syncEast(t, r, c, newRepo, "adopt-new", true)
	e := entryOf(res, id)
	if e.Action != Failed || !strings.Contains(e.Error, "adopt-old") || !strings.Contains(e.Error, "adopt-new") || !strings.Contains(e.Error, "sync.adopt") {
		t.Fatalf("an object of another design was not refused naming both designs: %+v", e)
	}
	live := get(t, c, "v1", "ConfigMap", "adopt", "moving")
	if live.GetLabels()[render.LabelDesign] != "adopt-old" || live.Object["data"].(map[string]any)["value"] != "old" {
		t.Fatalf("the refused apply changed the object: %v", live.Object)
	}

	adopting := plainDesign("adopt-new", "adopt", "false", "adopt: true", map[string]string{"cm.yaml": configMap("moving", "new")})
	res = syncEast(t, r, c, adopting, "adopt-new", true)
	if e := entryOf(res, id); res.Error != "" || e.Action != Configured || e.AdoptedFrom != "adopt-old" {
		t.Fatalf("adoption: %s %+v", res.Error, e)
	}
	live = get(t, c, "v1", "ConfigMap", "adopt", "moving")
	if live.GetLabels()[render.LabelDesign] != "adopt-new" || live.Object["data"].(map[string]any)["value"] != "new" {
		t.Fatalf("after adoption the object is %v", live.Object)
	}
	if res := syncEast(t, r, c, adopting, "adopt-new", true); entryOf(res, id).AdoptedFrom != "" {
		t.Fatalf("a second sync adopted again: %+v", res.Entries)
	}

	// The old design still renders it: refused, and the label does not flap back.
	res = syncEast(t, r, c, old, "adopt-old", true)
	if e := entryOf(res, id); e.Action != Failed || !strings.Contains(e.Error, "belongs to design adopt-new") {
		t.Fatalf("the old design took the object back: %+v", e)
	}
	// The old design drops it: its prune leaves the adopted object alone.
	dropped := plainDesign("adopt-old", "adopt", "", "", map[string]string{"other.yaml": configMap("other", "x")})
	res = syncEast(t, r, c, dropped, "adopt-old", true)
	if e := entryOf(res, id); e.Action != Skipped || !strings.Contains(e.Error, "adopt-new") {
		t.Fatalf("the old design's prune: %+v", res.Entries)
	}
	if live := get(t, c, "v1", "ConfigMap", "adopt", "moving"); live.GetLabels()[render.LabelDesign] != "adopt-new" {
		t.Fatalf("after the old design's prune: %v", live.GetLabels())
	}
}

// TestNamespaceSharedByThreeDesigns: three designs of one repo use one namespace and one of
// them owns it. Only the owner applies and labels the Namespace; syncing all three again
// writes nothing to it; when a design (even the owner) leaves, its objects are pruned and the
// Namespace is not.
func TestNamespaceSharedByThreeDesigns(t *testing.T) {
	c := connect(t)["east"]
	r := New()
	const ns = "shared3"
	base := plainDesign("s3-base", ns, "true", "", map[string]string{"cm.yaml": configMap("base", "1")})
	control := plainDesign("s3-control", ns, "false", "", map[string]string{"cm.yaml": configMap("control", "1")})
	gateway := plainDesign("s3-gateway", ns, "false", "", map[string]string{"cm.yaml": configMap("gateway", "1")})
	repo := merged(base, control, gateway)
	names := []string{"s3-base", "s3-control", "s3-gateway"}
	nsID := "Namespace " + ns
	for _, name := range names {
		res := syncEast(t, r, c, repo, name, true)
		if res.Error != "" {
			t.Fatalf("%s: %s", name, res.Error)
		}
		if has := entryOf(res, nsID).Object != ""; has != (name == "s3-base") {
			t.Fatalf("%s applied the Namespace: %v; only the owner may", name, has)
		}
	}
	live := get(t, c, "v1", "Namespace", "", ns)
	if got := live.GetLabels()[render.LabelDesign]; got != "s3-base" {
		t.Fatalf("the Namespace is labelled for %q, want s3-base", got)
	}
	rv := live.GetResourceVersion()
	for _, name := range names {
		if res := syncEast(t, r, c, repo, name, true); res.Error != "" || res.Count(Unchanged) != len(res.Entries) {
			t.Fatalf("second sync of %s: %s %+v", name, res.Error, res.Entries)
		}
	}
	if got := get(t, c, "v1", "Namespace", "", ns).GetResourceVersion(); got != rv {
		t.Fatalf("syncing the three designs again rewrote the Namespace (resourceVersion %s → %s)", rv, got)
	}

	// The gateway design leaves (it renders nothing any more): what it rendered is pruned, not
	// the Namespace.
	leaving := plainDesign("s3-gateway", ns, "false", "allowEmpty: true", nil)
	leaving["designs/s3-gateway/raw/.gitkeep"] = ""
	res := syncEast(t, r, c, merged(base, control, leaving), "s3-gateway", true)
	if entryOf(res, "ConfigMap "+ns+"/gateway").Action != Pruned || exists(t, c, "v1", "ConfigMap", ns, "gateway") {
		t.Fatalf("the leaving design's ConfigMap was not pruned: %s %+v", res.Error, res.Entries)
	}
	// The owner leaves too (its Namespace is no longer rendered): its ConfigMap goes, the
	// Namespace, which holds the other designs' objects, stays.
	ownerGone := plainDesign("s3-base", ns, "false", "allowEmpty: true", nil)
	ownerGone["designs/s3-base/raw/.gitkeep"] = ""
	res = syncEast(t, r, c, merged(ownerGone, control), "s3-base", true)
	if entryOf(res, "ConfigMap "+ns+"/base").Action != Pruned {
		t.Fatalf("the owner's ConfigMap was not pruned: %s %+v", res.Error, res.Entries)
	}
	if e := entryOf(res, nsID); e.Action != Skipped || !exists(t, c, "v1", "Namespace", "", ns) || !exists(t, c, "v1", "ConfigMap", ns, "control") {
		t.Fatalf("the shared Namespace was not kept: %+v", e)
	}
}

// TestPreviewDiffShowsOnlyWhatTheDesignOwns: a pull request can name any object; its preview
// diff names an object that exists and is not the design's without its content (neither the
// live object nor the dry run's merge with it), and shows objects the design owns or would
// create in full. The CLI's own diff, run with the user's credentials, shows everything.
func TestPreviewDiffShowsOnlyWhatTheDesignOwns(t *testing.T) {
	c := connect(t)["east"]
	r := New()
	owned := plainDesign("peek", "peek", "", "", map[string]string{"mine.yaml": configMap("mine", "1")})
	if res := syncEast(t, r, c, owned, "peek", true); res.Error != "" {
		t.Fatal(res.Error)
	}
	// Another team's ConfigMap in the same namespace, not labelled for any design.
	m, err := c.Live.Mapping(k8sschema.FromAPIVersionAndKind("v1", "ConfigMap"))
	must(t, err)
	theirs := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "theirs", "namespace": "peek"}, "data": map[string]any{"token": "CANARY-42-not-yours"}}}
	_, err = c.Resource(m, "peek").Create(t.Context(), theirs, metav1.CreateOptions{})
	must(t, err)

	pr := plainDesign("peek", "peek", "", "", map[string]string{
		"mine.yaml":   configMap("mine", "2"),
		"theirs.yaml": configMap("theirs", "x"),
		"new.yaml":    configMap("new", "3"),
	})
	bundles, d := renderFleet(t, pr, "peek", "pr-1")
	diffs, err := Diff(t.Context(), c, bundles["east"], DiffOptions{Policy: PolicyFor(d.Sync), OwnedOnly: true})
	must(t, err)
	got := map[string]ObjectDiff{}
	for _, df := range diffs {
		got[df.Object] = df
		if strings.Contains(df.Unified, "CANARY-42") {
			t.Fatalf("the preview diff of %s shows another team's value:\n%s", df.Object, df.Unified)
		}
	}
	if df := got["ConfigMap peek/theirs"]; df.Change != NotOwned || df.Unified != "" {
		t.Errorf("not-owned object: %+v", df)
	}
	if df := got["ConfigMap peek/mine"]; df.Change != WouldUpdate || !strings.Contains(df.Unified, `+  value: "2"`) {
		t.Errorf("owned object: %+v", df)
	}
	if df := got["ConfigMap peek/new"]; df.Change != WouldCreate {
		t.Errorf("new object: %+v", df)
	}

	all, err := Diff(t.Context(), c, bundles["east"], DiffOptions{Policy: PolicyFor(d.Sync)})
	must(t, err)
	shown := false
	for _, df := range all {
		shown = shown || strings.Contains(df.Unified, "CANARY-42")
	}
	if !shown {
		t.Errorf("the CLI's diff (the user's own credentials) should show the live object it would change")
	}
}

// TestSecretValuesNeverInErrors: an admission policy of the cluster refuses a Secret and
// quotes its value in the error (the apiserver's own validation redacts Secret contents; a
// policy's message need not); what meshcd reports (each entry, the result, the error it
// returns) and a diff's error show the mask instead.
func TestSecretValuesNeverInErrors(t *testing.T) {
	c := connect(t)["east"]
	const canary = "CANARY-99-hunter2"
	policy := `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: quote-secrets}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [secrets]}]
  validations:
  - expression: "!has(object.data) || !('token' in object.data)"
    messageExpression: "'token ' + string(object.data['token']) + ' is not allowed here'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: quote-secrets}
spec:
  policyName: quote-secrets
  validationActions: [Deny]
  matchResources:
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: leaky}}
`
	objs, err := render.DecodeObjects([]byte(policy))
	must(t, err)
	for _, o := range objs {
		m, err := c.Live.Mapping(o.GroupVersionKind())
		must(t, err)
		_, err = c.Resource(m, "").Create(t.Context(), o, metav1.CreateOptions{})
		must(t, err)
		defer c.Resource(m, "").Delete(context.Background(), o.GetName(), metav1.DeleteOptions{})
	}
	files := plainDesign("leaky", "leaky", "", "", map[string]string{
		"ok.yaml":     configMap("ok", "1"),
		"secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: api}\nstringData: {token: " + canary + "}\n",
	})
	bundles, d := renderFleet(t, files, "leaky", "r1")
	// The policy is enforced a moment after it is created: wait until a dry run is refused.
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "leaky"}}}
	nsm, err := c.Live.Mapping(ns.GroupVersionKind())
	must(t, err)
	_, err = c.Resource(nsm, "").Create(t.Context(), ns, metav1.CreateOptions{})
	must(t, err)
	sm, err := c.Live.Mapping(k8sschema.FromAPIVersionAndKind("v1", "Secret"))
	must(t, err)
	probe := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "probe"}, "stringData": map[string]any{"token": "x"}}}
	waitFor(t, func() bool {
		_, err := c.Resource(sm, "leaky").Create(t.Context(), probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil
	})
	res, err := New().Sync(t.Context(), c, bundles["east"], options(d))
	e := entryOf(res, "Secret leaky/api")
	if err == nil || !strings.Contains(e.Error, "is not allowed here") {
		t.Fatalf("the policy did not refuse the Secret: %+v, %v", e, err)
	}
	for what, text := range map[string]string{"entry": e.Error, "result": res.Error, "error": err.Error()} {
		if strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(canary))) || strings.Contains(text, canary) || !strings.Contains(text, render.Masked) {
			t.Errorf("%s error shows the Secret's value or no mask: %s", what, text)
		}
	}
	if a := entryOf(res, "ConfigMap leaky/ok").Action; a != Created && a != Unchanged {
		t.Errorf("the other object: %+v", res.Entries)
	}
	_, err = Diff(t.Context(), c, bundles["east"], DiffOptions{Policy: PolicyFor(d.Sync)})
	if err == nil || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte(canary))) || !strings.Contains(err.Error(), render.Masked) {
		t.Errorf("diff error: %v", err)
	}
}
