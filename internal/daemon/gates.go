package daemon

import (
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"path"
	"slices"

	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/status"
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
