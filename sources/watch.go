package sources

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Target is one repo and the refs polled from it.
type Target struct {
	Repo Repo
	Refs []string
}

// WatchOptions set how often targets are polled.
type WatchOptions struct {
	Interval time.Duration
	// Jitter spreads polls by up to this fraction of Interval, so that many repos do not all
	// hit their servers at once.
	Jitter float64
	// MaxBackoff caps the wait after consecutive failures (which doubles from Interval/4).
	MaxBackoff time.Duration
}

// DefaultWatchOptions polls every minute with 10% jitter, backing off to 10 minutes.
func DefaultWatchOptions() WatchOptions {
	return WatchOptions{Interval: time.Minute, Jitter: 0.1, MaxBackoff: 10 * time.Minute}
}

// Update is the outcome of one poll of a target.
type Update struct {
	Target  Target
	Results []Result
	Err     error
	// Failures counts consecutive failed polls of this target (0 after a success).
	Failures int
}

// Watcher polls each target on its own schedule: a slow or failing server delays only its
// own repo, which backs off exponentially while it fails.
type Watcher struct {
	poller  *Poller
	targets []Target
	opts    WatchOptions

	mu    sync.Mutex
	kicks map[string][]chan struct{} // repo URL -> wake-up channels of its targets
}

// NewWatcher watches the targets with the poller.
func NewWatcher(p *Poller, targets []Target, opts WatchOptions) *Watcher {
	return &Watcher{poller: p, targets: targets, opts: opts, kicks: map[string][]chan struct{}{}}
}

// Trigger asks for an immediate poll of every target of this repo URL, as a webhook does.
// Triggers that arrive while one is pending collapse into it (debounce).
func (w *Watcher) Trigger(url string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	found := false
	for _, k := range w.kicks[url] {
		found = true
		select {
		case k <- struct{}{}:
		default: // already pending
		}
	}
	return found
}

// Run polls until ctx ends, sending every update to out.
func (w *Watcher) Run(ctx context.Context, out chan<- Update) {
	var wg sync.WaitGroup
	for _, t := range w.targets {
		kick := make(chan struct{}, 1)
		w.mu.Lock()
		w.kicks[t.Repo.URL] = append(w.kicks[t.Repo.URL], kick)
		w.mu.Unlock()
		wg.Go(func() { w.watch(ctx, t, kick, out) })
	}
	wg.Wait()
}

func (w *Watcher) watch(ctx context.Context, t Target, kick <-chan struct{}, out chan<- Update) {
	failures := 0
	for {
		res, err := w.poller.Poll(ctx, t.Repo, t.Refs)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
		} else {
			failures = 0
		}
		select {
		case out <- Update{Target: t, Results: res, Err: err, Failures: failures}:
		case <-ctx.Done():
			return
		}
		wait := w.next(failures)
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-time.After(wait):
		}
	}
}

// next is the wait before the following poll: the interval with jitter, or a backoff that
// doubles with every consecutive failure up to MaxBackoff.
func (w *Watcher) next(failures int) time.Duration {
	base := w.opts.Interval
	if failures > 0 {
		base = w.opts.Interval / 4
		for i := 1; i < failures && base < w.opts.MaxBackoff; i++ {
			base *= 2
		}
		base = min(base, w.opts.MaxBackoff)
	}
	if w.opts.Jitter > 0 {
		spread := float64(base) * w.opts.Jitter
		base += time.Duration((rand.Float64()*2 - 1) * spread)
	}
	return base
}
