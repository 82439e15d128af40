package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/notify"
)

// TestPullRequestFeedbackOnGitea runs the daemon against a real Gitea, with webhooks and
// feedback configured and a poll interval of a minute, so only the webhooks can make it move
// sooner. A push is applied within seconds; a pull request gets a pending then a success status
// per design and one comment with the per-cluster diff, updated in place on the next push; its
// failing PR gate turns red; an invalid design gets a failure naming file and line; while the
// host's API answers 500 the previews in status/ go on and the feedback lands once it answers
// again; closing the pull request marks the comment closed.
func TestPullRequestFeedbackOnGitea(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	env := shared(t)
	host, err := testenv.StartGitHost(ctx, testenv.GitHostOptions{})
	must(t, err)
	defer host.Close()
	repo, err := host.CreateRepo(ctx, "fleet")
	must(t, err)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(60 * time.Millisecond)
		w.Write([]byte("ok"))
	}))
	defer slow.Close()
	prGate := fmt.Sprintf(`gates: latency: {
		url: %q
		load: {qps: 20, connections: 2, duration: "1s"}
		thresholds: p99: "30ms"
		triggers: ["pr"]
	}`, slow.URL+"/")
	files := withFleet(named("shop", everywhere, 90, "EUR", prGate))
	_, err = repo.Push(ctx, "main", files, "shop: first")
	must(t, err)

	// The host's API goes through a proxy the test can make answer 500.
	api, _ := url.Parse(host.URL)
	var broken atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(api)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()

	dir := t.TempDir()
	token, secret := filepath.Join(dir, "token"), filepath.Join(dir, "hook-secret")
	must(t, os.WriteFile(token, []byte(host.Token), 0o600))
	must(t, os.WriteFile(secret, []byte("hook-secret"), 0o600))
	addr := freeAddr(t)
	config := filepath.Join(dir, "meshcd.yaml")
	must(t, os.WriteFile(config, []byte(fmt.Sprintf(`listen: %[1]s
web: {publicURL: "http://%[1]s"}
cacheDir: %s
gates: {allowLoopback: true, previewHosts: ["127.0.0.1"]}
webhooks: {gitea: {file: %s}}
repos:
- url: %s
  branch: main
  interval: 1m
  allowHTTP: true
  pullRequests: refs/pull/*/head
  username: %s
  password: {file: %s}
  feedback: {provider: gitea, api: %s/api/v1, token: {file: %s}}
clusters:
%s`, addr, filepath.Join(dir, "cache"), secret, repo.CloneURL(), host.User, token, front.URL, token, clustersYAML(env))), 0o644))
	f := connectAll(t, env)
	d := startDaemon(t, config, addr)
	defer func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", tail(d.logs.String(), 4000))
		}
	}()
	must(t, repo.AddWebhook(ctx, "http://"+addr+"/hooks/gitea", "hook-secret"))
	within(t, 60*time.Second, "the first revision applied", func() bool { return f.weight(t, "east", "shop") == 90 })

	// A push is applied long before the one-minute poll: the webhook triggered it.
	_, err = repo.Push(ctx, "main", withFleet(named("shop", everywhere, 70, "EUR", prGate)), "shop: 70/30")
	must(t, err)
	took := within(t, 20*time.Second, "a push applied through the webhook", func() bool { return f.weight(t, "east", "shop") == 70 })
	t.Logf("push to applied through Gitea's webhook: %s", took)

	// A pull request that changes a weight.
	head, err := repo.Push(ctx, "canary", withFleet(named("shop", everywhere, 50, "EUR", prGate)), "shop: 50/50")
	must(t, err)
	pr, err := repo.OpenPR(ctx, "canary", "main", "shop: half to the canary")
	must(t, err)
	has := func(sha, context, state, words string) bool {
		all, err := repo.Statuses(ctx, sha)
		if err != nil {
			return false
		}
		for _, s := range all {
			if s.Context == context && s.State == state && strings.Contains(s.Description, words) {
				return true
			}
		}
		return false
	}
	within(t, 60*time.Second, "the design's status on the PR head", func() bool {
		return has(head, "meshcd/shop", "success", "east:") && has(head, "meshcd/shop", "pending", "previewing")
	})
	within(t, 30*time.Second, "the failing PR gate's status", func() bool { return has(head, "meshcd/gate/shop/latency", "failure", "p99") })
	// The checks link to the pull request in meshcd's own web view (web.publicURL).
	if all, err := repo.Statuses(ctx, head); err != nil || all[0].TargetURL != fmt.Sprintf("http://%s/pulls#pr-%d", addr, pr) {
		t.Errorf("a check's link: %v %+v", err, all)
	}
	comments := func() []testenv.Comment {
		all, _ := repo.Comments(ctx, pr)
		var mine []testenv.Comment
		for _, c := range all {
			if strings.HasPrefix(c.Body, notify.Marker) {
				mine = append(mine, c)
			}
		}
		return mine
	}
	within(t, 30*time.Second, "one comment with the per-cluster diff", func() bool {
		cs := comments()
		return len(cs) == 1 && strings.Contains(cs[0].Body, head[:7]) && strings.Contains(cs[0].Body, "| shop | east |") && strings.Contains(cs[0].Body, "weight: 50")
	})

	// The host's API fails while the pull request is updated: the preview in status/ goes
	// on, and the feedback lands once the API answers again.
	broken.Store(true)
	second, err := repo.Push(ctx, "canary", withFleet(named("shop", everywhere, 40, "EUR", prGate)), "shop: 40/60")
	must(t, err)
	within(t, 60*time.Second, "the preview of the update committed to status/", func() bool {
		md, err := repo.ReadFile(ctx, "main", "status/pr/"+fmt.Sprint(pr)+".md")
		return err == nil && strings.Contains(string(md), second[:7])
	})
	if has(second, "meshcd/shop", "success", "") {
		t.Fatal("feedback landed while the API answered 500")
	}
	broken.Store(false)
	within(t, 60*time.Second, "the feedback after the outage, in the same comment", func() bool {
		cs := comments()
		return has(second, "meshcd/shop", "success", "east:") && len(cs) == 1 && strings.Contains(cs[0].Body, second[:7])
	})

	// An invalid design: a failure status naming file and line, and the comment says it too.
	bad := withFleet(named("shop", everywhere, 40, "EUR", prGate))
	bad["designs/shop/design.cue"] = []byte(strings.Replace(string(bad["designs/shop/design.cue"]), "canary: 60", "canary: 70", 1))
	third, err := repo.Push(ctx, "canary", bad, "shop: weights that do not add up")
	must(t, err)
	within(t, 60*time.Second, "a failure status naming the file and line", func() bool {
		return has(third, "meshcd/shop", "failure", "designs/shop/design.cue:")
	})
	within(t, 30*time.Second, "the comment naming the problem", func() bool {
		cs := comments()
		return len(cs) == 1 && strings.Contains(cs[0].Body, "designs/shop/design.cue:") && strings.Contains(cs[0].Body, "weights sum to 110")
	})

	must(t, repo.ClosePR(ctx, pr))
	within(t, 60*time.Second, "the comment marked closed", func() bool {
		cs := comments()
		return len(cs) == 1 && strings.Contains(cs[0].Body, "closed")
	})
	// Gitea keeps refs/pull/N/head after the close: the webhook, not the ref, ends the preview.
	within(t, 30*time.Second, "the preview removed from status/", func() bool {
		_, err := repo.ReadFile(ctx, "main", "status/pr/"+fmt.Sprint(pr)+".md")
		return err != nil
	})
}
