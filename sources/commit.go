package sources

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// StatusCommitMarker starts the message of every commit meshcd writes, so that its own commits
// are recognised (and never trigger a reconcile of the same content).
const StatusCommitMarker = "meshcd: status"

// CommitOptions says where and as whom files are committed.
type CommitOptions struct {
	Branch string
	// Message follows the marker in the commit message.
	Message string
	// Marker starts the message (default StatusCommitMarker). Only status commits may carry
	// StatusCommitMarker: other commits meshcd makes (rollout steps) must be applied.
	Marker      string
	AuthorName  string
	AuthorEmail string
	// MaxAttempts bounds the fetch-rebuild-push retries when others pushed first.
	MaxAttempts int
}

// DefaultCommitOptions commits to main as "meshcd".
func DefaultCommitOptions() CommitOptions {
	return CommitOptions{Branch: "main", AuthorName: "meshcd", AuthorEmail: "meshcd@users.noreply.meshcd.io", MaxAttempts: 10}
}

// ErrNothingToCommit is returned when the files already have this content at the tip.
var ErrNothingToCommit = errors.New("nothing to commit: the branch already has this content")

// CommitFiles writes files (a nil value deletes one) to the branch as a single commit on top
// of the remote tip, and pushes it. It never makes an empty commit and never force-pushes:
// when someone else pushed first it fetches the new tip, rebuilds the same change on it and
// tries again, with jittered backoff, up to opts.MaxAttempts times. It returns the commit.
func (p *Poller) CommitFiles(ctx context.Context, repo Repo, opts CommitOptions, files map[string][]byte) (string, error) {
	if err := p.Policy.Check(repo.URL); err != nil {
		return "", err
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultCommitOptions().MaxAttempts
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		commit, err := p.commitOnce(ctx, repo, opts, files)
		if err == nil {
			return commit, nil
		}
		if !isRejected(err) || attempt >= opts.MaxAttempts {
			return "", fmt.Errorf("pushing to %s %s (attempt %d): %w", redact(repo.URL), opts.Branch, attempt, err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(backoff + rand.N(backoff)):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// commitOnce fetches the branch's tip, builds the commit on it and pushes it, holding the
// repo's cache for the whole attempt.
func (p *Poller) commitOnce(ctx context.Context, repo Repo, opts CommitOptions, files map[string][]byte) (string, error) {
	defer p.lock(repo.URL)()
	store, err := p.open(repo.URL)
	if err != nil {
		return "", err
	}
	branch := plumbing.NewBranchReferenceName(opts.Branch)
	spec := config.RefSpec("+" + branch.String() + ":" + branch.String())
	err = store.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Depth: 1, Tags: git.NoTags, Auth: repo.Auth, CABundle: repo.CABundle, Force: true})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return "", fmt.Errorf("fetching %s %s: %w", redact(repo.URL), opts.Branch, err)
	}
	tipRef, err := store.Reference(branch, true)
	if err != nil {
		return "", fmt.Errorf("%s: branch %s: %w", redact(repo.URL), opts.Branch, err)
	}
	tip, err := store.CommitObject(tipRef.Hash())
	if err != nil {
		return "", err
	}
	commit, err := commitOnTop(store, tip, opts, files)
	if err != nil {
		return "", err
	}
	if err := store.Storer.SetReference(plumbing.NewHashReference(branch, commit)); err != nil {
		return "", err
	}
	err = store.PushContext(ctx, &git.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{config.RefSpec(branch.String() + ":" + branch.String())}, Auth: repo.Auth, CABundle: repo.CABundle})
	if err != nil {
		return "", err
	}
	return commit.String(), nil
}

