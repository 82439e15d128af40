package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/render"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// InventoryNamespace holds one inventory ConfigMap per design in every target cluster, so
// pruning works after a restart and from another replica.
const InventoryNamespace = "meshcd-system"

const inventoryManager = "meshcd-inventory"

var configMapGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// Inventory is what meshcd last applied for one design in one cluster.
type Inventory struct {
	Design   string          `json:"-"`
	Revision string          `json:"-"`
	Digest   string          `json:"-"`
	Objects  map[string]Item `json:"-"`
	// stored is the ConfigMap's data as last read or written, to skip unchanged writes.
	stored map[string]string
}

// Item is one object of an inventory: enough to find it again and to know whether the live
// copy is still what meshcd wrote.
type Item struct {
	APIVersion      string `json:"apiVersion"`
	Kind            string `json:"kind"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name"`
	Digest          string `json:"digest,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// GVK returns the item's kind.
func (i Item) GVK() schema.GroupVersionKind {
	return schema.FromAPIVersionAndKind(i.APIVersion, i.Kind)
}

// ID names the item like render.ObjectID.
func (i Item) ID() string {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(i.APIVersion)
	u.SetKind(i.Kind)
	u.SetNamespace(i.Namespace)
	u.SetName(i.Name)
	return render.ObjectID(u)
}

func inventoryName(design string) string { return "inventory-" + design }

// InventoryKey is how a Reconciler remembers an inventory.
func inventoryKey(cluster, design string) string { return cluster + "/" + design }

// inventory returns the design's inventory in the cluster: from memory after the first read.
func (r *Reconciler) inventory(ctx context.Context, c *fleet.Cluster, design string) (*Inventory, error) {
	r.mu.Lock()
	inv, ok := r.inventories[inventoryKey(c.Name, design)]
	r.mu.Unlock()
	if ok {
		return inv, nil
	}
	inv, err := ReadInventory(ctx, c, design)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.inventories[inventoryKey(c.Name, design)] = inv
	r.mu.Unlock()
	return inv, nil
}

// ReadInventory reads a design's inventory from the cluster; a missing one is empty.
func ReadInventory(ctx context.Context, c *fleet.Cluster, design string) (*Inventory, error) {
	inv := &Inventory{Design: design, Objects: map[string]Item{}}
	cm, err := c.Dynamic.Resource(configMapGVR).Namespace(InventoryNamespace).Get(ctx, inventoryName(design), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return inv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %s: reading inventory of design %s: %w", c.Name, design, err)
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	var items []Item
	if s := data["objects"]; s != "" {
		if err := json.Unmarshal([]byte(s), &items); err != nil {
			return nil, fmt.Errorf("cluster %s: ConfigMap %s/%s: objects: %w", c.Name, InventoryNamespace, inventoryName(design), err)
		}
	}
	for _, it := range items {
		inv.Objects[it.ID()] = it
	}
	inv.Revision, inv.Digest, inv.stored = data["revision"], data["digest"], data
	return inv, nil
}

// merge returns the inventory with the items added or replaced.
func (inv *Inventory) merge(items map[string]Item) map[string]Item {
	out := maps.Clone(inv.Objects)
	maps.Copy(out, items)
	return out
}

// saveInventory writes the inventory if its content changed, creating meshcd's namespace on
// first use, and remembers it.
func (r *Reconciler) saveInventory(ctx context.Context, c *fleet.Cluster, b *render.Bundle, objects map[string]Item) error {
	inv, err := r.inventory(ctx, c, b.Design)
	if err != nil {
		return err
	}
	items := make([]Item, 0, len(objects))
	for _, id := range slices.Sorted(maps.Keys(objects)) {
		items = append(items, objects[id])
	}
	list, err := json.Marshal(items)
	if err != nil {
		return err
	}
	data := map[string]string{"design": b.Design, "revision": b.Revision, "digest": b.Digest, "objects": string(list)}
	if maps.Equal(data, inv.stored) {
		return nil
	}
	// A new revision alone is worth no write; it is recorded with the next real change.
	if inv.stored != nil && inv.stored["objects"] == data["objects"] && inv.stored["digest"] == data["digest"] {
		return nil
	}
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{
			"name": inventoryName(b.Design), "namespace": InventoryNamespace,
			"labels": map[string]any{"app.kubernetes.io/managed-by": "meshcd-inventory", render.LabelDesign: b.Design},
		},
		"data": toAny(data),
	}}
	apply := func() error {
		_, err := c.Dynamic.Resource(configMapGVR).Namespace(InventoryNamespace).Apply(ctx, inventoryName(b.Design), cm, metav1.ApplyOptions{FieldManager: inventoryManager, Force: true})
		return err
	}
	err = apply()
	if apierrors.IsNotFound(err) {
		ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": InventoryNamespace}}}
		if _, nerr := c.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Apply(ctx, InventoryNamespace, ns, metav1.ApplyOptions{FieldManager: inventoryManager, Force: true}); nerr != nil {
			return fmt.Errorf("cluster %s: creating namespace %s: %w", c.Name, InventoryNamespace, nerr)
		}
		err = apply()
	}
	if err != nil {
		return fmt.Errorf("cluster %s: writing inventory of design %s: %w", c.Name, b.Design, err)
	}
	r.mu.Lock()
	r.inventories[inventoryKey(c.Name, b.Design)] = &Inventory{Design: b.Design, Revision: b.Revision, Digest: b.Digest, Objects: objects, stored: data}
	r.mu.Unlock()
	return nil
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
