// Package reconciler makes each target cluster match its bundle: server-side apply in stages,
// an inventory stored in the cluster, safe pruning, kstatus health, and a work queue that
// keeps a slow or failing cluster from delaying the others. It neither renders nor compares
// live state for drift.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Action is what a sync did to one object.
type Action string

const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Pruned     Action = "pruned"
	// Skipped is an object a prune left in place: a Namespace or PVC without opt-in, or one
	// annotated meshcd.io/prune: disabled, or no longer carrying this design's label.
	Skipped Action = "skipped"
	Failed  Action = "failed"
)

func (a Action) String() string { return string(a) }

// Entry is the outcome for one object.
type Entry struct {
	Object string `json:"object"`
	Action Action `json:"action"`
	Error  string `json:"error,omitempty"`
	// AdoptedFrom names the design whose label the live object carried before this sync
	// took it over (sync.adopt).
	AdoptedFrom string `json:"adoptedFrom,omitempty"`
}

// SyncResult is what one Sync of a bundle to a cluster did.
type SyncResult struct {
	Cluster  string        `json:"cluster"`
	Design   string        `json:"design"`
	Revision string        `json:"revision"`
	Digest   string        `json:"digest"`
	Entries  []Entry       `json:"entries"`
	Health   Health        `json:"health"`
	Duration time.Duration `json:"duration"`
	// Error is set when the sync as a whole failed (the cluster unreachable, the inventory
	// unwritable) or any object failed.
	Error string `json:"error,omitempty"`
	// DryRun results changed nothing.
	DryRun bool `json:"dryRun,omitempty"`
}

// Count returns how many entries have the action.
func (r *SyncResult) Count(a Action) int {
	n := 0
	for _, e := range r.Entries {
		if e.Action == a {
			n++
		}
	}
	return n
}

// SyncOptions say how one sync behaves.
type SyncOptions struct {
	// Prune deletes objects of the previous inventory that the bundle no longer has. The
	// design's sync.prune must allow it too.
	Prune bool
	// DryRun sends every write as a server-side dry run and writes no inventory.
	DryRun bool
	// Concurrency bounds the writes in flight to the cluster at once.
	Concurrency int
	// Wait waits, up to HealthTimeout, until every object is Current (kstatus).
	Wait          bool
	HealthTimeout time.Duration
	// EstablishTimeout bounds the wait for new CRDs to be served.
	EstablishTimeout time.Duration
	// Policy is the design's sync settings (take ownership, empty bundles, what may be pruned).
	Policy Policy
	// BeforePrune, when set, is told which objects are about to be pruned, so drift detection
	// stops tracking them before they disappear.
	BeforePrune func(ids []string)
	// Applied, when set, is told of each object just written, with the object as the
	// apiserver returned it, and of each object left alone because it is still meshcd's last
	// write, as the watch cache holds it.
	Applied func(obj *unstructured.Unstructured)
}

// Policy is what a design's sync section says about applying and pruning.
type Policy struct {
	Prune         bool
	AllowEmpty    bool
	TakeOwnership bool
	// Adopt takes over objects whose live label names another design; without it such an
	// object fails, naming both designs.
	Adopt                       bool
	PruneNamespaces             bool
	PrunePersistentVolumeClaims bool
}

// DefaultSyncOptions returns the options meshcd syncs with unless told otherwise.
func DefaultSyncOptions() SyncOptions {
	return SyncOptions{
		Prune: true, Concurrency: 16, HealthTimeout: 2 * time.Minute, EstablishTimeout: time.Minute,
		Policy: Policy{Prune: true},
	}
}

// Reconciler syncs bundles to clusters. It remembers each cluster's inventories after the
// first read, so a sync of an unchanged bundle costs no request.
type Reconciler struct {
	mu          sync.Mutex
	inventories map[string]*Inventory
}

// New returns a Reconciler.
func New() *Reconciler { return &Reconciler{inventories: map[string]*Inventory{}} }

// ErrEmptyBundle refuses to prune everything a design had when it now renders nothing.
var ErrEmptyBundle = errors.New("the bundle is empty; nothing pruned (set sync.allowEmpty to allow it)")

// Sync makes the cluster hold the bundle's objects, in stages: CRDs (then waits until they
// are served), Namespaces, then everything else concurrently. Objects whose desired digest is
// what meshcd last applied and whose live copy has not changed since are not sent. The
// inventory is written after the applies it describes, then objects that left the bundle are
// pruned, then the inventory is trimmed. An object that fails does not stop the others; the
// result lists every object, and the error says what failed.
//
// No error text carries a value of the bundle's Secrets: an apiserver error that quotes one
// is masked before it reaches the result.
func (r *Reconciler) Sync(ctx context.Context, c *fleet.Cluster, b *render.Bundle, opts SyncOptions) (*SyncResult, error) {
	res, err := r.sync(ctx, c, b, opts)
	return maskResult(b, res, err)
}

