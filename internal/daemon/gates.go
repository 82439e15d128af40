package daemon

import (
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/sources"
	"github.com/meshcd/meshcd/status"
	"github.com/robfig/cron/v3"
)

// runGates runs the gates triggered by change for every design that synced cleanly and is
// healthy on a cluster, once per revision, and keeps their status files for the next commit.
func (d *Daemon) runGates(ctx context.Context, rc RepoConfig, st *repoState, designs []schema.Design, fl *schema.Fleet, results []*reconciler.SyncResult, revision string, files fs.FS) {
	healthy := map[string]bool{}
	for _, res := range results {
		if res.Error == "" && res.Health.Status == "Current" {
			healthy[res.Design+"/"+res.Cluster] = true
		}
	}
	// Verdicts of gates the repo no longer has leave the status files.
	exists := map[string]bool{}
	for i := range designs {
		for name := range designs[i].Gates {
			exists[designs[i].Name+"/"+name] = true
		}
	}
	d.mu.Lock()
	for key := range st.gates {
		parts := strings.SplitN(key, "/", 3)
		if !exists[parts[0]+"/"+parts[1]] {
			delete(st.gates, key)
		}
	}
	d.mu.Unlock()
	for i := range designs {
		dsg := &designs[i]
		for _, name := range slices.Sorted(maps.Keys(dsg.Gates)) {
			g := dsg.Gates[name]
			if !slices.Contains(g.Triggers, "change") {
				continue
			}
			for _, c := range dsg.TargetClusters(fl) {
				key := dsg.Name + "/" + name + "/" + c.Name
				d.mu.Lock()
				done := st.gated[key] == revision
				d.mu.Unlock()
				// After a restart: a verdict already committed for this revision is not rerun,
				// and the status files keep showing it.
				if !done {
					if g, ok := committedVerdict(files, dsg.Name, name, c.Name); ok && g.Revision == revision {
						done = true
						d.mu.Lock()
						st.gates[key] = g
						st.gated[key] = revision
						d.mu.Unlock()
					}
				}
				if done || !healthy[dsg.Name+"/"+c.Name] {
					continue
				}
				d.runGate(ctx, st, dsg.Name, name, g, c.Name, revision, files)
				d.mu.Lock()
				st.gated[key] = revision
				d.mu.Unlock()
			}
		}
	}
}

// committedVerdict is the gate's latest committed verdict for the cluster, if any.
func committedVerdict(files fs.FS, design, gate, cluster string) (status.Gate, bool) {
	data, err := fs.ReadFile(files, path.Join(gates.Dir(design, gate), cluster+".json"))
	if err != nil {
		return status.Gate{}, false
	}
	var latest struct {
		Result  gates.Result  `json:"result"`
		Verdict gates.Verdict `json:"verdict"`
	}
	if json.Unmarshal(data, &latest) != nil {
		return status.Gate{}, false
	}
	return status.Gate{Name: gate, Pass: latest.Verdict.Pass, Revision: latest.Result.Target.Revision, P99Ms: latest.Result.Latencies.P99}, true
}

// runGate runs one gate and records its verdict and files.
func (d *Daemon) runGate(ctx context.Context, st *repoState, design, name string, g schema.Gate, cluster, revision string, files fs.FS) {
	histPath := path.Join(gates.Dir(design, name), cluster+".history.jsonl")
	d.mu.Lock()
	prior, ok := st.gateFiles[histPath]
	d.mu.Unlock()
	if !ok {
		prior, _ = fs.ReadFile(files, histPath)
	}
	baseline, err := gates.Baseline(prior)
	if err != nil {
		d.log.Error("gate history unreadable", "gate", design+"/"+name, "cluster", cluster, "err", err)
	}
	res, err := gates.Run(ctx, g, gates.Target{Cluster: cluster, Design: design, Gate: name, Revision: revision})
	if err != nil {
		d.log.Error("gate failed to run", "gate", design+"/"+name, "cluster", cluster, "err", err)
		return
	}
	v, err := gates.Judge(res, g, baseline)
	if err != nil {
		d.log.Error("gate", "gate", design+"/"+name, "err", err)
		return
	}
	out, err := gates.Files(res, v, prior)
	if err != nil {
		return
	}
	verdict := "fail"
	if v.Pass {
		verdict = "pass"
	}
	d.metrics.gates.WithLabelValues(design, name, cluster, verdict).Inc()
	d.log.Info("gate", "gate", design+"/"+name, "cluster", cluster, "verdict", verdict, "p99ms", res.Latencies.P99)
	d.mu.Lock()
	maps.Copy(st.gateFiles, out)
	st.gates[design+"/"+name+"/"+cluster] = status.Gate{Name: name, Pass: v.Pass, Revision: revision, P99Ms: res.Latencies.P99}
	d.mu.Unlock()
}

// schedule (re)plans the gates triggered by cron for the repo's current revision: each runs on
// its design's schedule for every healthy target cluster, never twice at once, and missed
// runs (meshcd was down) are not replayed.
func (d *Daemon) schedule(ctx context.Context, rc RepoConfig, repo sources.Repo, st *repoState, fl *schema.Fleet, designs []schema.Design, revision string, files fs.FS) {
	d.stopSchedule(st)
	c := cron.New(cron.WithParser(schema.CronParser), cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	d.mu.Lock()
	st.cron = c
	d.mu.Unlock()
	for i := range designs {
		dsg := &designs[i]
		for _, name := range slices.Sorted(maps.Keys(dsg.Gates)) {
			g := dsg.Gates[name]
			if g.Schedule == "" || !slices.Contains(g.Triggers, "cron") {
				continue
			}
			var clusters []string
			for _, tc := range dsg.TargetClusters(fl) {
				if d.shard.Owns(tc.Name) {
					clusters = append(clusters, tc.Name)
				}
			}
			design := dsg.Name
			if _, err := c.AddFunc(g.Schedule, func() {
				for _, cl := range clusters {
					if ctx.Err() != nil {
						return
					}
					d.runGate(ctx, st, design, name, g, cl, revision, files)
				}
				d.writeStatus(ctx, rc, repo)
			}); err != nil {
				d.log.Error("gate schedule", "gate", design+"/"+name, "schedule", g.Schedule, "err", err)
			}
		}
	}
	c.Start()
	context.AfterFunc(ctx, func() { c.Stop() })
}

// stopSchedule stops the repo's scheduled gates and waits for a run in flight, so a gate of
// an old revision cannot record a verdict after the new revision is applied.
func (d *Daemon) stopSchedule(st *repoState) {
	d.mu.Lock()
	c := st.cron
	st.cron = nil
	d.mu.Unlock()
	if c != nil {
		<-c.Stop().Done()
	}
}
