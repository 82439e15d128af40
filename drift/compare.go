// Package drift notices, through the watch cache, when a live object meshcd manages no longer
// holds what meshcd applied — a field edited, the object deleted, or a field meshcd owned
// taken by another field manager — and heals or reports it per design, with ignore rules and
// mesh presets, and backoff so a controller fighting meshcd cannot cause a hot loop.
package drift

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Compare returns the fields meshcd set in desired that live no longer holds, as JSON
// pointers (list items by their index in desired), sorted. Only fields present in desired are
// compared, so defaults the server added, status and other managers' fields never count.
// Lists of objects with a "name" are matched by name, as server-side apply merges them; other
// lists must be equal. Values the apiserver normalises compare by value: quantities of
// resources (2048Mi and 2Gi, 2000m and 2, 0.5 and 500m), and an empty value the apiserver
// drops. Paths that match the ignore rules are left out.
func Compare(desired, live *unstructured.Unstructured, ignore Matcher) []string {
	return CompareStored(desired, nil, live, ignore)
}

// CompareStored is Compare against what meshcd's own apply of desired returned (stored): a
// field whose live value is what the apiserver stored when meshcd wrote it is not drift, even
// where desired says it differently (normalisation, defaulting, a mutating webhook). A nil
// stored falls back to Compare's value rules.
func CompareStored(desired, stored, live *unstructured.Unstructured, ignore Matcher) []string {
	var out []string
	d, l := asStored(desired).Object, live.Object
	var st map[string]any
	if stored != nil {
		st = stored.Object
	}
	w := walker{out: &out, ignore: ignore, stored: stored != nil}
	for _, k := range slices.Sorted(maps.Keys(d)) {
		switch k {
		case "status", "apiVersion", "kind":
			continue
		case "metadata":
			dm, _ := d[k].(map[string]any)
			lm, _ := l[k].(map[string]any)
			sm, _ := st[k].(map[string]any)
			for _, mk := range []string{"labels", "annotations"} {
				w.walk("/metadata/"+mk, mk, dm[mk], sm[mk], lm[mk])
			}
			continue
		}
		w.walk("/"+escape(k), k, d[k], st[k], l[k])
	}
	return out
}

// walker compares one object. With stored set, a difference between desired and live counts
// only where live also differs from what the apiserver stored for meshcd's apply.
type walker struct {
	out    *[]string
	ignore Matcher
	stored bool
}

func (w walker) report(path string, stored, live any) {
	if w.stored && equalStored(stored, live) {
		return
	}
	*w.out = append(*w.out, path)
}

func (w walker) walk(path, key string, desired, stored, live any) {
	if w.ignore.Match(path) {
		return
	}
	switch dv := desired.(type) {
	case map[string]any:
		lv, _ := live.(map[string]any) // missing: every field below it is reported
		sv, _ := stored.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(dv)) {
			w.walk(path+"/"+escape(k), k, dv[k], sv[k], lv[k])
		}
	case []any:
		lv, ok := live.([]any)
		if !ok {
			if len(dv) > 0 {
				w.report(path, stored, live)
			}
			return
		}
		sv, _ := stored.([]any)
		if named(dv) && named(lv) {
			byName := func(list []any) map[string]any {
				m := map[string]any{}
				for _, item := range list {
					if im, ok := item.(map[string]any); ok {
						if n, ok := im["name"].(string); ok {
							m[n] = item
						}
					}
				}
				return m
			}
			liveBy, storedBy := byName(lv), byName(sv)
			for i, item := range dv {
				name := item.(map[string]any)["name"].(string)
				got, ok := liveBy[name]
				if !ok {
					w.report(path+"/"+strconv.Itoa(i), storedBy[name], nil)
					continue
				}
				w.walk(path+"/"+strconv.Itoa(i), "", item, storedBy[name], got)
			}
			return
		}
		if len(dv) != len(lv) {
			w.report(path, stored, live)
			return
		}
		for i := range dv {
			var si any
			if i < len(sv) {
				si = sv[i]
			}
			w.walk(path+"/"+strconv.Itoa(i), "", dv[i], si, lv[i])
		}
	default:
		if !equalValue(path, key, desired, live) {
			w.report(path, stored, live)
		}
	}
}

// equalStored is a live value equal to the stored one, both absent included.
func equalStored(stored, live any) bool {
	if stored == nil || live == nil {
		return stored == nil && live == nil
	}
	sm, sIsMap := stored.(map[string]any)
	lm, lIsMap := live.(map[string]any)
	if sIsMap || lIsMap {
		if !sIsMap || !lIsMap || len(sm) != len(lm) {
			return false
		}
		for k, v := range sm {
			if !equalStored(v, lm[k]) {
				return false
			}
		}
		return true
	}
	sl, sIsList := stored.([]any)
	ll, lIsList := live.([]any)
	if sIsList || lIsList {
		if !sIsList || !lIsList || len(sl) != len(ll) {
			return false
		}
		for i := range sl {
			if !equalStored(sl[i], ll[i]) {
				return false
			}
		}
		return true
	}
	return equalScalar(stored, live)
}

// quantityParents are the maps whose values are resource quantities, which the apiserver
// writes in canonical form (requests: {memory: 2048Mi} is stored as 2Gi).
var quantityParents = map[string]bool{"requests": true, "limits": true, "hard": true, "capacity": true, "overhead": true}

