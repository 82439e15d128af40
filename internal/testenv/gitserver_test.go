package testenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

func startGitServer(t *testing.T, opts GitServerOptions) *GitServer {
	t.Helper()
	s, err := StartGitServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestGitServerRoundTripWithBasicAuth(t *testing.T) {
	ctx := t.Context()
	s := startGitServer(t, GitServerOptions{Username: "meshcd", Password: "s3cret"})
	repo, err := s.CreateRepo(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	first, err := repo.Push(ctx, "main", map[string][]byte{"designs/shop/design.cue": []byte("design: shop: {}\n")}, "add shop")
	if err != nil {
		t.Fatal(err)
	}

	// A client clones over smart HTTP with go-git and sees the pushed commit.
	dir := t.TempDir()
	auth := &githttp.BasicAuth{Username: "meshcd", Password: "s3cret"}
	clone, err := git.PlainCloneContext(ctx, dir, false, &git.CloneOptions{URL: repo.HTTPURL(), Auth: auth})
	if err != nil {
		t.Fatalf("go-git clone: %v", err)
	}
	head, err := clone.Head()
	if err != nil {
		t.Fatal(err)
	}
	if head.Hash().String() != first {
		t.Fatalf("cloned HEAD %s, pushed %s", head.Hash(), first)
	}
	got, err := os.ReadFile(filepath.Join(dir, "designs/shop/design.cue"))
	if err != nil || string(got) != "design: shop: {}\n" {
		t.Fatalf("cloned file = %q, %v", got, err)
	}

	// go-git commits and pushes back with basic auth; the server has the commit on top of ours.
	if err := os.MkdirAll(filepath.Join(dir, "status"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "status/README.md"), []byte("# fleet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wt, err := clone.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Add("status/README.md"); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "meshcd", Email: "meshcd@meshcd.invalid", When: time.Now()}
	pushed, err := wt.Commit("meshcd: status", &git.CommitOptions{Author: sig})
	if err != nil {
		t.Fatal(err)
	}
	if err := clone.PushContext(ctx, &git.PushOptions{Auth: auth}); err != nil {
		t.Fatalf("go-git push: %v", err)
	}
	serverHead, err := repo.Head(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if serverHead != pushed.String() {
		t.Fatalf("server main = %s, want pushed %s", serverHead, pushed)
	}
	log, err := repo.Log(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[1].Hash != first || log[0].Author != "meshcd" {
		t.Fatalf("server history = %+v, want meshcd's commit on top of %s", log, first)
	}
	readme, err := repo.ReadFile(ctx, "main", "status/README.md")
	if err != nil || string(readme) != "# fleet\n" {
		t.Fatalf("pushed file on server = %q, %v", readme, err)
	}

	// The request log saw the push with its user.
	var pushes int
	for _, r := range s.Requests() {
		if r.Repo == "fleet" && r.Service == "git-receive-pack" && !r.Advertisement && r.Status == 200 && r.User == "meshcd" {
			pushes++
		}
	}
	if pushes != 2 { // the CLI's push and go-git's
		t.Fatalf("server recorded %d authenticated pushes, want 2; log: %+v", pushes, s.Requests())
	}
}

func TestGitServerRejectsWrongPassword(t *testing.T) {
	ctx := t.Context()
	s := startGitServer(t, GitServerOptions{Username: "meshcd", Password: "s3cret"})
	repo, err := s.CreateRepo(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Push(ctx, "main", map[string][]byte{"a": []byte("a")}, "a"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		auth *githttp.BasicAuth
		want error
	}{
		{"wrong password", &githttp.BasicAuth{Username: "meshcd", Password: "nope"}, transport.ErrAuthenticationRequired},
		{"no credentials", nil, transport.ErrAuthenticationRequired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := &git.CloneOptions{URL: repo.HTTPURL()}
			if tc.auth != nil {
				opts.Auth = tc.auth
			}
			_, err := git.PlainCloneContext(ctx, t.TempDir(), false, opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("clone error = %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), "nope") || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error leaks a password: %v", err)
			}
		})
	}
}

func TestGitServerFileURLAndHistory(t *testing.T) {
	ctx := t.Context()
	s := startGitServer(t, GitServerOptions{})
	repo, err := s.CreateRepo(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Push(ctx, "main", map[string][]byte{"a.txt": []byte("1")}, "one"); err != nil {
		t.Fatal(err)
	}
	second, err := repo.Push(ctx, "main", map[string][]byte{"a.txt": nil, "b.txt": []byte("2")}, "two")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Push(ctx, "feature/x", map[string][]byte{"c.txt": []byte("3")}, "orphan branch"); err != nil {
		t.Fatal(err)
	}
	clone, err := git.PlainCloneContext(ctx, t.TempDir(), false, &git.CloneOptions{URL: repo.FileURL()})
	if err != nil {
		t.Fatalf("go-git clone over file://: %v", err)
	}
	head, _ := clone.Head()
	if head.Hash().String() != second {
		t.Fatalf("file:// HEAD = %s, want %s", head.Hash(), second)
	}
	commit, err := clone.CommitObject(head.Hash())
	if err != nil {
		t.Fatal(err)
	}
	tree, _ := commit.Tree()
	if _, err := tree.File("a.txt"); err == nil {
		t.Fatal("a.txt was deleted by the second push but is still in the tree")
	}
	if f, err := tree.File("b.txt"); err != nil {
		t.Fatalf("b.txt missing: %v", err)
	} else if c, _ := f.Contents(); c != "2" {
		t.Fatalf("b.txt = %q", c)
	}
	if _, err := repo.ReadFile(ctx, "feature/x", "c.txt"); err != nil {
		t.Fatalf("branch feature/x: %v", err)
	}
	if _, err := repo.ReadFile(ctx, "feature/x", "b.txt"); err == nil {
		t.Fatal("a new branch should start empty, not from main")
	}
}

func TestGitServerCountsListingsAndFetches(t *testing.T) {
	ctx := context.Background()
	s := startGitServer(t, GitServerOptions{})
	repo, err := s.CreateRepo(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Push(ctx, "main", map[string][]byte{"a": []byte("a")}, "a"); err != nil {
		t.Fatal(err)
	}
	s.ResetRequests()
	remote := git.NewRemote(nil, &config.RemoteConfig{Name: "origin", URLs: []string{repo.HTTPURL()}})
	if _, err := remote.ListContext(ctx, &git.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || !reqs[0].Advertisement || reqs[0].Service != "git-upload-pack" || reqs[0].Repo != "fleet" {
		t.Fatalf("one ls-remote should be one upload-pack advertisement, got %+v", reqs)
	}
}
