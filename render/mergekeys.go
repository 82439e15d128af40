package render

import (
	"fmt"
	"strings"

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

// checkMergeKeys returns one problem per duplicated key in the object's merged lists, naming
// the list and the key.
func checkMergeKeys(o *unstructured.Unstructured) []string {
	gvk := o.GroupVersionKind()
	var out []string
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
func duplicates(path string, items []any, keys []string) []string {
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
	var out []string
	for _, k := range order {
		if seen[k] > 1 {
			out = append(out, fmt.Sprintf("%s has %s %d times (server-side apply refuses duplicate keys in a merged list)", path, k, seen[k]))
		}
	}
	return out
}
