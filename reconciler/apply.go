package reconciler

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/render"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// echoTimeout bounds the wait for the watch to deliver meshcd's own previous write.
const echoTimeout = 2 * time.Second

// olderThan reports whether resource version a is known to come before b. Resource versions
// are opaque to clients, but every apiserver backed by etcd serves them as increasing
// integers; anything else compares as not older, so the object is simply applied again.
func olderThan(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && x < y
}

var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// stages splits a bundle (already in apply order) into CRDs, Namespaces and the rest: each
// stage must be served before the next can be applied.
func stages(objs []*unstructured.Unstructured) [3][]*unstructured.Unstructured {
	var out [3][]*unstructured.Unstructured
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		switch {
		case gvk.GroupKind() == crdGVK.GroupKind():
			out[0] = append(out[0], o)
		case gvk.Group == "" && gvk.Kind == "Namespace":
			out[1] = append(out[1], o)
		default:
			out[2] = append(out[2], o)
		}
	}
	return out
}

// apply sends every object of the bundle that changed, stage by stage, and returns the
// inventory items of the bundle: applied ones with their new resource version, failed ones
// as the previous inventory had them (or new, without a version).
func (r *Reconciler) apply(ctx context.Context, c *fleet.Cluster, b *render.Bundle, inv *Inventory, opts SyncOptions, res *SyncResult) (map[string]Item, error) {
	items := map[string]Item{}
	var mu sync.Mutex
	for i, stage := range stages(b.Objects) {
		if len(stage) == 0 {
			continue
		}
		entries := make([]Entry, len(stage))
		sem := make(chan struct{}, opts.Concurrency)
		var wg sync.WaitGroup
		for j, o := range stage {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				entry, item := r.applyOne(ctx, c, o, inv, opts)
				entries[j] = entry
				mu.Lock()
				items[entry.Object] = item
				mu.Unlock()
			})
		}
		wg.Wait()
		res.Entries = append(res.Entries, entries...)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("design %s on cluster %s: %w", b.Design, c.Name, err)
		}
		if i == 0 && !opts.DryRun {
			if err := waitEstablished(ctx, c, stage, opts.EstablishTimeout); err != nil {
				return nil, err
			}
		}
	}
	return items, nil
}

// applyOne applies one object unless the cache shows it is exactly what meshcd last applied.
func (r *Reconciler) applyOne(ctx context.Context, c *fleet.Cluster, o *unstructured.Unstructured, inv *Inventory, opts SyncOptions) (Entry, Item) {
	id := render.ObjectID(o)
	gvk := o.GroupVersionKind()
	digest := o.GetAnnotations()[render.AnnotationDigest]
	item := Item{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName(), Digest: digest}
	prev, hadPrev := inv.Objects[id]
	failed := func(err error) (Entry, Item) {
		if hadPrev {
			item = prev // the cluster still holds what was last applied, as far as meshcd knows
		} else {
			item.Digest = ""
		}
		return Entry{Object: id, Action: Failed, Error: err.Error()}, item
	}
	mapping, err := c.Live.Watch(ctx, gvk)
	if err != nil {
		return failed(fmt.Errorf("%s: %w", id, err))
	}
	live, found := c.Live.Get(gvk, o.GetNamespace(), o.GetName())
	if hadPrev && prev.Digest == digest && found && olderThan(live.GetResourceVersion(), prev.ResourceVersion) {
		// The watch has not delivered meshcd's own last write yet (a sync right after
		// another): wait for it rather than send the object again.
		c.Live.WaitSeen(ctx, gvk, o.GetNamespace(), o.GetName(), prev.ResourceVersion, echoTimeout)
		live, found = c.Live.Get(gvk, o.GetNamespace(), o.GetName())
	}
	if hadPrev && found && prev.Digest == digest && prev.ResourceVersion == live.GetResourceVersion() && !opts.DryRun {
		if opts.Applied != nil {
			opts.Applied(live) // still exactly meshcd's last write
		}
		return Entry{Object: id, Action: Unchanged}, prev
	}
	out, err := c.Resource(mapping, o.GetNamespace()).Apply(ctx, o.GetName(), o, metav1.ApplyOptions{
		FieldManager: fleet.FieldManager,
		Force:        opts.Policy.TakeOwnership,
		DryRun:       dryRun(opts.DryRun),
	})
	if err != nil {
		if apierrors.IsConflict(err) {
			return failed(fmt.Errorf("%s: conflict with another field manager (set sync.takeOwnership to take the fields over): %w", id, err))
		}
		return failed(fmt.Errorf("%s: apply failed: %w", id, err))
	}
	action := Configured
	switch {
	case !found:
		action = Created
	case out.GetResourceVersion() == live.GetResourceVersion():
		action = Unchanged
	}
	if opts.DryRun {
		return Entry{Object: id, Action: action}, prev
	}
	if opts.Applied != nil {
		opts.Applied(out)
	}
	item.ResourceVersion = out.GetResourceVersion()
	return Entry{Object: id, Action: action}, item
}

func dryRun(on bool) []string {
	if on {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// waitEstablished waits until every CRD of the stage is Established, reading the watch
// cache, then refreshes discovery so the next stages find the new kinds.
func waitEstablished(ctx context.Context, c *fleet.Cluster, crds []*unstructured.Unstructured, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultSyncOptions().EstablishTimeout
	}
	deadline := time.Now().Add(timeout)
	for _, crd := range crds {
		for {
			live, ok := c.Live.Get(crdGVK, "", crd.GetName())
			if ok && established(live) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("cluster %s: CustomResourceDefinition %s not Established after %s", c.Name, crd.GetName(), timeout)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	c.Mapper.Reset()
	return nil
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, cond := range conds {
		m, _ := cond.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
