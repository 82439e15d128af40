package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/render"
	"k8s.io/client-go/util/workqueue"
)

// Job is one design for one cluster: a bundle to sync, or the render error that means
// nothing may be applied or pruned for it this round.
type Job struct {
	Cluster   *fleet.Cluster
	Bundle    *render.Bundle
	RenderErr error
	Options   SyncOptions
}

// QueueOptions bound a cluster's queue.
type QueueOptions struct {
	// PerCluster is how many designs sync to one cluster at once.
	PerCluster int
	// MaxAttempts is how often a failing job is tried before its result is final; 0 tries
	// until it succeeds or a newer job replaces it.
	MaxAttempts int
	// BaseDelay and MaxDelay bound the exponential backoff between attempts.
	BaseDelay, MaxDelay time.Duration
	// AttemptTimeout bounds one attempt, so an apiserver that stops answering mid-sync
	// cannot hold its cluster's queue for ever.
	AttemptTimeout time.Duration
}

// DefaultQueueOptions returns the queue settings meshcd uses unless configured otherwise.
func DefaultQueueOptions() QueueOptions {
	return QueueOptions{PerCluster: 4, MaxAttempts: 3, BaseDelay: 500 * time.Millisecond, MaxDelay: 30 * time.Second, AttemptTimeout: 5 * time.Minute}
}

func (o QueueOptions) withDefaults() QueueOptions {
	def := DefaultQueueOptions()
	if o.PerCluster <= 0 {
		o.PerCluster = def.PerCluster
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = def.BaseDelay
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = def.MaxDelay
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = def.AttemptTimeout
	}
	return o
}

// Done is told the result of every attempt of a job; final is false while the job will be
// tried again. It is called from the queue's workers and must not block.
type Done func(res *SyncResult, final bool)

// Queue is one cluster's sync queue for as long as meshcd runs: it holds the latest job per
// key (a design), works through them with its own workers, and retries a failed job with
// exponential backoff until it succeeds or a newer job for the key replaces it. A slow or
// dead cluster holds up only its own queue.
type Queue struct {
	r       *Reconciler
	cluster *fleet.Cluster
	opts    QueueOptions
	q       workqueue.TypedRateLimitingInterface[string]

	mu   sync.Mutex
	jobs map[string]*queued
}

type queued struct {
	job  Job
	gen  uint64
	done Done
	// sofar is what the job's earlier attempts did: an object created by a failed attempt
	// stays created in the results of the next.
	sofar *SyncResult
}

// NewQueue returns the cluster's queue; Run works it.
func (r *Reconciler) NewQueue(c *fleet.Cluster, opts QueueOptions) *Queue {
	opts = opts.withDefaults()
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[string](opts.BaseDelay, opts.MaxDelay)
	return &Queue{
		r: r, cluster: c, opts: opts, jobs: map[string]*queued{},
		q: workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[string]{Name: ""}),
	}
}

// Submit replaces the key's job and queues it at once, forgetting the backoff of the job it
// replaces. A job with a render error is not synced: done is told at once, and nothing is
// applied or pruned.
func (q *Queue) Submit(key string, j Job, done Done) {
	if j.RenderErr != nil || j.Bundle == nil {
		q.Remove(key)
		done(notApplied(j), true)
		return
	}
	q.mu.Lock()
	var gen uint64
	if old, ok := q.jobs[key]; ok {
		gen = old.gen + 1
	}
	q.jobs[key] = &queued{job: j, gen: gen, done: done}
	q.mu.Unlock()
	q.q.Forget(key)
	q.q.Add(key)
}

// Remove forgets the key's job; an attempt in flight finishes, and is not retried.
func (q *Queue) Remove(key string) {
	q.mu.Lock()
	delete(q.jobs, key)
	q.mu.Unlock()
	q.q.Forget(key)
}

// Len is how many keys wait for a worker.
func (q *Queue) Len() int { return q.q.Len() }

// Run works the queue until ctx ends, then waits for the attempts in flight (which see ctx
// cancelled) and returns.
func (q *Queue) Run(ctx context.Context) {
	stop := context.AfterFunc(ctx, q.q.ShutDown)
	defer stop()
	var wg sync.WaitGroup
	for range q.opts.PerCluster {
		wg.Go(func() {
			for q.work(ctx) {
			}
		})
	}
	wg.Wait()
}

