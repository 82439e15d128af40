package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshcd/meshcd/drift"
	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/internal/web"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/sources"
	"github.com/meshcd/meshcd/status"
	"github.com/robfig/cron/v3"
)

// flushDelay gathers the results of one revision's syncs into one status commit; flushHold
// bounds how long a slow cluster's sync holds the others' status back.
const (
	flushDelay = 100 * time.Millisecond
	flushHold  = 2 * time.Second
)

// repoController is the source loop of one repo and the only owner of that repo's state: it
// polls (on its own interval or schedule, with its own backoff), loads each new content
// revision in its own evaluation worker, renders it, hands each design's bundle to the
// clusters' sync queues, starts gates, decides rollouts and builds the status files, which its
// committer writes. Other goroutines (sync queues, gate runs, drift detectors, cron) talk to
// it through its inbox and never touch its state; HTTP handlers read the copy it publishes.
type repoController struct {
	d        *Daemon
	queues   map[string]*reconciler.Queue
	cfg      RepoConfig
	repo     sources.Repo
	poller   *sources.Poller
	watcher  *sources.Watcher
	commits  *sources.Committer
	worker   *schema.Worker
	previews *previewer
	// feedback posts previews to the pull requests themselves (nil without feedback).
	feedback  *feedback
	cron      *cron.Cron
	log       *slog.Logger
	inbox     inbox
	published atomic.Pointer[RepoStatus]
	view      atomic.Pointer[web.Repo]
	// web and commitPath make a revision's link, when the repo has a web form.
	web, commitPath string

	// Owned by run's goroutine.
	seen      string // the content revision last loaded, applied or not
	applied   string // the content revision applied
	loadErr   string
	fleet     *schema.Fleet
	designs   map[string]*schema.Design
	files     fs.FS
	invalid   map[string][]schema.Issue
	syncs     map[string]*syncState  // design/cluster
	gates     map[string]status.Gate // design/gate/cluster
	gateFiles map[string][]byte      // the latest result, summary and history of each gate
	charts    map[string][]byte      // charts not yet handed to the committer
	running   map[string]*gateRun    // design/gate/cluster
	rolled    map[string]string      // design/gate -> revision whose rollout step was decided
	ledger    map[string][]drift.Entry
	cronIDs   []cron.EntryID
	// message is the applied revision's commit message ("" when the poll saw only a status
	// commit on top of it).
	message string
	// repoHistory caches gate histories read from the repo, for the view; gateChecks and
	// gateCharts hold each gate's latest verdict lines and histogram.
	repoHistory map[string][]byte
	gateChecks  map[string][]string
	gateCharts  map[string][]byte
	viewSum     [32]byte
	prs         sources.RefTracker
	prsSeeded   bool
	poll        pollState
	ready       bool
	submitted   [32]byte // hash of the status files last handed to the committer
	dirty       time.Time
}

// syncState is one design on one cluster.
type syncState struct {
	status   status.Sync
	revision string // of the job last submitted
	digest   string
	objects  int
	pending  bool // no final result yet for the job last submitted
	last     *reconciler.SyncResult
	job      reconciler.Job
	// rechecks counts the syncs since the job was submitted that found it applied but not
	// yet healthy; each waits twice as long before the next look.
	rechecks int
}

// pollState is what the repo's polls have shown.
type pollState struct {
	At       time.Time `json:"at,omitzero"`
	OK       time.Time `json:"ok,omitzero"`
	Error    string    `json:"error,omitempty"`
	Failures int       `json:"failures,omitempty"`
}

func newRepoController(d *Daemon, t *term, rc RepoConfig, repo sources.Repo, fb *feedback) *repoController {
	p := d.pollers[rc.URL]
	opts := sources.DefaultWatchOptions()
	opts.Interval = rc.interval()
	// A failing server is retried sooner at first, but never less often than the interval:
	// a push right after an outage is noticed within one interval.
	opts.MaxBackoff = opts.Interval
	copts := sources.DefaultCommitterOptions()
	c := &repoController{
		d: d, queues: t.queues, cfg: rc, repo: repo, poller: p,
		watcher: sources.NewWatcher(p, []sources.Target{{Repo: repo, Refs: []string{rc.Branch}}}, opts),
		commits: sources.NewCommitter(p, repo, copts),
		cron:    cron.New(cron.WithParser(schema.CronParser)),
		log:     d.log.With("repo", sources.Redact(rc.URL)),
		inbox:   inbox{wake: make(chan struct{}, 1)},
		designs: map[string]*schema.Design{}, syncs: map[string]*syncState{}, gates: map[string]status.Gate{},
		gateFiles: map[string][]byte{}, charts: map[string][]byte{}, running: map[string]*gateRun{},
		rolled: map[string]string{}, ledger: map[string][]drift.Entry{},
	}
	c.worker = d.newWorker()
	c.feedback = fb
	c.web, c.commitPath = webForm(rc)
	c.repoHistory, c.gateChecks, c.gateCharts = map[string][]byte{}, map[string][]string{}, map[string][]byte{}
	c.previews = newPreviewer(c)
	c.publish()
	return c
}

