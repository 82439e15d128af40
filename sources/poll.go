package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Repo is a Git repository to poll.
type Repo struct {
	URL  string
	Auth transport.AuthMethod
	// CABundle holds PEM certificates to trust for an https server with a private CA.
	CABundle []byte
}

// Result is one polled ref.
type Result struct {
	Snapshot
	// Changed is false when the ref points where it did at the last poll: no fetch was made.
	Changed bool
	// Previous is the commit the ref pointed to at the last poll ("" on the first).
	Previous string
	// ChangedPaths are the files that differ from Previous; nil when there is no previous
	// commit to compare with (everything counts as changed).
	ChangedPaths []string
	// Content is the commit whose content the tip carries: the tip itself, or for one of
	// meshcd's status commits the first commit below it (first parents) that is not one.
	Content string
}

// StatusOnly reports whether the change touched nothing but status/, which meshcd writes
// itself: such a commit must never trigger a reconcile.
func (r Result) StatusOnly() bool {
	if !r.Changed || r.ChangedPaths == nil {
		return false
	}
	for _, p := range r.ChangedPaths {
		if !strings.HasPrefix(p, "status/") {
			return false
		}
	}
	return true
}

// Touches reports whether the change touched a file under any of the folders (for example a
// design's folder and the bases it reads). A first poll touches everything.
func (r Result) Touches(dirs ...string) bool {
	if !r.Changed {
		return false
	}
	if r.ChangedPaths == nil {
		return true
	}
	for _, p := range r.ChangedPaths {
		for _, d := range dirs {
			d = strings.TrimSuffix(d, "/")
			if p == d || strings.HasPrefix(p, d+"/") {
				return true
			}
		}
	}
	return false
}

// Poller polls repos into a cache directory of bare repositories that survives restarts (and
// can be deleted: it is rebuilt from nothing).
type Poller struct {
	cacheDir string
	// Policy is checked before any request; the zero value allows https and ssh only.
	Policy URLPolicy

	mu      sync.Mutex
	last    map[string]string // url + " " + ref name -> commit
	listing map[string]map[plumbing.ReferenceName]plumbing.Hash
	// stores serialises the work on each repo's cache: go-git's object store is not safe for
	// concurrent fetches, and a poll, a status commit and a preview may meet on one repo.
	stores map[string]*sync.Mutex
	repos  map[string]*git.Repository
}

// NewPoller keeps fetched objects under cacheDir.
func NewPoller(cacheDir string) *Poller {
	return &Poller{cacheDir: cacheDir, last: map[string]string{}, listing: map[string]map[plumbing.ReferenceName]plumbing.Hash{}, stores: map[string]*sync.Mutex{}, repos: map[string]*git.Repository{}}
}

// Poll lists the repo's refs once, however many refs are asked for, and fetches (shallow, only
// the refs that moved) only when a ref points to a commit not fetched before. Refs are branch
// names ("main"), tag names, full names ("refs/pull/7/head"), semver ranges over tags
// ("semver:>=1.2.0 <2.0.0") or commits at the tip of an advertised ref.
func (p *Poller) Poll(ctx context.Context, repo Repo, refs []string) ([]Result, error) {
	if err := p.Policy.Check(repo.URL); err != nil {
		return nil, err
	}
	remote := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{repo.URL}})
	advertised, err := remote.ListContext(ctx, &git.ListOptions{Auth: repo.Auth, CABundle: repo.CABundle})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", redact(repo.URL), err)
	}
	byName := map[plumbing.ReferenceName]plumbing.Hash{}
	for _, r := range advertised {
		if r.Type() == plumbing.HashReference {
			byName[r.Name()] = r.Hash()
		}
	}
	p.mu.Lock()
	p.listing[repo.URL] = byName
	p.mu.Unlock()
	unlock := p.lock(repo.URL)
	defer unlock()
	store, err := p.open(repo.URL)
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(refs))
	var fetch []config.RefSpec
	for i, ref := range refs {
		name, hash, err := resolveRef(byName, ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", redact(repo.URL), err)
		}
		results[i] = Result{Snapshot: Snapshot{Repo: redact(repo.URL), Ref: name.String(), Revision: hash.String()}}
		p.mu.Lock()
		results[i].Changed = p.last[repo.URL+" "+name.String()] != hash.String()
		p.mu.Unlock()
		if _, err := store.CommitObject(hash); err != nil {
			fetch = append(fetch, config.RefSpec("+"+name.String()+":"+name.String()))
		}
	}
	if len(fetch) > 0 {
		err := store.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: fetch, Depth: 1, Tags: git.NoTags, Auth: repo.Auth, CABundle: repo.CABundle, Force: true})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return nil, fmt.Errorf("fetching %s: %w", redact(repo.URL), err)
		}
	}
	for i := range results {
		commit, err := store.CommitObject(plumbing.NewHash(results[i].Revision))
		if err != nil {
			return nil, fmt.Errorf("%s %s: commit %s not in the cache after fetching: %w", redact(repo.URL), results[i].Ref, results[i].Revision, err)
		}
		tree, err := commit.Tree()
		if err != nil {
			return nil, err
		}
		results[i].FS = treeFS{root: tree, lock: func() func() { return p.lock(repo.URL) }}
		results[i].Message = commit.Message
		if results[i].Content, err = p.contentRevision(ctx, store, repo, results[i].Ref, commit); err != nil {
			return nil, err
		}
		p.mu.Lock()
		prev := p.last[repo.URL+" "+results[i].Ref]
		p.last[repo.URL+" "+results[i].Ref] = results[i].Revision
		p.mu.Unlock()
		results[i].Previous = prev
		if results[i].Changed && prev != "" {
			results[i].ChangedPaths = changedPaths(store, prev, tree)
		}
	}
	return results, nil
}

