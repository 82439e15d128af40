package drift

import (
	"fmt"
	"strings"

	"github.com/meshcd/meshcd/schema"
)

// Presets are the ignore rules a design turns on by name for fields that mesh machinery
// rightly changes after meshcd applied them.
var Presets = map[string][]schema.IgnoreRule{
	// Istio's sidecar injector and revision tags label and annotate namespaces and pods.
	"istio-sidecar": {{Paths: []string{
		"/metadata/labels/istio-injection", "/metadata/labels/istio.io~1rev",
		"/metadata/annotations/sidecar.istio.io~1*", "/metadata/labels/sidecar.istio.io~1*",
		"/spec/template/metadata/annotations/sidecar.istio.io~1*", "/spec/template/metadata/labels/security.istio.io~1*",
		"/spec/template/metadata/labels/service.istio.io~1*", "/spec/template/metadata/annotations/istio.io~1*",
	}}},
	// Linkerd's proxy injector annotates namespaces and pod templates.
	"linkerd-proxy": {{Paths: []string{
		"/metadata/annotations/linkerd.io~1*", "/metadata/annotations/config.linkerd.io~1*",
		"/spec/template/metadata/annotations/linkerd.io~1*", "/spec/template/metadata/annotations/config.linkerd.io~1*",
	}}},
	// cert-manager's cainjector and operators fill in webhook CA bundles.
	"webhook-cabundle": {{Paths: []string{
		"/webhooks/*/clientConfig/caBundle", "/spec/conversion/webhook/clientConfig/caBundle", "/spec/caBundle",
	}}},
	// A HorizontalPodAutoscaler owns the replica count.
	"hpa-replicas": {{Kind: "Deployment", Paths: []string{"/spec/replicas"}}, {Kind: "StatefulSet", Paths: []string{"/spec/replicas"}}},
}

// Rules is a design's ignore rules with its presets expanded, ready to match objects.
type Rules struct{ rules []rule }

type rule struct {
	kind, name string
	paths      [][]string
}

// NewRules compiles the design's ignore rules and presets. A path is a JSON pointer
// ("/spec/replicas") or a dotted field path ("spec.replicas"); a segment "*" matches any one
// segment and "prefix*" any segment starting with prefix.
func NewRules(ignore []schema.IgnoreRule, presets []string) (Rules, error) {
	var out Rules
	all := append([]schema.IgnoreRule(nil), ignore...)
	for _, p := range presets {
		rs, ok := Presets[p]
		if !ok {
			return Rules{}, fmt.Errorf("unknown drift preset %q", p)
		}
		all = append(all, rs...)
	}
	for _, r := range all {
		cr := rule{kind: r.Kind, name: r.Name}
		for _, p := range r.Paths {
			cr.paths = append(cr.paths, segments(p))
		}
		out.rules = append(out.rules, cr)
	}
	return out, nil
}

func segments(p string) []string {
	if strings.HasPrefix(p, "/") {
		parts := strings.Split(p[1:], "/")
		for i, s := range parts {
			parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
		}
		return parts
	}
	return strings.Split(p, ".")
}

// For returns the matcher for one object.
func (r Rules) For(kind, name string) Matcher {
	var m Matcher
	for _, ru := range r.rules {
		if (ru.kind == "" || ru.kind == kind) && (ru.name == "" || ru.name == name) {
			m.paths = append(m.paths, ru.paths...)
		}
	}
	return m
}

// Matcher says whether a field path of one object is ignored. The zero Matcher ignores
// nothing.
type Matcher struct{ paths [][]string }

// Match reports whether the JSON pointer is covered by a rule: equal to it or below it.
func (m Matcher) Match(pointer string) bool {
	if len(m.paths) == 0 {
		return false
	}
	segs := segments(pointer)
	for _, p := range m.paths {
		if len(p) > len(segs) {
			continue
		}
		ok := true
		for i, want := range p {
			if !segmentMatches(want, segs[i]) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func segmentMatches(pattern, seg string) bool {
	if pattern == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(seg, prefix)
	}
	return pattern == seg
}
