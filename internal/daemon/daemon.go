package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/meshcd/meshcd/drift"
	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/sources"
	"github.com/meshcd/meshcd/status"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
)

// Daemon is one running meshcd: its clusters, their watch caches and drift detectors, the
// Git poller, and what each repo's last round did.
type Daemon struct {
	cfg      *Config
	log      *slog.Logger
	poller   *sources.Poller
	watcher  *sources.Watcher
	repos    []sources.Repo
	clusters map[string]*fleet.Cluster
	drift    map[string]*drift.Detector
	rec      *reconciler.Reconciler
	cache    *render.Cache
	reg      *prometheus.Registry
	metrics  *metrics
	ready    atomic.Bool
	shard    Shard

	mu    sync.Mutex
	state map[string]*repoState // by repo URL
	// commitMu makes status commits of the round loop and of scheduled gates take turns.
	commitMu sync.Mutex
}

// repoState is what the daemon knows of one repo between rounds.
type repoState struct {
	// Revision is the content revision last applied (never one of meshcd's status commits).
	Revision string `json:"revision"`
	// Error is why the last round could not apply a new revision, if it could not.
	Error string        `json:"error,omitempty"`
	Syncs []status.Sync `json:"syncs"`

	designs   []schema.Design
	gates     map[string]status.Gate // design/gate/cluster -> latest verdict
	gateFiles map[string][]byte      // gate history files as last committed
	gated     map[string]string      // design/gate/cluster -> revision gated on change
	ledger    map[string][]drift.Entry
	committed [32]byte // hash of the status files last committed
	prs       sources.RefTracker
	prsSeeded bool
	cron      *cron.Cron
}

// New connects the clusters of the config that belong to the shard and prepares the poller.
// It sends no request to a cluster or a Git server yet.
func New(cfg *Config, shard Shard, log *slog.Logger) (*Daemon, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{
		cfg: cfg, log: log, poller: sources.NewPoller(cfg.CacheDir),
		clusters: map[string]*fleet.Cluster{}, drift: map[string]*drift.Detector{},
		rec: reconciler.New(), cache: render.NewCache(10000), reg: prometheus.NewRegistry(),
		state: map[string]*repoState{}, shard: shard,
	}
	d.metrics = newMetrics(d.reg)
	dm := drift.NewMetrics(d.reg)
	for _, rc := range cfg.Repos {
		d.poller.Policy.AllowHTTP = d.poller.Policy.AllowHTTP || rc.AllowHTTP
		d.poller.Policy.AllowFile = d.poller.Policy.AllowFile || rc.AllowFile
		repo := sources.Repo{URL: rc.URL}
		if rc.Password != nil {
			pw, err := rc.Password.Read()
			if err != nil {
				return nil, fmt.Errorf("repo %s: password: %w", rc.URL, err)
			}
			repo.Auth = &http.BasicAuth{Username: rc.Username, Password: string(pw)}
		}
		if rc.SSH != nil {
			key, err := rc.SSH.PrivateKey.Read()
			if err != nil {
				return nil, fmt.Errorf("repo %s: ssh.privateKey: %w", sources.Redact(rc.URL), err)
			}
			var known []byte
			if rc.SSH.KnownHosts != nil {
				if known, err = rc.SSH.KnownHosts.Read(); err != nil {
					return nil, fmt.Errorf("repo %s: ssh.knownHosts: %w", sources.Redact(rc.URL), err)
				}
			}
			if repo.Auth, err = sources.SSHKey(sources.SSHOptions{User: rc.SSH.User, PrivateKey: key, KnownHosts: known, InsecureIgnoreHostKey: rc.SSH.InsecureIgnoreHostKey}); err != nil {
				return nil, fmt.Errorf("repo %s: %w", sources.Redact(rc.URL), err)
			}
		}
		d.repos = append(d.repos, repo)
		d.state[rc.URL] = &repoState{gates: map[string]status.Gate{}, gateFiles: map[string][]byte{}, gated: map[string]string{}, ledger: map[string][]drift.Entry{}}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Clusters)) {
		if !shard.Owns(name) {
			continue
		}
		rest, err := cfg.Clusters[name].RESTConfig(context.Background(), name, nil)
		if err != nil {
			return nil, err
		}
		c, err := fleet.Connect(schema.Cluster{Name: name}, rest, fleet.DefaultClientOptions())
		if err != nil {
			return nil, err
		}
		d.clusters[name] = c
		opts := drift.DefaultOptions()
		opts.Metrics = dm
		d.drift[name] = drift.NewDetector(c, opts)
	}
	return d, nil
}

