package daemon

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/sources"
	"github.com/meshcd/meshcd/status"
	"github.com/prometheus/client_golang/prometheus"
)

// gateRunner runs gate loads for every repo: at most one per target cluster at a time (two
// loads through one cluster would skew each other's numbers) and at most max in all. A run
// waits for its turn in its own goroutine; nothing that asks for one waits.
type gateRunner struct {
	slots   chan struct{}
	running prometheus.Gauge

	mu       sync.Mutex
	clusters map[string]chan struct{}
}

func newGateRunner(max int) *gateRunner {
	if max <= 0 {
		max = 4
	}
	return &gateRunner{slots: make(chan struct{}, max), clusters: map[string]chan struct{}{}}
}

// do runs fn once the cluster's slot (none for "") and a global slot are free, and reports
// whether it ran: a run cancelled while it waits does not.
func (g *gateRunner) do(ctx context.Context, cluster string, fn func(context.Context)) bool {
	if cluster != "" {
		g.mu.Lock()
		slot, ok := g.clusters[cluster]
		if !ok {
			slot = make(chan struct{}, 1)
			g.clusters[cluster] = slot
		}
		g.mu.Unlock()
		select {
		case slot <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		defer func() { <-slot }()
	}
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-g.slots }()
	if g.running != nil {
		g.running.Inc()
		defer g.running.Dec()
	}
	fn(ctx)
	return true
}

// gateRun is one gate run in flight for a design, gate and cluster.
type gateRun struct {
	cancel   context.CancelFunc
	trigger  string
	revision string
	digest   string
	spec     string
	// loading is set once the run has its slots and sends load.
	loading atomic.Bool
}

// gateOutcome is what a run measured, judged and wrote.
type gateOutcome struct {
	result    *gates.Result
	verdict   gates.Verdict
	files     map[string][]byte
	err       error
	cancelled bool
}

// load checks a gate against the daemon's policy (nothing is sent when it refuses), then runs
// its load in a child process, pinned to the address the policy checked.
func (d *Daemon) load(ctx context.Context, g schema.Gate, t gates.Target, by gates.Trigger) (*gates.Result, error) {
	t.Pinned = map[string]netip.Addr{}
	for _, u := range gates.URLs(g, t.URL) {
		addr, err := d.policy.Check(ctx, g, u, by)
		if err != nil {
			return nil, fmt.Errorf("gate %s/%s: %w", t.Design, t.Gate, err)
		}
		if parsed, err := url.Parse(u); err == nil {
			t.Pinned[parsed.Hostname()] = addr
		}
	}
	if d.loads == nil {
		return gates.Run(ctx, g, t)
	}
	return d.loads.Run(ctx, g, t)
}

// measure runs a gate and judges it against the last passing run of its history. It touches
// no controller state, so it runs in the gate's own goroutine.
func (d *Daemon) measure(ctx context.Context, g schema.Gate, t gates.Target, history []byte) gateOutcome {
	baseline, err := gates.Baseline(history)
	if err != nil {
		return gateOutcome{err: fmt.Errorf("gate %s/%s: history of %s unreadable: %w", t.Design, t.Gate, t.Cluster, err)}
	}
	res, err := d.load(ctx, g, t, gates.Trusted)
	if ctx.Err() != nil {
		return gateOutcome{cancelled: true}
	}
	if err != nil {
		return gateOutcome{err: err}
	}
	v, err := gates.Judge(res, g, baseline)
	if err != nil {
		return gateOutcome{err: fmt.Errorf("gate %s/%s: %w", t.Design, t.Gate, err)}
	}
	files, err := gates.Files(res, v, history)
	return gateOutcome{result: res, verdict: v, files: files, err: err}
}

func gateStatus(name string, res *gates.Result, v gates.Verdict) status.Gate {
	return status.Gate{Name: name, Pass: v.Pass, Revision: res.Target.Revision, Digest: res.Target.Digest, Spec: res.Target.Spec, P99Ms: res.Latencies.P99}
}