// run is the controller's loop, until ctx ends. Everything it starts (watcher, committer,
// previewer, cron, gate runs) has stopped when it returns.
func (c *repoController) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // first, so a panic here still ends what this started, and is seen
	defer c.worker.Close()
	updates := make(chan sources.Update)
	wg.Go(func() { c.watcher.Run(ctx, updates) })
	// The committer outlives the loop by its last flush: it ends, writing what is pending,
	// once the loop has handed it the final status.
	commitCtx, stopCommits := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCommits()
	wg.Go(func() { c.commits.Run(commitCtx) })
	wg.Go(func() { c.previews.run(ctx) })
	if c.feedback != nil {
		wg.Go(func() { c.feedback.n.Run(ctx) })
	}
	if c.cfg.Schedule != "" {
		url := c.cfg.URL
		if _, err := c.cron.AddFunc(c.cfg.Schedule, func() { c.watcher.Trigger(url) }); err != nil {
			c.log.Error("poll schedule", "schedule", c.cfg.Schedule, "err", err)
		}
	}
	c.cron.Start()
	defer func() { <-c.cron.Stop().Done() }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	defer flush.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			c.stopGates()
			c.flush()
			stopCommits()
			return
		case u := <-updates:
			c.onPoll(ctx, u)
		case <-c.inbox.wake:
			evs, drifted := c.inbox.take()
			for _, ev := range evs {
				c.handle(ctx, ev)
			}
			if drifted {
				c.markDirty()
			}
		case <-tick.C:
			if c.dirty.IsZero() {
				c.flush() // drift the inbox did not hear of
			}
		case <-flush.C:
			armed = false
			// The results of one revision's syncs go into one commit, unless a slow cluster
			// would hold the others back for long.
			if !c.syncing() || time.Since(c.dirty) > flushHold {
				c.dirty = time.Time{}
				c.flush()
			}
		}
		if !c.dirty.IsZero() && !armed {
			flush.Reset(flushDelay)
			armed = true
		}
		c.publish()
	}
}

// markDirty asks for the status files to be rebuilt soon.
func (c *repoController) markDirty() {
	if c.dirty.IsZero() {
		c.dirty = time.Now()
	}
}

// syncing reports whether a sync of the applied revision has not reported yet.
func (c *repoController) syncing() bool {
	for _, st := range c.syncs {
		if st.pending && st.last == nil {
			return true
		}
	}
	return false
}

func (c *repoController) handle(ctx context.Context, ev any) {
	switch ev := ev.(type) {
	case syncDone:
		c.onSync(ctx, ev)
	case gateDone:
		c.onGate(ev)
	case cronFired:
		c.onCron(ctx, ev)
	case recheck:
		if st := c.syncs[ev.key]; st != nil && st.revision == ev.revision && !st.pending {
			c.enqueue(ev.key, st)
		}
	case prState:
		if !ev.closed {
			c.prs.Reopen(ev.ref)
			c.watcher.Trigger(c.cfg.URL)
		} else if closed, ok := c.prs.Close(ev.ref); ok {
			c.previews.enqueue(closed)
		}
	}
}

// onPoll applies a new content revision. meshcd's own status commits carry no new content, so
// they change nothing; a status commit that landed on top of someone else's push carries that
// push, and it is applied under its own revision.
func (c *repoController) onPoll(ctx context.Context, u sources.Update) {
	now := time.Now()
	c.poll.At = now
	if u.Err != nil {
		c.d.metrics.polls.WithLabelValues("error").Inc()
		if c.poll.Error == "" {
			c.log.Error("poll failed", "err", u.Err)
		}
		c.poll.Error, c.poll.Failures = u.Err.Error(), u.Failures
		return
	}
	c.d.metrics.polls.WithLabelValues("ok").Inc()
	if c.poll.Error != "" {
		c.log.Info("polls succeed again", "after", c.poll.Failures)
		c.commits.Kick() // writes that waited on the outage go now
	}
	c.poll.Error, c.poll.Failures, c.poll.OK = "", 0, now
	r := u.Results[0]
	if c.d.shard.ID == 0 {
		c.observePullRequests(r.FS) // one shard writes previews, so they never collide
	}
	if r.Content == c.seen {
		return
	}
	c.apply(ctx, r)
}

