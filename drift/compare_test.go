package drift

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func obj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(y), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCompare(t *testing.T) {
	desired := `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: checkout, namespace: shop, labels: {app.kubernetes.io/managed-by: meshcd}}
spec:
  hosts: [checkout]
  http:
  - route:
    - {destination: {host: checkout, subset: stable}, weight: 90}
    - {destination: {host: checkout, subset: canary}, weight: 10}
`
	tests := []struct {
		name   string
		live   string
		ignore []schema.IgnoreRule
		want   []string
	}{
		{name: "same, plus server defaults, status and another manager's label", want: nil, live: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: checkout, namespace: shop, uid: x, resourceVersion: "7", labels: {app.kubernetes.io/managed-by: meshcd, team: web}}
spec:
  hosts: [checkout]
  http:
  - route:
    - {destination: {host: checkout, subset: stable}, weight: 90.0}
    - {destination: {host: checkout, subset: canary}, weight: 10}
status: {observedGeneration: 3}
`},
		{name: "a weight edited", want: []string{"/spec/http/0/route/0/weight", "/spec/http/0/route/1/weight"}, live: `
metadata: {labels: {app.kubernetes.io/managed-by: meshcd}}
spec:
  hosts: [checkout]
  http:
  - route:
    - {destination: {host: checkout, subset: stable}, weight: 50}
    - {destination: {host: checkout, subset: canary}, weight: 50}
`},
		{name: "a label removed and a host added", want: []string{"/metadata/labels/app.kubernetes.io~1managed-by", "/spec/hosts"}, live: `
spec:
  hosts: [checkout, other]
  http:
  - route:
    - {destination: {host: checkout, subset: stable}, weight: 90}
    - {destination: {host: checkout, subset: canary}, weight: 10}
`},
		{name: "an ignored field", ignore: []schema.IgnoreRule{{Kind: "VirtualService", Paths: []string{"spec.http.*.route"}}}, want: nil, live: `
metadata: {labels: {app.kubernetes.io/managed-by: meshcd}}
spec:
  hosts: [checkout]
  http:
  - route: []
`},
		{name: "an ignore rule for another kind does not apply", ignore: []schema.IgnoreRule{{Kind: "Deployment", Paths: []string{"/spec"}}}, want: []string{"/spec/http/0/route"}, live: `
metadata: {labels: {app.kubernetes.io/managed-by: meshcd}}
spec:
  hosts: [checkout]
  http:
  - route: []
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := NewRules(tt.ignore, nil)
			if err != nil {
				t.Fatal(err)
			}
			d := obj(t, desired)
			got := Compare(d, obj(t, tt.live), rules.For(d.GetKind(), d.GetName()))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestNamedListsMatchByName(t *testing.T) {
	d := obj(t, "kind: Deployment\nspec: {template: {spec: {containers: [{name: app, image: a:1}]}}}")
	live := obj(t, "kind: Deployment\nspec: {template: {spec: {containers: [{name: istio-proxy, image: proxy}, {name: app, image: a:1, imagePullPolicy: IfNotPresent}]}}}")
	if got := Compare(d, live, Matcher{}); got != nil {
		t.Errorf("an injected sidecar container is drift: %v", got)
	}
	live = obj(t, "kind: Deployment\nspec: {template: {spec: {containers: [{name: app, image: a:2}]}}}")
	if diff := cmp.Diff([]string{"/spec/template/spec/containers/0/image"}, Compare(d, live, Matcher{})); diff != "" {
		t.Error(diff)
	}
}

func TestPresets(t *testing.T) {
	ns := obj(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio-injection: enabled}, annotations: {linkerd.io/inject: enabled}}")
	live := obj(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/rev: canary}, annotations: {linkerd.io/inject: disabled}}")
	none, _ := NewRules(nil, nil)
	if got := Compare(ns, live, none.For("Namespace", "shop")); len(got) != 2 {
		t.Fatalf("without presets want 2 drifted fields, got %v", got)
	}
	both, err := NewRules(nil, []string{"istio-sidecar", "linkerd-proxy"})
	if err != nil {
		t.Fatal(err)
	}
	if got := Compare(ns, live, both.For("Namespace", "shop")); got != nil {
		t.Errorf("with the mesh presets: %v", got)
	}
	hpa, _ := NewRules(nil, []string{"hpa-replicas"})
	dep := obj(t, "kind: Deployment\nspec: {replicas: 2}")
	if got := Compare(dep, obj(t, "kind: Deployment\nspec: {replicas: 7}"), hpa.For("Deployment", "x")); got != nil {
		t.Errorf("hpa-replicas: %v", got)
	}
	if _, err := NewRules(nil, []string{"consul"}); err == nil {
		t.Error("an unknown preset was accepted")
	}
}