// changeGates starts the gates triggered by change for what a healthy sync applied: once per
// change of the design's bundle on that cluster or of the gate's own definition (a commit that
// leaves both as they were does not rerun them), and not again after a restart for what was
// measured before.
func (c *repoController) changeGates(ctx context.Context, st *syncState) {
	dsg := c.designs[st.status.Design]
	if dsg == nil {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(dsg.Gates)) {
		g := dsg.Gates[name]
		if !slices.Contains(g.Triggers, "change") {
			continue
		}
		key := dsg.Name + "/" + name + "/" + st.status.Cluster
		if v, ok := c.gates[key]; ok && measured(v, st, g) {
			// Measured before (a restart): a rollout step that was decided on it but never
			// committed is decided again.
			c.rollout(dsg.Name, name)
			continue
		}
		if r := c.running[key]; r != nil && r.digest == st.digest && r.spec == gates.SpecHash(g) {
			continue
		}
		c.startGate(ctx, dsg.Name, name, g, st, "change")
	}
}

// measured reports whether a verdict is about what the sync state applied, judged by the
// gate as it is defined now.
func measured(v status.Gate, st *syncState, g schema.Gate) bool {
	if v.Error != "" {
		return false // it never ran: try again (the daemon's policy may allow it now)
	}
	if v.Digest == "" {
		return v.Revision == st.revision // a verdict from before digests were recorded
	}
	return v.Digest == st.digest && v.Spec == gates.SpecHash(g)
}

// startGate runs a gate on a cluster in its own goroutine, through the gate runner; its
// outcome comes back through the inbox. A gate never runs twice at once on one cluster.
func (c *repoController) startGate(ctx context.Context, design, name string, g schema.Gate, st *syncState, trigger string) {
	key := design + "/" + name + "/" + st.status.Cluster
	if r := c.running[key]; r != nil {
		if trigger != "change" {
			return // a scheduled run while one is in flight is skipped
		}
		r.cancel() // a change gate measures the newest content; the older run is moot
	}
	histPath := path.Join(gates.Dir(design, name), st.status.Cluster+".history.jsonl")
	history, ok := c.gateFiles[histPath]
	if !ok && c.files != nil {
		history, _ = fs.ReadFile(c.files, histPath)
	}
	history = slices.Clone(history)
	gctx, cancel := context.WithCancel(ctx)
	run := &gateRun{cancel: cancel, trigger: trigger, revision: st.revision, digest: st.digest, spec: gates.SpecHash(g)}
	c.running[key] = run
	target := gates.Target{Cluster: st.status.Cluster, Design: design, Gate: name, Revision: st.revision, Digest: st.digest, Spec: run.spec}
	c.log.Info("gate started", "gate", design+"/"+name, "cluster", target.Cluster, "trigger", trigger, "revision", short(st.revision))
	go func() {
		var out gateOutcome
		if !c.d.gates.do(gctx, target.Cluster, func(ctx context.Context) {
			run.loading.Store(true)
			c.inbox.put(gateLoading{}) // the published status shows it loading
			out = c.d.measure(ctx, g, target, history)
		}) {
			out.cancelled = true
		}
		c.inbox.put(gateDone{key: key, run: run, out: out})
	}()
}

// onGate records a gate's verdict and files, and moves its rollout on.
func (c *repoController) onGate(ev gateDone) {
	if c.running[ev.key] == ev.run {
		delete(c.running, ev.key)
	}
	ev.run.cancel()
	if ev.out.cancelled {
		return
	}
	design, rest, _ := strings.Cut(ev.key, "/")
	name, cluster, _ := strings.Cut(rest, "/")
	if dsg := c.designs[design]; dsg == nil || !hasGate(dsg, name) {
		return // the gate left the repo while this run was in flight: nothing to record
	}
	if ev.out.err != nil {
		c.d.metrics.gates.WithLabelValues(design, name, cluster, "error").Inc()
		c.log.Error("gate failed to run", "gate", design+"/"+name, "cluster", cluster, "err", ev.out.err)
		// Not a verdict, but what the status must say: no load was sent, the gate did not
		// pass, and a rollout that waits on it holds.
		c.gates[ev.key] = status.Gate{Name: name, Revision: ev.run.revision, Digest: ev.run.digest, Spec: ev.run.spec, Error: ev.out.err.Error()}
		c.markDirty()
		c.rollout(design, name)
		return
	}
	verdict := "fail"
	if ev.out.verdict.Pass {
		verdict = "pass"
	}
	c.d.metrics.gates.WithLabelValues(design, name, cluster, verdict).Inc()
	c.log.Info("gate", "gate", design+"/"+name, "cluster", cluster, "verdict", verdict, "p99ms", ev.out.result.Latencies.P99, "revision", short(ev.run.revision))
	for p, data := range ev.out.files {
		if strings.Contains(p, "/charts/") {
			c.charts[p] = data // written once; Git keeps it
		} else {
			c.gateFiles[p] = data
		}
	}
	c.gates[ev.key] = gateStatus(name, ev.out.result, ev.out.verdict)
	c.gateChecks[ev.key] = strings.Split(strings.TrimSpace(ev.out.verdict.String()), "\n")
	for p, data := range ev.out.files {
		if strings.HasSuffix(p, ".svg") {
			c.gateCharts[ev.key] = data
		}
	}
	c.markDirty()
	c.rollout(design, name)
}

