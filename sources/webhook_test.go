package sources

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) add(e Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

func post(h http.Handler, body []byte, headers map[string]string) int {
	req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code
}

// TestGitHubDocumentedTestVector uses the values GitHub's documentation gives for validating
// webhook deliveries: secret "It's a Secret to Everybody", payload "Hello, World!".
func TestGitHubDocumentedTestVector(t *testing.T) {
	const sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if !checkHMAC(sha256.New, []byte("It's a Secret to Everybody"), []byte("Hello, World!"), sig, "sha256=") {
		t.Fatal("GitHub's documented signature does not verify")
	}
	h := NewWebhookHandler(DefaultWebhookOptions(GitHub, []byte("It's a Secret to Everybody")), func(Event) {})
	// The signature passes, so the body is parsed, and "Hello, World!" is not JSON: 400, not 401.
	if code := post(h, []byte("Hello, World!"), map[string]string{"X-Hub-Signature-256": sig}); code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400 after a valid signature on a non-JSON body", code)
	}
}

func TestWebhookEvents(t *testing.T) {
	const secret = "s3cret"
	tests := []struct {
		provider Provider
		body     string
		headers  func(body string) map[string]string
		want     Event
	}{
		{GitHub, `{"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/acme/fleet.git","html_url":"https://github.com/acme/fleet"}}`,
			func(b string) map[string]string {
				return map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, b)}
			},
			Event{GitHub, []string{"https://github.com/acme/fleet.git", "https://github.com/acme/fleet"}, "refs/heads/main", false, false}},
		{GitHub, `{"action":"synchronize","number":7,"pull_request":{"number":7},"repository":{"clone_url":"https://github.com/acme/fleet.git"}}`,
			func(b string) map[string]string {
				return map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, b)}
			},
			Event{GitHub, []string{"https://github.com/acme/fleet.git"}, "refs/pull/7/head", false, false}},
		{GitHub, `{"action":"closed","number":7,"pull_request":{"number":7,"merged":true},"repository":{"clone_url":"https://github.com/acme/fleet.git"}}`,
			func(b string) map[string]string {
				return map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, b)}
			},
			Event{GitHub, []string{"https://github.com/acme/fleet.git"}, "refs/pull/7/head", true, false}},
		{GitLab, `{"object_kind":"merge_request","object_attributes":{"iid":13,"action":"merge"},"project":{"git_http_url":"https://gitlab.example.com/acme/fleet.git"}}`,
			func(string) map[string]string { return map[string]string{"X-Gitlab-Token": secret} },
			Event{GitLab, []string{"https://gitlab.example.com/acme/fleet.git"}, "refs/merge-requests/13/head", true, false}},
		{Gitea, `{"action":"reopened","number":3,"pull_request":{"number":3},"repository":{"clone_url":"https://gitea.example.com/acme/fleet.git"}}`,
			func(b string) map[string]string { return map[string]string{"X-Gitea-Signature": sign(secret, b)} },
			Event{Gitea, []string{"https://gitea.example.com/acme/fleet.git"}, "refs/pull/3/head", false, true}},
		{GitLab, `{"object_kind":"push","ref":"refs/heads/main","project":{"git_http_url":"https://gitlab.example.com/acme/fleet.git"}}`,
			func(string) map[string]string { return map[string]string{"X-Gitlab-Token": secret} },
			Event{GitLab, []string{"https://gitlab.example.com/acme/fleet.git"}, "refs/heads/main", false, false}},
		{GitLab, `{"object_kind":"merge_request","object_attributes":{"iid":12},"project":{"git_http_url":"https://gitlab.example.com/acme/fleet.git"}}`,
			func(string) map[string]string { return map[string]string{"X-Gitlab-Token": secret} },
			Event{GitLab, []string{"https://gitlab.example.com/acme/fleet.git"}, "refs/merge-requests/12/head", false, false}},
		{Gitea, `{"ref":"refs/heads/main","repository":{"clone_url":"https://gitea.example.com/acme/fleet.git"}}`,
			func(b string) map[string]string { return map[string]string{"X-Gitea-Signature": sign(secret, b)} },
			Event{Gitea, []string{"https://gitea.example.com/acme/fleet.git"}, "refs/heads/main", false, false}},
		{BitbucketServer, `{"eventKey":"repo:refs_changed","changes":[{"refId":"refs/heads/main"}],"repository":{"links":{"clone":[{"href":"https://bitbucket.example.com/scm/acme/fleet.git"}]}}}`,
			func(b string) map[string]string {
				return map[string]string{"X-Hub-Signature": "sha256=" + sign(secret, b)}
			},
			Event{BitbucketServer, []string{"https://bitbucket.example.com/scm/acme/fleet.git"}, "refs/heads/main", false, false}},
		{Generic, `{"repo":"https://git.example.com/fleet.git","ref":"refs/heads/main"}`,
			func(b string) map[string]string {
				return map[string]string{"X-Signature-256": "sha256=" + sign(secret, b)}
			},
			Event{Generic, []string{"https://git.example.com/fleet.git"}, "refs/heads/main", false, false}},
	}
	for _, tc := range tests {
		t.Run(string(tc.provider)+" "+tc.want.Ref, func(t *testing.T) {
			rec := &recorder{}
			h := NewWebhookHandler(DefaultWebhookOptions(tc.provider, []byte(secret)), rec.add)
			if code := post(h, []byte(tc.body), tc.headers(tc.body)); code != http.StatusAccepted {
				t.Fatalf("status %d, want 202", code)
			}
			if len(rec.events) != 1 {
				t.Fatalf("%d events", len(rec.events))
			}
			if diff := cmp.Diff(tc.want, rec.events[0]); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			// The same body with a wrong secret never reaches the parser.
			bad := tc.headers(tc.body)
			for k := range bad {
				bad[k] = strings.Repeat("0", 64)
			}
			if code := post(h, []byte(tc.body), bad); code != http.StatusUnauthorized {
				t.Errorf("wrong signature: status %d, want 401", code)
			}
			if len(rec.events) != 1 {
				t.Error("a request with a wrong signature produced an event")
			}
		})
	}
}

