package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/meshcd/meshcd/drift"
	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/sources"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/rest"
)

// Daemon is one running meshcd. What it holds for its whole life is shared by the controllers
// and safe for concurrent use: the clusters (clients, watch caches, Event recorders), their
// drift detectors, the reconciler's inventory cache, the render cache, the Git pollers and
// the gate runner. Each term of leadership builds the controllers afresh (see work).
type Daemon struct {
	cfg      *Config
	log      *slog.Logger
	shard    Shard
	repos    []sources.Repo
	pollers  map[string]*sources.Poller // by repo URL
	clusters map[string]*fleet.Cluster
	drift    map[string]*drift.Detector
	rec      *reconciler.Reconciler
	cache    *render.Cache
	gates    *gateRunner
	// policy says where gates may send load and how much; loads runs it in child processes.
	policy  gates.Policy
	loads   *gates.LoadWorker
	reg     *prometheus.Registry
	metrics *metrics
	// feedback posts each repo's previews to its Git host (nil for a repo without), by index
	// of cfg.Repos.
	feedback []*feedback
	// changes tells the web view's pages of each change.
	changes changes
	// secretKey keys the digests of Secrets; it is kept in the cache folder.
	secretKey []byte
	// readHeaderTimeout closes connections that do not finish their headers (default 10 s).
	readHeaderTimeout time.Duration

	// term is the controllers of the current term, nil while this replica does not lead.
	term atomic.Pointer[term]
}

// term is one term's controllers: a source loop per repo and a sync queue per cluster.
type term struct {
	repos  []*repoController
	queues map[string]*reconciler.Queue
}

// New connects the clusters of the config that belong to the shard and prepares the pollers.
// It sends no request to a Git server, and none to a cluster except to read `secret:`
// credentials from meshcd's home cluster.
func New(cfg *Config, shard Shard, log *slog.Logger) (*Daemon, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{
		cfg: cfg, log: log, shard: shard, pollers: map[string]*sources.Poller{},
		clusters: map[string]*fleet.Cluster{}, drift: map[string]*drift.Detector{},
		rec: reconciler.New(), cache: render.NewCache(10000), reg: prometheus.NewRegistry(),
		gates: newGateRunner(cfg.Gates.MaxConcurrent), policy: cfg.Gates.policy(cfg.Listen),
	}
	key, err := loadSecretKey(cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	d.secretKey = key
	if w, err := gates.SelfLoadWorker(); err == nil {
		d.loads = w
	} else {
		log.Error("gate loads run in the daemon's own process", "err", err)
	}
	d.metrics = newMetrics(d.reg)
	d.reg.MustRegister(gitCollector{d},
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsGC, collectors.MetricsMemory)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.gates.running = d.metrics.gatesRunning
	for _, rc := range cfg.Repos {
		repo, err := repoFor(rc)
		if err != nil {
			return nil, err
		}
		d.repos = append(d.repos, repo)
		branch := rc.StatusBranch
		if branch == "" {
			branch = rc.Branch
		}
		fb, err := newFeedback(rc, branch, cfg.Web.PublicURL, d.metrics, log)
		if err != nil {
			return nil, fmt.Errorf("repo %s: feedback: %w", sources.Redact(rc.URL), err)
		}
		d.feedback = append(d.feedback, fb)
		p, ok := d.pollers[rc.URL]
		if !ok {
			// Each repo's URL policy opens that repo only: one repo allowing plain HTTP
			// lets no other use it.
			p = sources.NewPoller(cfg.CacheDir)
			d.pollers[rc.URL] = p
		}
		p.Policy.AllowHTTP = p.Policy.AllowHTTP || rc.AllowHTTP
		p.Policy.AllowFile = p.Policy.AllowFile || rc.AllowFile
	}
	home, err := d.homeConfig()
	if err != nil {
		return nil, err
	}
	dm := drift.NewMetrics(d.reg)
	for _, name := range slices.Sorted(maps.Keys(cfg.Clusters)) {
		if !shard.Owns(name) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		rest, err := cfg.Clusters[name].RESTConfig(ctx, name, home)
		cancel()
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
		// A drift lands in the status files as soon as its repo's controller hears of it.
		opts.OnDrift = func(string, drift.Entry) { d.wakeRepos() }
		d.drift[name] = drift.NewDetector(c, opts)
	}
	return d, nil
}

// repoFor is the repo's address and credentials.
func repoFor(rc RepoConfig) (sources.Repo, error) {
	repo := sources.Repo{URL: rc.URL}
	if rc.Password != nil {
		pw, err := rc.Password.Read()
		if err != nil {
			return repo, fmt.Errorf("repo %s: password: %w", sources.Redact(rc.URL), err)
		}
		repo.Auth = &http.BasicAuth{Username: rc.Username, Password: string(pw)}
	}
	if rc.SSH != nil {
		key, err := rc.SSH.PrivateKey.Read()
		if err != nil {
			return repo, fmt.Errorf("repo %s: ssh.privateKey: %w", sources.Redact(rc.URL), err)
		}
		var known []byte
		if rc.SSH.KnownHosts != nil {
			if known, err = rc.SSH.KnownHosts.Read(); err != nil {
				return repo, fmt.Errorf("repo %s: ssh.knownHosts: %w", sources.Redact(rc.URL), err)
			}
		}
		if repo.Auth, err = sources.SSHKey(sources.SSHOptions{User: rc.SSH.User, PrivateKey: key, KnownHosts: known, InsecureIgnoreHostKey: rc.SSH.InsecureIgnoreHostKey}); err != nil {
			return repo, fmt.Errorf("repo %s: %w", sources.Redact(rc.URL), err)
		}
	}
	return repo, nil
}

// homeConfig reaches meshcd's home cluster, where `secret:` credentials live: the config's
// home, else leader election's cluster, else the pod's service account. It is resolved only
// when some cluster needs it.
func (d *Daemon) homeConfig() (*rest.Config, error) {
	needed := false
	for _, cr := range d.cfg.Clusters {
		needed = needed || cr.Secret != nil
	}
	if !needed {
		return nil, nil
	}
	home := fleet.Credentials{InCluster: true}
	switch {
	case d.cfg.Home != nil:
		home = *d.cfg.Home
	case d.cfg.LeaderElection != nil:
		home = d.cfg.LeaderElection.Credentials
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := home.RESTConfig(ctx, "home", nil)
	if err != nil {
		return nil, fmt.Errorf("meshcd's home cluster, where secret: credentials are read: %w", err)
	}
	return cfg, nil
}

// Run serves HTTP on the config's address and runs the controllers until ctx ends, or, with
// leader election, while this replica holds its shard's Lease. It returns after the work in
// flight has finished or been cancelled.
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
			c.Close()
		}
	}()
	if d.cfg.LeaderElection != nil {
		return d.lead(ctx, d.work)
	}
	d.work(ctx)
	return nil
}

