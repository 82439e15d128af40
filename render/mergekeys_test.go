package render

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/meshcd/meshcd/internal/testenv"
)

// dupChart renders env entries from a map plus one derived from another value, as istiod's
// chart does with pilot.env.PILOT_TRACE_SAMPLING and pilot.traceSampling.
var dupChart = map[string]string{
	"charts/pilot/Chart.yaml":  "apiVersion: v2\nname: pilot\nversion: 1.0.0\n",
	"charts/pilot/values.yaml": "env: {}\ntraceSampling: \"\"\n",
	"charts/pilot/templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: istiod}
spec:
  selector: {matchLabels: {app: istiod}}
  template:
    metadata: {labels: {app: istiod}}
    spec:
      containers:
      - name: discovery
        image: pilot
        env:
        {{- range $k, $v := .Values.env }}
        - {name: {{ $k }}, value: {{ $v | quote }}}
        {{- end }}
        {{- if .Values.traceSampling }}
        - {name: PILOT_TRACE_SAMPLING, value: {{ .Values.traceSampling | quote }}}
        {{- end }}
`,
}

// TestDuplicateMergeKeysFailRender: a chart whose values render one env name twice is
// accepted by helm template (and helm install, with a warning) but refused by server-side
// apply; meshcd's render refuses it first, naming the object, the template and the key. The
// same chart with either value alone renders, and a raw Service with a port twice fails too.
func TestDuplicateMergeKeysFailRender(t *testing.T) {
	dir := t.TempDir()
	if err := testenv.WriteFiles(dir, dupChart); err != nil {
		t.Fatal(err)
	}
	repo := openRepo(t, dir)
	both := map[string]any{"env": map[string]any{"PILOT_TRACE_SAMPLING": "1.0"}, "traceSampling": "1.0"}
	if out, err := exec.Command(helmCLI(t), "template", "istiod", dir+"/charts/pilot", "--set", "env.PILOT_TRACE_SAMPLING=1.0", "--set", "traceSampling=1.0").CombinedOutput(); err != nil {
		t.Fatalf("helm template refuses what it should accept: %v\n%s", err, out)
	}
	_, _, err := renderHelm(context.Background(), repo, "charts/pilot", helmRelease{name: "istiod", namespace: "istio-system", values: both})
	if err == nil {
		t.Fatal("a duplicate env name rendered")
	}
	for _, want := range []string{"pilot/templates/deployment.yaml", "Deployment istiod", "containers[discovery].env", "PILOT_TRACE_SAMPLING 2 times", "values that set it: env.PILOT_TRACE_SAMPLING, traceSampling"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	for _, one := range []map[string]any{{"env": map[string]any{"PILOT_TRACE_SAMPLING": "1.0"}}, {"traceSampling": "1.0"}} {
		if _, _, err := renderHelm(context.Background(), repo, "charts/pilot", helmRelease{name: "istiod", namespace: "istio-system", values: one}); err != nil {
			t.Errorf("values %v: %v", one, err)
		}
	}

	svc, err := DecodeObjects([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{name: a, port: 80}, {name: b, port: 80, protocol: TCP}, {name: c, port: 80, protocol: UDP}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := checkMergeKeys(svc[0])
	if len(got) != 1 || !strings.Contains(got[0].String(), "spec.ports has port=80,protocol=TCP 2 times") {
		t.Errorf("Service ports: %v (80/TCP twice, 80/UDP once)", got)
	}
}
