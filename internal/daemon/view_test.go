package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/meshcd/meshcd/internal/testenv"
)

// browser is a real headless Chromium (Debian's package, which make test installs when it is
// missing) at 1280×800, counting the script dialogs any page opened.
type browser struct {
	t       *testing.T
	ctx     context.Context
	dialogs atomic.Int32
}

func startBrowser(t *testing.T, ctx context.Context) *browser {
	t.Helper()
	path := os.Getenv("MESHCD_CHROMIUM")
	if path == "" {
		var err error
		if path, err = exec.LookPath("chromium"); err != nil {
			t.Fatal("chromium is not installed: make test installs Debian's chromium package (or set MESHCD_CHROMIUM)")
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: bctx}
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			b.dialogs.Add(1)
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return b
}

func (b *browser) open(url string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("opening %s: %v", url, err)
	}
}

// eval runs a script in the page and returns its result as text ("" on error).
func (b *browser) eval(expr string) string {
	out, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`String((() => { try { return `+expr+` } catch (e) { return "" } })())`))
	if err != nil {
		return ""
	}
	return out
}

// until waits until the script gives want, without touching the page.
func (b *browser) until(limit time.Duration, what, expr, want string) time.Duration {
	b.t.Helper()
	return within(b.t, limit, what, func() bool { return b.eval(expr) == want })
}

