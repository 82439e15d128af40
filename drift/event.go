package drift

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// event records a Kubernetes Event on the drifted object through the cluster's recorder, so
// `kubectl describe` and `kubectl get events` show it where people look. It regards the live
// object when the cache has it, which carries the UID describe matches on. Best effort: the
// recorder sends in the background and a failure is not drift's problem.
func (d *Detector) event(o *unstructured.Unstructured, e Entry) {
	if e.Kind == Missing {
		return // nothing in the cluster to describe; the sync's result says why
	}
	regarding := o
	if live, ok := d.cluster.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName()); ok {
		regarding = live
	}
	reason, typ, action := "DriftDetected", "Warning", "Report"
	msg := "meshcd: " + string(e.Kind) + " drift"
	if len(e.Fields) > 0 {
		msg += " in " + strings.Join(e.Fields, ", ")
	}
	if e.By != "" {
		msg += " (last changed by " + e.By + ")"
	}
	switch {
	case e.HealedAt != nil:
		reason, typ, action, msg = "DriftHealed", "Normal", "Heal", msg+"; healed"
	case e.Contested:
		msg += "; contested: meshcd stopped healing it"
	}
	d.cluster.Events().Eventf(regarding, nil, typ, reason, action, "%s", msg)
}
