package sources

import (
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Write is one set of files to commit to a branch: a nil value deletes the file.
type Write struct {
	Branch string
	// Marker starts the commit message (default StatusCommitMarker).
	Marker  string
	Message string
	Files   map[string][]byte
}

// CommitterOptions say how a Committer retries.
type CommitterOptions struct {
	// Commit is how each commit is made (author, attempts against concurrent pushers).
	Commit CommitOptions
	// Backoff is the wait after a failed commit, growing with every failure in a row.
	Backoff wait.Backoff
	// Timeout bounds one commit, fetch and push included.
	Timeout time.Duration
}

// DefaultCommitterOptions wait 1 s after a first failure, doubling up to a minute.
func DefaultCommitterOptions() CommitterOptions {
	return CommitterOptions{
		Commit:  DefaultCommitOptions(),
		Backoff: wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.2, Steps: math.MaxInt32, Cap: time.Minute},
		Timeout: 2 * time.Minute,
	}
}

// CommitterState is what a Committer has done so far.
type CommitterState struct {
	// Requested counts the writes submitted; Landed those whose files reached the remote.
	Requested, Landed int64
	// Pending counts the commits waiting (writes to one branch with one marker coalesce).
	Pending int
	// Attempts counts the commits tried, each of which starts with a fetch.
	Attempts int64
	// Failures counts the failed commits in a row (0 after a success).
	Failures     int
	LastError    string
	LastErrorAt  time.Time
	LastCommit   string
	LastCommitAt time.Time
}

// Committer is the one writer to one repo: every write goes through it, in order. Writes that
// wait coalesce (one commit per branch and marker, the latest content of a file winning), a
// failed commit is kept and retried with backoff, and no write is dropped: Landed catches up
// with Requested once the remote takes commits again.
type Committer struct {
	poller *Poller
	repo   Repo
	opts   CommitterOptions
	wake   chan struct{}
	kick   chan struct{}

	mu      sync.Mutex
	pending []*batch
	state   CommitterState
}

// batch is the coalesced writes to one branch with one marker.
type batch struct {
	branch, marker string
	messages       []string
	files          map[string][]byte
	writes         int64
}

// NewCommitter writes to repo through the poller's cache. Run does the writing.
func NewCommitter(p *Poller, repo Repo, opts CommitterOptions) *Committer {
	def := DefaultCommitterOptions()
	if opts.Backoff.Duration <= 0 {
		opts.Backoff = def.Backoff
	}
	if opts.Timeout <= 0 {
		opts.Timeout = def.Timeout
	}
	if opts.Commit.AuthorName == "" {
		opts.Commit = def.Commit
	}
	return &Committer{poller: p, repo: repo, opts: opts, wake: make(chan struct{}, 1), kick: make(chan struct{}, 1)}
}

// Submit queues a write and returns at once.
func (c *Committer) Submit(w Write) {
	c.mu.Lock()
	c.state.Requested++
	c.add(&batch{branch: w.Branch, marker: w.Marker, messages: []string{w.Message}, files: maps.Clone(w.Files), writes: 1}, false)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// add merges b into the pending batch of its branch and marker, or queues it. A batch put back
// after a failed commit is older than what was submitted meanwhile, so its files yield.
func (c *Committer) add(b *batch, older bool) {
	for _, p := range c.pending {
		if p.branch != b.branch || p.marker != b.marker {
			continue
		}
		if older {
			p.files, b.files = b.files, p.files
			p.messages = append(b.messages, p.messages...)
		} else {
			p.messages = append(p.messages, b.messages...)
		}
		maps.Copy(p.files, b.files)
		p.writes += b.writes
		return
	}
	if older {
		c.pending = append([]*batch{b}, c.pending...)
	} else {
		c.pending = append(c.pending, b)
	}
	c.state.Pending = len(c.pending)
}

// Kick retries a failed commit now instead of at the end of its backoff, for example once a
// poll shows the Git server answers again.
func (c *Committer) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// State returns a copy of what the committer has done.
func (c *Committer) State() CommitterState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state
	s.Pending = len(c.pending)
	return s
}

// drainTimeout bounds the last attempt to write what is pending once Run's context ends.
const drainTimeout = 5 * time.Second

// Run commits until ctx ends, then makes one last attempt, of at most a few seconds, to write
// what is still pending: a clean shutdown right after a sync keeps its status.
func (c *Committer) Run(ctx context.Context) {
	defer c.drain(context.WithoutCancel(ctx))
	backoff := c.opts.Backoff
	for {
		c.mu.Lock()
		var b *batch
		if len(c.pending) > 0 {
			b, c.pending = c.pending[0], c.pending[1:]
		}
		c.mu.Unlock()
		if b == nil {
			select {
			case <-ctx.Done():
				return
			case <-c.wake:
			case <-c.kick:
			}
			continue
		}
		hash, err := c.commit(ctx, b)
		c.mu.Lock()
		now := time.Now()
		if err != nil {
			c.add(b, true)
			c.state.Failures++
			c.state.LastError, c.state.LastErrorAt = err.Error(), now
		} else {
			c.state.Failures = 0
			c.state.Landed += b.writes
			if hash != "" {
				c.state.LastCommit, c.state.LastCommitAt = hash, now
			}
		}
		c.state.Pending = len(c.pending)
		c.mu.Unlock()
		if err == nil {
			backoff = c.opts.Backoff
			continue
		}
		if ctx.Err() != nil {
			return
		}
		timer := time.NewTimer(backoff.Step())
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-c.kick:
			backoff = c.opts.Backoff
		case <-timer.C:
		}
		timer.Stop()
	}
}

func (c *Committer) drain(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	for ctx.Err() == nil {
		c.mu.Lock()
		if len(c.pending) == 0 {
			c.mu.Unlock()
			return
		}
		b := c.pending[0]
		c.pending = c.pending[1:]
		c.mu.Unlock()
		_, err := c.commit(ctx, b)
		c.mu.Lock()
		if err != nil {
			c.add(b, true)
			c.state.Failures++
			c.state.LastError, c.state.LastErrorAt = err.Error(), time.Now()
			c.mu.Unlock()
			return
		}
		c.state.Landed += b.writes
		c.mu.Unlock()
	}
}

// commit makes one commit of the batch; a branch that already holds its content counts as
// written.
func (c *Committer) commit(ctx context.Context, b *batch) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	c.mu.Lock()
	c.state.Attempts++
	c.mu.Unlock()
	opts := c.opts.Commit
	opts.Branch, opts.Marker = b.branch, b.marker
	opts.Message = joinMessages(b.messages)
	hash, err := c.poller.CommitFiles(ctx, c.repo, opts, b.files)
	if errors.Is(err, ErrNothingToCommit) {
		return "", nil
	}
	return hash, err
}

// joinMessages keeps each distinct message once, in order.
func joinMessages(msgs []string) string {
	var out []string
	for _, m := range msgs {
		if m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return strings.Join(out, "; ")
}
