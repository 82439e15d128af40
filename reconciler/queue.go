package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// QueueOptions bound SyncAll.
type QueueOptions struct {
	// PerCluster is how many designs sync to one cluster at once.
	PerCluster int
	// MaxAttempts is how often a failing job is tried before its result is final.
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

// SyncAll runs every job, each cluster on its own rate-limited work queue: a slow or
// unreachable cluster retries with exponential backoff on its own queue and never delays the
// others. A job whose render failed is not tried at all: its result carries the render error
// and nothing is applied or pruned for it. Results come back in the order of jobs.
func (r *Reconciler) SyncAll(ctx context.Context, jobs []Job, opts QueueOptions) []*SyncResult {
	def := DefaultQueueOptions()
	if opts.PerCluster <= 0 {
		opts.PerCluster = def.PerCluster
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = def.MaxAttempts
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = def.BaseDelay
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = def.MaxDelay
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = def.AttemptTimeout
	}
	results := make([]*SyncResult, len(jobs))
	byCluster := map[*fleet.Cluster][]int{}
	var order []*fleet.Cluster
	for i, j := range jobs {
		if j.RenderErr != nil || j.Bundle == nil {
			err := j.RenderErr
			if err == nil {
				err = errors.New("no bundle")
			}
			design := ""
			if j.Bundle != nil {
				design = j.Bundle.Design
			}
			results[i] = &SyncResult{Cluster: j.Cluster.Name, Design: design, Error: fmt.Sprintf("not applied, nothing pruned: %v", err)}
			continue
		}
		if _, ok := byCluster[j.Cluster]; !ok {
			order = append(order, j.Cluster)
		}
		byCluster[j.Cluster] = append(byCluster[j.Cluster], i)
	}
	var wg sync.WaitGroup
	for _, c := range order {
		wg.Go(func() { r.drain(ctx, jobs, byCluster[c], results, opts) })
	}
	wg.Wait()
	return results
}

// drain works through one cluster's jobs with its own queue and workers.
func (r *Reconciler) drain(ctx context.Context, jobs []Job, idx []int, results []*SyncResult, opts QueueOptions) {
	q := workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[int](opts.BaseDelay, opts.MaxDelay))
	var pending sync.WaitGroup
	for _, i := range idx {
		pending.Add(1)
		q.Add(i)
	}
	go func() {
		pending.Wait()
		q.ShutDown()
	}()
	stop := context.AfterFunc(ctx, q.ShutDown)
	defer stop()
	var wg sync.WaitGroup
	for range min(opts.PerCluster, len(idx)) {
		wg.Go(func() {
			for {
				i, shutdown := q.Get()
				if shutdown {
					return
				}
				j := jobs[i]
				actx, cancel := context.WithTimeout(ctx, opts.AttemptTimeout)
				res, err := r.Sync(actx, j.Cluster, j.Bundle, j.Options)
				cancel()
				results[i] = res
				retry := err != nil && !errors.Is(err, ErrEmptyBundle) && ctx.Err() == nil && q.NumRequeues(i)+1 < opts.MaxAttempts
				if retry {
					q.AddRateLimited(i)
				} else {
					q.Forget(i)
					pending.Done()
				}
				q.Done(i)
			}
		})
	}
	wg.Wait()
	// A cancelled context shuts the queue down with jobs still pending; their results say so.
	for _, i := range idx {
		if results[i] == nil {
			results[i] = &SyncResult{Cluster: jobs[i].Cluster.Name, Design: jobs[i].Bundle.Design, Error: "not synced: " + context.Cause(ctx).Error()}
		}
	}
}