// work syncs one key; it returns false once the queue is shut down.
func (q *Queue) work(ctx context.Context) bool {
	key, shutdown := q.q.Get()
	if shutdown {
		return false
	}
	defer q.q.Done(key)
	q.mu.Lock()
	e, ok := q.jobs[key]
	var entry queued
	if ok {
		entry = *e
	}
	q.mu.Unlock()
	if !ok {
		return true
	}
	actx, cancel := context.WithTimeout(ctx, q.opts.AttemptTimeout)
	res, err := q.r.Sync(actx, entry.job.Cluster, entry.job.Bundle, entry.job.Options)
	cancel()
	res = Accumulate(entry.sofar, res)
	q.mu.Lock()
	cur, ok := q.jobs[key]
	current := ok && cur.gen == entry.gen
	if current {
		cur.sofar = res
	}
	q.mu.Unlock()
	attempts := q.q.NumRequeues(key) + 1
	retry := err != nil && !errors.Is(err, ErrEmptyBundle) && ctx.Err() == nil && current &&
		(q.opts.MaxAttempts <= 0 || attempts < q.opts.MaxAttempts)
	switch {
	case retry:
		q.q.AddRateLimited(key)
	case current:
		q.q.Forget(key)
	}
	entry.done(res, !retry)
	return true
}

// Accumulate is a job's result over its attempts: each object as the latest attempt left it,
// except that what an earlier attempt did (created, configured, pruned) is not overwritten by
// a later attempt that found nothing more to do. Errors and health are the latest attempt's.
func Accumulate(earlier, latest *SyncResult) *SyncResult {
	if earlier == nil || latest == nil {
		return latest
	}
	did := map[string]Action{}
	for _, e := range earlier.Entries {
		if e.Action == Created || e.Action == Configured || e.Action == Pruned {
			did[e.Object] = e.Action
		}
	}
	out := *latest
	out.Entries = make([]Entry, len(latest.Entries))
	seen := map[string]bool{}
	for i, e := range latest.Entries {
		seen[e.Object] = true
		if a, ok := did[e.Object]; ok && e.Action == Unchanged {
			e.Action = a
		}
		out.Entries[i] = e
	}
	for _, e := range earlier.Entries {
		if !seen[e.Object] && e.Action == Pruned {
			out.Entries = append(out.Entries, e) // pruned then, gone from the bundle since
		}
	}
	out.Duration = earlier.Duration + latest.Duration
	return &out
}

// notApplied is the result of a job that must not touch the cluster.
func notApplied(j Job) *SyncResult {
	err := j.RenderErr
	if err == nil {
		err = errors.New("no bundle")
	}
	design := ""
	if j.Bundle != nil {
		design = j.Bundle.Design
	}
	name := ""
	if j.Cluster != nil {
		name = j.Cluster.Name
	}
	return &SyncResult{Cluster: name, Design: design, Error: fmt.Sprintf("not applied, nothing pruned: %v", err)}
}

