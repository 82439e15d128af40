package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
)

// TestApplyWaitNamesContoursVerdict: `apply --wait` on a cluster where the real Contour runs
// exits 1 when Contour marks the HTTPProxy invalid, and says why in Contour's words; once the
// operator adds the missing certificate, the same apply waits until Contour says valid and
// exits 0.
func TestApplyWaitNamesContoursVerdict(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{Names: []string{"edge"}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, env.WriteKubeconfig(kubeconfig))
	contour, err := env.Clusters[0].StartContour(ctx, testenv.ContourOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer contour.Close()
	repo := t.TempDir()
	must(t, testenv.WriteFiles(repo, map[string]string{
		"clusters/edge.cue": `cluster: edge: {mesh: "istio", ingress: "contour"}`,
		"designs/www/design.cue": `design: www: {
	namespace: "www"
	manifests: [{yaml: "./services"}]
	services: frontend: {port: 8080, versions: stable: labels: version: "v1", routes: [{to: stable: 100}]}
	ingress: hosts: "www.example.com": {
		tls: secret: "www-tls"
		routes: [{prefix: "/", backends: [{service: "frontend"}]}]
	}
}`,
		"designs/www/services/frontend.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: frontend}\nspec: {selector: {app: frontend}, ports: [{port: 8080}]}\n",
	}))
	apply := func() (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"apply", repo, "--all", "--wait", "--timeout", "60s", "--kubeconfig", kubeconfig}, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	start := time.Now()
	code, out, errOut := apply()
	if code != 1 || !strings.Contains(errOut, "projectcontour.io/HTTPProxy www/www-example-com Failed") || !strings.Contains(errOut, "SecretNotValid") {
		t.Fatalf("apply --wait with the certificate missing: exit %d\n%s%s", code, out, errOut)
	}
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("a rejection that stands should end the wait soon, not at the timeout; took %s", took)
	}
	must(t, env.Clusters[0].CreateTLSSecret(ctx, "www", "www-tls", "www.example.com"))
	if code, out, errOut := apply(); code != 0 || !strings.Contains(out, "Current") {
		t.Fatalf("apply --wait with the certificate in place: exit %d\n%s%s", code, out, errOut)
	}
}
