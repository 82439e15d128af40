package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/meshcd/meshcd/gates"
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

// previews follows the repo's pull-request refs: an opened or updated one is validated,
// rendered for every target cluster and diffed (server-side dry run) against the live
// clusters, and its preview committed; a closed one has its preview removed. A restart
// removes the previews of pull requests that closed while meshcd was down.
func (d *Daemon) previews(ctx context.Context, rc RepoConfig, repo sources.Repo, st *repoState, files fs.FS) {
	if rc.PullRequests == "" {
		return
	}
	current := d.poller.Matching(rc.URL, rc.PullRequests)
	events := st.prs.Observe(current)
	out := map[string][]byte{}
	if !st.prsSeeded {
		st.prsSeeded = true
		open := map[string]bool{}
		for ref := range current {
			open[previewID(ref)] = true
		}
		entries, _ := fs.ReadDir(files, "status/pr")
		for _, e := range entries {
			id, ok := strings.CutSuffix(e.Name(), ".json")
			if ok && !open[id] {
				out[path.Join("status/pr", id+".json")] = nil
				out[path.Join("status/pr", id+".md")] = nil
			}
		}
	}
	for _, ev := range events {
		id := previewID(ev.Ref)
		jsonPath, mdPath := path.Join("status/pr", id+".json"), path.Join("status/pr", id+".md")
		if ev.Kind == sources.RefClosed {
			out[jsonPath], out[mdPath] = nil, nil
			continue
		}
		p := d.preview(ctx, repo, ev.Ref, id)
		data, err := status.JSON(p)
		if err != nil {
			continue
		}
		out[jsonPath], out[mdPath] = data, []byte(previewMarkdown(p))
	}
	if len(out) == 0 {
		return
	}
	opts := sources.DefaultCommitOptions()
	opts.Branch = rc.Branch
	if rc.StatusBranch != "" {
		opts.Branch = rc.StatusBranch
	}
	opts.Message = fmt.Sprintf("%d pull-request preview files", len(out))
	if _, err := d.poller.CommitFiles(ctx, repo, opts, out); err != nil && !errors.Is(err, sources.ErrNothingToCommit) {
		d.log.Error("preview commit failed", "repo", sources.Redact(rc.URL), "err", err)
		return
	}
	d.log.Info("previews", "repo", sources.Redact(rc.URL), "events", len(events))
}

// preview validates, renders and diffs one pull request's head. It never writes to a cluster.
func (d *Daemon) preview(ctx context.Context, repo sources.Repo, ref, id string) Preview {
	p := Preview{ID: id, Ref: ref}
	res, err := d.poller.Poll(ctx, repo, []string{ref})
	if err != nil {
		p.Error = err.Error()
		return p
	}
	p.Revision = res[0].Revision
	fl, designs, err := schema.Load(ctx, res[0].FS, schema.DefaultLoadOptions())
	if err != nil {
		p.Error = err.Error()
		return p
	}
	r := render.NewRepo(res[0].FS)
	for i := range designs {
		dsg := &designs[i]
		for _, sc := range dsg.TargetClusters(fl) {
			t := PreviewTarget{Design: dsg.Name, Cluster: sc.Name, Changes: []string{}}
			c, ok := d.clusters[sc.Name]
			if !ok {
				t.Error = "no credentials for this cluster in the daemon config"
				p.Targets = append(p.Targets, t)
				continue
			}
			b, err := render.Render(ctx, dsg, &sc, render.Options{Revision: p.Revision, Repo: r, Cache: d.cache})
			if err != nil {
				t.Error = err.Error()
				p.Targets = append(p.Targets, t)
				continue
			}
			diffs, err := reconciler.Diff(ctx, c, b, reconciler.PolicyFor(dsg.Sync))
			if err != nil {
				t.Error = err.Error()
			}
			for _, df := range diffs {
				t.Changes = append(t.Changes, string(df.Change)+" "+df.Object)
				t.diffs = append(t.diffs, df.Unified)
			}
			p.Targets = append(p.Targets, t)
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
			res, err := gates.Run(ctx, g, gates.Target{URL: url, Design: dsg.Name, Gate: name, Revision: p.Revision, Cluster: "pr-" + id})
			if err == nil {
				var v gates.Verdict
				if v, err = gates.Judge(res, g, nil); err == nil {
					pg.Pass, pg.Checks, pg.Aborted = v.Pass, v.Checks, res.Aborted
				}
			}
			if err != nil {
				pg.Error = err.Error()
			}
			p.Gates = append(p.Gates, pg)
		}
	}
	slices.SortFunc(p.Targets, func(a, b PreviewTarget) int {
		return strings.Compare(a.Design+"/"+a.Cluster, b.Design+"/"+b.Cluster)
	})
	return p
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
		if len(t.Changes) == 0 {
			cell = "no change"
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