// maskResult masks the bundle's Secret values in a result's errors (and, for a Secret, any
// value the apiserver quotes).
func maskResult(b *render.Bundle, res *SyncResult, err error) (*SyncResult, error) {
	anySecret := false
	for i, e := range res.Entries {
		if e.Error == "" {
			continue
		}
		secret := strings.HasPrefix(e.Object, "Secret ")
		anySecret = anySecret || secret
		res.Entries[i].Error = b.MaskText(e.Error, secret)
	}
	res.Error = b.MaskText(res.Error, anySecret)
	if err != nil {
		if masked := b.MaskText(err.Error(), anySecret); masked != err.Error() {
			err = errors.New(masked)
		}
	}
	return res, err
}

func (r *Reconciler) sync(ctx context.Context, c *fleet.Cluster, b *render.Bundle, opts SyncOptions) (*SyncResult, error) {
	start := time.Now()
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultSyncOptions().Concurrency
	}
	res := &SyncResult{Cluster: c.Name, Design: b.Design, Revision: b.Revision, Digest: b.Digest, DryRun: opts.DryRun}
	defer func() { res.Duration = time.Since(start) }()
	fail := func(err error) (*SyncResult, error) {
		res.Error = err.Error()
		c.RecordError(err)
		return res, err
	}

	inv, err := r.inventory(ctx, c, b.Design)
	if err != nil {
		return fail(err)
	}
	// Objects new to the inventory are recorded before they are created: a crash in the
	// middle of the apply then leaves no object the next run does not know to prune.
	if !opts.DryRun {
		if intent := newItems(b, inv); len(intent) > 0 {
			if err := r.saveInventory(ctx, c, b, inv.merge(intent)); err != nil {
				return fail(err)
			}
			if inv, err = r.inventory(ctx, c, b.Design); err != nil {
				return fail(err)
			}
		}
	}
	applied, err := r.apply(ctx, c, b, inv, opts, res)
	if err != nil {
		return fail(err)
	}
	if opts.DryRun {
		r.previewPrune(c, b, inv, opts, res)
		res.Health = Health{Status: "Unknown"}
		return res, joinFailures(res)
	}
	// Old ∪ new first: a crash before the prune below leaves an inventory that still names
	// every object the next run may have to prune.
	union := inv.merge(applied)
	if err := r.saveInventory(ctx, c, b, union); err != nil {
		return fail(err)
	}
	kept := applied
	pruning := opts.Prune && opts.Policy.Prune
	if pruning && isEmpty(b) && !opts.Policy.AllowEmpty && len(inv.Objects) > 0 {
		res.Error = ErrEmptyBundle.Error()
		return res, fmt.Errorf("design %s on cluster %s: %w", b.Design, c.Name, ErrEmptyBundle)
	}
	if pruning {
		kept = r.prune(ctx, c, b, union, applied, opts, res)
	} else {
		kept = union
	}
	if err := r.saveInventory(ctx, c, b, kept); err != nil {
		return fail(err)
	}
	res.Health = r.health(ctx, c, b, opts)
	return res, joinFailures(res)
}

// newItems are the bundle's objects the inventory does not have yet, without a digest or
// resource version (so they are applied, not skipped as unchanged).
func newItems(b *render.Bundle, inv *Inventory) map[string]Item {
	out := map[string]Item{}
	for _, o := range b.Objects {
		id := render.ObjectID(o)
		if _, ok := inv.Objects[id]; !ok {
			out[id] = Item{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}
		}
	}
	return out
}

// isEmpty is a bundle with nothing but the design's Namespace.
func isEmpty(b *render.Bundle) bool {
	for _, o := range b.Objects {
		if o.GetKind() != "Namespace" || o.GetAPIVersion() != "v1" {
			return false
		}
	}
	return true
}

func joinFailures(res *SyncResult) error {
	var errs []error
	for _, e := range res.Entries {
		if e.Action == Failed {
			errs = append(errs, fmt.Errorf("%s", e.Error))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	err := fmt.Errorf("design %s on cluster %s: %d of %d objects failed: %w", res.Design, res.Cluster, len(errs), len(res.Entries), errors.Join(errs...))
	res.Error = err.Error()
	return err
}

// PolicyFor reads a design's sync section.
func PolicyFor(s schema.Sync) Policy {
	return Policy{
		Prune: s.Prune, AllowEmpty: s.AllowEmpty, TakeOwnership: s.TakeOwnership, Adopt: s.Adopt,
		PruneNamespaces: s.PruneNamespaces, PrunePersistentVolumeClaims: s.PrunePersistentVolumeClaims,
	}
}