// work is one term: a sync queue per cluster, a drift detector per cluster and a source loop
// per repo, until ctx ends (shutdown, or the Lease lost). It returns only once every one of
// them has stopped, so a next term never overlaps this one.
func (d *Daemon) work(ctx context.Context) {
	var wg sync.WaitGroup
	t := &term{queues: map[string]*reconciler.Queue{}}
	qopts := reconciler.QueueOptions{
		PerCluster: d.cfg.PerCluster, MaxAttempts: 0, // until it converges or is replaced
		BaseDelay: 500 * time.Millisecond, MaxDelay: 5 * time.Second, AttemptTimeout: 2 * time.Minute,
	}
	for name, c := range d.clusters {
		q := d.rec.NewQueue(c, qopts)
		t.queues[name] = q
		wg.Go(func() { q.Run(ctx) })
	}
	for _, det := range d.drift {
		wg.Go(func() { det.Run(ctx) })
	}
	for i, rc := range d.cfg.Repos {
		t.repos = append(t.repos, newRepoController(d, t, rc, d.repos[i], d.feedback[i]))
	}
	d.term.Store(t)
	for _, c := range t.repos {
		wg.Go(func() { c.run(ctx) })
	}
	<-ctx.Done()
	d.log.Info("stopping")
	wg.Wait()
	d.term.CompareAndSwap(t, nil)
}

// wakeRepos tells every repo controller that drift changed, so its status files follow.
func (d *Daemon) wakeRepos() {
	if t := d.term.Load(); t != nil {
		for _, c := range t.repos {
			c.inbox.put(driftChanged{})
		}
	}
}

// newWorker is a budgeted evaluation worker: meshcd re-executed, kept alive between
// evaluations. Without one (the executable cannot be found), CUE is evaluated in this
// process, which a hostile repo can then slow down.
func (d *Daemon) newWorker() *schema.Worker {
	w, err := schema.SelfWorker()
	if err != nil {
		d.log.Error("no evaluation worker; evaluating fleet repos in the daemon's own process", "err", err)
		return nil
	}
	return w
}

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}
