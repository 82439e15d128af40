package web

import (
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

var pageNames = []string{"fleet", "cell", "gate", "pulls", "rollouts"}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"short": short,
		"join":  strings.Join,
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"ms":  func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
		"pct": func(f float64) string { return strconv.FormatFloat(100*f, 'f', 2, 64) + "%" },
		"inc": func(i int) int { return i + 1 },
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

// head is what every page says about one repo.
type head struct {
	Index                        int
	URL, Branch, Revision, Error string
	// RevisionURL is the applied commit's web page, when the repo has a web form.
	RevisionURL string
	Subject     string
}

func headOf(i int, r Repo) head {
	h := head{Index: i, URL: r.URL, Branch: r.Branch, Revision: r.Revision, Error: r.Error, Subject: firstLine(r.Message)}
	h.RevisionURL = commitURL(r, r.Revision)
	return h
}

func commitURL(r Repo, rev string) string {
	if r.Web == "" || rev == "" {
		return ""
	}
	return r.Web + r.CommitPath + rev
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// cellView is a cell with what the page derives from it.
type cellView struct {
	Cell
	Repo int
	// State is ok, progress, pending or error: the cell's colour.
	State       string
	RevisionURL string
	// OffHead: the cell applied another revision than its repo's head (an older one still
	// syncing, or the last good one of a design that broke); the fleet page names only those.
	OffHead bool
	// Unhealed counts drift detected and not (yet) healed.
	Unhealed    int
	GateFailing bool
	// Word is the sync state in one word; Href the cell's page; GateLinks its gates' marks.
	Word      string
	Href      template.URL
	GateLinks []gateLink
}

// gateLink is a gate's mark on a cell: pass, fail, running or waiting.
type gateLink struct {
	Name, State string
	Href        template.URL
}

// pathTo joins escaped path segments into a link of the view's own; every segment is
// escaped here, so the result is safe to use as a URL as it is.
func pathTo(segments ...string) template.URL {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return template.URL(b.String())
}

func viewCell(i int, r Repo, c Cell) *cellView {
	v := &cellView{Cell: c, Repo: i, RevisionURL: commitURL(r, c.Revision), Unhealed: c.Drift.Detected - c.Drift.Healed,
		OffHead: c.Revision != "" && c.Revision != r.Revision}
	switch {
	case c.Error != "" || c.Failed > 0 || c.Health == "Failed":
		v.State = "error"
	case c.Pending || c.Health == "":
		v.State = "pending"
	case c.Health != "Current":
		v.State = "progress"
	default:
		v.State = "ok"
	}
	switch {
	case c.Error != "":
		v.Word = "error"
	case c.Pending:
		v.Word = "syncing"
	case c.Health != "":
		v.Word = c.Health
	default:
		v.Word = "pending"
	}
	repo := strconv.Itoa(i)
	v.Href = pathTo("repos", repo, "designs", c.Design, "clusters", c.Cluster)
	for _, g := range c.Gates {
		l := gateLink{Name: g.Name, Href: pathTo("repos", repo, "gates", c.Design, g.Name, c.Cluster)}
		switch {
		case g.Running:
			l.State = "running"
		case g.Error != "" || (g.Measured && !g.Pass):
			l.State = "fail"
			v.GateFailing = true
		case !g.Measured:
			l.State = "waiting"
		default:
			l.State = "pass"
		}
		v.GateLinks = append(v.GateLinks, l)
	}
	return v
}

// bad reports a cell that someone should look at: it failed, drifted and was not healed, or
// a gate failed on it.
func (c *cellView) bad() bool {
	return c.State == "error" || c.Unhealed > 0 || len(c.Drift.Contested) > 0 || c.GateFailing
}

func (c *cellView) matches(state string) bool {
	switch state {
	case "error":
		return c.State == "error"
	case "unhealthy":
		return c.State != "ok"
	case "drift":
		return c.Drift.Detected > 0
	case "gate":
		return c.GateFailing
	}
	return true
}

type fleetRow struct {
	Repo   int
	Design string
	// Cells follow the page's clusters; nil where the design does not target the cluster.
	Cells []*cellView
	Bad   bool
}

type fleetPage struct {
	Nav      string
	Repos    []head
	Clusters []string
	Rows     []fleetRow
	// Labels are the cluster labels to filter by (key=value), States the cell states.
	Labels, States []string
	Label, State   string
	Designs, Bad   int
	// OffHead counts the cells shown at another revision than their repo's head.
	OffHead int
}

// fleet is every design × cluster, rows with something wrong first; ?label=key=value keeps
// the clusters with that label and ?state= the rows with a cell in that state.
func (v *view) fleet(f Fleet, r *http.Request) (any, int) {
	p := fleetPage{Nav: "fleet", Label: r.URL.Query().Get("label"), State: r.URL.Query().Get("state"),
		States: []string{"error", "unhealthy", "drift", "gate"}}
	labels := map[string]bool{}
	clusters := map[string]bool{}
	for i, repo := range f.Repos {
		p.Repos = append(p.Repos, headOf(i, repo))
		for name, ls := range repo.Clusters {
			for k, val := range ls {
				labels[k+"="+val] = true
			}
			if p.Label == "" || hasLabel(ls, p.Label) {
				clusters[name] = true
			}
		}
		for _, c := range repo.Cells {
			if _, declared := repo.Clusters[c.Cluster]; !declared && p.Label == "" {
				clusters[c.Cluster] = true
			}
		}
	}
	p.Labels = slices.Sorted(maps.Keys(labels))
	p.Clusters = slices.Sorted(maps.Keys(clusters))
	col := map[string]int{}
	for i, c := range p.Clusters {
		col[c] = i
	}
	for i, repo := range f.Repos {
		rows := map[string]*fleetRow{}
		for _, c := range repo.Cells {
			row := rows[c.Design]
			if row == nil {
				row = &fleetRow{Repo: i, Design: c.Design, Cells: make([]*cellView, len(p.Clusters))}
				rows[c.Design] = row
			}
			j, shown := col[c.Cluster]
			if !shown {
				continue
			}
			row.Cells[j] = viewCell(i, repo, c)
		}
		for _, name := range slices.Sorted(maps.Keys(rows)) {
			row := rows[name]
			keep := p.State == ""
			for _, c := range row.Cells {
				if c == nil {
					continue
				}
				row.Bad = row.Bad || c.bad()
				keep = keep || c.matches(p.State)
			}
			p.Designs++
			if keep {
				p.Rows = append(p.Rows, *row)
			}
		}
	}
	slices.SortStableFunc(p.Rows, func(a, b fleetRow) int {
		if a.Bad != b.Bad {
			if a.Bad {
				return -1
			}
			return 1
		}
		return 0
	})
	for _, row := range p.Rows {
		if row.Bad {
			p.Bad++
		}
		for _, c := range row.Cells {
			if c != nil && c.OffHead {
				p.OffHead++
			}
		}
	}
	return p, http.StatusOK
}

func hasLabel(ls map[string]string, kv string) bool {
	k, val, _ := strings.Cut(kv, "=")
	got, ok := ls[k]
	return ok && got == val
}

type cellPage struct {
	Nav   string
	Repo  head
	Cell  *cellView
	Gates []GateHistory
}

// cell is one design on one cluster: its objects, what is not ready, its drift ledger and
// its gates.
func (v *view) cell(f Fleet, r *http.Request) (any, int) {
	repo, ok := repoAt(f, r)
	if !ok {
		return nil, http.StatusNotFound
	}
	i, _ := strconv.Atoi(r.PathValue("repo"))
	for _, c := range repo.Cells {
		if c.Design == r.PathValue("design") && c.Cluster == r.PathValue("cluster") {
			p := cellPage{Nav: "fleet", Repo: headOf(i, repo), Cell: viewCell(i, repo, c)}
			for _, g := range repo.Gates {
				if g.Design == c.Design && g.Cluster == c.Cluster {
					p.Gates = append(p.Gates, g)
				}
			}
			return p, http.StatusOK
		}
	}
	return nil, http.StatusNotFound
}

// indexedRun is a run in the gate page's table: Committed when its histogram is in the
// applied revision's files.
type indexedRun struct {
	Run
	Index     int
	Committed bool
}

func fileExists(fsys fs.FS, name string) bool {
	_, err := fs.Stat(fsys, name)
	return err == nil
}

type gatePage struct {
	Nav   string
	Repo  head
	Gate  GateHistory
	Chart chartData
	// Runs are newest first, for the table, each with its index in the history.
	Runs     []indexedRun
	Failed   int
	HasChart bool
}

// chartData is what the page's script draws with uPlot: one x per run (seconds), the
// percentiles in ms, the error rate in %, the budget and the baseline each run was judged by.
type chartData struct {
	X         []int64            `json:"x"`
	P50       []float64          `json:"p50"`
	P90       []float64          `json:"p90"`
	P99       []float64          `json:"p99"`
	ErrorRate []float64          `json:"errorRate"`
	Failed    []*float64         `json:"failed"`
	Baseline  []*float64         `json:"baseline"`
	Budget    map[string]float64 `json:"budget"`
	Revisions []string           `json:"revisions"`
	Verdicts  []bool             `json:"verdicts"`
}

// gate is a gate's history on a cluster.
func (v *view) gate(f Fleet, r *http.Request) (any, int) {
	repo, ok := repoAt(f, r)
	if !ok {
		return nil, http.StatusNotFound
	}
	i, _ := strconv.Atoi(r.PathValue("repo"))
	for _, g := range repo.Gates {
		if g.Design != r.PathValue("design") || g.Gate != r.PathValue("gate") || g.Cluster != r.PathValue("cluster") {
			continue
		}
		p := gatePage{Nav: "fleet", Repo: headOf(i, repo), Gate: g, HasChart: len(g.Chart) > 0,
			Chart: chartData{Budget: g.Budget}}
		var baseline *float64
		for _, run := range g.Runs {
			p.Chart.X = append(p.Chart.X, run.Time.Unix())
			p.Chart.P50 = append(p.Chart.P50, run.P50)
			p.Chart.P90 = append(p.Chart.P90, run.P90)
			p.Chart.P99 = append(p.Chart.P99, run.P99)
			p.Chart.ErrorRate = append(p.Chart.ErrorRate, 100*run.ErrorRate)
			p.Chart.Revisions = append(p.Chart.Revisions, short(run.Revision))
			p.Chart.Verdicts = append(p.Chart.Verdicts, run.Pass)
			p.Chart.Baseline = append(p.Chart.Baseline, baseline)
			if run.Pass {
				p99 := run.P99
				baseline = &p99
				p.Chart.Failed = append(p.Chart.Failed, nil)
			} else {
				p99 := run.P99
				p.Chart.Failed = append(p.Chart.Failed, &p99)
				p.Failed++
			}
		}
		for i := len(g.Runs) - 1; i >= 0; i-- {
			p.Runs = append(p.Runs, indexedRun{Run: g.Runs[i], Index: i, Committed: g.Runs[i].Chart != "" && repo.Files != nil && fileExists(repo.Files, g.Runs[i].Chart)})
		}
		return p, http.StatusOK
	}
	return nil, http.StatusNotFound
}

type pullsPage struct {
	Nav   string
	Repos []struct {
		Repo     head
		Previews []Preview
	}
}

func (v *view) pulls(f Fleet, _ *http.Request) (any, int) {
	p := pullsPage{Nav: "pulls"}
	for i, repo := range f.Repos {
		if len(repo.Previews) == 0 {
			continue
		}
		p.Repos = append(p.Repos, struct {
			Repo     head
			Previews []Preview
		}{headOf(i, repo), repo.Previews})
	}
	return p, http.StatusOK
}

type rolloutView struct {
	Rollout
	Repo     head
	Clusters []string
}

type rolloutsPage struct {
	Nav      string
	Rollouts []rolloutView
}

func (v *view) rollouts(f Fleet, _ *http.Request) (any, int) {
	p := rolloutsPage{Nav: "rollouts"}
	for i, repo := range f.Repos {
		for _, ro := range repo.Rollouts {
			p.Rollouts = append(p.Rollouts, rolloutView{Rollout: ro, Repo: headOf(i, repo), Clusters: slices.Sorted(maps.Keys(ro.Verdicts))})
		}
	}
	return p, http.StatusOK
}