func TestWebhookRejectsBadRequests(t *testing.T) {
	const secret = "s3cret"
	rec := &recorder{}
	opts := DefaultWebhookOptions(GitHub, []byte(secret))
	opts.PerSourceRate, opts.PerSourceBurst = 1e6, 1e6
	h := NewWebhookHandler(opts, rec.add)
	big := bytes.Repeat([]byte("x"), 10<<20)
	malformed := `{"ref": "refs/heads/main", "repository": `
	for name, tc := range map[string]struct {
		body    []byte
		headers map[string]string
		want    int
	}{
		"wrong signature": {[]byte(`{"ref":"refs/heads/main"}`), map[string]string{"X-Hub-Signature-256": "sha256=" + sign("other", `{"ref":"refs/heads/main"}`)}, 401},
		"missing header":  {[]byte(`{"ref":"refs/heads/main"}`), nil, 401},
		"10 MiB body":     {big, map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, string(big))}, 413},
		"malformed JSON":  {[]byte(malformed), map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, malformed)}, 400},
	} {
		if code := post(h, tc.body, tc.headers); code != tc.want {
			t.Errorf("%s: status %d, want %d", name, code, tc.want)
		}
	}
	if len(rec.events) != 0 {
		t.Fatalf("bad requests produced events: %v", rec.events)
	}

	// Memory stays flat across 2,000 bad requests.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 2000 {
		body := []byte(strings.Repeat("y", 4096))
		headers := map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("ab", 32)}
		if i%2 == 0 {
			headers = nil
		}
		post(h, body, headers)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4<<20 {
		t.Errorf("heap grew by %d KiB across 2,000 bad requests", grew>>10)
	}
}

func TestWebhookRateLimitsPerSource(t *testing.T) {
	opts := DefaultWebhookOptions(GitLab, []byte("t"))
	opts.PerSourceRate, opts.PerSourceBurst = 1, 3
	h := NewWebhookHandler(opts, func(Event) {})
	var codes []int
	for range 5 {
		codes = append(codes, post(h, []byte(`{}`), map[string]string{"X-Gitlab-Token": "t"}))
	}
	if codes[3] != http.StatusTooManyRequests || codes[4] != http.StatusTooManyRequests || codes[0] == http.StatusTooManyRequests {
		t.Fatalf("statuses %v, want the first 3 served and then 429", codes)
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/a/b.git"}}`,
		`{"pull_request":{"number":1},"repository":{"clone_url":"x"}}`,
		`{"object_attributes":{"iid":3},"project":{"git_http_url":"x"}}`,
		`{"changes":[{"refId":"refs/heads/x"}],"repository":{"links":{"clone":[{"href":"x"}]}}}`,
		`[]`, `null`, `{"ref": 5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range []Provider{GitHub, GitLab, Gitea, BitbucketServer, Generic} {
			ev, ok, err := parseEvent(p, http.Header{}, body)
			if ok && (err != nil || ev.Ref == "" || len(ev.RepoURLs) == 0) {
				t.Fatalf("%s: ok event without ref or repo: %+v, %v", p, ev, err)
			}
		}
	})
}

func FuzzRedact(f *testing.F) {
	f.Add("https://user:token@host/x.git")
	f.Add("ssh://git@host:22/x")
	f.Fuzz(func(t *testing.T, url string) {
		out := redact(url)
		_, rest, ok := strings.Cut(out, "://")
		if !ok {
			if out != url {
				t.Fatalf("redact(%q) = %q changed an address without a scheme", url, out)
			}
			return
		}
		// Whatever userinfo the address had, the authority now shows only ***.
		authority := strings.SplitN(rest, "/", 2)[0]
		if at := strings.LastIndex(authority, "@"); at >= 0 && authority[:at] != "***" {
			t.Fatalf("redact(%q) = %q still shows userinfo %q", url, out, authority[:at])
		}
	})
}
