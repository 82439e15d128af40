package render

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Lists that server-side apply merges by key: two items with one key in a rendered object
// make the apiserver refuse the whole apply ("duplicate entries for key"), though kubectl
// and Helm accept it with a warning. checkMergeKeys finds them at render time.

// podSpecPaths are where workload kinds hold a pod spec.
var podSpecPaths = map[string][]string{
	"Pod":         {"spec"},
	"Deployment":  {"spec", "template", "spec"},
	"StatefulSet": {"spec", "template", "spec"},
	"DaemonSet":   {"spec", "template", "spec"},
	"ReplicaSet":  {"spec", "template", "spec"},
	"Job":         {"spec", "template", "spec"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template", "spec"},
}

// listKey names a list and the fields that key its items.
type listKey struct {
	field string
	keys  []string
}

var (
	podLists       = []listKey{{"containers", []string{"name"}}, {"initContainers", []string{"name"}}, {"ephemeralContainers", []string{"name"}}, {"volumes", []string{"name"}}, {"imagePullSecrets", []string{"name"}}}
	containerLists = []listKey{{"env", []string{"name"}}, {"ports", []string{"containerPort", "protocol"}}, {"volumeMounts", []string{"mountPath"}}, {"volumeDevices", []string{"devicePath"}}}
)

// dupKey is one key that more than one item of a merged list has.
type dupKey struct {
	path, key string
	n         int
}

func (d dupKey) String() string {
	return fmt.Sprintf("%s has %s %d times (server-side apply refuses duplicate keys in a merged list)", d.path, d.key, d.n)
}

// checkMergeKeys returns one problem per duplicated key in the object's merged lists, naming
// the list and the key.
func checkMergeKeys(o *unstructured.Unstructured) []dupKey {
	gvk := o.GroupVersionKind()
	var out []dupKey
	if gvk.Group == "" && gvk.Kind == "Service" {
		if ports, ok, _ := unstructured.NestedSlice(o.Object, "spec", "ports"); ok {
			out = append(out, duplicates("spec.ports", ports, []string{"port", "protocol"})...)
		}
		return out
	}
	if gvk.Group != "" && gvk.Group != "apps" && gvk.Group != "batch" {
		return nil
	}
	path, ok := podSpecPaths[gvk.Kind]
	if !ok {
		return nil
	}
	spec, ok, _ := unstructured.NestedMap(o.Object, path...)
	if !ok {
		return nil
	}
	at := strings.Join(path, ".")
	for _, l := range podLists {
		items, _ := spec[l.field].([]any)
		out = append(out, duplicates(at+"."+l.field, items, l.keys)...)
	}
	for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
		items, _ := spec[field].([]any)
		for _, item := range items {
			c, _ := item.(map[string]any)
			name, _ := c["name"].(string)
			for _, l := range containerLists {
				list, _ := c[l.field].([]any)
				out = append(out, duplicates(fmt.Sprintf("%s.%s[%s].%s", at, field, name, l.field), list, l.keys)...)
			}
		}
	}
	return out
}

// duplicates reports the keys that more than one item of the list has. A key field an item
// leaves out counts as its default (protocol TCP), as the apiserver fills it in.
func duplicates(path string, items []any, keys []string) []dupKey {
	seen := map[string]int{}
	var order []string
	for _, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		var parts []string
		for _, k := range keys {
			v, set := m[k]
			if !set && k == "protocol" {
				v = "TCP"
			}
			if len(keys) == 1 {
				parts = append(parts, fmt.Sprint(v))
			} else {
				parts = append(parts, fmt.Sprintf("%s=%v", k, v))
			}
		}
		key := strings.Join(parts, ",")
		if seen[key] == 0 {
			order = append(order, key)
		}
		seen[key]++
	}
	var out []dupKey
	for _, k := range order {
		if seen[k] > 1 {
			out = append(out, dupKey{path: path, key: k, n: seen[k]})
		}
	}
	return out
}

func joinProblems(ds []dupKey) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, "; ")
}

// valuesNaming returns the paths of a chart's values that look like they set one of the
// duplicated keys: a key spelled like it or like its end (PILOT_TRACE_SAMPLING as
// env.PILOT_TRACE_SAMPLING, pilot.traceSampling or traceSampling), compared without case,
// dots, dashes or underscores.
func valuesNaming(values map[string]any, dups []dupKey) []string {
	want := map[string]bool{}
	for _, d := range dups {
		want[squash(d.key)] = true
	}
	named := func(k string, path []string) bool {
		if want[squash(k)] || want[squash(strings.Join(path, ""))] {
			return true
		}
		for w := range want {
			if sk := squash(k); len(sk) >= 8 && strings.HasSuffix(w, sk) {
				return true
			}
		}
		return false
	}
	var out []string
	var walk func(prefix []string, v any)
	walk = func(prefix []string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			p := append(slices.Clone(prefix), k)
			if named(k, p) {
				out = append(out, strings.Join(p, "."))
			}
			walk(p, m[k])
		}
	}
	walk(nil, values)
	return out
}

func squash(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.':
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}
