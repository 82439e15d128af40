package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/schema"
)

// counts tallies what the Git server answered: ref listings (advertisements) and pack
// exchanges (fetches) of git-upload-pack.
func counts(s *testenv.GitServer) (listings, fetches int) {
	for _, r := range s.Requests() {
		if r.Service != "git-upload-pack" {
			continue
		}
		if r.Advertisement {
			listings++
		} else {
			fetches++
		}
	}
	return
}

func TestPollListsOncePerRepoAndFetchesOnlyWhatMoved(t *testing.T) {
	ctx := context.Background()
	srv, err := testenv.StartGitServer(testenv.GitServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const n = 50
	repos := make([]*testenv.Repo, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r, err := srv.CreateRepo(ctx, fmt.Sprintf("fleet-%d", i))
			if err == nil {
				_, err = r.Push(ctx, "main", map[string][]byte{"designs/a/design.cue": []byte("// main\n")}, "main")
			}
			if err == nil {
				_, err = r.Push(ctx, "release", map[string][]byte{"designs/a/design.cue": []byte("// release\n")}, "release")
			}
			repos[i], errs[i] = r, err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	poller := localPoller(t.TempDir())
	pollAll := func() []Result {
		var all []Result
		for _, r := range repos {
			res, err := poller.Poll(ctx, Repo{URL: r.HTTPURL()}, []string{"main", "release"})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, res...)
		}
		return all
	}

	srv.ResetRequests()
	first := pollAll()
	listings, fetches := counts(srv)
	// One listing to learn the refs, and one fetch (with its own listing) per repo.
	if listings != 2*n || fetches != n {
		t.Errorf("first poll: %d listings, %d fetches; want %d and %d", listings, fetches, 2*n, n)
	}
	for _, r := range first {
		if !r.Changed {
			t.Fatalf("first poll of %s %s not reported as changed", r.Repo, r.Ref)
		}
	}

	srv.ResetRequests()
	second := pollAll()
	listings, fetches = counts(srv)
	if listings != n || fetches != 0 {
		t.Errorf("unchanged poll: %d listings, %d fetches; want exactly %d listings (one per repo, for both refs) and no fetch", listings, fetches, n)
	}
	for _, r := range second {
		if r.Changed {
			t.Errorf("%s %s reported changed without a new commit", r.Repo, r.Ref)
		}
	}

	// One push: one fetch, of that repo, and only its moved ref is reported changed.
	moved, err := repos[7].Push(ctx, "main", map[string][]byte{"designs/a/design.cue": []byte("// main v2\n")}, "v2")
	if err != nil {
		t.Fatal(err)
	}
	srv.ResetRequests()
	third := pollAll()
	_, fetches = counts(srv)
	if fetches != 1 {
		t.Errorf("after one push: %d fetches, want 1", fetches)
	}
	var changed []string
	for _, r := range third {
		if r.Changed {
			changed = append(changed, r.Repo+" "+r.Ref+" "+r.Revision)
		}
	}
	if len(changed) != 1 || !strings.HasSuffix(changed[0], "refs/heads/main "+moved) || !strings.Contains(changed[0], "fleet-7") {
		t.Errorf("changed = %v, want only fleet-7 main at %s", changed, moved)
	}
	data, err := fs.ReadFile(third[14].FS, "designs/a/design.cue")
	if err != nil || string(data) != "// main v2\n" {
		t.Errorf("fleet-7 main snapshot reads %q, %v", data, err)
	}

	// A new poller on the same cache (a restart) fetches nothing it already has.
	srv.ResetRequests()
	restarted := localPoller(poller.cacheDir)
	if _, err := restarted.Poll(ctx, Repo{URL: repos[3].HTTPURL()}, []string{"main", "release"}); err != nil {
		t.Fatal(err)
	}
	if _, fetches := counts(srv); fetches != 0 {
		t.Errorf("after a restart: %d fetches of commits already in the cache", fetches)
	}
}

func TestSnapshotIsAFleetRepo(t *testing.T) {
	ctx := context.Background()
	_, r := gitRepo(t, testenv.GitServerOptions{Username: "meshcd", Password: "pw"})
	files := map[string][]byte{}
	root := "../examples/shop"
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(ctx, "main", files, "shop"); err != nil {
		t.Fatal(err)
	}
	auth := basicAuth("meshcd", "pw")
	res, err := localPoller(t.TempDir()).Poll(ctx, Repo{URL: r.HTTPURL(), Auth: auth}, []string{"main"})
	if err != nil {
		t.Fatal(err)
	}
	fleet, designs, err := schema.Load(ctx, res[0].FS, schema.DefaultLoadOptions())
	if err != nil {
		t.Fatalf("loading the snapshot: %v", err)
	}
	if len(fleet.Clusters) != 2 || len(designs) != 1 || designs[0].Name != "shop" {
		t.Fatalf("snapshot loaded %d clusters, %d designs", len(fleet.Clusters), len(designs))
	}

	// Wrong credentials and missing refs are clear errors that never show a password.
	_, err = localPoller(t.TempDir()).Poll(ctx, Repo{URL: r.HTTPURL(), Auth: basicAuth("meshcd", "wrong-pw")}, []string{"main"})
	if err == nil || !strings.Contains(err.Error(), "authentication") || strings.Contains(err.Error(), "wrong-pw") {
		t.Errorf("wrong password: %v", err)
	}
	_, err = localPoller(t.TempDir()).Poll(ctx, Repo{URL: r.HTTPURL(), Auth: auth}, []string{"nope"})
	if err == nil || !strings.Contains(err.Error(), `ref "nope" does not exist`) {
		t.Errorf("missing ref: %v", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:token@git.example.com/org/repo.git": "https://***@git.example.com/org/repo.git",
		"https://git.example.com/org/repo.git":            "https://git.example.com/org/repo.git",
		"ssh://git@git.example.com/org/repo.git":          "ssh://***@git.example.com/org/repo.git",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func basicAuth(user, pass string) *githttp.BasicAuth {
	return &githttp.BasicAuth{Username: user, Password: pass}
}

// TestStatusCommitsTriggerNothing: a commit that only touches status/ is reported as such, and
// a design's folder is touched only by commits that change it.
func TestStatusCommitsTriggerNothing(t *testing.T) {
	ctx := context.Background()
	_, r := gitRepo(t, testenv.GitServerOptions{})
	if _, err := r.Push(ctx, "main", map[string][]byte{"designs/shop/design.cue": []byte("// v1\n"), "designs/cart/design.cue": []byte("// v1\n")}, "start"); err != nil {
		t.Fatal(err)
	}
	p := localPoller(t.TempDir())
	poll := func() Result {
		t.Helper()
		res, err := p.Poll(ctx, Repo{URL: r.HTTPURL()}, []string{"main"})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	if first := poll(); !first.Touches("designs/shop") || first.StatusOnly() {
		t.Fatalf("a first poll must count as touching everything: %+v", first.ChangedPaths)
	}
	if _, err := p.CommitFiles(ctx, Repo{URL: r.HTTPURL()}, DefaultCommitOptions(), map[string][]byte{"status/shop/east.json": []byte("{}\n")}); err != nil {
		t.Fatal(err)
	}
	status := poll()
	if !status.Changed || !status.StatusOnly() || status.Touches("designs/shop", "designs/cart") {
		t.Fatalf("status commit: changed %v, status only %v, paths %v", status.Changed, status.StatusOnly(), status.ChangedPaths)
	}
	if _, err := r.Push(ctx, "main", map[string][]byte{"designs/cart/design.cue": []byte("// v2\n")}, "cart v2"); err != nil {
		t.Fatal(err)
	}
	cart := poll()
	if cart.StatusOnly() || !cart.Touches("designs/cart") || cart.Touches("designs/shop") {
		t.Fatalf("cart commit: paths %v", cart.ChangedPaths)
	}
}

// TestCacheLeftByAKilledProcess: a daemon SIGKILLed while it created its cache leaves a
// repository without its remote, or with a half-written config. The next poller uses the
// cache anyway (it is only a cache) instead of failing every poll with "remote not found",
// which kept a restarted daemon from ever applying anything.
func TestCacheLeftByAKilledProcess(t *testing.T) {
	ctx := context.Background()
	_, r := gitRepo(t, testenv.GitServerOptions{})
	if _, err := r.Push(ctx, "main", map[string][]byte{"designs/a/design.cue": []byte("// v1\n")}, "v1"); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(r.HTTPURL()))
	broken := map[string]func(dir string) error{
		"no remote": func(dir string) error {
			_, err := git.PlainInit(dir, true)
			return err
		},
		"a half-written config": func(dir string) error {
			if _, err := git.PlainInit(dir, true); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "config"), []byte("[core\n\tbare = tr"), 0o600)
		},
		// go-git rewrites a ref in place: killed between the truncate and the write, it is
		// empty, and every fetch after fails with "ref file is empty".
		"a ref left empty": func(dir string) error {
			if _, err := localPoller(filepath.Dir(dir)).Poll(ctx, Repo{URL: r.HTTPURL()}, []string{"main"}); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "refs", "heads", "main"), nil, 0o600); err != nil {
				return err
			}
			_, err := r.Push(ctx, "main", map[string][]byte{"designs/b/design.cue": []byte("// b\n")}, "b") // so the next poll fetches
			return err
		},
		"a half-written shallow list": func(dir string) error {
			if _, err := localPoller(filepath.Dir(dir)).Poll(ctx, Repo{URL: r.HTTPURL()}, []string{"main"}); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "shallow"), []byte("0123abc"), 0o600); err != nil {
				return err
			}
			_, err := r.Push(ctx, "main", map[string][]byte{"designs/c/design.cue": []byte("// c\n")}, "c")
			return err
		},
	}
	for name, breakIt := range broken {
		t.Run(name, func(t *testing.T) {
			cache := t.TempDir()
			if err := breakIt(filepath.Join(cache, hex.EncodeToString(sum[:8])+".git")); err != nil {
				t.Fatal(err)
			}
			res, err := localPoller(cache).Poll(ctx, Repo{URL: r.HTTPURL()}, []string{"main"})
			if err != nil {
				t.Fatalf("poll on a cache a killed process left: %v", err)
			}
			if data, err := fs.ReadFile(res[0].FS, "designs/a/design.cue"); err != nil || string(data) != "// v1\n" {
				t.Errorf("snapshot reads %q, %v", data, err)
			}
		})
	}
}
