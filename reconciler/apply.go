package reconciler

import (
	"context"
	"fmt"
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
// as the previous inventory had them (or new, without a version). A CRD that fails (refused,
// or not served in time) fails itself and the objects of its kind, not the rest.
func (r *Reconciler) apply(ctx context.Context, c *fleet.Cluster, b *render.Bundle, inv *Inventory, opts SyncOptions, res *SyncResult) (map[string]Item, error) {
	items := map[string]Item{}
	var mu sync.Mutex
	broken := map[schema.GroupKind]string{} // kinds whose CRD failed, and why
	for i, stage := range stages(b.Objects) {
		if len(stage) == 0 {
			continue
		}
		entries := make([]Entry, len(stage))
		sem := make(chan struct{}, opts.Concurrency)
		var wg sync.WaitGroup
		for j, o := range stage {
			if why, ok := broken[o.GroupVersionKind().GroupKind()]; ok {
				entry, item := failedItem(o, inv, fmt.Errorf("%s: not applied: %s", render.ObjectID(o), why))
				entries[j] = entry
				items[entry.Object] = item
				continue
			}
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
		if err := ctx.Err(); err != nil {
			res.Entries = append(res.Entries, entries...)
			return nil, fmt.Errorf("design %s on cluster %s: %w", b.Design, c.Name, err)
		}
		if i == 0 {
			var served []*unstructured.Unstructured
			for j, crd := range stage {
				if entries[j].Action == Failed {
					markBroken(broken, crd, "its CustomResourceDefinition "+crd.GetName()+" failed to apply")
					continue
				}
				served = append(served, crd)
			}
			if !opts.DryRun {
				for name, err := range waitEstablished(ctx, c, served, opts.EstablishTimeout) {
					for j, crd := range stage {
						if crd.GetName() == name {
							entries[j].Action, entries[j].Error = Failed, err.Error()
							markBroken(broken, crd, "its CustomResourceDefinition "+name+" is not served")
						}
					}
				}
			}
		}
		res.Entries = append(res.Entries, entries...)
	}
	return items, nil
}

// markBroken records the kind a CRD defines as not appliable.
func markBroken(broken map[schema.GroupKind]string, crd *unstructured.Unstructured, why string) {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
	if kind != "" {
		broken[schema.GroupKind{Group: group, Kind: kind}] = why
	}
}

// failedItem is an object's entry and inventory item when it was not applied: the previous
// inventory's item (the cluster still holds what was last applied, as far as meshcd knows),
// or a new one without a digest, so the next sync applies it.
func failedItem(o *unstructured.Unstructured, inv *Inventory, err error) (Entry, Item) {
	id := render.ObjectID(o)
	if prev, ok := inv.Objects[id]; ok {
		return Entry{Object: id, Action: Failed, Error: err.Error()}, prev
	}
	return Entry{Object: id, Action: Failed, Error: err.Error()},
		Item{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}
}

// applyOne applies one object unless the cache shows it is exactly what meshcd last applied.
func (r *Reconciler) applyOne(ctx context.Context, c *fleet.Cluster, o *unstructured.Unstructured, inv *Inventory, opts SyncOptions) (Entry, Item) {
	id := render.ObjectID(o)
	gvk := o.GroupVersionKind()
	digest := o.GetAnnotations()[render.AnnotationDigest]
	item := Item{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName(), Digest: digest}
	prev, hadPrev := inv.Objects[id]
	failed := func(err error) (Entry, Item) { return failedItem(o, inv, err) }
	mapping, err := c.Live.Watch(ctx, gvk)
	if err != nil {
		return failed(fmt.Errorf("%s: %w", id, err))
	}
	live, found := c.Live.Get(gvk, o.GetNamespace(), o.GetName())
	adoptedFrom := ""
	if found {
		owner, design := live.GetLabels()[render.LabelDesign], o.GetLabels()[render.LabelDesign]
		if owner != "" && owner != design {
			if !opts.Policy.Adopt {
				return failed(fmt.Errorf("%s: belongs to design %s, not %s (set sync.adopt in design %s to take it over)", id, owner, design, design))
			}
			adoptedFrom = owner
		}
	}
	if hadPrev && prev.Digest == digest && found && fleet.OlderThan(live.GetResourceVersion(), prev.ResourceVersion) {
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
		return Entry{Object: id, Action: action, AdoptedFrom: adoptedFrom}, prev
	}
	if opts.Applied != nil {
		opts.Applied(out)
	}
	item.ResourceVersion = out.GetResourceVersion()
	return Entry{Object: id, Action: action, AdoptedFrom: adoptedFrom}, item
}

func dryRun(on bool) []string {
	if on {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// waitEstablished waits until every CRD of the stage is Established, reading the watch
// cache, then refreshes discovery so the next stages find the new kinds. It returns the CRDs
// that will not be served: one the apiserver refused to serve (NamesAccepted false, which
// it says at once) or one still not Established when the timeout ends.
func waitEstablished(ctx context.Context, c *fleet.Cluster, crds []*unstructured.Unstructured, timeout time.Duration) map[string]error {
	if len(crds) == 0 {
		return nil
	}
	if timeout <= 0 {
		timeout = DefaultSyncOptions().EstablishTimeout
	}
	defer c.Mapper.Reset()
	failed := map[string]error{}
	deadline := time.Now().Add(timeout)
	waiting := crds
	for len(waiting) > 0 {
		var still []*unstructured.Unstructured
		for _, crd := range waiting {
			live, ok := c.Live.Get(crdGVK, "", crd.GetName())
			if ok && established(live) {
				continue
			}
			if ok {
				if msg, refused := namesRefused(live); refused {
					failed[crd.GetName()] = fmt.Errorf("cluster %s: CustomResourceDefinition %s is not served: %s", c.Name, crd.GetName(), msg)
					continue
				}
			}
			still = append(still, crd)
		}
		waiting = still
		if len(waiting) == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			for _, crd := range waiting {
				failed[crd.GetName()] = fmt.Errorf("cluster %s: CustomResourceDefinition %s not Established after %s", c.Name, crd.GetName(), timeout)
			}
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return failed
}

// namesRefused reports a CRD whose names the apiserver will not serve (a conflict with
// another CRD's names), with the apiserver's message.
func namesRefused(crd *unstructured.Unstructured) (string, bool) {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, cond := range conds {
		m, _ := cond.(map[string]any)
		if m["type"] == "NamesAccepted" && m["status"] == "False" {
			msg, _ := m["message"].(string)
			return msg, true
		}
	}
	return "", false
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
