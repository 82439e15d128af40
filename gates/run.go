// Package gates runs performance gates: a fortio load against a target, a Result in the field
// names of Meshery's SMP performance format, a Verdict against absolute thresholds and a
// regression budget from the last passing run in Git, status files and SVG charts to commit
// back, and rollout steps advanced or rolled back by those verdicts. Scheduling is not here:
// sources' cron and the daemon trigger gates.
package gates

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"fortio.org/fortio/fhttp"
	"fortio.org/fortio/periodic"
	fversion "fortio.org/fortio/version"
	flog "fortio.org/log"
	"github.com/meshcd/meshcd/schema"
)

// Target says where a gate's load goes and what the result is about.
type Target struct {
	// URL overrides the gate's URL (a port-forward, a PR preview endpoint).
	URL      string
	Cluster  string
	Design   string
	Gate     string
	Revision string
	// Digest is the design's bundle digest on the cluster, when the load measures a sync.
	Digest string
	// Spec is SpecHash of the gate, recorded with the result.
	Spec string
	// Pinned maps a target's host name to the address Policy.Check allowed for it, so a DNS
	// answer that changes after the check cannot move the load elsewhere.
	Pinned map[string]netip.Addr
}

type addr = netip.Addr

// resolution is the width of the smallest latency bucket, in seconds: fortio's default (1 ms)
// puts every answer of a fast service into one bucket.
const resolution = 0.0001

// quietFortio turns fortio's process-wide logger down to critical messages: it logs every
// run and every failed connection, which in meshcd's daemon would drown its own logs. What a
// run measured is in the Result instead.
var quietFortio sync.Once

// earlyWindow is how many first requests decide that a target is down: if most of them fail,
// the run stops at once instead of hammering a dead target for its whole duration.
const earlyWindow = 20

// Run sends the gate's load to the target with fortio and returns what it measured. It stops
// when ctx is cancelled, and early once the error budget is spent: more failures than the
// gate's error-rate threshold allows for the whole run, or most of the first requests. An
// early stop is a Result with Aborted set, not an error; an error means no load could be sent.
//
// A side-by-side gate (compare) loads its two versions in alternating slices and returns the
// candidate's numbers with the comparison.
func Run(ctx context.Context, g schema.Gate, t Target) (*Result, error) {
	switch {
	case g.GRPC != nil:
		return runGRPC(ctx, g, t)
	case g.Compare != nil:
		return runCompare(ctx, g, t)
	}
	url := g.URL
	if t.URL != "" {
		url = t.URL
	}
	name := t.Design + "/" + t.Gate
	if g.Load.Warmup != nil && g.Load.Warmup.Duration > 0 {
		warm := g
		warm.Load.Requests, warm.Load.Duration = 0, g.Load.Warmup
		if _, _, err := load(ctx, warm, url, t.pin(url), nil); err != nil {
			return nil, fmt.Errorf("gate %s: warm-up: %w", name, err)
		}
	}
	budget := newBudget(g)
	start := time.Now()
	res, reason, err := load(ctx, g, url, t.pin(url), budget)
	if err != nil {
		return nil, fmt.Errorf("gate %s: %w", name, err)
	}
	out := newResult(res, start, time.Now())
	out.Name = name
	out.Target = TargetInfo{URL: url, Cluster: t.Cluster, Design: t.Design, Gate: t.Gate, Revision: t.Revision, Digest: t.Digest, Spec: t.Spec}
	out.Aborted = reason
	if ctx.Err() != nil && reason == "" {
		out.Aborted = "cancelled: " + ctx.Err().Error()
	}
	return out, nil
}

// SpecHash names a gate's definition: a change gate runs again when the design's render or
// the gate itself (its target, load or thresholds) changed since it last measured.
func SpecHash(g schema.Gate) string {
	data, _ := json.Marshal(g)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:6])
}

