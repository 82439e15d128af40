package sources

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/go-git/go-git/v5/plumbing"
)

// semverPrefix marks a ref that is a semver range over the repo's tags, e.g.
// "semver:>=1.2.0 <2.0.0"; the highest matching tag is used.
const semverPrefix = "semver:"

// resolveRef finds the ref a user's ref names among the advertised refs: a full name
// (refs/pull/7/head), a branch, a tag, a semver range over tags, or a commit hash.
func resolveRef(refs map[plumbing.ReferenceName]plumbing.Hash, ref string) (plumbing.ReferenceName, plumbing.Hash, error) {
	switch {
	case strings.HasPrefix(ref, semverPrefix):
		return highestTag(refs, strings.TrimPrefix(ref, semverPrefix))
	case plumbing.IsHash(ref):
		for name, h := range refs {
			if h.String() == ref {
				return name, h, nil
			}
		}
		return "", plumbing.ZeroHash, fmt.Errorf("commit %s is not the tip of any ref; meshcd fetches only advertised refs", ref)
	}
	name, h, ok := resolve(refs, ref)
	if !ok {
		return "", plumbing.ZeroHash, fmt.Errorf("ref %q does not exist", ref)
	}
	return name, h, nil
}

func highestTag(refs map[plumbing.ReferenceName]plumbing.Hash, constraint string) (plumbing.ReferenceName, plumbing.Hash, error) {
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return "", plumbing.ZeroHash, fmt.Errorf("semver range %q: %w", constraint, err)
	}
	var best *semver.Version
	var bestName plumbing.ReferenceName
	for name := range refs {
		if !name.IsTag() {
			continue
		}
		v, err := semver.NewVersion(name.Short())
		if err != nil || !c.Check(v) {
			continue
		}
		if best == nil || v.GreaterThan(best) {
			best, bestName = v, name
		}
	}
	if best == nil {
		return "", plumbing.ZeroHash, fmt.Errorf("no tag matches semver range %q", constraint)
	}
	return bestName, refs[bestName], nil
}

// Matching returns the refs of the repo's last listing whose names match the glob pattern
// (path.Match: refs/pull/*/head, refs/merge-requests/*/head, refs/heads/feature/*), with
// their commits. It makes no request.
func (p *Poller) Matching(url, pattern string) map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for name, h := range p.listing[url] {
		if ok, _ := path.Match(pattern, name.String()); ok {
			out[name.String()] = h.String()
		}
	}
	return out
}

// RefEventKind says what happened to a tracked ref.
type RefEventKind string

const (
	RefOpened  RefEventKind = "opened"
	RefUpdated RefEventKind = "updated"
	RefClosed  RefEventKind = "closed"
)

// RefEvent is a change to a tracked ref, such as a pull request's head.
type RefEvent struct {
	Ref      string
	Kind     RefEventKind
	Revision string
}

// RefTracker turns successive sets of refs (from Matching) into events: a ref that appears
// is opened, one that moves is updated, one that disappears is closed. A host that keeps a
// closed pull request's head ref (GitHub, Gitea) says so by webhook or API instead: Close
// records that, and the ref stays closed until it moves again (a reopened pull request that
// gets a push) or Reopen is called.
type RefTracker struct {
	known  map[string]string
	closed map[string]string // ref -> the revision it had when closed ("" if never seen)
}

// Observe compares the current refs with the last ones and returns the events, by ref name.
func (t *RefTracker) Observe(current map[string]string) []RefEvent {
	var out []RefEvent
	open := map[string]string{}
	for _, ref := range slices.Sorted(maps.Keys(current)) {
		if at, closed := t.closed[ref]; closed {
			if at == "" || at == current[ref] {
				t.closed[ref] = current[ref]
				continue
			}
			delete(t.closed, ref)
		}
		open[ref] = current[ref]
		prev, seen := t.known[ref]
		switch {
		case !seen:
			out = append(out, RefEvent{ref, RefOpened, current[ref]})
		case prev != current[ref]:
			out = append(out, RefEvent{ref, RefUpdated, current[ref]})
		}
	}
	for _, ref := range slices.Sorted(maps.Keys(t.known)) {
		if _, still := open[ref]; !still {
			if _, closed := t.closed[ref]; !closed {
				out = append(out, RefEvent{ref, RefClosed, t.known[ref]})
			}
		}
	}
	for ref := range t.closed {
		if _, still := current[ref]; !still && t.closed[ref] != "" {
			delete(t.closed, ref) // gone from the host: nothing left to remember
		}
	}
	t.known = open
	return out
}

// Close records that the host closed ref although the ref remains. It returns the closed
// event when the ref was open, and false when it was not (the ref is still remembered as
// closed, so a later Observe does not open it).
func (t *RefTracker) Close(ref string) (RefEvent, bool) {
	if t.closed == nil {
		t.closed = map[string]string{}
	}
	at, open := t.known[ref]
	delete(t.known, ref)
	if _, already := t.closed[ref]; !already || open {
		t.closed[ref] = at
	}
	if !open {
		return RefEvent{}, false
	}
	return RefEvent{ref, RefClosed, at}, true
}

// Reopen forgets that ref was closed, so the next Observe that lists it opens it.
func (t *RefTracker) Reopen(ref string) {
	delete(t.closed, ref)
}
