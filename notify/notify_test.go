package notify

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// call is one request a host received.
type call struct {
	Method, Path, Auth string
	Body               map[string]string
}

// host is a stand-in for a provider's API that records the calls it gets and answers them as
// the provider's documentation says: a pull request that already has one comment by someone
// else, then whatever meshcd posted.
type host struct {
	mu       sync.Mutex
	calls    []call
	comments []map[string]any
	fail     int // answer this many requests with 500 first
}

func (h *host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var body map[string]string
	data, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(data, &body)
	auth := r.Header.Get("Authorization") + r.Header.Get("PRIVATE-TOKEN")
	h.calls = append(h.calls, call{Method: r.Method, Path: r.URL.EscapedPath(), Auth: auth, Body: body})
	if h.fail > 0 {
		h.fail--
		http.Error(w, "busy", http.StatusInternalServerError)
		return
	}
	w.Header().Set("X-RateLimit-Remaining", "4999")
	switch {
	case r.Method == http.MethodGet:
		if r.URL.Query().Get("page") > "1" {
			w.Write([]byte("[]"))
			return
		}
		json.NewEncoder(w).Encode(h.comments)
	case r.Method == http.MethodPost && strings.Contains(r.URL.Path, "comments") || strings.HasSuffix(r.URL.Path, "/notes"):
		h.comments = append(h.comments, map[string]any{"id": 100 + len(h.comments), "body": body["body"]})
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("{}"))
	default:
		for _, c := range h.comments {
			if strings.HasSuffix(r.URL.Path, "/"+itoa(int(c["id"].(int)))) {
				c["body"] = body["body"]
			}
		}
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("{}"))
	}
}

// TestProviderContracts: each provider's requests follow its documented REST API: the status
// on the head commit, then the comment added once and edited in place, with the token as that
// host expects it.
func TestProviderContracts(t *testing.T) {
	target := Target{Repo: "team/fleet", PR: 7, SHA: "abc123"}
	status := Status{Context: "meshcd/shop", Description: "east: 2 changes", TargetURL: "https://meshcd.example.com/pr/7", State: Failure}
	for _, tc := range []struct {
		provider Provider
		want     []call
	}{
		{Gitea, []call{
			{"POST", "/api/v1/repos/team/fleet/statuses/abc123", "token s3cret", map[string]string{"state": "failure", "context": "meshcd/shop", "description": "east: 2 changes", "target_url": "https://meshcd.example.com/pr/7"}},
			{"GET", "/api/v1/repos/team/fleet/issues/7/comments", "token s3cret", nil},
			{"POST", "/api/v1/repos/team/fleet/issues/7/comments", "token s3cret", map[string]string{"body": Marker + "\nfirst"}},
			{"GET", "/api/v1/repos/team/fleet/issues/7/comments", "token s3cret", nil},
			{"PATCH", "/api/v1/repos/team/fleet/issues/comments/101", "token s3cret", map[string]string{"body": Marker + "\nsecond"}},
		}},
		{GitHub, []call{
			{"POST", "/repos/team/fleet/statuses/abc123", "Bearer s3cret", map[string]string{"state": "failure", "context": "meshcd/shop", "description": "east: 2 changes", "target_url": "https://meshcd.example.com/pr/7"}},
			{"GET", "/repos/team/fleet/issues/7/comments", "Bearer s3cret", nil},
			{"GET", "/repos/team/fleet/issues/7/comments", "Bearer s3cret", nil},
			{"POST", "/repos/team/fleet/issues/7/comments", "Bearer s3cret", map[string]string{"body": Marker + "\nfirst"}},
			{"GET", "/repos/team/fleet/issues/7/comments", "Bearer s3cret", nil},
			{"PATCH", "/repos/team/fleet/issues/comments/101", "Bearer s3cret", map[string]string{"body": Marker + "\nsecond"}},
		}},
		{GitLab, []call{
			{"POST", "/api/v4/projects/team%2Ffleet/statuses/abc123", "s3cret", map[string]string{"state": "failed", "name": "meshcd/shop", "description": "east: 2 changes", "target_url": "https://meshcd.example.com/pr/7"}},
			{"GET", "/api/v4/projects/team%2Ffleet/merge_requests/7/notes", "s3cret", nil},
			{"GET", "/api/v4/projects/team%2Ffleet/merge_requests/7/notes", "s3cret", nil},
			{"POST", "/api/v4/projects/team%2Ffleet/merge_requests/7/notes", "s3cret", map[string]string{"body": Marker + "\nfirst"}},
			{"GET", "/api/v4/projects/team%2Ffleet/merge_requests/7/notes", "s3cret", nil},
			{"PUT", "/api/v4/projects/team%2Ffleet/merge_requests/7/notes/101", "s3cret", map[string]string{"body": Marker + "\nsecond"}},
		}},
	} {
		t.Run(string(tc.provider), func(t *testing.T) {
			h := &host{comments: []map[string]any{{"id": 100, "body": "LGTM"}}}
			srv := httptest.NewServer(h)
			defer srv.Close()
			api := map[Provider]string{Gitea: srv.URL + "/api/v1", GitHub: srv.URL, GitLab: srv.URL + "/api/v4"}[tc.provider]
			var seen RateLimit
			c, err := NewClient(tc.provider, api, "s3cret", Options{ObserveRateLimit: func(r RateLimit) { seen = r }})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.SetStatus(t.Context(), target, status); err != nil {
				t.Fatal(err)
			}
			for _, body := range []string{"first", "second"} {
				if err := c.UpsertComment(t.Context(), target, body); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tc.want, h.calls); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if len(h.comments) != 2 || h.comments[1]["body"] != Marker+"\nsecond" {
				t.Errorf("comments: %v; want the other one and meshcd's, edited", h.comments)
			}
			if seen.Remaining != 4999 {
				t.Errorf("rate limit seen: %+v", seen)
			}
		})
	}
}

