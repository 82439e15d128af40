package sources

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxStatusChain bounds the walk past meshcd's own status commits. An idle meshcd adds at most
// one status commit per change of fleet state, so a chain this long means the walk is not
// worth more round trips; the tip then names its own content.
const maxStatusChain = 512

// IsStatusCommit reports whether a commit message is one of meshcd's status commits, whose
// content is never new: only files under status/ differ from their first parent.
func IsStatusCommit(message string) bool {
	return strings.HasPrefix(message, StatusCommitMarker)
}

// contentRevision is the commit whose content a ref's tip carries: the first commit down the
// tip's first-parent history that is not one of meshcd's status commits. It is read from Git,
// never from the status files, so a status commit rebuilt on top of someone else's push names
// that push, not the revision the status files describe. The cache is shallow: a parent it
// lacks is fetched by deepening the ref, which costs one round trip per doubling.
func (p *Poller) contentRevision(ctx context.Context, store *git.Repository, repo Repo, ref string, tip *object.Commit) (string, error) {
	c := tip
	depth := 1
	for range maxStatusChain {
		if !IsStatusCommit(c.Message) || len(c.ParentHashes) == 0 {
			return c.Hash.String(), nil
		}
		parent, err := store.CommitObject(c.ParentHashes[0])
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			depth *= 4
			if depth > maxStatusChain {
				break
			}
			if err := p.deepen(ctx, store, repo, ref, depth); err != nil {
				return "", err
			}
			parent, err = store.CommitObject(c.ParentHashes[0])
			if errors.Is(err, plumbing.ErrObjectNotFound) {
				continue // the ref moved past this history meanwhile; look deeper
			}
		}
		if err != nil {
			return "", fmt.Errorf("%s %s: reading commit %s: %w", redact(repo.URL), ref, c.ParentHashes[0], err)
		}
		c = parent
	}
	return tip.Hash.String(), nil
}

// deepen fetches the ref's history down to depth commits from its tip.
func (p *Poller) deepen(ctx context.Context, store *git.Repository, repo Repo, ref string, depth int) error {
	spec := config.RefSpec("+" + ref + ":" + ref)
	err := store.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Depth: depth, Tags: git.NoTags, Auth: repo.Auth, CABundle: repo.CABundle, Force: true})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetching the history of %s %s: %w", redact(repo.URL), ref, err)
	}
	return nil
}
