package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fortio.org/fortio/fhttp"
)

// TestGateRun runs a gate from the CLI against fortio's echo server: a fast target passes and
// writes the status files, a slow one fails with exit 1 and names the failed checks.
func TestGateRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(fhttp.EchoHandler))
	defer srv.Close()
	repo := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(repo, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("clusters/east.cue", `cluster: east: {labels: env: "prod", mesh: "istio"}`)
	write("designs/shop/design.cue", `design: shop: {
	namespace: "shop"
	gates: latency: {
		url: "http://checkout.shop:8080/"
		load: {qps: 40, connections: 2, duration: "1s"}
		thresholds: {p99: "250ms", errorRate: 0.01}
		baseline: {branch: "main", maxRegression: "50%"}
	}
}`)
	status := filepath.Join(repo, "status")
	gate := func(delay string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(t.Context(), []string{"gate", "run", "shop/latency", "--repo", repo, "--url", srv.URL + "/?delay=" + delay, "--status-dir", status, "--revision", "abc1234"}, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := gate("2ms"); code != 0 || !strings.Contains(out, "PASS") || !strings.Contains(out, "no baseline yet") {
		t.Fatalf("fast target: exit %d\n%s", code, out)
	}
	for _, f := range []string{"gates/shop/latency/east.json", "gates/shop/latency/east.history.jsonl", "gates/shop/latency/east.md"} {
		if _, err := os.Stat(filepath.Join(status, f)); err != nil {
			t.Errorf("status file %s: %v", f, err)
		}
	}
	// Far apart on purpose: the fast target's p99 stays well under the limit on a loaded
	// machine, the slow one's every request is over it.
	code, out := gate("400ms")
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, "✗ p99:") || !strings.Contains(out, "✗ p99 vs baseline") {
		t.Fatalf("slow target: exit %d\n%s", code, out)
	}
	if code, out := gate2(t, "nope/latency", repo); code != 2 || !strings.Contains(out, `no design named "nope"`) {
		t.Errorf("unknown design: exit %d %s", code, out)
	}
}

func gate2(t *testing.T, name, repo string) (int, string) {
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"gate", "run", name, "--repo", repo}, &out, &errOut)
	return code, out.String() + errOut.String()
}