// Run polls, syncs and writes status until ctx ends, serving HTTP on the config's address.
// It returns after in-flight work has finished or been cancelled.
func (d *Daemon) Run(ctx context.Context) error {
	srv, err := d.serve(ctx)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	defer func() {
		for _, c := range d.clusters {
			c.Live.Stop()
		}
	}()
	if d.cfg.LeaderElection != nil {
		return d.lead(ctx, d.work)
	}
	d.work(ctx)
	return nil
}

// work is the daemon's loop: watch caches and drift detectors, Git polls and rounds, until
// ctx ends (shutdown, or the Lease lost).
func (d *Daemon) work(ctx context.Context) {
	for _, det := range d.drift {
		go det.Run(ctx)
	}
	var targets []sources.Target
	for i, rc := range d.cfg.Repos {
		targets = append(targets, sources.Target{Repo: d.repos[i], Refs: []string{rc.Branch}})
	}
	opts := sources.DefaultWatchOptions()
	opts.Interval = d.cfg.Repos[0].interval()
	d.watcher = sources.NewWatcher(d.poller, targets, opts)
	updates := make(chan sources.Update)
	go d.watcher.Run(ctx, updates)
	polls := cron.New(cron.WithParser(schema.CronParser))
	for _, rc := range d.cfg.Repos {
		if rc.Schedule != "" {
			url := rc.URL
			if _, err := polls.AddFunc(rc.Schedule, func() { d.watcher.Trigger(url) }); err != nil {
				d.log.Error("poll schedule", "repo", sources.Redact(url), "err", err)
			}
		}
	}
	polls.Start()
	defer polls.Stop()
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			d.log.Info("stopping")
			return
		case u := <-updates:
			d.round(ctx, u)
			d.ready.Store(true)
		case <-flush.C:
			// Drift and contested objects show up in the status files without waiting for a
			// new commit.
			for i, rc := range d.cfg.Repos {
				d.writeStatus(ctx, rc, d.repos[i])
			}
		}
	}
}

func (d *Daemon) repoConfig(url string) (RepoConfig, sources.Repo) {
	for i, rc := range d.cfg.Repos {
		if rc.URL == url {
			return rc, d.repos[i]
		}
	}
	return RepoConfig{}, sources.Repo{}
}

// round handles one poll of one repo: a new content revision is loaded, rendered and synced;
// meshcd's own status commits and unchanged refs are not.
func (d *Daemon) round(ctx context.Context, u sources.Update) {
	rc, repo := d.repoConfig(u.Target.Repo.URL)
	st := d.state[rc.URL]
	if u.Err != nil {
		d.metrics.polls.WithLabelValues("error").Inc()
		d.log.Error("poll failed", "repo", sources.Redact(rc.URL), "failures", u.Failures, "err", u.Err)
		return
	}
	d.metrics.polls.WithLabelValues("ok").Inc()
	r := u.Results[0]
	if d.shard.ID == 0 {
		d.previews(ctx, rc, repo, st, r.FS) // one shard writes previews, so they never collide
	}
	d.mu.Lock()
	first := st.Revision == "" && st.Error == ""
	d.mu.Unlock()
	if !first && (!r.Changed || r.StatusOnly()) {
		return
	}
	revision := contentRevision(r)
	start := time.Now()
	fl, designs, invalid, err := loadIsolated(ctx, r.FS)
	if err != nil {
		d.mu.Lock()
		st.Error = fmt.Sprintf("revision %s not applied, the last good one stays: %v", revision, err)
		d.mu.Unlock()
		d.log.Error("fleet repo invalid; keeping the last applied revision", "repo", sources.Redact(rc.URL), "revision", revision, "err", err)
		d.writeStatus(ctx, rc, repo)
		return
	}
	if first {
		d.loadLedgers(st, r.FS)
	}
	d.stopSchedule(st)
	jobs, syncs := d.jobs(ctx, fl, designs, revision, r.FS)
	// An invalid design keeps what it had applied; its status says why it did not move on.
	d.mu.Lock()
	for _, prev := range st.Syncs {
		if problems, ok := invalid[prev.Design]; ok {
			prev.Error = fmt.Sprintf("revision %s not applied, %s stays: %s", short(revision), short(prev.Revision), strings.Join(problems, "; "))
			syncs = append(syncs, prev)
		}
	}
	d.mu.Unlock()
	for name, problems := range invalid {
		d.log.Error("design invalid; keeping its last applied revision", "design", name, "revision", revision, "problems", strings.Join(problems, "; "))
	}
	results := d.rec.SyncAll(ctx, jobs, reconciler.QueueOptions{PerCluster: d.cfg.PerCluster})
	for i, res := range results {
		d.metrics.observe(res)
		j := jobs[i]
		s := &syncs[i]
		if j.RenderErr != nil || res.Error != "" {
			s.Error = res.Error
		}
		s.Health = res.Health.Status
		for _, nr := range res.Health.NotReady {
			s.NotReady = append(s.NotReady, nr.Object)
		}
		if j.Bundle != nil {
			s.Objects = map[string]int{"total": len(j.Bundle.Objects), "failed": res.Count(reconciler.Failed)}
		}
	}
	d.mu.Lock()
	st.Revision, st.Error, st.designs = revision, "", designs
	st.Syncs = syncs
	d.mu.Unlock()
	d.log.Info("round", "repo", sources.Redact(rc.URL), "revision", revision, "syncs", len(results), "took", time.Since(start).Round(time.Millisecond))
	d.runGates(ctx, rc, st, designs, fl, results, revision, r.FS)
	d.schedule(ctx, rc, repo, st, fl, designs, revision, r.FS)
	d.writeStatus(ctx, rc, repo)
	// After the status commit, so the rollout step is the tip: the next poll applies it.
	d.rollouts(ctx, rc, repo, st, designs, fl, revision)
}

