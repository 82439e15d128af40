package render

import (
	"encoding/base64"
	"maps"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

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

// secretValues returns the values the objects' Secrets hold, as they may appear in an error
// text: stringData as written and as base64 (the apiserver stores it in data), data as its
// base64 and decoded. Values shorter than
// minMaskedLen are left out: masking every "1" would garble messages and hide nothing.
func secretValues(objs []*unstructured.Unstructured) []string {
	seen := map[string]bool{}
	add := func(v string) {
		if len(v) >= minMaskedLen {
			seen[v] = true
		}
	}
	for _, o := range objs {
		if o.GetKind() != "Secret" || o.GroupVersionKind().Group != "" {
			continue
		}
		if m, ok := o.Object["stringData"].(map[string]any); ok {
			for _, v := range m {
				if s, ok := v.(string); ok {
					add(s)
					add(base64.StdEncoding.EncodeToString([]byte(s))) // as the apiserver stores it
				}
			}
		}
		if m, ok := o.Object["data"].(map[string]any); ok {
			for _, v := range m {
				s, _ := v.(string)
				add(s)
				if dec, err := base64.StdEncoding.DecodeString(s); err == nil {
					add(string(dec))
				}
			}
		}
	}
	out := slices.Collect(maps.Keys(seen))
	// Longest first, so a value that contains another is masked whole.
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

const minMaskedLen = 4

// invalidValue is the value the apiserver quotes in a field error ("Invalid value: \"…\"").
var invalidValue = regexp.MustCompile(`(Invalid value: )("(?:[^"\\]|\\.)*"|[^:,\]]+)`)

// MaskText returns the text with every value of the bundle's Secrets replaced by Masked, so
// an apiserver error that quotes a Secret's content reaches no log, status file, preview or
// API response. When the text is about a Secret (secret set), the values the apiserver
// quotes in field errors are masked too, whatever they are.
func (b *Bundle) MaskText(text string, secret bool) string {
	for _, v := range b.secrets {
		text = strings.ReplaceAll(text, v, Masked)
	}
	if secret {
		text = invalidValue.ReplaceAllString(text, "${1}"+Masked)
	}
	return text
}
