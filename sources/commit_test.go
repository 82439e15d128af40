package sources

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/meshcd/meshcd/internal/testenv"
)

// TestCommitFilesSurvivesConcurrentPushers commits status 20 times while two other
// committers push to the same branch: every status commit lands once, none is empty, nothing
// is force-pushed, and every other commit is still in the history.
func TestCommitFilesSurvivesConcurrentPushers(t *testing.T) {
	ctx := context.Background()
	srv, repo := gitRepo(t, testenv.GitServerOptions{})
	if _, err := repo.Push(ctx, "main", map[string][]byte{"designs/a/design.cue": []byte("// a\n")}, "start"); err != nil {
		t.Fatal(err)
	}
	// Two people push while meshcd writes status. Each has a clone of their own, like real
	// committers, and retries when the server rejects a push that is not a fast-forward.
	others := []*testenv.Repo{}
	for range 2 {
		o, err := srv.CloneHandle(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		others = append(others, o)
	}
	var mu sync.Mutex
	var theirs []string
	var wg sync.WaitGroup
	for i, o := range others {
		wg.Go(func() {
			for j := range 6 {
				for attempt := 0; ; attempt++ {
					h, err := o.Push(ctx, "main", map[string][]byte{fmt.Sprintf("designs/team%d/note-%d.txt", i, j): []byte("x")}, fmt.Sprintf("team%d change %d", i, j))
					if err == nil {
						mu.Lock()
						theirs = append(theirs, h)
						mu.Unlock()
						break
					}
					if attempt > 30 {
						t.Errorf("team%d could not push: %v", i, err)
						return
					}
				}
			}
		})
	}
	poller := localPoller(t.TempDir())
	var ours []string
	for i := range 20 {
		h, err := poller.CommitFiles(ctx, Repo{URL: repo.HTTPURL()}, DefaultCommitOptions(),
			map[string][]byte{"status/shop/east.json": []byte(fmt.Sprintf("{\"round\": %d}\n", i))})
		if err != nil {
			t.Fatalf("status commit %d: %v", i, err)
		}
		ours = append(ours, h)
	}
	wg.Wait()

	log, err := repo.Log(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	inLog := map[string]int{}
	statusCommits := 0
	for _, c := range log {
		inLog[c.Hash]++
		if strings.HasPrefix(c.Subject, StatusCommitMarker) {
			statusCommits++
			if c.Author != "meshcd" {
				t.Errorf("status commit %s by %q", c.Hash, c.Author)
			}
		}
	}
	if statusCommits != 20 {
		t.Errorf("%d status commits in the history, want 20", statusCommits)
	}
	for _, h := range append(ours, theirs...) {
		if inLog[h] != 1 {
			t.Errorf("commit %s appears %d times in main's history, want once (lost or force-pushed over)", h, inLog[h])
		}
	}
	if len(theirs) != 12 {
		t.Errorf("%d of the other committers' 12 commits landed", len(theirs))
	}
	final, err := repo.ReadFile(ctx, "main", "status/shop/east.json")
	if err != nil || string(final) != "{\"round\": 19}\n" {
		t.Errorf("status file = %q, %v", final, err)
	}

	// Committing the same content again is not a commit.
	_, err = poller.CommitFiles(ctx, Repo{URL: repo.HTTPURL()}, DefaultCommitOptions(),
		map[string][]byte{"status/shop/east.json": []byte("{\"round\": 19}\n")})
	if !errors.Is(err, ErrNothingToCommit) {
		t.Fatalf("same content: err = %v, want ErrNothingToCommit", err)
	}
	// Deleting the last file of a folder removes the folder.
	if _, err := poller.CommitFiles(ctx, Repo{URL: repo.HTTPURL()}, DefaultCommitOptions(), map[string][]byte{"status/shop/east.json": nil}); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.ReadFile(ctx, "main", "status/shop/east.json"); err == nil {
		t.Error("deleted status file is still there")
	}
}