// Forget drops what the poller remembers of a ref that is gone (a closed pull request), so a
// long-running poller does not grow with every pull request ever opened.
func (p *Poller) Forget(url, ref string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.last, url+" "+ref)
}

// lock takes the repo's cache for the caller and returns the function that gives it back.
func (p *Poller) lock(url string) func() {
	p.mu.Lock()
	m, ok := p.stores[url]
	if !ok {
		m = &sync.Mutex{}
		p.stores[url] = m
	}
	p.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// objectCacheBytes bounds the objects each repo's cache keeps decoded in memory. go-git's
// default is 96 MiB per repository, which a daemon following many repos cannot afford.
const objectCacheBytes = 2 * cache.MiByte

// open returns the cache's bare repository for a URL, creating it on first use. It is opened
// once and kept, with a bounded object cache; callers hold the URL's lock.
func (p *Poller) open(url string) (*git.Repository, error) {
	p.mu.Lock()
	r, ok := p.repos[url]
	p.mu.Unlock()
	if ok {
		return r, nil
	}
	sum := sha256.Sum256([]byte(url))
	dir := filepath.Join(p.cacheDir, hex.EncodeToString(sum[:8])+".git")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	storage := func() *filesystem.Storage {
		// Only this poller writes to the directory, which lets go-git keep its pack index.
		return filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRU(objectCacheBytes), filesystem.Options{ExclusiveAccess: true})
	}
	r, err := git.Open(storage(), nil)
	if err == nil {
		err = readable(r)
	}
	if err != nil && !errors.Is(err, git.ErrRepositoryNotExists) {
		// A cache a killed process left unreadable (a half-written config, a ref go-git was
		// rewriting in place left empty): it is only a cache, so start it again rather than
		// fail every poll.
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			return nil, fmt.Errorf("cache of %s unreadable (%v) and not removable: %w", redact(url), err, rmErr)
		}
		if err = os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		r, err = git.Open(storage(), nil)
	}
	if errors.Is(err, git.ErrRepositoryNotExists) {
		r, err = git.Init(storage(), nil)
	}
	if err != nil {
		return nil, err
	}
	// A process killed between the init and this point leaves a cache without its remote.
	if rem, rerr := r.Remote("origin"); errors.Is(rerr, git.ErrRemoteNotFound) || (rerr == nil && (len(rem.Config().URLs) != 1 || rem.Config().URLs[0] != url)) {
		_ = r.DeleteRemote("origin")
		if _, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}}); err != nil {
			return nil, fmt.Errorf("cache of %s: %w", redact(url), err)
		}
	} else if rerr != nil {
		return nil, fmt.Errorf("cache of %s: %w", redact(url), rerr)
	}
	p.mu.Lock()
	p.repos[url] = r
	p.mu.Unlock()
	return r, nil
}

// readable reads what a fetch reads before it writes: every reference and the shallow list.
// go-git rewrites a ref file in place (truncate, then write), so a process killed in between
// leaves an empty one, and every later fetch fails on it.
func readable(r *git.Repository) error {
	refs, err := r.References()
	if err != nil {
		return err
	}
	if err := refs.ForEach(func(*plumbing.Reference) error { return nil }); err != nil {
		return err
	}
	_, err = r.Storer.Shallow()
	return err
}

func resolve(refs map[plumbing.ReferenceName]plumbing.Hash, ref string) (plumbing.ReferenceName, plumbing.Hash, bool) {
	candidates := []plumbing.ReferenceName{plumbing.ReferenceName(ref)}
	if !strings.HasPrefix(ref, "refs/") {
		candidates = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(ref), plumbing.NewTagReferenceName(ref)}
	}
	for _, c := range candidates {
		if h, ok := refs[c]; ok {
			return c, h, true
		}
	}
	return "", plumbing.ZeroHash, false
}

// redact drops credentials from a URL before it reaches a log, an error or a status file.
func redact(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
		return scheme + "://***@" + rest[at+1:]
	}
	return url
}

// changedPaths lists the files that differ between the previous commit and tree, or nil when
// the previous commit is not in the cache to compare with.
func changedPaths(store *git.Repository, previous string, tree *object.Tree) []string {
	prev, err := store.CommitObject(plumbing.NewHash(previous))
	if err != nil {
		return nil
	}
	prevTree, err := prev.Tree()
	if err != nil {
		return nil
	}
	changes, err := object.DiffTree(prevTree, tree)
	if err != nil {
		return nil
	}
	paths := []string{}
	for _, c := range changes {
		for _, p := range []string{c.From.Name, c.To.Name} {
			if p != "" && (len(paths) == 0 || paths[len(paths)-1] != p) {
				paths = append(paths, p)
			}
		}
	}
	return paths
}

// Redact returns the URL with any user information removed, for logs and errors.
func Redact(url string) string { return redact(url) }
