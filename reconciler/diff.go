package reconciler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/render"
	"github.com/pmezard/go-difflib/difflib"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Change is how an object would change.
type Change string

const (
	WouldCreate Change = "create"
	WouldUpdate Change = "update"
	WouldPrune  Change = "prune"
	// NotOwned is an object that exists in the cluster and is not the design's: with
	// DiffOptions.OwnedOnly its content is not shown.
	NotOwned Change = "exists, not managed by this design:"
)

// DiffOptions say what a diff may show.
type DiffOptions struct {
	// Policy is the design's sync settings (take ownership, what may be pruned).
	Policy Policy
	// OwnedOnly shows the content only of objects the design manages or would create; an
	// object that exists and is another design's, or no design's, is named without its
	// content. Previews of pull requests, whose authors may name any object, set it.
	OwnedOnly bool
}

// ObjectDiff is one object that an apply would change, as a unified diff of its YAML.
type ObjectDiff struct {
	Object  string
	Change  Change
	Unified string
}

// Diff asks the apiserver what a server-side apply of every object of the bundle would give
// (a dry run) and compares it with the live object, and lists the objects of the stored
// inventory a prune would delete. Only objects that would change are returned. Secret values
// are masked on both sides; a changed value still shows as changed.
func Diff(ctx context.Context, c *fleet.Cluster, b *render.Bundle, opts DiffOptions) ([]ObjectDiff, error) {
	p := opts.Policy
	var out []ObjectDiff
	var errs []error
	for _, o := range b.Objects {
		id := render.ObjectID(o)
		m, err := c.Live.Mapping(o.GroupVersionKind())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		ri := c.Resource(m, o.GetNamespace())
		live, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			live, err = nil, nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: reading live object: %w", id, err))
			continue
		}
		if opts.OwnedOnly && live != nil && live.GetLabels()[render.LabelDesign] != b.Design {
			// Neither the live object nor the dry run's merge of it may be shown: the
			// content is not the design's to disclose.
			out = append(out, ObjectDiff{Object: id, Change: NotOwned})
			continue
		}
		predicted, err := ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: fleet.FieldManager, Force: p.TakeOwnership, DryRun: []string{metav1.DryRunAll}})
		if apierrors.IsNotFound(err) && live == nil {
			predicted, err = o, nil // its namespace does not exist yet: the object as rendered
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: dry run: %w", id, err))
			continue
		}
		change := WouldUpdate
		if live == nil {
			change = WouldCreate
		}
		before, after := comparable(live), comparable(predicted)
		maskSecretPair(before, after)
		if d := unified(id, before, after); d != "" {
			out = append(out, ObjectDiff{Object: id, Change: change, Unified: d})
		}
	}
	if p.Prune {
		inv, err := ReadInventory(ctx, c, b.Design)
		if err != nil {
			errs = append(errs, err)
		} else {
			inBundle := map[string]bool{}
			for _, o := range b.Objects {
				inBundle[render.ObjectID(o)] = true
			}
			for _, id := range slices.Sorted(maps.Keys(inv.Objects)) {
				if inBundle[id] {
					continue
				}
				it := inv.Objects[id]
				m, err := c.Live.Mapping(it.GVK())
				if err != nil {
					continue
				}
				live, err := c.Resource(m, it.Namespace).Get(ctx, it.Name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				if keepReason(live.GetLabels()[render.LabelDesign], b.Design, live.GetAnnotations()[AnnotationPrune], it.GVK().Group, it.Kind, p) != "" {
					continue
				}
				before := comparable(live)
				maskSecretPair(before, nil)
				out = append(out, ObjectDiff{Object: id, Change: WouldPrune, Unified: unified(id, before, nil)})
			}
		}
	}
	if len(errs) > 0 {
		// An apiserver error may quote what a Secret holds: it is masked, as in a sync.
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = b.MaskText(e.Error(), strings.HasPrefix(e.Error(), "Secret "))
		}
		return out, fmt.Errorf("design %s on cluster %s: %s", b.Design, c.Name, strings.Join(msgs, "\n"))
	}
	return out, nil
}

// comparable drops what the server changes on every write and nobody reviews.
func comparable(o *unstructured.Unstructured) *unstructured.Unstructured {
	if o == nil {
		return nil
	}
	c := o.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
	unstructured.RemoveNestedField(c.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(c.Object, "metadata", "generation")
	unstructured.RemoveNestedField(c.Object, "metadata", "uid")
	unstructured.RemoveNestedField(c.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(c.Object, "status")
	return c
}

// maskSecretPair masks Secret values on both sides. Equal values read as the same mask; a
// changed value reads as "(before)" and "(after)", so the diff shows that it changed without
// showing it.
func maskSecretPair(before, after *unstructured.Unstructured) {
	isSecret := func(o *unstructured.Unstructured) bool {
		return o != nil && o.GetKind() == "Secret" && o.GroupVersionKind().Group == ""
	}
	if !isSecret(before) && !isSecret(after) {
		return
	}
	field := func(o *unstructured.Unstructured, name string) map[string]any {
		if o == nil {
			return nil
		}
		m, _ := o.Object[name].(map[string]any)
		return m
	}
	for _, name := range []string{"data", "stringData"} {
		b, a := field(before, name), field(after, name)
		for k, v := range b {
			if av, ok := a[k]; ok && av != v {
				b[k] = render.Masked + " (before)"
				a[k] = render.Masked + " (after)"
				continue
			}
			b[k] = render.Masked
		}
		for k := range a {
			if s, _ := a[k].(string); s != render.Masked+" (after)" {
				a[k] = render.Masked
			}
		}
	}
	for _, o := range []*unstructured.Unstructured{before, after} {
		if o == nil {
			continue
		}
		if ann := o.GetAnnotations(); ann["kubectl.kubernetes.io/last-applied-configuration"] != "" {
			ann["kubectl.kubernetes.io/last-applied-configuration"] = render.Masked
			o.SetAnnotations(ann)
		}
	}
}

// unified is the unified diff of two objects' YAML, or "" when they are equal.
func unified(id string, before, after *unstructured.Unstructured) string {
	text := func(o *unstructured.Unstructured) string {
		if o == nil {
			return ""
		}
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			return fmt.Sprintf("# %v\n", err)
		}
		return string(data)
	}
	a, b := text(before), text(after)
	if a == b {
		return ""
	}
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(a), B: difflib.SplitLines(b),
		FromFile: "live/" + id, ToFile: "desired/" + id, Context: 3,
	})
	return d
}
