package sources

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
)

// TestContentRevisionIsReadFromGit: the content of a status commit is the first commit below
// it that is not one, found in Git's history, also by a poller whose shallow cache has never
// seen that history, and also when the status commit was rebuilt on someone else's push.
func TestContentRevisionIsReadFromGit(t *testing.T) {
	ctx := t.Context()
	_, r := gitRepo(t, testenv.GitServerOptions{})
	a, err := r.Push(ctx, "main", map[string][]byte{"designs/shop/design.cue": []byte("// a\n")}, "a")
	if err != nil {
		t.Fatal(err)
	}
	repo := Repo{URL: r.HTTPURL()}
	p := localPoller(t.TempDir())
	content := func(p *Poller) string {
		t.Helper()
		res, err := p.Poll(ctx, repo, []string{"main"})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Content
	}
	if got := content(p); got != a {
		t.Fatalf("a user commit's content: %s, want itself %s", got, a)
	}
	for i := range 3 {
		if _, err := p.CommitFiles(ctx, repo, DefaultCommitOptions(), map[string][]byte{"status/shop/east.json": []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if got := content(p); got != a {
		t.Errorf("three status commits on a: content %s, want %s", got, a)
	}
	if got := content(localPoller(t.TempDir())); got != a {
		t.Errorf("a fresh cache: content %s, want %s", got, a)
	}
	// Someone pushes b; a status commit for a lands on top of it. Its content is b.
	b, err := r.Push(ctx, "main", map[string][]byte{"designs/shop/design.cue": []byte("// b\n")}, "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CommitFiles(ctx, repo, DefaultCommitOptions(), map[string][]byte{"status/shop/east.json": []byte("for a")}); err != nil {
		t.Fatal(err)
	}
	if got := content(p); got != b {
		t.Errorf("a status commit on b: content %s, want %s", got, b)
	}
	if got := content(localPoller(t.TempDir())); got != b {
		t.Errorf("a status commit on b, fresh cache: content %s, want %s", got, b)
	}
}

// TestStatusPushRacingAUserPush forces the race: a user's push lands between meshcd's fetch
// and its push. go-git then reports a missing object from the shallow cache rather than a
// rejection; the commit is rebuilt on the user's commit and lands, and nothing is lost.
func TestStatusPushRacingAUserPush(t *testing.T) {
	ctx := t.Context()
	srv, r := gitRepo(t, testenv.GitServerOptions{})
	if _, err := r.Push(ctx, "main", map[string][]byte{"designs/shop/design.cue": []byte("// a\n")}, "a"); err != nil {
		t.Fatal(err)
	}
	user, err := srv.CloneHandle(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	p := localPoller(t.TempDir())
	repo := Repo{URL: r.HTTPURL()}
	// The cache has a, with history below it cut (shallow), like a daemon's cache.
	for i := range 2 {
		if _, err := r.Push(ctx, "main", map[string][]byte{"designs/shop/note.txt": []byte(fmt.Sprint(i))}, "note"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Poll(ctx, repo, []string{"main"}); err != nil {
		t.Fatal(err)
	}
	var b string
	srv.BeforeNextPush(func() {
		b, err = user.Push(ctx, "main", map[string][]byte{"designs/shop/design.cue": []byte("// b\n")}, "b")
	})
	hash, cerr := p.CommitFiles(ctx, repo, DefaultCommitOptions(), map[string][]byte{"status/shop/east.json": []byte("{}\n")})
	if err != nil {
		t.Fatalf("the user's push: %v", err)
	}
	if cerr != nil {
		t.Fatalf("the status commit that raced a user push was not retried: %v", cerr)
	}
	log, err := r.Log(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if log[0].Hash != hash || len(log[0].Parents) != 1 || log[0].Parents[0] != b {
		t.Fatalf("want the status commit %s on the user's %s, got tip %s with parents %v", hash, b, log[0].Hash, log[0].Parents)
	}
}

// TestCommitterRetriesThroughAnOutage: writes submitted while the Git server is down wait,
// coalesce and are retried with growing waits; once the server is back every write lands in
// one commit, in the order given, and none is lost.
func TestCommitterRetriesThroughAnOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv, r := gitRepo(t, testenv.GitServerOptions{})
	if _, err := r.Push(ctx, "main", map[string][]byte{"designs/shop/design.cue": []byte("// a\n")}, "a"); err != nil {
		t.Fatal(err)
	}
	opts := DefaultCommitterOptions()
	opts.Backoff.Duration = 100 * time.Millisecond
	opts.Backoff.Cap = 2 * time.Second
	c := NewCommitter(localPoller(t.TempDir()), Repo{URL: r.HTTPURL()}, opts)
	go c.Run(ctx)

	srv.SetDown(true)
	srv.ResetRequests()
	for i := range 10 {
		c.Submit(Write{Branch: "main", Message: fmt.Sprintf("round %d", i), Files: map[string][]byte{
			"status/shop/east.json":           []byte(fmt.Sprint(i)),
			fmt.Sprintf("status/round/%d", i): []byte("x"),
		}})
	}
	time.Sleep(3 * time.Second)
	st := c.State()
	if st.Failures == 0 || st.LastError == "" || st.Landed != 0 {
		t.Fatalf("during the outage: %+v", st)
	}
	// Waits grow: 3 s of outage with waits doubling from 100 ms up to 2 s is at most about
	// five attempts, never one every few milliseconds.
	if n := len(srv.Requests()); n > 8 {
		t.Errorf("%d requests to a server that is down in 3 s: no backoff", n)
	}
	srv.SetDown(false)
	c.Kick()
	deadline := time.Now().Add(20 * time.Second)
	for c.State().Landed != 10 {
		if time.Now().After(deadline) {
			t.Fatalf("not every write landed: %+v", c.State())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := c.State(); st.Requested != 10 || st.Failures != 0 || st.Pending != 0 {
		t.Errorf("after the outage: %+v", st)
	}
	got, err := r.ReadFile(ctx, "main", "status/shop/east.json")
	if err != nil || string(got) != "9" {
		t.Errorf("status/shop/east.json = %q (%v), want the last write's 9", got, err)
	}
	for i := range 10 {
		if _, err := r.ReadFile(ctx, "main", fmt.Sprintf("status/round/%d", i)); err != nil {
			t.Errorf("write %d lost: %v", i, err)
		}
	}
	log, err := r.Log(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(log[0].Subject, StatusCommitMarker+": round 0; round 1") || log[1].Subject != "a" {
		t.Errorf("want one coalesced status commit on a, got %q then %q", log[0].Subject, log[1].Subject)
	}
}

// TestCommitterWritesWhatIsPendingOnStop: a write submitted right before shutdown still lands
// (within the drain's few seconds); Run returns after it.
func TestCommitterWritesWhatIsPendingOnStop(t *testing.T) {
	_, r := gitRepo(t, testenv.GitServerOptions{})
	if _, err := r.Push(t.Context(), "main", map[string][]byte{"designs/shop/design.cue": []byte("// a\n")}, "a"); err != nil {
		t.Fatal(err)
	}
	c := NewCommitter(localPoller(t.TempDir()), Repo{URL: r.HTTPURL()}, DefaultCommitterOptions())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c.Submit(Write{Branch: "main", Message: "last words", Files: map[string][]byte{"status/shop/east.json": []byte("{}\n")}})
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if st := c.State(); st.Landed != 1 {
		t.Fatalf("the write pending at shutdown was not written: %+v", st)
	}
	if _, err := r.ReadFile(t.Context(), "main", "status/shop/east.json"); err != nil {
		t.Fatal(err)
	}
}