// contentRevision is the commit a snapshot's content comes from: its own, unless it is one
// of meshcd's status commits, whose content is the revision its status files name.
func contentRevision(r sources.Result) string {
	if !strings.HasPrefix(r.Message, sources.StatusCommitMarker) {
		return r.Revision
	}
	var found string
	_ = fs.WalkDir(r.FS, "status", func(p string, e fs.DirEntry, err error) error {
		if err != nil || found != "" || e.IsDir() || !strings.HasSuffix(p, ".json") || strings.HasPrefix(p, "status/drift/") || strings.HasPrefix(p, "status/gates/") {
			return nil
		}
		data, err := fs.ReadFile(r.FS, p)
		if err != nil {
			return nil
		}
		var s status.Sync
		if json.Unmarshal(data, &s) == nil && s.Revision != "" {
			found = s.Revision
		}
		return nil
	})
	if found != "" {
		return found
	}
	return r.Revision
}

// jobs renders every design for every cluster it targets and tracks it for drift before the
// sync writes it. A cluster without credentials, or a render error, becomes a job that is
// not applied and prunes nothing.
func (d *Daemon) jobs(ctx context.Context, fl *schema.Fleet, designs []schema.Design, revision string, files fs.FS) ([]reconciler.Job, []status.Sync) {
	var jobs []reconciler.Job
	var syncs []status.Sync
	repo := render.NewRepo(files)
	for i := range designs {
		dsg := &designs[i]
		if dsg.Sync.Suspend {
			continue
		}
		rules, rerr := drift.NewRules(dsg.Sync.Ignore, dsg.Sync.Presets)
		for _, sc := range dsg.TargetClusters(fl) {
			if !d.shard.Owns(sc.Name) {
				continue // another shard's
			}
			c, ok := d.clusters[sc.Name]
			s := status.Sync{Design: dsg.Name, Cluster: sc.Name, Revision: revision}
			if !ok {
				c = &fleet.Cluster{Cluster: sc}
				jobs = append(jobs, reconciler.Job{Cluster: c, RenderErr: fmt.Errorf("cluster %s: no credentials in the daemon config", sc.Name)})
				syncs = append(syncs, s)
				continue
			}
			c.Cluster = sc // labels and mesh come from the fleet repo
			b, err := render.Render(ctx, dsg, &sc, render.Options{Revision: revision, Repo: repo, Cache: d.cache})
			if err == nil && rerr != nil {
				err = fmt.Errorf("design %s: %w", dsg.Name, rerr)
			}
			opts := reconciler.DefaultSyncOptions()
			opts.Policy = reconciler.PolicyFor(dsg.Sync)
			det := d.drift[sc.Name]
			opts.BeforePrune = det.Untrack
			if err == nil {
				s.Digest = b.Digest
				det.Track(dsg.Name, b.Objects, dsg.Sync.Drift, rules)
			}
			jobs = append(jobs, reconciler.Job{Cluster: c, Bundle: b, RenderErr: err, Options: opts})
			syncs = append(syncs, s)
		}
	}
	return jobs, syncs
}

