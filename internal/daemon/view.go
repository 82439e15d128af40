package daemon

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io/fs"
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/internal/web"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/status"
)

// changes tells the web view's pages that something they show changed. A subscriber's channel
// holds one signal, so a burst of changes wakes it once and a slow page never blocks anyone.
type changes struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func (ch *changes) subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	ch.mu.Lock()
	if ch.subs == nil {
		ch.subs = map[chan struct{}]struct{}{}
	}
	ch.subs[c] = struct{}{}
	ch.mu.Unlock()
	return c, func() {
		ch.mu.Lock()
		delete(ch.subs, c)
		ch.mu.Unlock()
	}
}

func (ch *changes) notify() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for c := range ch.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// View is the fleet as the controllers last published it (web.Source).
func (d *Daemon) View() web.Fleet {
	f := web.Fleet{Repos: []web.Repo{}}
	t := d.term.Load()
	if t == nil {
		return f
	}
	for _, c := range t.repos {
		r := *c.view.Load()
		r.Previews = c.previews.list()
		f.Repos = append(f.Repos, r)
	}
	return f
}

// Subscribe signals every change of the view (web.Source).
func (d *Daemon) Subscribe() (<-chan struct{}, func()) { return d.changes.subscribe() }

// publishView builds the repo's view from the controller's state and tells the pages when it
// differs from the last one.
func (c *repoController) publishView() {
	r := &web.Repo{URL: c.status().URL, Branch: c.cfg.Branch, Revision: c.applied, Message: c.message, Error: c.loadErr,
		Web: c.web, CommitPath: c.commitPath, Clusters: map[string]map[string]string{}, Cells: []web.Cell{}, Files: c.files}
	if c.fleet != nil {
		for _, cl := range c.fleet.Clusters {
			if c.d.shard.Owns(cl.Name) {
				r.Clusters[cl.Name] = maps.Clone(cl.Labels)
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(c.syncs)) {
		r.Cells = append(r.Cells, c.cellView(c.syncs[key]))
	}
	r.Gates = c.gateViews()
	r.Rollouts = c.rolloutViews()
	data, _ := json.Marshal(r)
	sum := sha256.Sum256(data)
	c.view.Store(r)
	if sum != c.viewSum {
		c.viewSum = sum
		c.d.changes.notify()
	}
}

func (c *repoController) status() *RepoStatus { return c.published.Load() }

func (c *repoController) cellView(st *syncState) web.Cell {
	s := st.status
	cell := web.Cell{Design: s.Design, Cluster: s.Cluster, Revision: s.Revision, Health: s.Health, Pending: st.pending,
		Error: s.Error, Objects: s.Objects["total"], Failed: s.Objects["failed"], NotReady: slices.Clone(s.NotReady)}
	if det := c.d.drift[s.Cluster]; det != nil {
		ledger := status.MergeLedger(c.ledger[s.Cluster+"/"+s.Design], det.Report(s.Design).Entries)
		sum := status.Summarise(ledger)
		cell.Drift = web.DriftSummary{Detected: sum.Detected, Healed: sum.Healed, Contested: sum.Contested}
		for _, e := range ledger {
			cell.Ledger = append(cell.Ledger, web.DriftRecord{Object: e.Object, Kind: string(e.Kind), Fields: e.Fields, By: e.By,
				Detected: e.DetectedAt, Healed: e.HealedAt, Contested: e.Contested, Error: e.Error})
		}
	}
	if last := st.last; last != nil {
		cell.Duration = last.Duration.Round(time.Millisecond).String()
		notReady := map[string]int{}
		for i, o := range last.Health.NotReady {
			notReady[o.Object] = i
		}
		for _, e := range last.Entries {
			o := web.Object{Name: e.Object, Action: string(e.Action), Error: e.Error}
			if i, ok := notReady[e.Object]; ok {
				o.Health, o.Message = last.Health.NotReady[i].Status, last.Health.NotReady[i].Message
			} else if e.Error == "" && last.Health.Status != "" {
				o.Health = "Current"
			}
			cell.Entries = append(cell.Entries, o)
		}
	}
	if dsg := c.designs[s.Design]; dsg != nil {
		for _, name := range slices.Sorted(maps.Keys(dsg.Gates)) {
			key := s.Design + "/" + name + "/" + s.Cluster
			m := web.GateMark{Name: name}
			if v, ok := c.gates[key]; ok {
				m.Measured, m.Pass, m.Error = true, v.Pass, v.Error
			}
			_, m.Running = c.running[key]
			cell.Gates = append(cell.Gates, m)
		}
	}
	return cell
}

// gateViews are the histories of the gates that have run, read from the files the controller
// keeps, or from the repo for gates that have not run since the daemon started.
func (c *repoController) gateViews() []web.GateHistory {
	var out []web.GateHistory
	for _, key := range slices.Sorted(maps.Keys(c.gates)) {
		design, rest, _ := strings.Cut(key, "/")
		name, cluster, _ := strings.Cut(rest, "/")
		histPath := path.Join(gates.Dir(design, name), cluster+".history.jsonl")
		history, ok := c.gateFiles[histPath]
		if !ok {
			if history, ok = c.repoHistory[histPath]; !ok && c.files != nil {
				history, _ = fs.ReadFile(c.files, histPath)
				c.repoHistory[histPath] = history
			}
		}
		g := web.GateHistory{Design: design, Gate: name, Cluster: cluster, Runs: parseHistory(design, name, cluster, history),
			Checks: c.gateChecks[key], Chart: c.gateCharts[key]}
		if dsg := c.designs[design]; dsg != nil {
			th := dsg.Gates[name].Thresholds
			g.Budget = map[string]float64{}
			for k, d := range map[string]*schema.Duration{"p50": th.P50, "p90": th.P90, "p99": th.P99} {
				if d != nil {
					g.Budget[k] = float64(d.Duration) / float64(time.Millisecond)
				}
			}
			if th.ErrorRate != nil {
				g.Budget["errorRate"] = *th.ErrorRate
			}
		}
		out = append(out, g)
	}
	return out
}

func parseHistory(design, gate, cluster string, data []byte) []web.Run {
	var runs []web.Run
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l gates.HistoryLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		runs = append(runs, web.Run{Time: l.Time, Revision: l.Revision, Pass: l.Pass, P50: l.P50, P90: l.P90, P99: l.P99, ErrorRate: l.ErrorRate,
			Chart: gates.ChartPath(design, gate, cluster, l.Time, l.Revision)})
	}
	return runs
}

// rolloutViews are the gates with a rollout: the steps, the weight now, why it holds, and the
// gate's verdict on each target cluster at the applied revision.
func (c *repoController) rolloutViews() []web.Rollout {
	var out []web.Rollout
	for _, design := range slices.Sorted(maps.Keys(c.designs)) {
		dsg := c.designs[design]
		for _, name := range slices.Sorted(maps.Keys(dsg.Gates)) {
			g := dsg.Gates[name]
			if g.Rollout == nil {
				continue
			}
			ro := web.Rollout{Design: design, Gate: name, Service: g.Rollout.Service, Version: g.Rollout.Version,
				Steps: slices.Clone(g.Rollout.Steps), Current: -1, Held: g.Rollout.Held, Verdicts: map[string]string{}}
			if g.Rollout.Current != nil {
				ro.Current = *g.Rollout.Current
			}
			for _, st := range c.syncs {
				if st.status.Design != design {
					continue
				}
				key := design + "/" + name + "/" + st.status.Cluster
				word := "waiting"
				if v, ok := c.gates[key]; ok && measured(v, st, g) {
					word = "fail"
					if v.Pass {
						word = "pass"
					}
				}
				if _, ok := c.running[key]; ok {
					word = "running"
				}
				ro.Verdicts[st.status.Cluster] = word
			}
			out = append(out, ro)
		}
	}
	return out
}

// webForm is the repo's web page and the path of a commit under it, when the URL has a web
// form: an https URL, or a repo whose host takes feedback.
func webForm(rc RepoConfig) (page, commitPath string) {
	u, err := url.Parse(rc.URL)
	if err != nil || (u.Scheme != "https" && rc.Feedback == nil) || (u.Scheme != "https" && u.Scheme != "http") {
		return "", ""
	}
	u.User = nil
	page = strings.TrimSuffix(strings.TrimSuffix(u.String(), "/"), ".git")
	if rc.Feedback != nil && rc.Feedback.Provider == "gitlab" {
		return page, "/-/commit/"
	}
	return page, "/commit/"
}
