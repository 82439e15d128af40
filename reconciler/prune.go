package reconciler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/render"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnotationPrune set to "disabled" on a live object keeps it when its design drops it.
const AnnotationPrune = "meshcd.io/prune"

// prune deletes the objects of the union inventory that the bundle no longer has, and returns
// the inventory to keep: the bundle's items plus every object whose delete failed. An object
// is deleted only if it still carries this design's label, is not a Namespace or
// PersistentVolumeClaim without opt-in, and is not annotated to be kept; the delete carries
// the UID meshcd saw, so an object recreated by someone else meanwhile is left alone.
func (r *Reconciler) prune(ctx context.Context, c *fleet.Cluster, b *render.Bundle, union, applied map[string]Item, opts SyncOptions, res *SyncResult) map[string]Item {
	kept := maps.Clone(applied)
	var gone []string
	for _, id := range slices.Sorted(maps.Keys(union)) {
		if _, ok := applied[id]; !ok {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return kept
	}
	if opts.BeforePrune != nil {
		opts.BeforePrune(gone)
	}
	entries := make([]*Entry, len(gone))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, opts.Concurrency)
	for i, id := range gone {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			e, keep := pruneOne(ctx, c, b.Design, union[id], opts.Policy)
			entries[i] = e
			if keep {
				mu.Lock()
				kept[id] = union[id]
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, e := range entries {
		if e != nil {
			res.Entries = append(res.Entries, *e)
		}
	}
	return kept
}

// pruneOne deletes one object; keep reports whether it stays in the inventory (only when the
// delete failed: a skipped object is no longer meshcd's to prune).
func pruneOne(ctx context.Context, c *fleet.Cluster, design string, it Item, p Policy) (e *Entry, keep bool) {
	id := it.ID()
	gvk := it.GVK()
	mapping, err := c.Live.Watch(ctx, gvk)
	if meta.IsNoMatchError(err) {
		return nil, false // the kind is gone, and with it the object
	}
	if err != nil {
		return &Entry{Object: id, Action: Failed, Error: fmt.Sprintf("%s: prune failed: %v", id, err)}, true
	}
	live, ok := c.Live.Get(gvk, it.Namespace, it.Name)
	if !ok {
		return nil, false // already gone, or no longer labelled as meshcd's
	}
	if reason := keepReason(live.GetLabels()[render.LabelDesign], design, live.GetAnnotations()[AnnotationPrune], gvk.Group, gvk.Kind, p); reason != "" {
		return &Entry{Object: id, Action: Skipped, Error: reason}, false
	}
	uid := live.GetUID()
	err = c.Resource(mapping, it.Namespace).Delete(ctx, it.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid},
		PropagationPolicy: ptr(metav1.DeletePropagationBackground),
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return &Entry{Object: id, Action: Failed, Error: fmt.Sprintf("%s: prune failed: %v", id, err)}, true
	}
	return &Entry{Object: id, Action: Pruned}, false
}

// keepReason says why an object that left its design must not be deleted, or "".
func keepReason(labelDesign, design, pruneAnnotation, group, kind string, p Policy) string {
	switch {
	case labelDesign != design:
		return fmt.Sprintf("kept: labelled for design %q now", labelDesign)
	case pruneAnnotation == "disabled":
		return "kept: annotated " + AnnotationPrune + ": disabled"
	case group == "" && kind == "Namespace" && !p.PruneNamespaces:
		return "kept: Namespaces are pruned only with sync.pruneNamespaces"
	case group == "" && kind == "PersistentVolumeClaim" && !p.PrunePersistentVolumeClaims:
		return "kept: PersistentVolumeClaims are pruned only with sync.prunePersistentVolumeClaims"
	}
	return ""
}

// previewPrune lists, for a dry run, what a real sync would prune.
func (r *Reconciler) previewPrune(c *fleet.Cluster, b *render.Bundle, inv *Inventory, opts SyncOptions, res *SyncResult) {
	if !opts.Prune || !opts.Policy.Prune {
		return
	}
	inBundle := map[string]bool{}
	for _, o := range b.Objects {
		inBundle[render.ObjectID(o)] = true
	}
	for _, id := range slices.Sorted(maps.Keys(inv.Objects)) {
		if inBundle[id] {
			continue
		}
		it := inv.Objects[id]
		live, ok := c.Live.Get(it.GVK(), it.Namespace, it.Name)
		if !ok {
			continue
		}
		if reason := keepReason(live.GetLabels()[render.LabelDesign], b.Design, live.GetAnnotations()[AnnotationPrune], it.GVK().Group, it.Kind, opts.Policy); reason != "" {
			res.Entries = append(res.Entries, Entry{Object: id, Action: Skipped, Error: reason})
			continue
		}
		res.Entries = append(res.Entries, Entry{Object: id, Action: Pruned})
	}
}

func ptr[T any](v T) *T { return &v }