// equalValue compares a desired leaf with the live one as the apiserver would store it.
func equalValue(path, key string, desired, live any) bool {
	if equalScalar(desired, live) {
		return true
	}
	if live == nil && isZero(desired) {
		return true // an empty value the apiserver drops (omitempty): env {name: X, value: ""}
	}
	parent := path[:strings.LastIndex(path, "/")]
	parent = parent[strings.LastIndex(parent, "/")+1:]
	if quantityParents[parent] || key == "sizeLimit" || key == "storage" {
		a, okA := quantity(desired)
		b, okB := quantity(live)
		return okA && okB && a.Cmp(b) == 0
	}
	return false
}

func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	}
	f, ok := number(v)
	return ok && f == 0
}

func quantity(v any) (resource.Quantity, bool) {
	s, ok := v.(string)
	if !ok {
		f, isNum := number(v)
		if !isNum {
			return resource.Quantity{}, false
		}
		s = strconv.FormatFloat(f, 'f', -1, 64)
	}
	q, err := resource.ParseQuantity(s)
	return q, err == nil
}

// asStored is the object as the apiserver stores it where that differs from what was sent: a
// Secret's write-only stringData becomes base64 data.
func asStored(o *unstructured.Unstructured) *unstructured.Unstructured {
	sd, ok := o.Object["stringData"].(map[string]any)
	if !ok || o.GetKind() != "Secret" || o.GroupVersionKind().Group != "" {
		return o
	}
	c := o.DeepCopy()
	data, _ := c.Object["data"].(map[string]any)
	if data == nil {
		data = map[string]any{}
	}
	for k, v := range sd {
		s, _ := v.(string)
		data[k] = base64.StdEncoding.EncodeToString([]byte(s))
	}
	c.Object["data"] = data
	delete(c.Object, "stringData")
	return c
}

// named is a non-empty list whose every item is an object with a name no other item has
// (Contour's includes name the same child in several namespaces: those compare by position).
func named(list []any) bool {
	if len(list) == 0 {
		return false
	}
	seen := map[string]bool{}
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return false
		}
		name, ok := m["name"].(string)
		if !ok || seen[name] {
			return false
		}
		seen[name] = true
	}
	return true
}

// equalScalar compares leaf values, treating every number kind as the same number (JSON
// decoding gives int64 on one side and float64 on the other).
func equalScalar(a, b any) bool {
	fa, aNum := number(a)
	fb, bNum := number(b)
	if aNum && bNum {
		return fa == fb
	}
	return a == b
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// listItem finds a list item's entry in a fieldsV1 set: the "k:{...}" key whose fields all
// equal the item's (by name for containers, by port and protocol for Service ports).
func listItem(set map[string]any, item map[string]any) (map[string]any, bool) {
	for k, v := range set {
		rest, ok := strings.CutPrefix(k, "k:")
		if !ok {
			continue
		}
		var key map[string]any
		if json.Unmarshal([]byte(rest), &key) != nil || len(key) == 0 {
			continue
		}
		match := true
		for kk, kv := range key {
			// A key field the item leaves out was defaulted by the server (protocol: TCP).
			if iv, set := item[kk]; set && !equalScalar(kv, iv) {
				match = false
				break
			}
		}
		if m, isMap := v.(map[string]any); match && isMap {
			return m, true
		}
	}
	return nil, false
}

// escape writes a key as a JSON pointer segment.
func escape(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

// LostOwnership returns the fields of desired that meshcd's server-side apply entry in live's
// managedFields no longer lists: another manager took them over with force, even when it
// wrote the same value. Lists are checked down to named items; deeper structure of other
// lists is not. It needs meshcd's managedFields entry in live (the watch cache keeps it).
func LostOwnership(desired, live *unstructured.Unstructured, manager string, ignore Matcher) []string {
	var owned map[string]any
	for _, f := range live.GetManagedFields() {
		if f.Manager == manager && f.Operation == metav1.ManagedFieldsOperationApply && f.FieldsV1 != nil {
			if err := json.Unmarshal(f.FieldsV1.GetRawBytes(), &owned); err != nil {
				return nil
			}
		}
	}
	if owned == nil {
		return nil
	}
	var out []string
	d := desired.Object
	for _, k := range slices.Sorted(maps.Keys(d)) {
		switch k {
		case "status", "apiVersion", "kind":
			continue
		case "metadata":
			dm, _ := d[k].(map[string]any)
			om, _ := owned["f:metadata"].(map[string]any)
			for _, mk := range []string{"labels", "annotations"} {
				owns(&out, "/metadata/"+mk, dm[mk], om, "f:"+mk, ignore)
			}
			continue
		}
		owns(&out, "/"+escape(k), d[k], owned, "f:"+k, ignore)
	}
	return out
}

func owns(out *[]string, path string, desired any, owned map[string]any, key string, ignore Matcher) {
	if desired == nil || ignore.Match(path) {
		return
	}
	sub, ok := owned[key].(map[string]any)
	if !ok {
		if dm, isMap := desired.(map[string]any); isMap {
			for _, k := range slices.Sorted(maps.Keys(dm)) {
				owns(out, path+"/"+escape(k), dm[k], nil, "f:"+k, ignore)
			}
			return
		}
		*out = append(*out, path)
		return
	}
	if len(sub) == 0 {
		return // an atomic map or list: owned as a whole
	}
	switch dv := desired.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(dv)) {
			owns(out, path+"/"+escape(k), dv[k], sub, "f:"+k, ignore)
		}
	case []any:
		if !named(dv) {
			return
		}
		for i, item := range dv {
			im, ok := listItem(sub, item.(map[string]any))
			if !ok {
				*out = append(*out, path+"/"+strconv.Itoa(i))
				continue
			}
			for _, f := range slices.Sorted(maps.Keys(item.(map[string]any))) {
				owns(out, path+"/"+strconv.Itoa(i)+"/"+escape(f), item.(map[string]any)[f], im, "f:"+f, ignore)
			}
		}
	}
}
