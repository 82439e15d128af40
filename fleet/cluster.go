// Package fleet is the cluster registry: each cluster's name, labels and mesh from the fleet
// repo joined with credentials from the daemon's config, one rate-limited client per cluster,
// a count of the requests it sent, its health, and a watch cache of the objects meshcd
// manages there. It does not decide what gets applied.
package fleet

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/events"
)

// ClientOptions bound what one cluster's client may cost.
type ClientOptions struct {
	// QPS and Burst are the client-side rate limit, per cluster. client-go's defaults (5/10)
	// would make a 1,000-object cold apply take minutes.
	QPS   float32
	Burst int
	// Timeout bounds each request.
	Timeout time.Duration
}

// DefaultClientOptions returns the limits meshcd uses unless the config says otherwise.
func DefaultClientOptions() ClientOptions {
	return ClientOptions{QPS: 500, Burst: 1000, Timeout: 30 * time.Second}
}

// Cluster is one cluster of the fleet, connected: its fleet-repo entry plus the clients meshcd
// reaches it with. Connect builds it; it is safe for concurrent use.
type Cluster struct {
	schema.Cluster
	// Config is the client configuration, with meshcd's rate limits and request counter.
	Config  *rest.Config
	Dynamic dynamic.Interface
	Mapper  meta.ResettableRESTMapper
	// Live is the watch cache of the objects meshcd manages in this cluster.
	Live *Live

	discovery discovery.DiscoveryInterface
	requests  requestCounter

	mu          sync.Mutex
	health      Health
	broadcaster events.EventBroadcaster
	recorder    events.EventRecorder
	stopEvents  context.CancelFunc
}

// Connect builds a cluster's clients from its fleet entry and a rest config (from Credentials).
// It sends no request: the first is made by whoever uses the clients.
func Connect(c schema.Cluster, cfg *rest.Config, opts ClientOptions) (*Cluster, error) {
	def := DefaultClientOptions()
	if opts.QPS <= 0 {
		opts.QPS = def.QPS
	}
	if opts.Burst <= 0 {
		opts.Burst = def.Burst
	}
	if opts.Timeout <= 0 {
		opts.Timeout = def.Timeout
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst, cfg.Timeout = opts.QPS, opts.Burst, opts.Timeout
	cfg.UserAgent = "meshcd"
	out := &Cluster{Cluster: c, Config: cfg}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &countingTransport{next: rt, count: &out.requests}
	})
	var err error
	if out.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	out.discovery = dc
	out.Mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	out.Live = newLive(c.Name, out.Dynamic, out.Mapper)
	return out, nil
}

// Requests returns how many HTTP requests meshcd has sent to this cluster, and how many of
// them were writes (POST, PUT, PATCH, DELETE). Watches count once, when opened.
func (c *Cluster) Requests() RequestCount {
	return RequestCount{Total: c.requests.total.Load(), Writes: c.requests.writes.Load()}
}

// RequestCount is a snapshot of a cluster's request counter.
type RequestCount struct{ Total, Writes int64 }

// Sub returns the requests made between an earlier snapshot and this one.
func (r RequestCount) Sub(earlier RequestCount) RequestCount {
	return RequestCount{Total: r.Total - earlier.Total, Writes: r.Writes - earlier.Writes}
}

type requestCounter struct{ total, writes atomic.Int64 }

type countingTransport struct {
	next  http.RoundTripper
	count *requestCounter
}

// WrappedRoundTripper lets client-go reach the transport underneath, to cancel requests.
func (t *countingTransport) WrappedRoundTripper() http.RoundTripper { return t.next }

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.count.total.Add(1)
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		t.count.writes.Add(1)
	}
	return t.next.RoundTrip(r)
}

// Health is what meshcd last saw of a cluster.
type Health struct {
	Reachable     bool      `json:"reachable"`
	ServerVersion string    `json:"serverVersion,omitempty"`
	LastError     string    `json:"lastError,omitempty"`
	CheckedAt     time.Time `json:"checkedAt"`
}

// CheckHealth asks the cluster for its version and records the answer.
func (c *Cluster) CheckHealth(ctx context.Context) Health {
	h := Health{CheckedAt: time.Now()}
	type result struct {
		v   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := c.discovery.ServerVersion()
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{v: v.GitVersion}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			h.LastError = fmt.Sprintf("cluster %s: %v", c.Name, r.err)
		} else {
			h.Reachable, h.ServerVersion = true, r.v
		}
	case <-ctx.Done():
		h.LastError = fmt.Sprintf("cluster %s: %v", c.Name, ctx.Err())
	}
	c.mu.Lock()
	c.health = h
	c.mu.Unlock()
	return h
}

// Health returns what the last CheckHealth saw, or what the last failed request recorded.
func (c *Cluster) Health() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health
}

// RecordError notes a failed request to the cluster, for Health.
func (c *Cluster) RecordError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.health.LastError = err.Error()
	c.health.CheckedAt = time.Now()
}

// Resource is the dynamic client for a kind, scoped to namespace when the kind is namespaced.
func (c *Cluster) Resource(m *meta.RESTMapping, namespace string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.Dynamic.Resource(m.Resource).Namespace(namespace)
	}
	return c.Dynamic.Resource(m.Resource)
}
