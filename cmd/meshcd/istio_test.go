package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/render"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// istioExample is the example that installs Istio from its own charts; hack/istio-charts.sh
// (run by make test) puts the charts in place.
const istioExample = "../../examples/istio"

func requireIstioCharts(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(istioExample, "designs/istio-base/chart/Chart.yaml")); err != nil {
		t.Fatalf("Istio's charts are not in examples/istio (run make istio-charts, which make test does): %v", err)
	}
}

// TestIstioFromItsCharts applies examples/istio (Istio's base, istiod with a canary revision,
// and the gateway chart, as three designs sharing istio-system) to a real apiserver that has
// no mesh CRDs: every object is created, the Namespace is applied and labelled by istio-base
// alone, drift right after finds nothing, and a second apply by a fresh process writes
// nothing, as the apiserver's own request metrics count.
func TestIstioFromItsCharts(t *testing.T) {
	requireIstioCharts(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{Names: []string{"mesh-east"}, SkipCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, env.WriteKubeconfig(kubeconfig))
	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, append(args, "--kubeconfig", kubeconfig), &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, errOut := cli("apply", istioExample, "--all", "--prune", "-o", "json")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	var results []reconciler.SyncResult
	must(t, json.Unmarshal([]byte(out), &results))
	created := map[string]int{}
	for _, res := range results {
		if res.Error != "" || res.Count(reconciler.Created) != len(res.Entries) || len(res.Entries) == 0 {
			t.Errorf("%s: %d of %d objects created, error %q", res.Design, res.Count(reconciler.Created), len(res.Entries), res.Error)
		}
		for _, e := range res.Entries {
			if e.Object == "Namespace istio-system" {
				created[res.Design]++
			}
		}
	}
	if len(results) != 3 || fmt.Sprint(created) != "map[istio-base:1]" {
		t.Fatalf("%d results; designs that applied the Namespace: %v, want istio-base alone", len(results), created)
	}

	cs, err := kubernetes.NewForConfig(env.Clusters[0].Config())
	must(t, err)
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "istio-system", metav1.GetOptions{})
	must(t, err)
	if got := ns.Labels[render.LabelDesign]; got != "istio-base" {
		t.Fatalf("istio-system is labelled for design %q, want istio-base", got)
	}
	for _, name := range []string{"istiod", "istiod-canary", "istio-ingressgateway"} {
		if _, err := cs.AppsV1().Deployments("istio-system").Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("Deployment %s: %v", name, err)
		}
	}

	if code, out, errOut := cli("drift", istioExample); code != 0 || !strings.Contains(out, "no drift") {
		t.Fatalf("drift right after apply: exit %d\n%s%s", code, out, errOut)
	}

	before := writes(t, cs)
	code, out, errOut = cli("apply", istioExample, "--all", "--prune", "-o", "json")
	if code != 0 {
		t.Fatalf("second apply: exit %d\n%s%s", code, out, errOut)
	}
	results = nil
	must(t, json.Unmarshal([]byte(out), &results))
	for _, res := range results {
		if res.Count(reconciler.Unchanged) != len(res.Entries) {
			t.Errorf("second apply of %s: %+v", res.Design, res.Entries)
		}
	}
	if after := writes(t, cs); after != before {
		t.Errorf("the second apply made %v writes (apiserver_request_total), want none", after-before)
	}
}

// writes sums the apiserver's own count of write requests to resources.
func writes(t *testing.T, cs *kubernetes.Clientset) float64 {
	t.Helper()
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(t.Context())
	must(t, err)
	var n float64
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || strings.Contains(line, `resource=""`) {
			continue
		}
		for _, verb := range []string{`verb="POST"`, `verb="PUT"`, `verb="PATCH"`, `verb="APPLY"`, `verb="DELETE"`} {
			if strings.Contains(line, verb) {
				var v float64
				fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
				n += v
			}
		}
	}
	return n
}