// TestPullRequestStateAndClosingEdit: whether a pull request is open is read from each
// provider's documented endpoint and state word, and the edit made when one closes changes
// meshcd's comment but adds none to a pull request that never had one.
func TestPullRequestStateAndClosingEdit(t *testing.T) {
	for _, tc := range []struct {
		provider        Provider
		api, path, open string
	}{
		{Gitea, "/api/v1", "/api/v1/repos/team/fleet/pulls/7", "open"},
		{GitHub, "", "/repos/team/fleet/pulls/7", "open"},
		{GitLab, "/api/v4", "/api/v4/projects/team%2Ffleet/merge_requests/7", "opened"},
	} {
		t.Run(string(tc.provider), func(t *testing.T) {
			state := tc.open
			h := &host{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.EscapedPath() == tc.path {
					json.NewEncoder(w).Encode(map[string]string{"state": state})
					return
				}
				h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			c, err := NewClient(tc.provider, srv.URL+tc.api, "s3cret", Options{})
			if err != nil {
				t.Fatal(err)
			}
			target := Target{Repo: "team/fleet", PR: 7}
			for _, s := range []string{tc.open, "closed", "merged"} {
				state = s
				open, err := c.PullRequestOpen(t.Context(), target)
				if err != nil || open != (s == tc.open) {
					t.Errorf("state %q: open %v, %v", s, open, err)
				}
			}
			if err := c.EditComment(t.Context(), target, "closed"); err != nil {
				t.Fatal(err)
			}
			if len(h.comments) != 0 {
				t.Fatalf("closing added a comment: %v", h.comments)
			}
			h.comments = []map[string]any{{"id": 100, "body": Marker + "\npreview"}}
			if err := c.EditComment(t.Context(), target, "closed"); err != nil {
				t.Fatal(err)
			}
			if len(h.comments) != 1 || h.comments[0]["body"] != Marker+"\nclosed" {
				t.Errorf("comments after closing: %v", h.comments)
			}
		})
	}
}

// TestNotifierRetriesAndNeverLeaksTheToken: a host answering 500 gets the same feedback again
// with backoff until it lands, newer content replaces what waited, and a host refusing the
// token (401) is not retried; no error names the token.
func TestNotifierRetriesAndNeverLeaksTheToken(t *testing.T) {
	h := &host{fail: 2}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := NewClient(Gitea, srv.URL+"/api/v1", "s3cret-token", Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := NewNotifier(c, nil)
	go n.Run(t.Context())
	target := Target{Repo: "team/fleet", PR: 7, SHA: "abc"}
	n.Status(target, Status{Context: "meshcd/shop", State: Pending})
	n.Status(target, Status{Context: "meshcd/shop", State: Success, Description: "no changes"})
	deadline := time.Now().Add(10 * time.Second)
	for n.Stats().Sent < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("not sent after retries: %+v", n.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.mu.Lock()
	last := h.calls[len(h.calls)-1]
	h.mu.Unlock()
	if last.Body["state"] != "success" {
		t.Errorf("the newest status did not win: %+v", last)
	}
	if s := n.Stats(); s.Failed < 1 || s.Pending != 0 {
		t.Errorf("stats %+v: want failures retried and nothing pending", s)
	}

	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad token "+r.Header.Get("Authorization"), http.StatusUnauthorized)
	}))
	defer refused.Close()
	c2, _ := NewClient(Gitea, refused.URL+"/api/v1", "s3cret-token", Options{})
	err = c2.SetStatus(t.Context(), target, Status{Context: "meshcd/shop", State: Success})
	if err == nil || Retryable(err) || strings.Contains(err.Error(), "s3cret-token") {
		t.Fatalf("a refused token: %v (retryable %v)", err, Retryable(err))
	}
}

func TestAPIFor(t *testing.T) {
	for _, tc := range []struct {
		p              Provider
		url, api, repo string
	}{
		{Gitea, "http://127.0.0.1:3000/team/fleet.git", "http://127.0.0.1:3000/api/v1", "team/fleet"},
		{GitHub, "https://github.com/team/fleet.git", "https://api.github.com", "team/fleet"},
		{GitHub, "https://ghe.example.com/team/fleet", "https://ghe.example.com/api/v3", "team/fleet"},
		{GitLab, "https://gitlab.example.com/group/sub/fleet.git", "https://gitlab.example.com/api/v4", "group/sub/fleet"},
	} {
		api, repo, err := APIFor(tc.p, tc.url)
		if err != nil || api != tc.api || repo != tc.repo {
			t.Errorf("APIFor(%s, %s) = %s, %s, %v", tc.p, tc.url, api, repo, err)
		}
	}
}