// isRejected reports whether a push lost a race with another pusher, so the commit is to be
// rebuilt on the new tip and tried again.
func isRejected(err error) bool {
	if errors.Is(err, git.ErrNonFastForwardUpdate) {
		return true
	}
	// go-git checks the fast-forward itself, walking from our commit down to the remote's new
	// tip; in a shallow cache that walk runs out of history before it finds the tip, and
	// reports the missing parent instead of a rejection.
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return true
	}
	msg := err.Error()
	// "failed to update ref": another push won the race for the ref's lock on the server
	// (git's receive-pack reports it when the old value it checked has moved).
	return strings.Contains(msg, "non-fast-forward") || strings.Contains(msg, "fetch first") || strings.Contains(msg, "rejected") ||
		strings.Contains(msg, "failed to update ref") || strings.Contains(msg, "failed to lock")
}

// commitOnTop writes a commit whose tree is tip's tree with files applied, or returns
// ErrNothingToCommit when that is tip's tree already.
func commitOnTop(store *git.Repository, tip *object.Commit, opts CommitOptions, files map[string][]byte) (plumbing.Hash, error) {
	root, err := tip.Tree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	changes := map[string]map[string][]byte{} // dir -> name -> content (nil deletes)
	for p, data := range files {
		dir, name := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		if changes[dir] == nil {
			changes[dir] = map[string][]byte{}
		}
		changes[dir][name] = data
	}
	newRoot, err := rewriteTree(store.Storer, root, "", changes)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if newRoot == root.Hash {
		return plumbing.ZeroHash, ErrNothingToCommit
	}
	now := time.Now()
	sig := object.Signature{Name: opts.AuthorName, Email: opts.AuthorEmail, When: now}
	msg := StatusCommitMarker
	if opts.Marker != "" {
		msg = opts.Marker
	}
	if opts.Message != "" {
		msg += ": " + opts.Message
	}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg + "\n", TreeHash: newRoot, ParentHashes: []plumbing.Hash{tip.Hash}}
	return storeObject(store.Storer, c)
}

type encoder interface {
	Encode(plumbing.EncodedObject) error
}

func storeObject(s storer.EncodedObjectStorer, o encoder) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// rewriteTree returns the hash of tree (at dir; nil for a new one) with the changes under dir
// applied, storing every new blob and tree.
func rewriteTree(s storer.EncodedObjectStorer, tree *object.Tree, dir string, changes map[string]map[string][]byte) (plumbing.Hash, error) {
	entries := map[string]object.TreeEntry{}
	if tree != nil {
		for _, e := range tree.Entries {
			entries[e.Name] = e
		}
	}
	for name, data := range changes[dir] {
		if data == nil {
			delete(entries, name)
			continue
		}
		blob := s.NewEncodedObject()
		blob.SetType(plumbing.BlobObject)
		w, err := blob.Writer()
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if _, err := w.Write(data); err != nil {
			return plumbing.ZeroHash, err
		}
		w.Close()
		h, err := s.SetEncodedObject(blob)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries[name] = object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h}
	}
	// Sub-directories with changes below them.
	subs := map[string]bool{}
	for d := range changes {
		rest, ok := strings.CutPrefix(d, dir)
		if !ok || d == dir {
			continue
		}
		rest = strings.TrimPrefix(rest, "/")
		if dir != "" && !strings.HasPrefix(d, dir+"/") {
			continue
		}
		first, _, _ := strings.Cut(rest, "/")
		subs[first] = true
	}
	for name := range subs {
		var sub *object.Tree
		if e, ok := entries[name]; ok && e.Mode == filemode.Dir {
			t, err := object.GetTree(s, e.Hash)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			sub = t
		}
		h, err := rewriteTree(s, sub, path.Join(dir, name), changes)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if h == emptyTree {
			delete(entries, name)
			continue
		}
		entries[name] = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
	}
	t := &object.Tree{}
	for _, e := range entries {
		t.Entries = append(t.Entries, e)
	}
	sort.Sort(object.TreeEntrySorter(t.Entries))
	if len(t.Entries) == 0 {
		return emptyTree, nil
	}
	return storeObject(s, t)
}

// emptyTree stands for a directory left without entries, which Git does not keep.
var emptyTree = plumbing.NewHash("4b825dc642cb6eb9a060e54bf8d69288fbee4904")
