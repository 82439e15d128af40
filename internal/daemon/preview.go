package daemon

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/internal/web"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/sources"
	"github.com/meshcd/meshcd/status"
)

// Preview is status/pr/<id>.json: what merging a pull request would change on each cluster.
type Preview struct {
	ID       string          `json:"id"`
	Ref      string          `json:"ref"`
	Revision string          `json:"revision"`
	Error    string          `json:"error,omitempty"`
	Targets  []PreviewTarget `json:"targets"`
	// Gates are the design's gates triggered by "pr", run against their previewURL.
	Gates []PreviewGate `json:"gates,omitempty"`
}

// PreviewGate is one gate's verdict for a pull request.
type PreviewGate struct {
	Design  string        `json:"design"`
	Gate    string        `json:"gate"`
	URL     string        `json:"url"`
	Pass    bool          `json:"pass"`
	Checks  []gates.Check `json:"checks"`
	Aborted string        `json:"aborted,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// PreviewTarget is one design on one cluster.
type PreviewTarget struct {
	Design  string   `json:"design"`
	Cluster string   `json:"cluster"`
	Changes []string `json:"changes"` // "update networking.istio.io/VirtualService shop/checkout"
	Error   string   `json:"error,omitempty"`
	diffs   []string
}

var prNumber = regexp.MustCompile(`^refs/(?:pull|merge-requests)/([0-9]+)/head$`)

// previewID names a PR ref in status/pr/: its number, or the ref made file-safe.
func previewID(ref string) string {
	if m := prNumber.FindStringSubmatch(ref); m != nil {
		return m[1]
	}
	return strings.NewReplacer("refs/heads/", "", "/", "-").Replace(ref)
}

// observePullRequests follows the repo's pull-request refs, as listed by the poll that just
// ran: an opened or updated one is handed to the previewer, a closed one has its preview
// removed. The first poll also removes the previews of pull requests that closed while meshcd
// was down.
func (c *repoController) observePullRequests(files fs.FS) {
	if c.cfg.PullRequests == "" {
		return
	}
	current := c.poller.Matching(c.cfg.URL, c.cfg.PullRequests)
	events := c.prs.Observe(current)
	if !c.prsSeeded {
		c.prsSeeded = true
		open := map[string]bool{}
		for ref := range current {
			open[previewID(ref)] = true
		}
		stale := map[string][]byte{}
		entries, _ := fs.ReadDir(files, "status/pr")
		for _, e := range entries {
			id, ok := strings.CutSuffix(e.Name(), ".json")
			if ok && !open[id] {
				stale[path.Join("status/pr", id+".json")] = nil
				stale[path.Join("status/pr", id+".md")] = nil
			}
		}
		if len(stale) > 0 {
			c.commits.Submit(sources.Write{Branch: c.statusBranch(), Message: fmt.Sprintf("remove %d previews of closed pull requests", len(stale)/2), Files: stale})
		}
	}
	for _, ev := range events {
		c.previews.enqueue(ev)
	}
}

// previewer previews a repo's pull requests in a goroutine of its own, so a slow cluster's
// server-side diff or a PR gate's load holds up neither the repo's syncs nor any other repo.
// Events for one pull request coalesce: only its latest state is previewed.
type previewer struct {
	c      *repoController
	worker *schema.Worker
	wake   chan struct{}

	mu      sync.Mutex
	pending map[string]sources.RefEvent
	order   []string
	// latest is each open pull request's latest preview, by id, for the web view.
	latest map[string]Preview
}

func newPreviewer(c *repoController) *previewer {
	return &previewer{c: c, worker: c.d.newWorker(), wake: make(chan struct{}, 1), pending: map[string]sources.RefEvent{}, latest: map[string]Preview{}}
}

func (p *previewer) enqueue(ev sources.RefEvent) {
	p.mu.Lock()
	if _, ok := p.pending[ev.Ref]; !ok {
		p.order = append(p.order, ev.Ref)
	}
	p.pending[ev.Ref] = ev
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// keep records a pull request's latest preview for the web view (nil: it closed).
func (p *previewer) keep(id string, pv *Preview) {
	p.mu.Lock()
	if pv == nil {
		delete(p.latest, id)
	} else {
		p.latest[id] = *pv
	}
	p.mu.Unlock()
	p.c.d.changes.notify()
}

// list is the open pull requests' previews, by id, as the web view shows them.
func (p *previewer) list() []web.Preview {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []web.Preview
	for _, id := range slices.Sorted(maps.Keys(p.latest)) {
		pv := p.latest[id]
		w := web.Preview{ID: id, Ref: pv.Ref, Revision: pv.Revision, Error: pv.Error}
		for _, t := range pv.Targets {
			w.Targets = append(w.Targets, web.PreviewTarget{Design: t.Design, Cluster: t.Cluster, Changes: t.Changes, Error: t.Error})
		}
		for _, g := range pv.Gates {
			pg := web.PreviewGate{Design: g.Design, Gate: g.Gate, Pass: g.Pass, Error: g.Error}
			for _, ch := range g.Checks {
				pg.Checks = append(pg.Checks, checkText(ch))
			}
			w.Gates = append(w.Gates, pg)
		}
		out = append(out, w)
	}
	return out
}

func (p *previewer) next() (sources.RefEvent, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.order) == 0 {
		return sources.RefEvent{}, false
	}
	ref := p.order[0]
	p.order = p.order[1:]
	ev := p.pending[ref]
	delete(p.pending, ref)
	return ev, true
}

func (p *previewer) run(ctx context.Context) {
	defer p.worker.Close()
	for {
		ev, ok := p.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-p.wake:
			}
			continue
		}
		c := p.c
		id := previewID(ev.Ref)
		jsonPath, mdPath := path.Join("status/pr", id+".json"), path.Join("status/pr", id+".md")
		if ev.Kind == sources.RefOpened && c.feedback != nil && !c.feedback.open(ctx, ev.Ref) {
			c.inbox.put(prState{ref: ev.Ref, closed: true}) // closed while meshcd was not looking
			continue
		}
		if ev.Kind == sources.RefClosed {
			if c.feedback != nil {
				c.feedback.closed(ev.Ref)
			}
			c.poller.Forget(c.cfg.URL, ev.Ref)
			p.keep(id, nil)
			c.commits.Submit(sources.Write{Branch: c.statusBranch(), Message: "preview of " + id + " removed", Files: map[string][]byte{jsonPath: nil, mdPath: nil}})
			continue
		}
		pv := p.preview(ctx, ev.Ref, id)
		if ctx.Err() != nil {
			return
		}
		data, err := status.JSON(pv)
		if err != nil {
			continue
		}
		md := previewMarkdown(pv)
		p.keep(id, &pv)
		c.commits.Submit(sources.Write{Branch: c.statusBranch(), Message: "preview of " + id, Files: map[string][]byte{jsonPath: data, mdPath: []byte(md)}})
		if c.feedback != nil {
			c.feedback.finished(pv, md)
		}
		c.log.Info("preview", "ref", ev.Ref, "revision", short(pv.Revision))
	}
}

// preview validates, renders and diffs one pull request's head. It never writes to a cluster.
func (p *previewer) preview(ctx context.Context, ref, id string) Preview {
	c := p.c
	pv := Preview{ID: id, Ref: ref}
	res, err := c.poller.Poll(ctx, c.repo, []string{ref})
	if err != nil {
		pv.Error = err.Error()
		return pv
	}
	pv.Revision = res[0].Revision
	opts := schema.DefaultLoadOptions()
	opts.Worker = p.worker
	fl, designs, err := schema.Load(ctx, res[0].FS, opts)
	if err != nil {
		pv.Error = err.Error()
		return pv
	}
	if c.feedback != nil {
		names := make([]string, len(designs))
		for i := range designs {
			names[i] = designs[i].Name
		}
		c.feedback.started(ref, pv.Revision, names)
	}
	r := render.NewRepo(res[0].FS)
	for i := range designs {
		dsg := &designs[i]
		var overBudget error
		for _, sc := range dsg.TargetClusters(fl) {
			t := PreviewTarget{Design: dsg.Name, Cluster: sc.Name, Changes: []string{}}
			fc, ok := c.d.clusters[sc.Name]
			if !ok {
				t.Error = "no credentials for this cluster in the daemon config"
				pv.Targets = append(pv.Targets, t)
				continue
			}
			if overBudget != nil {
				t.Error = render.SkipAfterBudget(overBudget, sc.Name).Error()
				pv.Targets = append(pv.Targets, t)
				continue
			}
			b, err := render.Render(ctx, dsg, &sc, render.Options{Revision: pv.Revision, Repo: r, Cache: c.d.cache, Worker: p.worker, Budget: c.d.cfg.Render.budget(), SecretKey: c.d.secretKey})
			if render.OverBudget(err) {
				overBudget = err
			}
			if err != nil {
				t.Error = err.Error()
				pv.Targets = append(pv.Targets, t)
				continue
			}
			diffs, err := reconciler.Diff(ctx, fc, b, reconciler.DiffOptions{Policy: reconciler.PolicyFor(dsg.Sync), OwnedOnly: true})
			if err != nil {
				t.Error = err.Error()
			}
			for _, df := range diffs {
				t.Changes = append(t.Changes, string(df.Change)+" "+df.Object)
				t.diffs = append(t.diffs, df.Unified)
			}
			pv.Targets = append(pv.Targets, t)
		}
	}
	for i := range designs {
		dsg := &designs[i]
		for _, name := range slices.Sorted(maps.Keys(dsg.Gates)) {
			g := dsg.Gates[name]
			if !slices.Contains(g.Triggers, "pr") {
				continue
			}
			url := g.URL
			if g.PreviewURL != "" {
				url = g.PreviewURL
			}
			pg := PreviewGate{Design: dsg.Name, Gate: name, URL: url}
			var res *gates.Result
			var err error
			ran := c.d.gates.do(ctx, "", func(ctx context.Context) {
				res, err = c.d.load(ctx, g, gates.Target{URL: url, Design: dsg.Name, Gate: name, Revision: pv.Revision, Cluster: "pr-" + id}, gates.PullRequest)
			})
			if !ran {
				err = ctx.Err()
			}
			if err == nil {
				var v gates.Verdict
				if v, err = gates.Judge(res, g, nil); err == nil {
					pg.Pass, pg.Checks, pg.Aborted = v.Pass, v.Checks, res.Aborted
				}
			}
			if err != nil {
				pg.Error = err.Error()
			}
			pv.Gates = append(pv.Gates, pg)
		}
	}
	slices.SortFunc(pv.Targets, func(a, b PreviewTarget) int {
		return strings.Compare(a.Design+"/"+a.Cluster, b.Design+"/"+b.Cluster)
	})
	return pv
}

func previewMarkdown(p Preview) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Preview of pull request %s at `%s`\n\nWhat merging it would change, from a server-side dry run against each live cluster. Secret values are masked.\n\n", p.ID, short(p.Revision))
	if p.Error != "" {
		fmt.Fprintf(&b, "**It cannot be applied:**\n\n```\n%s\n```\n", p.Error)
		return b.String()
	}
	b.WriteString("| design | cluster | changes |\n|---|---|---|\n")
	for _, t := range p.Targets {
		cell := fmt.Sprintf("%d objects", len(t.Changes))
		switch len(t.Changes) {
		case 0:
			cell = "no change"
		case 1:
			cell = "1 object"
		}
		if t.Error != "" {
			cell = "❌ " + strings.Join(strings.Fields(t.Error), " ")
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.Design, t.Cluster, cell)
	}
	for _, g := range p.Gates {
		word := "❌ failed"
		if g.Pass {
			word = "✅ passed"
		}
		fmt.Fprintf(&b, "\n**Gate %s/%s** against %s: %s", g.Design, g.Gate, g.URL, word)
		if g.Error != "" || g.Aborted != "" {
			fmt.Fprintf(&b, " — %s%s", g.Error, g.Aborted)
		}
		b.WriteString("\n")
		for _, c := range g.Checks {
			mark := "✗"
			if c.Pass {
				mark = "✓"
			}
			fmt.Fprintf(&b, "- %s %s: %.3f %s (limit %.3f)\n", mark, c.Name, c.Observed, c.Unit, c.Limit)
		}
	}
	for _, t := range p.Targets {
		if len(t.diffs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n<details><summary>%s on %s: %s</summary>\n\n```diff\n%s```\n</details>\n", t.Design, t.Cluster, strings.Join(t.Changes, ", "), strings.Join(t.diffs, ""))
	}
	return b.String()
}