// load runs one fortio HTTP load; reason says why it stopped early, if it did.
func load(ctx context.Context, g schema.Gate, url string, resolve netip.Addr, budget *errorBudget) (*fhttp.HTTPRunnerResults, string, error) {
	o := &fhttp.HTTPRunnerOptions{}
	o.URL = url
	if resolve.Is4() {
		// fortio joins an IPv6 override without brackets; a v6-only name is not pinned.
		o.Resolve = resolve.String()
		o.NoResolveEachConn = true
	}
	o.QPS = g.Load.QPS
	if o.QPS <= 0 {
		o.QPS = -1 // as fast as the connections go
	}
	o.NumThreads = max(1, g.Load.Connections)
	if g.Load.Duration != nil {
		o.Duration = g.Load.Duration.Duration
	}
	if g.Load.Requests > 0 {
		o.Exactly = int64(g.Load.Requests)
	}
	o.Percentiles = []float64{50, 75, 90, 99, 99.9}
	o.RunnerOptions.Resolution = resolution
	o.Out = io.Discard
	o.AllowInitialErrors = true // a few early 503s are measured, not fatal; the budget decides
	// fortio moves the aborter into its runner and clears o.Stop: keep our own reference.
	aborter := periodic.NewAborter()
	o.Stop = aborter
	for _, k := range slices.Sorted(maps.Keys(g.Load.Headers)) {
		if err := o.AddAndValidateExtraHeader(k + ": " + g.Load.Headers[k]); err != nil {
			return nil, "", fmt.Errorf("header %s: %w", k, err)
		}
	}
	if g.Load.Payload != "" {
		o.Payload = []byte(g.Load.Payload)
	}
	if budget != nil {
		budget.stop = aborter
		o.AccessLogger = budget
	}
	quietFortio.Do(quiet)
	stop := context.AfterFunc(ctx, func() { aborter.Abort(false) })
	defer stop()
	res, err := fhttp.RunHTTPTest(o)
	if err != nil {
		return nil, "", err
	}
	if budget != nil {
		return res, budget.reason(), nil
	}
	return res, "", nil
}

// newBudget is the error budget of a run of the gate: as many failed requests as its error
// rate threshold allows over the whole run (none set: only the first requests' check).
func newBudget(g schema.Gate) *errorBudget {
	budget := &errorBudget{}
	if g.Thresholds.ErrorRate != nil {
		expected := float64(g.Load.Requests)
		if g.Load.Duration != nil && g.Load.QPS > 0 {
			expected = g.Load.QPS * g.Load.Duration.Seconds()
		}
		if expected > 0 {
			budget.max = int64(*g.Thresholds.ErrorRate*expected) + 1
		}
	}
	return budget
}

func quiet() { flog.SetLogLevelQuiet(flog.Critical) }

// errorBudget is a fortio access logger that counts failed requests and stops the run once
// the budget is spent.
type errorBudget struct {
	max            int64
	total, failed  atomic.Int64
	stop           *periodic.Aborter
	once           sync.Once
	mu             sync.Mutex
	why            string
	lastFailDetail string
}

func (b *errorBudget) Start(ctx context.Context, _ periodic.ThreadID, _ int64, _ time.Time) context.Context {
	return ctx
}

func (b *errorBudget) Report(_ context.Context, _ periodic.ThreadID, _ int64, _ time.Time, _ float64, ok bool, details string) {
	total := b.total.Add(1)
	if ok {
		return
	}
	failed := b.failed.Add(1)
	b.mu.Lock()
	b.lastFailDetail = details
	b.mu.Unlock()
	switch {
	case b.max > 0 && failed > b.max:
		b.abort(fmt.Sprintf("error budget spent: %d failed requests, the threshold allows %d for the whole run (last: %s)", failed, b.max-1, describe(details)))
	case total <= earlyWindow && failed > earlyWindow/2:
		b.abort(fmt.Sprintf("target failing: %d of the first %d requests failed (last: %s)", failed, total, describe(details)))
	}
}

func (b *errorBudget) Info() string { return "meshcd error budget" }

func (b *errorBudget) abort(why string) {
	b.once.Do(func() {
		b.mu.Lock()
		b.why = why
		b.mu.Unlock()
		b.stop.Abort(false)
	})
}

func (b *errorBudget) reason() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.why
}

// describe turns fortio's status detail (an HTTP code, -1 for a socket error) into words.
func describe(details string) string {
	code, err := strconv.Atoi(details)
	if err != nil {
		return details
	}
	if code < 0 {
		return "connection error"
	}
	return "HTTP " + strconv.Itoa(code)
}

// LoadGenerator names what produced a result.
func loadGenerator() LoadGen { return LoadGen{Name: "fortio", Version: fversion.Short()} }