func TestLostOwnership(t *testing.T) {
	d := obj(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s, labels: {a: b}}\nspec: {ports: [{name: http, port: 80}], selector: {app: s}}")
	owned := `{"f:metadata":{"f:labels":{"f:a":{}}},"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:name":{},"f:port":{}}},"f:selector":{"f:app":{}}}}`
	live := obj(t, `apiVersion: v1
kind: Service
metadata:
  name: s
  managedFields:
  - {manager: meshcd, operation: Apply, fieldsType: FieldsV1, fieldsV1: `+owned+`}
`)
	if got := LostOwnership(d, live, "meshcd", Matcher{}); got != nil {
		t.Errorf("meshcd owns everything it applied, got %v", got)
	}
	taken := `{"f:metadata":{"f:labels":{"f:a":{}}},"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:name":{},"f:port":{}}}}}`
	live = obj(t, `apiVersion: v1
kind: Service
metadata:
  name: s
  managedFields:
  - {manager: meshcd, operation: Apply, fieldsType: FieldsV1, fieldsV1: `+taken+`}
`)
	if diff := cmp.Diff([]string{"/spec/selector/app"}, LostOwnership(d, live, "meshcd", Matcher{})); diff != "" {
		t.Error(diff)
	}
}

// TestNormalisedValuesAreNotDrift: what the apiserver writes differently from the rendered
// text (canonical quantities, an empty env value it drops) compares by value, while a real
// change among them is still drift. With the stored object from meshcd's own apply, any
// rewrite the apiserver made is recognised, also one no rule knows.
func TestNormalisedValuesAreNotDrift(t *testing.T) {
	desired := obj(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: istiod, namespace: istio-system}
spec:
  template:
    spec:
      containers:
      - name: discovery
        image: istio/pilot:1.28.0
        env: [{name: PILOT_TRACE_SAMPLING, value: "1.0"}, {name: REVISION, value: ""}]
        resources:
          requests: {memory: 2048Mi, cpu: 2000m}
          limits: {cpu: 0.5}
`)
	live := obj(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: istiod, namespace: istio-system}
spec:
  template:
    spec:
      containers:
      - name: discovery
        image: istio/pilot:1.28.0
        env: [{name: PILOT_TRACE_SAMPLING, value: "1.0"}, {name: REVISION}]
        resources:
          requests: {memory: 2Gi, cpu: "2"}
          limits: {cpu: 500m}
`)
	if got := Compare(desired, live, Matcher{}); got != nil {
		t.Errorf("the apiserver's own normalisation reported as drift: %v", got)
	}
	edited := live.DeepCopy()
	c := edited.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	c["resources"].(map[string]any)["requests"].(map[string]any)["memory"] = "1Gi"
	c["env"].([]any)[1].(map[string]any)["value"] = "canary"
	want := []string{"/spec/template/spec/containers/0/env/1/value", "/spec/template/spec/containers/0/resources/requests/memory"}
	if diff := cmp.Diff(want, Compare(desired, edited, Matcher{})); diff != "" {
		t.Errorf("real changes among normalised values (-want +got)\n%s", diff)
	}
	// A quantity-looking string elsewhere is text: 2048Mi and 2Gi in a ConfigMap differ.
	cm := obj(t, "apiVersion: v1\nkind: ConfigMap\ndata: {memory: 2048Mi}")
	if got := Compare(cm, obj(t, "apiVersion: v1\nkind: ConfigMap\ndata: {memory: 2Gi}"), Matcher{}); len(got) != 1 {
		t.Errorf("a ConfigMap value compared as a quantity: %v", got)
	}

	// A rewrite no rule knows (a webhook sets a default image tag): equal to what meshcd's
	// apply stored, so not drift; an edit after it is.
	vs := obj(t, "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: app, image: app}]}")
	stored := obj(t, "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: app, image: app:latest}]}")
	if got := Compare(vs, stored, Matcher{}); len(got) != 1 {
		t.Fatalf("without the stored object the rewrite should show: %v", got)
	}
	if got := CompareStored(vs, stored, stored, Matcher{}); got != nil {
		t.Errorf("live equal to what the apiserver stored for meshcd: %v", got)
	}
	moved := obj(t, "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: app, image: app:v2}]}")
	if diff := cmp.Diff([]string{"/spec/containers/0/image"}, CompareStored(vs, stored, moved, Matcher{})); diff != "" {
		t.Error(diff)
	}
}