// apply loads, renders and submits one content revision. An invalid design keeps what it had
// applied, and its status says why it did not move on; a repo that cannot be loaded keeps
// everything.
func (c *repoController) apply(ctx context.Context, r sources.Result) {
	rev := r.Content
	c.seen = rev
	start := time.Now()
	opts := schema.DefaultLoadOptions()
	opts.Worker = c.worker
	p, err := schema.LoadPartial(ctx, r.FS, opts)
	if err != nil {
		c.loadErr = fmt.Sprintf("revision %s not applied, the last good one stays: %v", short(rev), err)
		c.log.Error("fleet repo invalid; keeping the last applied revision", "revision", rev, "err", err)
		c.markDirty()
		return
	}
	c.loadErr = ""
	first := c.applied == ""
	if first {
		c.loadCommitted(r.FS, p)
	}
	c.fleet, c.files, c.invalid = p.Fleet, r.FS, p.Invalid
	c.repoHistory = map[string][]byte{}
	c.message = ""
	if r.Revision == r.Content {
		c.message = r.Message
	}
	designs := map[string]*schema.Design{}
	for i := range p.Designs {
		designs[p.Designs[i].Name] = &p.Designs[i]
	}
	repo := render.NewRepo(r.FS)
	current := map[string]bool{}
	// Everything is rendered before anything is submitted: an object two designs render for
	// one cluster refuses both bundles there (each keeps what it had applied).
	type rendered struct {
		dsg *schema.Design
		sc  schema.Cluster
		key string
		b   *render.Bundle
		err error
	}
	var all []rendered
	var bundles []*render.Bundle
	for _, name := range slices.Sorted(maps.Keys(designs)) {
		dsg := designs[name]
		if dsg.Sync.Suspend {
			continue
		}
		var overBudget error
		for _, sc := range dsg.TargetClusters(p.Fleet) {
			if !c.d.shard.Owns(sc.Name) {
				continue // another shard's
			}
			key := dsg.Name + "/" + sc.Name
			current[key] = true
			if overBudget != nil {
				all = append(all, rendered{dsg, sc, key, nil, render.SkipAfterBudget(overBudget, sc.Name)})
				continue
			}
			b, err := render.Render(ctx, dsg, &sc, render.Options{Revision: rev, Repo: repo, Cache: c.d.cache, Worker: c.worker, Budget: c.d.cfg.Render.budget(), SecretKey: c.d.secretKey})
			if render.OverBudget(err) {
				overBudget = err
			}
			all = append(all, rendered{dsg, sc, key, b, err})
			if err == nil {
				bundles = append(bundles, b)
			}
		}
	}
	collisions := render.Collisions(bundles)
	for _, x := range all {
		err := x.err
		if cerr, ok := collisions[x.key]; ok && err == nil {
			err = cerr
			c.log.Error("object rendered by two designs; neither is applied there", "design", x.dsg.Name, "cluster", x.sc.Name, "err", cerr)
		}
		c.submit(ctx, x.dsg, x.sc, x.key, rev, x.b, err)
	}
	for key, st := range c.syncs {
		design, _, _ := strings.Cut(key, "/")
		if problems, ok := p.Invalid[design]; ok {
			st.status.Error = fmt.Sprintf("revision %s not applied, %s stays: %s", short(rev), short(st.status.Revision), issueText(problems))
			continue
		}
		if !current[key] {
			// The design left the repo or no longer targets the cluster: its last state stays
			// applied (nothing is pruned without a bundle to compare with) and untracked.
			_, cluster, _ := strings.Cut(key, "/")
			if q := c.queues[cluster]; q != nil {
				q.Remove(c.cfg.URL + " " + key)
			}
			if det := c.d.drift[cluster]; det != nil {
				det.Track(design, nil, schema.DriftIgnore, drift.Rules{})
			}
			delete(c.syncs, key)
		}
	}
	for name, problems := range p.Invalid {
		c.log.Error("design invalid; keeping its last applied revision", "design", name, "revision", rev, "problems", issueText(problems))
		if old, ok := c.designs[name]; ok {
			designs[name] = old // its gates and rollouts go on with what is applied
		}
	}
	c.designs = designs
	// Verdicts of gates the repo no longer has leave the status files.
	for key := range c.gates {
		design, rest, _ := strings.Cut(key, "/")
		gate, _, _ := strings.Cut(rest, "/")
		if dsg := designs[design]; dsg == nil || !hasGate(dsg, gate) {
			delete(c.gates, key)
		}
	}
	for key, run := range c.running {
		design, rest, _ := strings.Cut(key, "/")
		gate, _, _ := strings.Cut(rest, "/")
		if dsg := designs[design]; dsg == nil || !hasGate(dsg, gate) {
			run.cancel() // its verdict would be about a gate that is gone
		}
	}
	for p := range c.gateFiles {
		rest, _ := strings.CutPrefix(p, "status/gates/")
		parts := strings.SplitN(rest, "/", 3)
		if dsg := designs[parts[0]]; len(parts) < 3 || dsg == nil || !hasGate(dsg, parts[1]) {
			delete(c.gateFiles, p) // Git keeps them; the next runs start from there
		}
	}
	c.applied = rev
	c.schedule()
	c.markDirty()
	c.checkReady() // a revision with nothing to sync is done at once
	c.log.Info("round", "revision", rev, "designs", len(designs), "invalid", len(p.Invalid), "took", time.Since(start).Round(time.Millisecond))
}