// onCron runs a scheduled gate on every target cluster where its design is healthy.
func (c *repoController) onCron(ctx context.Context, ev cronFired) {
	dsg := c.designs[ev.design]
	if dsg == nil {
		return
	}
	g, ok := dsg.Gates[ev.gate]
	if !ok {
		return
	}
	for _, key := range slices.Sorted(maps.Keys(c.syncs)) {
		st := c.syncs[key]
		if st.status.Design != ev.design || st.last == nil || st.last.Error != "" || st.last.Health.Status != "Current" {
			continue
		}
		c.startGate(ctx, ev.design, ev.gate, g, st, "cron")
	}
}

// schedule replaces the cron entries of the previous revision with this one's: a gate with a
// schedule and the cron trigger runs on it, never twice at once, and runs missed while meshcd
// was down are not replayed. An entry holds only names, so a replaced revision is released.
func (c *repoController) schedule() {
	for _, id := range c.cronIDs {
		c.cron.Remove(id)
	}
	c.cronIDs = nil
	for _, design := range slices.Sorted(maps.Keys(c.designs)) {
		dsg := c.designs[design]
		for _, name := range slices.Sorted(maps.Keys(dsg.Gates)) {
			g := dsg.Gates[name]
			if g.Schedule == "" || !slices.Contains(g.Triggers, "cron") {
				continue
			}
			ev := cronFired{design: design, gate: name}
			id, err := c.cron.AddFunc(g.Schedule, func() { c.inbox.put(ev) })
			if err != nil {
				c.log.Error("gate schedule", "gate", design+"/"+name, "schedule", g.Schedule, "err", err)
				continue
			}
			c.cronIDs = append(c.cronIDs, id)
		}
	}
}

// cancelGates stops the runs of a design's gates on a cluster whose content is replaced.
func (c *repoController) cancelGates(design, cluster string) {
	for key, r := range c.running {
		if strings.HasPrefix(key, design+"/") && strings.HasSuffix(key, "/"+cluster) {
			r.cancel()
		}
	}
}

func (c *repoController) stopGates() {
	for _, r := range c.running {
		r.cancel()
	}
}

// rollout decides a rollout's next step once its gate has measured the applied content on
// every target cluster of this shard: all passed advances, any failed rolls back and holds.
// The step is an ordinary commit to the branch, applied and gated like any other.
func (c *repoController) rollout(design, gate string) {
	dsg := c.designs[design]
	if dsg == nil || dsg.Gates[gate].Rollout == nil || c.rolled[design+"/"+gate] == c.applied {
		return
	}
	verdicts := map[string]*bool{}
	var clusters []string
	for _, key := range slices.Sorted(maps.Keys(c.syncs)) {
		st := c.syncs[key]
		if st.status.Design != design {
			continue
		}
		clusters = append(clusters, st.status.Cluster)
		if v, ok := c.gates[design+"/"+gate+"/"+st.status.Cluster]; ok && measured(v, st, dsg.Gates[gate]) {
			verdicts[st.status.Cluster] = &v.Pass
		}
	}
	step, ok := gates.DecideAll(*dsg.Gates[gate].Rollout, verdicts, clusters)
	if !ok {
		return
	}
	c.rolled[design+"/"+gate] = c.applied
	p, data := gates.RolloutFile(design, gate, step)
	what := fmt.Sprintf("%s/%s %s", design, gate, step)
	c.commits.Submit(sources.Write{Branch: c.cfg.Branch, Marker: gates.RolloutMarker, Message: what, Files: map[string][]byte{p: data}})
	c.log.Info("rollout", "step", what)
}