// SyncAll runs every job once to its final result, each cluster on a queue of its own: a slow
// or unreachable cluster retries with exponential backoff on its queue (up to MaxAttempts)
// and never delays the others. A job whose render failed is not tried at all: its result
// carries the render error and nothing is applied or pruned for it. A job with objects in a
// Namespace that another job for the same cluster renders starts once that job is final (a
// chart's objects wait for the design that owns their Namespace); jobs that wait on each
// other in a ring start at once. Results come back in the order of jobs; when ctx ends
// first, the jobs not finished say so.
func (r *Reconciler) SyncAll(ctx context.Context, jobs []Job, opts QueueOptions) []*SyncResult {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultQueueOptions().MaxAttempts
	}
	results := make([]*SyncResult, len(jobs))
	var mu sync.Mutex
	qctx, stop := context.WithCancel(ctx)
	defer stop()
	queues := map[*fleet.Cluster]*Queue{}
	var running sync.WaitGroup
	remaining := atomic.Int64{}
	remaining.Store(int64(len(jobs)))
	finished := make(chan struct{})
	if len(jobs) == 0 {
		close(finished)
	}
	waits, dependents := namespaceOrder(jobs)
	var submit func(i int)
	submit = func(i int) {
		j := jobs[i]
		done := func(res *SyncResult, final bool) {
			mu.Lock()
			results[i] = res
			var ready []int
			if final {
				for _, k := range dependents[i] {
					if waits[k]--; waits[k] == 0 {
						ready = append(ready, k)
					}
				}
			}
			mu.Unlock()
			for _, k := range ready {
				submit(k)
			}
			if final && remaining.Add(-1) == 0 {
				close(finished)
			}
		}
		q := queues[j.Cluster]
		if q == nil {
			done(notApplied(j), true)
			return
		}
		q.Submit(strconv.Itoa(i), j, done)
	}
	for _, j := range jobs {
		if _, ok := queues[j.Cluster]; !ok && j.RenderErr == nil && j.Bundle != nil {
			q := r.NewQueue(j.Cluster, opts)
			queues[j.Cluster] = q
			running.Go(func() { q.Run(qctx) })
		}
	}
	mu.Lock()
	var first []int
	for i := range jobs {
		if waits[i] == 0 {
			first = append(first, i)
		}
	}
	mu.Unlock()
	for _, i := range first {
		submit(i)
	}
	select {
	case <-finished:
	case <-ctx.Done():
	}
	stop()
	running.Wait()
	mu.Lock()
	defer mu.Unlock()
	for i, res := range results {
		if res == nil {
			design := ""
			if jobs[i].Bundle != nil {
				design = jobs[i].Bundle.Design
			}
			results[i] = &SyncResult{Cluster: jobs[i].Cluster.Name, Design: design, Error: "not synced: " + context.Cause(ctx).Error()}
		}
	}
	return results
}

// namespaceOrder says which jobs wait for which: a job waits for each other job of its
// cluster that renders a Namespace its objects live in. waits[j] counts what job j waits
// for; dependents[i] are the jobs waiting for job i. Jobs caught in a ring (or waiting on
// one) wait for nothing.
func namespaceOrder(jobs []Job) (waits []int, dependents [][]int) {
	owner := map[*fleet.Cluster]map[string]int{}
	for i, j := range jobs {
		if j.Bundle == nil || j.RenderErr != nil {
			continue
		}
		for _, o := range j.Bundle.Objects {
			if o.GetKind() == "Namespace" && o.GetAPIVersion() == "v1" {
				if owner[j.Cluster] == nil {
					owner[j.Cluster] = map[string]int{}
				}
				owner[j.Cluster][o.GetName()] = i
			}
		}
	}
	deps := make([][]int, len(jobs)) // what each job waits for
	for i, j := range jobs {
		if j.Bundle == nil || j.RenderErr != nil {
			continue
		}
		seen := map[int]bool{}
		for _, o := range j.Bundle.Objects {
			if k, ok := owner[j.Cluster][o.GetNamespace()]; ok && k != i && !seen[k] {
				seen[k] = true
				deps[i] = append(deps[i], k)
			}
		}
	}
	// Kahn's algorithm: what it cannot order is in or behind a ring, and waits for nothing.
	waits = make([]int, len(jobs))
	dependents = make([][]int, len(jobs))
	for i, ds := range deps {
		waits[i] = len(ds)
		for _, k := range ds {
			dependents[k] = append(dependents[k], i)
		}
	}
	left := slices.Clone(waits)
	var free []int
	for i, n := range left {
		if n == 0 {
			free = append(free, i)
		}
	}
	for len(free) > 0 {
		i := free[0]
		free = free[1:]
		for _, k := range dependents[i] {
			if left[k]--; left[k] == 0 {
				free = append(free, k)
			}
		}
	}
	for i, n := range left {
		if n == 0 {
			continue
		}
		waits[i] = 0
		for _, k := range deps[i] {
			dependents[k] = slices.DeleteFunc(dependents[k], func(x int) bool { return x == i })
		}
	}
	return waits, dependents
}
