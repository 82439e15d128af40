package notify

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// Notifier sends one repo's feedback from a goroutine of its own, so a host that is down,
// slow or rate-limiting delays only the feedback, never a sync or a preview. Each status and
// the comment of each pull request keep only their newest content; one that failed is retried
// with exponential backoff (1 s doubling to 5 min) until it lands or newer content replaces it.
// A request the host refuses for good (a bad token, an unknown repository) is dropped and
// counted.
type Notifier struct {
	c   *Client
	log *slog.Logger
	q   workqueue.TypedRateLimitingInterface[string]

	mu      sync.Mutex
	pending map[string]*job
	gen     uint64

	sent, failed, dropped atomic.Int64
}

// Stats count a Notifier's work so far.
type Stats struct {
	// Sent landed; Failed attempts were retried; Dropped were refused for good.
	Sent, Failed, Dropped int64
	// Pending wait to be sent or retried.
	Pending int
}

// NewNotifier returns a Notifier sending through c; Run sends.
func NewNotifier(c *Client, log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, 5*time.Minute)
	return &Notifier{c: c, log: log, pending: map[string]*job{},
		q: workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[string]{})}
}

// Status asks for a commit status on the target's head; it replaces any not yet sent for the
// same commit and context.
func (n *Notifier) Status(t Target, s Status) {
	n.submit(t.SHA+" status "+s.Context, func(ctx context.Context) error { return n.c.SetStatus(ctx, t, s) })
}

// Comment asks for the pull request's meshcd comment to say body; it replaces any body not yet
// sent for the same pull request.
func (n *Notifier) Comment(t Target, body string) {
	n.submit(t.Repo+" comment "+itoa(t.PR), func(ctx context.Context) error { return n.c.UpsertComment(ctx, t, body) })
}

// CommentIfAny is Comment for a pull request that may never have had a meshcd comment: it edits
// the comment if there is one and adds none.
func (n *Notifier) CommentIfAny(t Target, body string) {
	n.submit(t.Repo+" comment "+itoa(t.PR), func(ctx context.Context) error { return n.c.EditComment(ctx, t, body) })
}

// job is one pending piece of feedback; gen tells a replaced one from its replacement.
type job struct {
	fn  func(context.Context) error
	gen uint64
}

func (n *Notifier) submit(key string, fn func(context.Context) error) {
	n.mu.Lock()
	n.gen++
	n.pending[key] = &job{fn: fn, gen: n.gen}
	n.mu.Unlock()
	n.q.Forget(key) // new content: no backoff from the old
	n.q.Add(key)
}

// Stats returns the counts so far.
func (n *Notifier) Stats() Stats {
	n.mu.Lock()
	pending := len(n.pending)
	n.mu.Unlock()
	return Stats{Sent: n.sent.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load(), Pending: pending}
}

// Run sends until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	stop := context.AfterFunc(ctx, n.q.ShutDown)
	defer stop()
	for n.work(ctx) {
	}
}

func (n *Notifier) work(ctx context.Context) bool {
	key, shutdown := n.q.Get()
	if shutdown {
		return false
	}
	defer n.q.Done(key)
	n.mu.Lock()
	j := n.pending[key]
	n.mu.Unlock()
	if j == nil {
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := j.fn(rctx)
	cancel()
	n.mu.Lock()
	replaced := n.pending[key] != j
	if !replaced && (err == nil || !Retryable(err)) {
		delete(n.pending, key)
	}
	n.mu.Unlock()
	if replaced {
		return true // newer content waits in the queue already
	}
	switch {
	case err == nil:
		n.sent.Add(1)
		n.q.Forget(key)
	case !Retryable(err):
		n.dropped.Add(1)
		n.q.Forget(key)
		n.log.Error("feedback refused by the host; not retried", "what", key, "err", err)
	case ctx.Err() == nil:
		n.failed.Add(1)
		n.log.Warn("feedback failed; retrying", "what", key, "err", err, "in", n.q.NumRequeues(key))
		n.q.AddRateLimited(key)
	}
	return true
}

func itoa(i int) string { return strconv.Itoa(i) }