// submit hands one design's bundle for one cluster to the cluster's queue. The
// design is tracked for drift before the sync writes it, so the sync's own writes compare
// against the new content. A render error (or a collision) submits nothing: nothing is applied or pruned.
func (c *repoController) submit(ctx context.Context, dsg *schema.Design, sc schema.Cluster, key, rev string, b *render.Bundle, err error) {
	st := c.syncs[key]
	if st == nil {
		st = &syncState{status: status.Sync{Design: dsg.Name, Cluster: sc.Name}}
		c.syncs[key] = st
	}
	st.revision, st.last, st.pending, st.rechecks = rev, nil, false, 0
	fc, ok := c.d.clusters[sc.Name]
	if !ok {
		st.status.Revision, st.status.Error = rev, fmt.Sprintf("cluster %s: no credentials in the daemon config", sc.Name)
		return
	}
	rules, rerr := drift.NewRules(dsg.Sync.Ignore, dsg.Sync.Presets)
	if err == nil && rerr != nil {
		err = fmt.Errorf("design %s: %w", dsg.Name, rerr)
	}
	if err != nil {
		st.status.Revision, st.status.Error = rev, fmt.Sprintf("not applied, nothing pruned: %v", err)
		return
	}
	if st.digest != b.Digest {
		c.cancelGates(dsg.Name, sc.Name) // they measure what is being replaced
	}
	st.digest, st.objects, st.pending = b.Digest, len(b.Objects), true
	det := c.d.drift[sc.Name]
	det.Track(dsg.Name, b.Objects, dsg.Sync.Drift, rules)
	opts := reconciler.DefaultSyncOptions()
	opts.Policy = reconciler.PolicyFor(dsg.Sync)
	opts.BeforePrune = det.Untrack
	opts.Applied = det.Applied
	st.job = reconciler.Job{Cluster: fc, Bundle: b, Options: opts}
	c.enqueue(key, st)
}

// enqueue hands a design's job to its cluster's queue.
func (c *repoController) enqueue(key string, st *syncState) {
	rev := st.revision
	st.pending = true
	c.queues[st.status.Cluster].Submit(c.cfg.URL+" "+key, st.job, func(res *reconciler.SyncResult, final bool) {
		c.inbox.put(syncDone{key: key, revision: rev, res: res, final: final})
	})
}

// onSync records a sync attempt of the job last submitted; a healthy one starts the change
// gates of what it applied.
func (c *repoController) onSync(ctx context.Context, ev syncDone) {
	st := c.syncs[ev.key]
	if st == nil || st.revision != ev.revision || !st.pending {
		return // about a job since replaced
	}
	c.d.metrics.observe(ev.res)
	st.last = ev.res
	st.status.Revision, st.status.Digest = ev.revision, st.digest
	status.Record(&st.status, ev.res, st.objects)
	if ev.final {
		st.pending = false
	}
	for _, e := range ev.res.Entries {
		if e.AdoptedFrom != "" && e.Action != reconciler.Failed {
			c.log.Info("adopted", "design", st.status.Design, "cluster", st.status.Cluster, "object", e.Object, "from", e.AdoptedFrom)
		}
	}
	if ev.final {
		c.log.Info("synced", "design", st.status.Design, "cluster", st.status.Cluster, "revision", short(ev.revision), "health", ev.res.Health.Status, "error", ev.res.Error, "took", ev.res.Duration.Round(time.Millisecond))
	} else {
		c.log.Warn("sync failed; retrying", "design", st.status.Design, "cluster", st.status.Cluster, "err", ev.res.Error)
	}
	c.markDirty()
	c.checkReady()
	switch {
	case ev.res.Error == "" && ev.res.Health.Status == "Current":
		c.changeGates(ctx, st)
	case ev.final && ev.res.Error == "":
		// Applied, not healthy yet (a rollout in progress, a controller still reconciling).
		wait := min(500*time.Millisecond<<min(st.rechecks, 6), 30*time.Second)
		st.rechecks++
		ev := recheck{key: ev.key, revision: ev.revision}
		time.AfterFunc(wait, func() { c.inbox.put(ev) })
	}
}

