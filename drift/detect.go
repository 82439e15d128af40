package drift

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Kind is how a live object drifted.
type Kind string

const (
	Modified Kind = "modified"
	// Deleted is an object meshcd applied (or saw in the cluster) that someone removed.
	Deleted Kind = "deleted"
	// Missing is an object meshcd never applied, for example because its apply failed: the
	// sync's result says why; drift does not heal it.
	Missing Kind = "missing"
	// Ownership is a field meshcd applied that another manager took over, even with the
	// same value: the next change by that manager would not be meshcd's to revert.
	Ownership Kind = "ownership"
)

func (k Kind) String() string { return string(k) }

// Entry is one drift of one object.
type Entry struct {
	Object     string     `json:"object"`
	Kind       Kind       `json:"kind"`
	Fields     []string   `json:"fields,omitempty"`
	By         string     `json:"by,omitempty"`
	DetectedAt time.Time  `json:"detectedAt"`
	HealedAt   *time.Time `json:"healedAt,omitempty"`
	// Contested is set once meshcd stopped healing the object because something keeps
	// changing it back.
	Contested bool   `json:"contested,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Report is the drift ledger of one design in one cluster.
type Report struct {
	Cluster string  `json:"cluster"`
	Design  string  `json:"design"`
	Entries []Entry `json:"entries"`
}

// Options tune a Detector.
type Options struct {
	// MaxHeals within Window mark an object contested: meshcd stops healing it and reports.
	MaxHeals int
	Window   time.Duration
	// FirstBackoff is the wait before the second heal of an object within Window; it doubles.
	FirstBackoff time.Duration
	// LedgerSize caps the entries kept per design (oldest dropped).
	LedgerSize int
	// Metrics, when set, receives drift counts and latencies.
	Metrics *Metrics
	// Events writes a Kubernetes Event on each drifted object.
	Events bool
	// OnDrift, when set, is called with every ledger entry as it is recorded (status files,
	// the daemon's API, benchmarks).
	OnDrift func(design string, e Entry)
}

// DefaultOptions returns the drift settings meshcd uses unless configured otherwise.
func DefaultOptions() Options {
	return Options{MaxHeals: 5, Window: time.Minute, FirstBackoff: 250 * time.Millisecond, LedgerSize: 1000, Events: true}
}

// Detector watches one cluster's managed objects through its watch cache and compares every
// change with what meshcd last applied.
type Detector struct {
	cluster *fleet.Cluster
	opts    Options
	work    chan string

	mu      sync.Mutex
	tracked map[string]*tracked
	ledger  map[string][]Entry
}

type tracked struct {
	design   string
	desired  *unstructured.Unstructured
	mode     schema.DriftMode
	match    Matcher
	heals    []time.Time
	next     time.Time
	queued   bool
	open     int // index of the open ledger entry + 1, or 0
	contest  bool
	lastSeen time.Time
	// stored is the object as meshcd's last apply of desired returned it: what the
	// apiserver made of desired (normalised, defaulted). Nil until Applied is told.
	stored *unstructured.Unstructured
	// echoed: the watch cache has caught up with stored (it holds that write or a later
	// change); until then a difference is the cache's lag, not drift.
	echoed bool
	// applied: meshcd applied the object, or it was seen in the cluster while tracked.
	applied bool
	since   time.Time // when desired last changed
}

// NewDetector returns a detector for the cluster; Run starts it.
func NewDetector(c *fleet.Cluster, opts Options) *Detector {
	def := DefaultOptions()
	if opts.MaxHeals <= 0 {
		opts.MaxHeals = def.MaxHeals
	}
	if opts.Window <= 0 {
		opts.Window = def.Window
	}
	if opts.FirstBackoff <= 0 {
		opts.FirstBackoff = def.FirstBackoff
	}
	if opts.LedgerSize <= 0 {
		opts.LedgerSize = def.LedgerSize
	}
	d := &Detector{cluster: c, opts: opts, work: make(chan string, 4096), tracked: map[string]*tracked{}, ledger: map[string][]Entry{}}
	c.Live.Subscribe(d.observe)
	return d
}

// Track sets what a design should hold in the cluster, replacing what was tracked for it.
// Call it before syncing the objects, so the sync's own writes compare against the new
// content; objects of the design not in objs stop being tracked.
func (d *Detector) Track(design string, objs []*unstructured.Unstructured, mode schema.DriftMode, rules Rules) {
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := map[string]bool{}
	for _, o := range objs {
		id := render.ObjectID(o)
		keep[id] = true
		t, ok := d.tracked[id]
		if !ok || t.design != design {
			t = &tracked{design: design}
			d.tracked[id] = t
		}
		if t.desired == nil || digestOf(t.desired) != digestOf(o) {
			// New content: what the apiserver stored for the old one says nothing about it,
			// and a field that could not converge before may now.
			t.stored, t.echoed, t.since, t.contest, t.heals = nil, false, time.Now(), false, nil
		}
		if !t.applied {
			_, t.applied = d.cluster.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName())
		}
		t.desired, t.mode, t.match = o, mode, rules.For(o.GetKind(), o.GetName())
	}
	for id, t := range d.tracked {
		if t.design == design && !keep[id] {
			delete(d.tracked, id)
		}
	}
}

// Applied tells the detector what meshcd's apply of a tracked object returned (or the live
// object a sync left as it was, when that is meshcd's last write): drift is then measured
// against what the apiserver stored, not against the rendered text. A result for content
// other than what is tracked is ignored. Pass it as the reconciler's SyncOptions.Applied.
func (d *Detector) Applied(obj *unstructured.Unstructured) {
	id := render.ObjectID(obj)
	d.mu.Lock()
	t, ok := d.tracked[id]
	fresh := ok && digestOf(t.desired) == digestOf(obj)
	if fresh {
		d.setStored(t, obj)
	}
	echoed := fresh && t.echoed
	d.mu.Unlock()
	if echoed {
		// The cache was ahead of this result: a check that waited for it runs now. Otherwise
		// the watch event of the write brings the check.
		d.queue(id)
	}
}

// setStored records what meshcd's write stored, and whether the cache holds it already. Called
// with d.mu held: the informer updates its store before it calls observe, so either this read
// sees the write or observe comes after and sees stored.
func (d *Detector) setStored(t *tracked, obj *unstructured.Unstructured) {
	live, found := d.cluster.Live.Get(obj.GroupVersionKind(), obj.GetNamespace(), obj.GetName())
	t.stored, t.applied = obj, true
	t.echoed = found && !fleet.OlderThan(live.GetResourceVersion(), obj.GetResourceVersion())
}

// MarkApplied records objects meshcd applied earlier (its inventory says so), so one that is
// not in the cluster is reported deleted rather than missing.
func (d *Detector) MarkApplied(ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		if t, ok := d.tracked[id]; ok {
			t.applied = true
		}
	}
}

// storedGrace is how long a check waits for meshcd's own apply result when the live object
// already carries the new content: the watch event of a write usually arrives before the
// write's response does.
const storedGrace = 5 * time.Second

func digestOf(o *unstructured.Unstructured) string {
	return o.GetAnnotations()[render.AnnotationDigest]
}

// Untrack stops tracking objects, for example right before they are pruned.
func (d *Detector) Untrack(ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		delete(d.tracked, id)
	}
}

// observe is the watch cache's handler: it queues tracked objects for a check.
func (d *Detector) observe(ev fleet.Event) {
	id := render.ObjectID(ev.Object)
	d.mu.Lock()
	t, ok := d.tracked[id]
	if ok {
		t.lastSeen = ev.Seen
		if ev.Type != fleet.Deleted {
			t.applied = true
		}
		if t.stored != nil && (ev.Type == fleet.Deleted || !fleet.OlderThan(ev.Object.GetResourceVersion(), t.stored.GetResourceVersion())) {
			t.echoed = true
		}
	}
	d.mu.Unlock()
	if ok {
		d.queue(id)
	}
}

// queue hands a tracked object to Run for a check, once until it is checked.
func (d *Detector) queue(id string) {
	d.mu.Lock()
	t, ok := d.tracked[id]
	if !ok || t.queued || t.mode == schema.DriftIgnore {
		d.mu.Unlock()
		return
	}
	t.queued = true
	d.mu.Unlock()
	select {
	case d.work <- id:
	default:
		// The queue is full: the object is checked by the next full Check.
		d.mu.Lock()
		t.queued = false
		d.mu.Unlock()
	}
}

// Run checks queued objects until ctx ends.
func (d *Detector) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-d.work:
			d.check(ctx, id)
		}
	}
}

// CheckAll compares every tracked object with the cache now and returns what drifted, without
// healing: a full sweep after a restart, and the one-shot CLI.
func (d *Detector) CheckAll() []Entry {
	d.mu.Lock()
	ids := slices.Sorted(maps.Keys(d.tracked))
	d.mu.Unlock()
	var out []Entry
	for _, id := range ids {
		if e, _, _, _ := d.compare(id, false); e != nil {
			out = append(out, *e)
		}
	}
	return out
}

// compare returns the object's drift, or nil, and the tracked state with the desired object
// it was compared with. Track replaces desired objects rather than changing them, so the
// object read under the lock stays valid after it. With wait set, an object whose live copy
// holds new content meshcd's apply has not reported on yet is not compared: compare returns
// how long to wait for that report instead.
func (d *Detector) compare(id string, wait bool) (*Entry, *tracked, *unstructured.Unstructured, time.Duration) {
	d.mu.Lock()
	t, ok := d.tracked[id]
	var o, stored *unstructured.Unstructured
	var match Matcher
	var applied, echoed bool
	var since time.Time
	if ok {
		o, stored, match, applied, echoed, since = t.desired, t.stored, t.match, t.applied, t.echoed, t.since
	}
	d.mu.Unlock()
	if !ok {
		return nil, nil, nil, 0
	}
	if stored != nil && !echoed {
		return nil, t, o, 0 // the cache has not seen meshcd's write yet; its event checks again
	}
	live, found := d.cluster.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName())
	now := time.Now()
	if !found {
		if !applied {
			return &Entry{Object: id, Kind: Missing, DetectedAt: now}, t, o, 0
		}
		return &Entry{Object: id, Kind: Deleted, DetectedAt: now}, t, o, 0
	}
	if wait && stored == nil && digestOf(live) == digestOf(o) {
		if left := storedGrace - now.Sub(since); left > 0 {
			return nil, t, o, left
		}
	}
	by := lastManager(live)
	if fields := CompareStored(o, stored, live, match); len(fields) > 0 {
		return &Entry{Object: id, Kind: Modified, Fields: fields, By: by, DetectedAt: now}, t, o, 0
	}
	if fields := LostOwnership(o, live, fleet.FieldManager, match); len(fields) > 0 {
		return &Entry{Object: id, Kind: Ownership, Fields: fields, By: by, DetectedAt: now}, t, o, 0
	}
	return nil, t, o, 0
}

func lastManager(live *unstructured.Unstructured) string {
	var by string
	var at time.Time
	for _, f := range live.GetManagedFields() {
		if f.Manager != fleet.FieldManager && f.Time != nil && !f.Time.Time.Before(at) {
			by, at = f.Manager, f.Time.Time
		}
	}
	return by
}

// check compares one object and heals or records it.
func (d *Detector) check(ctx context.Context, id string) {
	d.mu.Lock()
	if t, ok := d.tracked[id]; ok {
		t.queued = false
	}
	d.mu.Unlock()
	e, t, desired, wait := d.compare(id, true)
	if t == nil {
		return
	}
	if wait > 0 {
		time.AfterFunc(wait, func() { d.queue(id) })
		return
	}
	if e == nil {
		d.mu.Lock()
		t.open = 0 // back in line: the next drift is a new entry
		d.mu.Unlock()
		return
	}
	if m := d.opts.Metrics; m != nil {
		m.detected.WithLabelValues(d.cluster.Name, t.design, string(e.Kind)).Inc()
		if !t.lastSeen.IsZero() {
			m.latency.WithLabelValues(d.cluster.Name).Observe(e.DetectedAt.Sub(t.lastSeen).Seconds())
		}
	}
	d.mu.Lock()
	if t.contest {
		e.Contested = true // it stays contested: later entries say so too
	}
	heal := t.mode == schema.DriftHeal && !t.contest && e.Kind != Missing
	prev := t.stored
	match := t.match
	now := time.Now()
	if heal {
		recent := t.heals[:0]
		for _, h := range t.heals {
			if now.Sub(h) < d.opts.Window {
				recent = append(recent, h)
			}
		}
		t.heals = recent
		if len(t.heals) >= d.opts.MaxHeals {
			t.contest, heal = true, false
			e.Contested = true
			if m := d.opts.Metrics; m != nil {
				m.contested.WithLabelValues(d.cluster.Name, t.design).Inc()
			}
		} else if now.Before(t.next) {
			// Backing off: look again when the wait is over.
			wait := t.next.Sub(now)
			d.mu.Unlock()
			time.AfterFunc(wait, func() { d.queue(id) })
			return
		}
	}
	d.mu.Unlock()
	if heal {
		out, err := d.heal(ctx, desired)
		var stuck []string
		if err == nil {
			// Healed only if what the apiserver made of the heal holds the fields: one that
			// cannot converge (a webhook or the apiserver rewrites it) is contested at once,
			// and measured from now on against what the heal stored.
			stuck = CompareStored(desired, prev, out, match)
			d.mu.Lock()
			if digestOf(t.desired) == digestOf(out) {
				d.setStored(t, out)
			}
			d.mu.Unlock()
		}
		switch {
		case err != nil:
			e.Error = err.Error()
		case len(stuck) > 0:
			e.Error = fmt.Sprintf("healed, but the apiserver stores %s differently from the design: not healed again", strings.Join(stuck, " "))
			e.Contested = true
			d.mu.Lock()
			t.contest = true
			d.mu.Unlock()
			if m := d.opts.Metrics; m != nil {
				m.contested.WithLabelValues(d.cluster.Name, t.design).Inc()
			}
		default:
			healed := time.Now()
			e.HealedAt = &healed
			if m := d.opts.Metrics; m != nil {
				m.healed.WithLabelValues(d.cluster.Name, t.design).Inc()
				m.healLatency.WithLabelValues(d.cluster.Name).Observe(healed.Sub(e.DetectedAt).Seconds())
			}
		}
		d.mu.Lock()
		t.heals = append(t.heals, time.Now())
		t.next = time.Now().Add(d.opts.FirstBackoff << (len(t.heals) - 1))
		d.mu.Unlock()
	}
	d.record(t, *e)
	if d.opts.OnDrift != nil {
		d.opts.OnDrift(t.design, *e)
	}
	if d.opts.Events {
		d.event(desired, *e)
	}
}

// record adds the entry to the design's ledger, or updates the object's open entry while it
// stays drifted (a report-mode object edited again does not grow the ledger per event).
func (d *Detector) record(t *tracked, e Entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.ledger[t.design]
	if t.open > 0 && t.open <= len(l) && l[t.open-1].Object == e.Object && l[t.open-1].HealedAt == nil && e.HealedAt == nil {
		l[t.open-1] = e
		return
	}
	l = append(l, e)
	if len(l) > d.opts.LedgerSize {
		l = l[len(l)-d.opts.LedgerSize:]
	}
	d.ledger[t.design] = l
	t.open = len(l)
	if e.HealedAt != nil {
		t.open = 0
	}
}

// heal applies the desired object again, forced: only that object, not the bundle. It
// returns the object as the apiserver stored it.
func (d *Detector) heal(ctx context.Context, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	return d.forceApply(ctx, o, nil, "heal failed")
}

// forceApply applies one object as meshcd, taking its fields over, and returns what the
// apiserver stored (or, with dryRun, would store).
func (d *Detector) forceApply(ctx context.Context, o *unstructured.Unstructured, dryRun []string, what string) (*unstructured.Unstructured, error) {
	m, err := d.cluster.Live.Mapping(o.GroupVersionKind())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", render.ObjectID(o), err)
	}
	out, err := d.cluster.Resource(m, o.GetNamespace()).Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: fleet.FieldManager, Force: true, DryRun: dryRun})
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", render.ObjectID(o), what, err)
	}
	return out, nil
}

// Report returns the design's drift ledger in this cluster.
func (d *Detector) Report(design string) Report {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Report{Cluster: d.cluster.Name, Design: design, Entries: slices.Clone(d.ledger[design])}
}

// Contested lists the objects meshcd stopped healing.
func (d *Detector) Contested() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for id, t := range d.tracked {
		if t.contest {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
