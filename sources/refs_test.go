package sources

import (
	"context"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/internal/testenv"
)

func TestPullRequestRefsAppearMoveAndDisappear(t *testing.T) {
	ctx := context.Background()
	_, r := gitRepo(t, testenv.GitServerOptions{})
	base, err := r.Push(ctx, "main", map[string][]byte{"a": []byte("1")}, "base")
	if err != nil {
		t.Fatal(err)
	}
	p := localPoller(t.TempDir())
	var tracker RefTracker
	round := func() []RefEvent {
		t.Helper()
		if _, err := p.Poll(ctx, Repo{URL: r.HTTPURL()}, []string{"main"}); err != nil {
			t.Fatal(err)
		}
		return tracker.Observe(p.Matching(r.HTTPURL(), "refs/pull/*/head"))
	}
	if ev := round(); len(ev) != 0 {
		t.Fatalf("no PR yet, events %v", ev)
	}
	head1, err := r.Push(ctx, "feature", map[string][]byte{"b": []byte("1")}, "pr 7")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetRef(ctx, "refs/pull/7/head", head1); err != nil {
		t.Fatal(err)
	}
	opened := round()
	head2, err := r.Push(ctx, "feature", map[string][]byte{"b": []byte("2")}, "pr 7 again")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetRef(ctx, "refs/pull/7/head", head2); err != nil {
		t.Fatal(err)
	}
	updated := round()
	if err := r.DeleteRef(ctx, "refs/pull/7/head"); err != nil {
		t.Fatal(err)
	}
	closed := round()
	got := append(append(opened, updated...), closed...)
	want := []RefEvent{
		{"refs/pull/7/head", RefOpened, head1},
		{"refs/pull/7/head", RefUpdated, head2},
		{"refs/pull/7/head", RefClosed, head2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// A PR head can be polled like any ref, and a commit at a ref's tip too.
	if err := r.SetRef(ctx, "refs/pull/8/head", head1); err != nil {
		t.Fatal(err)
	}
	res, err := p.Poll(ctx, Repo{URL: r.HTTPURL()}, []string{"refs/pull/8/head", base})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Revision != head1 || res[1].Revision != base || res[1].Ref != "refs/heads/main" {
		t.Errorf("poll of a PR ref and a commit: %+v / %+v", res[0].Snapshot, res[1].Snapshot)
	}
}

func TestSemverRangeOverTags(t *testing.T) {
	ctx := context.Background()
	_, r := gitRepo(t, testenv.GitServerOptions{})
	tags := map[string]string{}
	for _, v := range []string{"v1.1.0", "v1.2.0", "v1.9.3", "v2.0.0", "not-a-version"} {
		h, err := r.Push(ctx, "main", map[string][]byte{"version": []byte(v)}, v)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.SetRef(ctx, "refs/tags/"+v, h); err != nil {
			t.Fatal(err)
		}
		tags[v] = h
	}
	res, err := localPoller(t.TempDir()).Poll(ctx, Repo{URL: r.HTTPURL()}, []string{"semver:>=1.2.0 <2.0.0", "v1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Ref != "refs/tags/v1.9.3" || res[0].Revision != tags["v1.9.3"] || res[1].Revision != tags["v1.1.0"] {
		t.Fatalf("semver range picked %s %s, tag v1.1.0 %s", res[0].Ref, res[0].Revision, res[1].Revision)
	}
	if _, err := localPoller(t.TempDir()).Poll(ctx, Repo{URL: r.HTTPURL()}, []string{"semver:>=3.0.0"}); err == nil {
		t.Fatal("a range no tag matches must be an error")
	}
}

func FuzzResolveRef(f *testing.F) {
	refs := map[plumbing.ReferenceName]plumbing.Hash{
		"refs/heads/main":  plumbing.NewHash("1111111111111111111111111111111111111111"),
		"refs/tags/v1.2.3": plumbing.NewHash("2222222222222222222222222222222222222222"),
		"refs/pull/1/head": plumbing.NewHash("3333333333333333333333333333333333333333"),
	}
	for _, s := range []string{"main", "v1.2.3", "semver:>=1.0.0", "semver:^1", "refs/pull/1/head", "1111111111111111111111111111111111111111", "semver:>=", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		name, h, err := resolveRef(refs, ref)
		if err == nil && refs[name] != h {
			t.Fatalf("resolveRef(%q) = %s %s, not an advertised pair", ref, name, h)
		}
	})
}

// A host that keeps a closed pull request's head ref: once closed, the ref is not previewed
// again on the next poll (nor after a restart, when the close comes first), and a push to the
// reopened pull request opens it anew.
func TestRefTrackerClosedRefThatStays(t *testing.T) {
	var tr RefTracker
	pr := "refs/pull/1/head"
	if got := tr.Observe(map[string]string{pr: "a"}); len(got) != 1 || got[0].Kind != RefOpened {
		t.Fatalf("first sight: %+v", got)
	}
	ev, ok := tr.Close(pr)
	if !ok || ev != (RefEvent{pr, RefClosed, "a"}) {
		t.Fatalf("close: %+v %v", ev, ok)
	}
	if got := tr.Observe(map[string]string{pr: "a"}); len(got) != 0 {
		t.Errorf("the closed ref came back: %+v", got)
	}
	if _, ok := tr.Close(pr); ok {
		t.Error("closing twice gave a second event")
	}
	if got := tr.Observe(map[string]string{pr: "b"}); len(got) != 1 || got[0] != (RefEvent{pr, RefOpened, "b"}) {
		t.Errorf("a push after reopening: %+v", got)
	}
	if got := tr.Observe(map[string]string{}); len(got) != 1 || got[0].Kind != RefClosed {
		t.Errorf("the ref deleted: %+v", got)
	}

	// Told closed before any poll saw it (a fresh daemon), then reopened by the host.
	var fresh RefTracker
	if _, ok := fresh.Close(pr); ok {
		t.Error("closing an unseen ref gave an event")
	}
	if got := fresh.Observe(map[string]string{pr: "a"}); len(got) != 0 {
		t.Errorf("a ref closed before it was seen opened: %+v", got)
	}
	fresh.Reopen(pr)
	if got := fresh.Observe(map[string]string{pr: "a"}); len(got) != 1 || got[0].Kind != RefOpened {
		t.Errorf("reopened: %+v", got)
	}
}