// checkReady marks the repo ready once every sync of its first applied revision reported.
func (c *repoController) checkReady() {
	if c.ready || c.applied == "" {
		return
	}
	for _, st := range c.syncs {
		if st.pending && st.last == nil {
			return
		}
	}
	c.ready = true
}

// loadCommitted reads what an earlier run committed, so a restart keeps the drift ledgers and
// the gates' latest verdicts, and reruns no gate that already measured what is applied.
func (c *repoController) loadCommitted(files fs.FS, p *schema.Partial) {
	for name := range c.d.clusters {
		data, err := fs.ReadFile(files, status.DriftPath(name))
		if err != nil {
			continue
		}
		var reports []drift.Report
		if json.Unmarshal(data, &reports) != nil {
			continue
		}
		for _, r := range reports {
			c.ledger[name+"/"+r.Design] = r.Entries
		}
	}
	for i := range p.Designs {
		dsg := &p.Designs[i]
		for gate := range dsg.Gates {
			for _, sc := range dsg.TargetClusters(p.Fleet) {
				if res, v, ok := gates.Latest(files, dsg.Name, gate, sc.Name); ok {
					c.gates[dsg.Name+"/"+gate+"/"+sc.Name] = gateStatus(gate, res, v)
				}
			}
		}
	}
}

// snapshot is the repo's status as of now, with each design's drift ledger merged from what
// was committed and what the cluster's detector recorded since.
func (c *repoController) snapshot() status.Snapshot {
	s := status.Snapshot{Drift: map[string][]drift.Entry{}, Gates: maps.Clone(c.gates), GateFiles: maps.Clone(c.gateFiles), Shard: c.d.shard.ID, Shards: c.d.shard.Of}
	for _, key := range slices.Sorted(maps.Keys(c.syncs)) {
		st := c.syncs[key]
		sy := st.status
		sy.NotReady = slices.Clone(sy.NotReady)
		sy.Objects = maps.Clone(sy.Objects)
		s.Syncs = append(s.Syncs, sy)
		ledgerKey := sy.Cluster + "/" + sy.Design
		var current []drift.Entry
		if det := c.d.drift[sy.Cluster]; det != nil {
			current = det.Report(sy.Design).Entries
		}
		if entries := status.MergeLedger(c.ledger[ledgerKey], current); len(entries) > 0 {
			s.Drift[ledgerKey] = entries
		}
	}
	return s
}

// flush hands the status files to the committer when they changed since the last time:
// never an empty commit, never the same content twice.
func (c *repoController) flush() {
	if c.applied == "" && c.loadErr == "" {
		return
	}
	files, err := status.Files(c.snapshot())
	if err != nil {
		c.log.Error("status files", "err", err)
		return
	}
	if len(files) == 0 {
		return
	}
	sum := hashFiles(files)
	if sum == c.submitted && len(c.charts) == 0 {
		return
	}
	c.submitted = sum
	maps.Copy(files, c.charts)
	clear(c.charts)
	c.commits.Submit(sources.Write{Branch: c.statusBranch(), Message: fmt.Sprintf("%d files for %s", len(files), short(c.applied)), Files: files})
}

func (c *repoController) statusBranch() string {
	if c.cfg.StatusBranch != "" {
		return c.cfg.StatusBranch
	}
	return c.cfg.Branch
}

func hasGate(d *schema.Design, gate string) bool {
	_, ok := d.Gates[gate]
	return ok
}

func issueText(issues []schema.Issue) string {
	var out []string
	for _, is := range issues {
		out = append(out, is.String())
	}
	return strings.Join(out, "; ")
}

func hashFiles(files map[string][]byte) [32]byte {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(files)) {
		h.Write([]byte(k + "\x00"))
		h.Write(files[k])
		h.Write([]byte{0})
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
