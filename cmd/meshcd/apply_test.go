package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
)

// TestDiffApplyDiff runs the CLI against two real clusters named like the shop example's:
// diff shows everything as new (exit 1) with Secret values masked, apply creates it, a second
// diff is clean (exit 0), and apply again changes nothing.
func TestDiffApplyDiff(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{Names: []string{"east", "west"}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	if out, err := exec.Command("cp", "-r", "../../examples/shop/.", repo).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	raw := filepath.Join(repo, "designs/shop")
	design, _ := os.ReadFile(filepath.Join(raw, "design.cue"))
	design = bytes.Replace(design, []byte("sync: {"), []byte("manifests: [{yaml: \"./raw\"}]\n\tsync: {"), 1)
	must(t, os.WriteFile(filepath.Join(raw, "design.cue"), design, 0o644))
	must(t, os.MkdirAll(filepath.Join(raw, "raw"), 0o755))
	must(t, os.WriteFile(filepath.Join(raw, "raw/secret.yaml"), []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: api}\nstringData: {token: hunter2-very-secret}\n"), 0o644))
	// Values the apiserver stores differently from the text (2Gi, "2", no empty value): the
	// drift after apply below must not report them.
	must(t, os.WriteFile(filepath.Join(raw, "raw/worker.yaml"), []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers:
      - name: worker
        image: worker:1
        env: [{name: MODE, value: ""}]
        resources: {requests: {memory: 2048Mi, cpu: 2000m}}
`), 0o644))

	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, append(args, "--kubeconfig", kubeconfig), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, errOut := cli("diff", repo)
	if code != 1 {
		t.Fatalf("diff before apply: exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"+kind: VirtualService", "desired/networking.istio.io/VirtualService shop/checkout", "Service shop/checkout-stable", "(create)"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q", want)
		}
	}
	if strings.Contains(out+errOut, "hunter2") {
		t.Fatal("diff printed a Secret value")
	}

	if code, _, errOut := cli("apply", repo); code != 2 || !strings.Contains(errOut, "--all") {
		t.Errorf("apply without --cluster or --all: exit %d, %s", code, errOut)
	}
	code, out, errOut = cli("apply", repo, "--all", "--prune")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "CLUSTER") || !strings.Contains(out, "east") || !strings.Contains(out, "west") {
		t.Errorf("apply printed no summary table:\n%s", out)
	}
	if code, out, errOut := cli("diff", repo); code != 0 {
		t.Fatalf("diff after apply: exit %d, want 0\n%s%s", code, out, errOut)
	}
	code, out, _ = cli("apply", repo, "--cluster", "west", "-o", "json")
	if code != 0 || !strings.Contains(out, `"action": "unchanged"`) || strings.Contains(out, `"action": "configured"`) {
		t.Errorf("second apply should change nothing: exit %d\n%s", code, out)
	}

	// Drift: clean after apply; a DestinationRule deleted behind meshcd's back is reported.
	if code, out, errOut := cli("drift", repo); code != 0 || !strings.Contains(out, "no drift") {
		t.Fatalf("drift after apply: exit %d\n%s%s", code, out, errOut)
	}
	if out, err := exec.Command("kubectl", "--kubeconfig", kubeconfig, "--context", "east", "-n", "shop", "delete", "destinationrule", "frontend").CombinedOutput(); err != nil {
		t.Fatalf("kubectl delete: %v: %s", err, out)
	}
	code, out, _ = cli("drift", repo)
	if code != 1 || !strings.Contains(out, "networking.istio.io/DestinationRule shop/frontend") || !strings.Contains(out, "deleted") {
		t.Errorf("drift after a delete: exit %d\n%s", code, out)
	}

	code, out, _ = cli("apply", repo, "--cluster", "east", "-o", "json")
	if code != 0 || !strings.Contains(out, `"action": "created"`) {
		t.Errorf("apply after a delete should recreate the DestinationRule: exit %d\n%s", code, out)
	}

	// The same clusters through a daemon config's credentials.
	daemonConfig := filepath.Join(t.TempDir(), "meshcd.yaml")
	must(t, os.WriteFile(daemonConfig, []byte("repos: [{url: https://git.example.com/fleet.git, branch: main}]\nclusters:\n  east: {kubeconfig: "+kubeconfig+", context: east}\n  west: {kubeconfig: "+kubeconfig+", context: west}\n"), 0o644))
	var cfgOut, cfgErr bytes.Buffer
	if code := run(ctx, []string{"diff", repo, "--cluster", "west", "--config", daemonConfig}, &cfgOut, &cfgErr); code != 0 {
		t.Errorf("diff with --config: exit %d\n%s%s", code, cfgOut.String(), cfgErr.String())
	}

	// A changed weight shows as an update of exactly that field.
	design = bytes.Replace(design, []byte("{to: {stable: 90, canary: 10}}"), []byte("{to: {stable: 50, canary: 50}}"), 1)
	must(t, os.WriteFile(filepath.Join(raw, "design.cue"), design, 0o644))
	code, out, _ = cli("diff", repo, "--cluster", "east")
	if code != 1 || !strings.Contains(out, "-      weight: 90") || !strings.Contains(out, "+      weight: 50") {
		t.Errorf("diff of a weight change: exit %d\n%s", code, out)
	}
	if code, _, errOut := cli("diff", repo, "--context", "nowhere"); code != 2 || !strings.Contains(errOut, "nowhere") {
		t.Errorf("unknown context: exit %d, %s", code, errOut)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