// screenshot writes the page as it is to bin/screenshots/<name>.png.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "..", "bin", "screenshots")
	must(b.t, os.MkdirAll(dir, 0o755))
	must(b.t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// TestWebViewInABrowser drives the daemon's web view in a real headless Chromium while the
// daemon syncs three real apiservers from a real Git server: the fleet page shows every design
// × cluster; a kubectl patch shows up as drift healed within 2 s, without a reload; a failing
// gate turns red on the fleet page and its chart gets the next run's point live; a commit
// message with markup in it is shown as text and runs nothing; the view asks for its token.
func TestWebViewInABrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	env := shared(t)
	git, err := testenv.StartGitServer(testenv.GitServerOptions{})
	must(t, err)
	defer git.Close()
	repo, err := git.CreateRepo(ctx, "fleet")
	must(t, err)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(60 * time.Millisecond)
		w.Write([]byte("ok"))
	}))
	defer slow.Close()
	cartGate := func(weight int) map[string][]byte {
		return named("webcart", everywhere, weight, "EUR", fmt.Sprintf(`gates: latency: {
		url: %q
		load: {qps: 20, connections: 2, duration: "1s"}
		thresholds: p99: "30ms"
		triggers: ["change"]
		rollout: {service: "checkout", version: "canary", steps: [10, 50, 100]}
	}`, slow.URL+"/"))
	}
	files := withFleet(named("webshop", everywhere, 90, "EUR", ""))
	for k, v := range cartGate(80) {
		files[k] = v
	}
	const evil = `<img src=x onerror=alert(1)>`
	_, err = repo.Push(ctx, "main", files, "webcart: "+evil+" first")
	must(t, err)

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "view-token")
	must(t, os.WriteFile(tokenFile, []byte("view-s3cret\n"), 0o600))
	addr := freeAddr(t)
	config := filepath.Join(dir, "meshcd.yaml")
	must(t, os.WriteFile(config, []byte(fmt.Sprintf(`listen: %s
cacheDir: %s
web: {access: token, token: {file: %s}}
repos:
- url: %s
  branch: main
  interval: 300ms
  allowHTTP: true
  pullRequests: refs/pull/*/head
gates: {allowLoopback: true, previewHosts: ["127.0.0.1"]}
clusters:
%s`, addr, filepath.Join(dir, "cache"), tokenFile, repo.HTTPURL(), clustersYAML(env))), 0o644))
	f := connectAll(t, env)
	d := startDaemon(t, config, addr)
	defer func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", tail(d.logs.String(), 4000))
		}
	}()
	base := "http://" + addr
	within(t, 60*time.Second, "both designs applied", func() bool {
		return f.weight(t, "east", "webshop") == 90 && f.weight(t, "central", "webcart") == 80
	})
	for _, p := range []string{"/", "/api/v1/status"} {
		resp, err := http.Get(base + p)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", p, resp.StatusCode)
		}
	}

	b := startBrowser(t, ctx)
	b.open(base + "/?token=view-s3cret")
	b.until(30*time.Second, "every design × cluster on the fleet page", `document.querySelectorAll('tr[data-design^="web"] td.cell').length`, "6")
	if got := b.eval(`location.search`); got != "" {
		t.Errorf("the token stayed in the address bar: %q", got)
	}
	if got := b.eval(`document.querySelector('.repo .subject').textContent`); !strings.Contains(got, evil) {
		t.Errorf("the commit message is not shown as its text: %q", got)
	}
	if n := b.eval(`document.querySelectorAll('main img').length`); n != "0" {
		t.Errorf("the commit message became %s image elements", n)
	}
	b.eval(`window.__kept = "same page"`)
	b.until(30*time.Second, "the live stream connected", `document.getElementById('live').classList.contains('on')`, "true")

	// Drift: kubectl patches a ConfigMap; the cell shows it healed, live.
	east := env.Clusters[0]
	patched := time.Now()
	out, err := exec.CommandContext(ctx, "kubectl", "--kubeconfig", east.KubeconfigPath, "--context", east.Name,
		"-n", "webshop", "patch", "configmap", "settings", "--type", "merge", "-p", `{"data":{"currency":"USD"}}`).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl patch: %v\n%s", err, out)
	}
	b.until(2*time.Second+time.Since(patched), "the heal on the fleet page, without a reload",
		`document.querySelector('tr[data-design="webshop"] td[data-cluster="east"] .mark.healed') !== null && window.__kept`, "same page")
	t.Logf("kubectl patch to the heal shown in the browser: %s", time.Since(patched).Round(time.Millisecond))
	if cur := f.currency(t, "east", "webshop"); cur != "EUR" {
		t.Errorf("the cluster has currency %q; the page said healed", cur)
	}

	// The failing gate turns red on the fleet page.
	b.until(60*time.Second, "the failing gate red on the fleet page",
		`document.querySelectorAll('tr[data-design="webcart"] td[data-cluster="east"] .mark.gate.fail').length > 0 && window.__kept`, "same page")
	if got := b.eval(`document.querySelector('tr[data-design="webcart"]').compareDocumentPosition(document.querySelector('tr[data-design="webshop"]')) & Node.DOCUMENT_POSITION_FOLLOWING`); got == "0" {
		t.Error("webcart (a failing gate) is not listed before webshop")
	}
	b.screenshot("fleet")

	// The gate's page: its chart gets the next run's point without a reload.
	b.open(base + "/repos/0/gates/webcart/latency/east")
	b.until(30*time.Second, "the gate chart drawn", `document.querySelector('#gate-chart canvas') !== null && Number(document.getElementById('gate-chart').dataset.points) > 0`, "true")
	points := b.eval(`document.getElementById('gate-chart').dataset.points`)
	if got := b.eval(`document.getElementById('gate-chart').dataset.failed`); got != points {
		t.Errorf("%s of %s runs marked failed on the chart; every run failed", got, points)
	}
	b.eval(`window.__kept = "gate page"`)
	// A new revision runs the gate again (so may the rollout's own commit): a point more.
	_, err = push(ctx, repo, "main", withFleet(merged(named("webshop", everywhere, 90, "EUR", ""), cartGate(70))), "webcart: 70/30")
	must(t, err)
	b.until(90*time.Second, "the next run's point on the chart, live",
		`Number(document.getElementById('gate-chart').dataset.points) > `+points+` && window.__kept`, "gate page")
	b.screenshot("gate")
	// Each committed run links its own histogram, read from the applied revision.
	b.until(30*time.Second, "a run's committed histogram linked", `document.querySelectorAll('table.runs a[href*="chart.svg?run="]').length > 0`, "true")
	svgURL := b.eval(`document.querySelector('table.runs a[href*="chart.svg?run="]').href`)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, svgURL, nil)
	req.Header.Set("Authorization", "Bearer view-s3cret")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	svg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(string(svg), "<svg") {
		t.Errorf("a run's histogram %s: %d %s", svgURL, resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// The design on a cluster: the drift ledger names kubectl.
	b.open(base + "/repos/0/designs/webshop/clusters/east")
	b.until(10*time.Second, "the drift ledger", `document.querySelector('table.ledger').textContent.includes('kubectl')`, "true")
	b.screenshot("design")

	// The rollout held by the failing gate.
	b.open(base + "/rollouts")
	b.until(60*time.Second, "the held rollout", `document.querySelector('section.rollout .badge').textContent.trim()`, "held")
	b.screenshot("rollouts")

	// A pull request's preview.
	head, err := repo.Push(ctx, "feature", withFleet(merged(named("webshop", everywhere, 50, "EUR", ""), cartGate(70))), "webshop: 50/50")
	must(t, err)
	must(t, repo.SetRef(ctx, "refs/pull/4/head", head))
	b.open(base + "/pulls")
	b.until(60*time.Second, "the pull request's preview", `document.querySelector('section.preview h2').textContent.startsWith('4')`, "true")
	b.screenshot("pulls")

	if n := b.dialogs.Load(); n != 0 {
		t.Errorf("pages opened %d script dialogs", n)
	}
}

func merged(a, b map[string][]byte) map[string][]byte {
	for k, v := range b {
		a[k] = v
	}
	return a
}
