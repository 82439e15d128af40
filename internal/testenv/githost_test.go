package testenv

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestGitHost starts a real Gitea: pushes over smart HTTP, a pull request with its
// refs/pull/N/head, a signed push webhook delivered to a loopback listener, and nothing left
// running after Close.
func TestGitHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	h, err := StartGitHost(ctx, GitHostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid := h.proc.cmd.Process.Pid
	defer func() {
		h.Close()
		if Alive(pid) {
			t.Errorf("gitea (pid %d) still runs after Close", pid)
		}
	}()
	hooks := make(chan *http.Request, 10)
	bodies := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		hooks <- r
		bodies <- string(data)
	}))
	defer srv.Close()

	r, err := h.CreateRepo(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(ctx, "main", map[string][]byte{"README.md": []byte("fleet\n")}, "first"); err != nil {
		t.Fatal(err)
	}
	if err := r.AddWebhook(ctx, srv.URL+"/hooks/gitea", "hook-secret"); err != nil {
		t.Fatal(err)
	}
	head, err := r.Push(ctx, "feature", map[string][]byte{"README.md": []byte("fleet, changed\n")}, "change")
	if err != nil {
		t.Fatal(err)
	}
	// Gitea delivers from a queue: the first push's event may come first.
	deadline := time.After(30 * time.Second)
	for got := false; !got; {
		select {
		case req := <-hooks:
			body := <-bodies
			if !strings.Contains(body, head) {
				continue
			}
			got = true
			if req.Header.Get("X-Gitea-Event") != "push" || req.Header.Get("X-Gitea-Signature") == "" {
				t.Errorf("push webhook: event %q, signature %q", req.Header.Get("X-Gitea-Event"), req.Header.Get("X-Gitea-Signature"))
			}
		case <-deadline:
			t.Fatal("no push webhook from gitea naming the pushed commit")
		}
	}
	n, err := r.OpenPR(ctx, "feature", "main", "a change")
	if err != nil || n != 1 {
		t.Fatalf("PR %d: %v", n, err)
	}
	out, err := runGit(ctx, "", nil, "ls-remote", r.CloneURL(), "refs/pull/1/head")
	if err != nil || !strings.HasPrefix(out, head) {
		t.Fatalf("refs/pull/1/head: %q %v, want %s", out, err, head)
	}
}
