package sources

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
)

// hookRecorder is a webhook endpoint that keeps the events it accepted and the status codes it
// answered.
type hookRecorder struct {
	mu     sync.Mutex
	events []Event
	codes  []int
}

func (rc *hookRecorder) serve(h http.Handler) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &codeWriter{ResponseWriter: w, code: 200}
		h.ServeHTTP(rw, r)
		rc.mu.Lock()
		rc.codes = append(rc.codes, rw.code)
		rc.mu.Unlock()
	}))
}

func (rc *hookRecorder) onEvent(ev Event) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.events = append(rc.events, ev)
}

func (rc *hookRecorder) has(ref, url string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, ev := range rc.events {
		if ev.Ref == ref && slices.Contains(ev.RepoURLs, url) {
			return true
		}
	}
	return false
}

type codeWriter struct {
	http.ResponseWriter
	code int
}

func (c *codeWriter) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}

// TestGiteaWebhooks receives a real Gitea's own deliveries: a push and a pull request opened,
// updated and closed each become an event for the repository's clone URL at the right ref; a
// hook whose secret does not match, and one with no secret, are refused with 401 and become
// no event.
func TestGiteaWebhooks(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	host, err := testenv.StartGitHost(ctx, testenv.GitHostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	good, forged := &hookRecorder{}, &hookRecorder{}
	goodSrv := good.serve(NewWebhookHandler(DefaultWebhookOptions(Gitea, []byte("right-secret")), good.onEvent))
	defer goodSrv.Close()
	forgedSrv := forged.serve(NewWebhookHandler(DefaultWebhookOptions(Gitea, []byte("right-secret")), forged.onEvent))
	defer forgedSrv.Close()

	repo, err := host.CreateRepo(ctx, "fleet")
	must(t, err)
	_, err = repo.Push(ctx, "main", map[string][]byte{"README.md": []byte("fleet\n")}, "first")
	must(t, err)
	must(t, repo.AddWebhook(ctx, goodSrv.URL+"/hooks/gitea", "right-secret"))
	must(t, repo.AddWebhook(ctx, forgedSrv.URL+"/hooks/gitea", "wrong-secret"))
	must(t, repo.AddWebhook(ctx, forgedSrv.URL+"/hooks/gitea", ""))

	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s from gitea within 30 s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	_, err = repo.Push(ctx, "feature", map[string][]byte{"README.md": []byte("a change\n")}, "change")
	must(t, err)
	eventually("push event for refs/heads/feature", func() bool { return good.has("refs/heads/feature", repo.CloneURL()) })
	n, err := repo.OpenPR(ctx, "feature", "main", "a change")
	must(t, err)
	pr := "refs/pull/" + itoa(n) + "/head"
	eventually("pull_request opened event", func() bool { return good.has(pr, repo.CloneURL()) })
	before := len(good.events)
	_, err = repo.Push(ctx, "feature", map[string][]byte{"README.md": []byte("another change\n")}, "more")
	must(t, err)
	eventually("pull_request synchronized event", func() bool {
		good.mu.Lock()
		defer good.mu.Unlock()
		for _, ev := range good.events[before:] {
			if ev.Ref == pr {
				return true
			}
		}
		return false
	})
	before = len(good.events)
	must(t, repo.ClosePR(ctx, n))
	eventually("pull_request closed event, saying closed", func() bool {
		good.mu.Lock()
		defer good.mu.Unlock()
		for _, ev := range good.events[before:] {
			if ev.Ref == pr && ev.Closed {
				return true
			}
		}
		return false
	})
	good.mu.Lock()
	for _, ev := range good.events[:before] {
		if ev.Closed {
			t.Errorf("an event before the pull request closed says closed: %+v", ev)
		}
	}
	good.mu.Unlock()
	eventually("deliveries to the forged hooks", func() bool {
		forged.mu.Lock()
		defer forged.mu.Unlock()
		return len(forged.codes) >= 4
	})
	forged.mu.Lock()
	defer forged.mu.Unlock()
	for _, code := range forged.codes {
		if code != http.StatusUnauthorized {
			t.Errorf("a delivery with the wrong or no secret got %d, want 401", code)
		}
	}
	if len(forged.events) != 0 {
		t.Errorf("forged deliveries became %d events", len(forged.events))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