// loadLedgers reads the drift ledgers a previous run committed, so a restart keeps them.
func (d *Daemon) loadLedgers(st *repoState, files fs.FS) {
	for name := range d.clusters {
		data, err := fs.ReadFile(files, status.DriftPath(name))
		if err != nil {
			continue
		}
		var reports []drift.Report
		if json.Unmarshal(data, &reports) != nil {
			continue
		}
		for _, r := range reports {
			st.ledger[name+"/"+r.Design] = r.Entries
		}
	}
}

// writeStatus commits the repo's status files when their content changed since the last
// commit: one commit, never empty.
func (d *Daemon) writeStatus(ctx context.Context, rc RepoConfig, repo sources.Repo) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	st := d.state[rc.URL]
	d.mu.Lock()
	syncs := slices.Clone(st.Syncs)
	d.mu.Unlock()
	files := map[string][]byte{}
	byCluster := map[string][]drift.Report{}
	for i := range syncs {
		s := &syncs[i]
		det := d.drift[s.Cluster]
		if det != nil {
			rep := det.Report(s.Design)
			key := s.Cluster + "/" + s.Design
			entries := mergeLedger(st.ledger[key], rep.Entries)
			for _, e := range entries {
				s.Drift.Detected++
				if e.HealedAt != nil {
					s.Drift.Healed++
				}
				if e.Contested && !slices.Contains(s.Drift.Contested, e.Object) {
					s.Drift.Contested = append(s.Drift.Contested, e.Object)
				}
			}
			if len(entries) > 0 {
				byCluster[s.Cluster] = append(byCluster[s.Cluster], drift.Report{Cluster: s.Cluster, Design: s.Design, Entries: entries})
			}
		}
		d.mu.Lock()
		for _, k := range slices.Sorted(maps.Keys(st.gates)) {
			if strings.HasPrefix(k, s.Design+"/") && strings.HasSuffix(k, "/"+s.Cluster) {
				s.Gates = append(s.Gates, st.gates[k])
			}
		}
		d.mu.Unlock()
		data, err := status.JSON(s)
		if err != nil {
			d.log.Error("status", "err", err)
			return
		}
		files[status.SyncPath(s.Design, s.Cluster)] = data
	}
	for cluster, reps := range byCluster {
		data, err := status.JSON(reps)
		if err != nil {
			return
		}
		files[status.DriftPath(cluster)] = data
	}
	if len(syncs) > 0 {
		// Shards write disjoint files: each its own matrix when there are several.
		readme := status.ReadmePath
		if d.shard.Of > 1 {
			readme = fmt.Sprintf("status/shards/%d.md", d.shard.ID)
		}
		files[readme] = []byte(status.Matrix(syncs))
	}
	d.mu.Lock()
	maps.Copy(files, st.gateFiles)
	d.mu.Unlock()
	if len(files) == 0 {
		return
	}
	sum := hashFiles(files)
	d.mu.Lock()
	same := sum == st.committed
	d.mu.Unlock()
	if same {
		return
	}
	opts := sources.DefaultCommitOptions()
	opts.Branch = rc.Branch
	if rc.StatusBranch != "" {
		opts.Branch = rc.StatusBranch
	}
	opts.Message = fmt.Sprintf("%d files for %s", len(files), short(st.Revision))
	hash, err := d.poller.CommitFiles(ctx, repo, opts, files)
	if err != nil && !errors.Is(err, sources.ErrNothingToCommit) {
		d.metrics.commits.WithLabelValues("error").Inc()
		d.log.Error("status commit failed", "repo", sources.Redact(rc.URL), "err", err)
		return
	}
	d.mu.Lock()
	st.committed = sum
	d.mu.Unlock()
	if err == nil {
		d.metrics.commits.WithLabelValues("ok").Inc()
		d.log.Info("status committed", "repo", sources.Redact(rc.URL), "commit", short(hash))
	}
}

// mergeLedger keeps the entries a previous run committed and adds this run's, newest last,
// at most 200.
func mergeLedger(old, current []drift.Entry) []drift.Entry {
	out := slices.Clone(old)
	for _, e := range current {
		dup := slices.ContainsFunc(out, func(o drift.Entry) bool {
			return o.Object == e.Object && o.DetectedAt.Equal(e.DetectedAt)
		})
		if !dup {
			out = append(out, e)
		}
	}
	if len(out) > 200 {
		out = out[len(out)-200:]
	}
	return out
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

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}
