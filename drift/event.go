package drift

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var eventGVR = schema.GroupVersionResource{Version: "v1", Resource: "events"}

// event writes a Kubernetes Event on the drifted object, so `kubectl describe` and `kubectl
// get events` show it where people look. Best effort: a failure is not drift's problem.
func (d *Detector) event(ctx context.Context, o *unstructured.Unstructured, e Entry) {
	ns := o.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	reason, typ := "DriftDetected", "Warning"
	msg := fmt.Sprintf("meshcd: %s drift", e.Kind)
	if len(e.Fields) > 0 {
		msg += " in " + strings.Join(e.Fields, ", ")
	}
	if e.By != "" {
		msg += " (last changed by " + e.By + ")"
	}
	switch {
	case e.HealedAt != nil:
		reason, typ, msg = "DriftHealed", "Normal", msg+"; healed"
	case e.Contested:
		msg += "; contested: meshcd stopped healing it"
	}
	now := metav1.NewTime(time.Now())
	ev := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Event",
		"metadata": map[string]any{"generateName": o.GetName() + ".", "namespace": ns},
		"involvedObject": map[string]any{
			"apiVersion": o.GetAPIVersion(), "kind": o.GetKind(), "name": o.GetName(), "namespace": o.GetNamespace(),
		},
		"reason": reason, "message": msg, "type": typ,
		"source":         map[string]any{"component": "meshcd"},
		"firstTimestamp": now.UTC().Format(time.RFC3339), "lastTimestamp": now.UTC().Format(time.RFC3339), "count": int64(1),
	}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _ = d.cluster.Dynamic.Resource(eventGVR).Namespace(ns).Create(ctx, ev, metav1.CreateOptions{})
}
