package render

import "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

// Masked is what a Secret's values read as wherever meshcd shows objects to people.
const Masked = "*** (masked)"

// MaskSecrets returns the objects with every Secret's data and stringData values replaced by
// Masked; other objects are shared, Secrets are copied, the input is not changed.
func MaskSecrets(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		if o.GetKind() != "Secret" || o.GroupVersionKind().Group != "" {
			out[i] = o
			continue
		}
		c := o.DeepCopy()
		for _, field := range []string{"data", "stringData"} {
			if m, ok := c.Object[field].(map[string]any); ok {
				for k := range m {
					m[k] = Masked
				}
			}
		}
		// The last-applied annotation would carry the values again.
		ann := c.GetAnnotations()
		if _, ok := ann["kubectl.kubernetes.io/last-applied-configuration"]; ok {
			ann["kubectl.kubernetes.io/last-applied-configuration"] = Masked
			c.SetAnnotations(ann)
		}
		out[i] = c
	}
	return out
}
