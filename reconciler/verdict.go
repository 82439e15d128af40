package reconciler

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// verdict is the health of objects that a control plane, not Kubernetes, acts on: an ingress
// or mesh route is only serving traffic once its controller has read it and accepted it, which
// kstatus cannot see (an HTTPProxy's or an HTTPRoute's status has no Ready condition, so kstatus
// calls every one of them Current, even one Contour marked invalid). ok is false for kinds no
// controller judges here; kstatus decides those.
//
// An object no controller has looked at yet, or whose verdict is for an older generation, is
// InProgress: meshcd cannot tell whether it serves, and says so.
func verdict(obj *unstructured.Unstructured) (st status.Status, msg string, ok bool) {
	group := obj.GroupVersionKind().Group
	kind := obj.GetKind()
	switch {
	case group == "projectcontour.io" && kind == "HTTPProxy":
		st, msg = contourVerdict(obj)
	case group == "projectcontour.io" && kind == "ExtensionService":
		st, msg = extensionServiceVerdict(obj)
	case group == "gateway.networking.k8s.io" && strings.HasSuffix(kind, "Route"):
		st, msg = routeVerdict(obj)
	case group == "gateway.networking.k8s.io" && kind == "Gateway":
		st, msg = gatewayVerdict(obj)
	case group == "gateway.networking.k8s.io" && strings.HasSuffix(kind, "Policy"):
		st, msg = policyVerdict(obj)
	case strings.HasSuffix(group, ".istio.io"):
		return istioVerdict(obj)
	default:
		return "", "", false
	}
	return st, msg, true
}

// contourVerdict reads status.currentStatus, which Contour sets to valid, invalid or orphaned
// (a delegated HTTPProxy that no root includes), and the Valid condition's errors.
func contourVerdict(obj *unstructured.Unstructured) (status.Status, string) {
	current, _, _ := unstructured.NestedString(obj.Object, "status", "currentStatus")
	desc, _, _ := unstructured.NestedString(obj.Object, "status", "description")
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	valid := findCondition(conds, "Valid")
	if current == "" || current == "NotReconciled" {
		return status.InProgressStatus, "Contour has not read it yet"
	}
	if valid != nil && stale(obj, valid) {
		return status.InProgressStatus, "Contour has not read this generation yet"
	}
	switch current {
	case "valid":
		return status.CurrentStatus, ""
	case "orphaned":
		return status.FailedStatus, "Contour: orphaned: no root HTTPProxy includes it"
	}
	msg := "Contour: " + current
	if desc != "" {
		msg += ": " + desc
	}
	if valid != nil {
		for _, kind := range []string{"errors", "warnings"} {
			list, _, _ := unstructured.NestedSlice(valid, kind)
			for _, e := range list {
				if m, ok := e.(map[string]any); ok {
					msg += fmt.Sprintf("; %v: %v", m["reason"], m["message"])
				}
			}
		}
	}
	return status.FailedStatus, msg
}

// extensionServiceVerdict reads the Valid condition Contour writes on an ExtensionService (an
// authorization server it routes checks to).
func extensionServiceVerdict(obj *unstructured.Unstructured) (status.Status, string) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	valid := findCondition(conds, "Valid")
	switch {
	case valid == nil:
		return status.InProgressStatus, "Contour has not read it yet"
	case stale(obj, valid):
		return status.InProgressStatus, "Contour has not read this generation yet"
	case valid["status"] == "True":
		return status.CurrentStatus, ""
	}
	msg := "Contour: " + conditionText("not valid", valid)
	errs, _, _ := unstructured.NestedSlice(valid, "errors")
	for _, e := range errs {
		if m, ok := e.(map[string]any); ok {
			msg += fmt.Sprintf("; %v: %v", m["reason"], m["message"])
		}
	}
	return status.FailedStatus, msg
}

// routeVerdict reads status.parents: every parent the route names must have accepted it with
// its references resolved, for this generation. A Gateway with no entry has not read it yet; a
// Service (a mesh route) with no entry is left to the mesh's report, if it makes one.
func routeVerdict(obj *unstructured.Unstructured) (status.Status, string) {
	refs, _, _ := unstructured.NestedSlice(obj.Object, "spec", "parentRefs")
	parents, _, _ := unstructured.NestedSlice(obj.Object, "status", "parents")
	worst, msgs := status.CurrentStatus, []string(nil)
	for _, r := range refs {
		ref, _ := r.(map[string]any)
		name := parentName(obj, ref)
		var conds []any
		reported := false
		for _, p := range parents {
			pm, _ := p.(map[string]any)
			got, _ := pm["parentRef"].(map[string]any)
			if sameParent(obj, ref, got) {
				conds, _ = pm["conditions"].([]any)
				reported = true
				break
			}
		}
		if kind, _ := ref["kind"].(string); kind == "Service" && !reported {
			// A mesh route (GAMMA): Istio and Linkerd's policy controller report on it, but
			// a mesh that does not (older Linkerd, Istio without status) never would, and
			// the route serves all the same. Only a report can fail it.
			continue
		}
		st, msg := parentVerdict(obj, conds)
		if st == status.CurrentStatus {
			continue
		}
		msgs = append(msgs, name+": "+msg)
		if rank[st] > rank[worst] {
			worst = st
		}
	}
	return worst, strings.Join(msgs, "; ")
}

// parentVerdict judges one parent's conditions on a route.
func parentVerdict(obj *unstructured.Unstructured, conds []any) (status.Status, string) {
	accepted, resolved := findCondition(conds, "Accepted"), findCondition(conds, "ResolvedRefs")
	if accepted == nil {
		return status.InProgressStatus, "no controller has accepted it yet"
	}
	if stale(obj, accepted) {
		return status.InProgressStatus, "its controller has not read this generation yet"
	}
	if accepted["status"] != "True" {
		return status.FailedStatus, conditionText("not accepted", accepted)
	}
	if resolved != nil && resolved["status"] != "True" {
		return status.FailedStatus, conditionText("references not resolved", resolved)
	}
	return status.CurrentStatus, ""
}

// policyVerdict reads a Gateway API policy's status.ancestors: each Gateway whose controller
// applies the policy says whether it accepted it. A controller that refuses one keeps routing
// (Contour sends plain HTTP where a BackendTLSPolicy it refused asked for TLS), so a refusal is
// Failed; a policy no controller has reported on is InProgress.
func policyVerdict(obj *unstructured.Unstructured) (status.Status, string) {
	ancestors, _, _ := unstructured.NestedSlice(obj.Object, "status", "ancestors")
	if len(ancestors) == 0 {
		return status.InProgressStatus, "no controller has reported on it yet"
	}
	for _, a := range ancestors {
		am, _ := a.(map[string]any)
		conds, _ := am["conditions"].([]any)
		ref, _ := am["ancestorRef"].(map[string]any)
		accepted := findCondition(conds, "Accepted")
		switch {
		case accepted == nil || stale(obj, accepted):
			return status.InProgressStatus, parentName(obj, ref) + ": its controller has not read this generation yet"
		case accepted["status"] != "True":
			return status.FailedStatus, parentName(obj, ref) + ": " + conditionText("not accepted", accepted)
		}
	}
	return status.CurrentStatus, ""
}

// gatewayVerdict wants the Gateway Programmed for this generation and every listener accepted,
// free of conflicts and with its references resolved.
func gatewayVerdict(obj *unstructured.Unstructured) (status.Status, string) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	programmed := findCondition(conds, "Programmed")
	switch {
	case programmed == nil:
		return status.InProgressStatus, "no controller has programmed it yet"
	case stale(obj, programmed):
		return status.InProgressStatus, "its controller has not read this generation yet"
	}
	listeners, _, _ := unstructured.NestedSlice(obj.Object, "status", "listeners")
	for _, l := range listeners {
		lm, _ := l.(map[string]any)
		lconds, _ := lm["conditions"].([]any)
		for _, want := range []struct {
			typ, status string
		}{{"Accepted", "True"}, {"ResolvedRefs", "True"}, {"Conflicted", "False"}} {
			if c := findCondition(lconds, want.typ); c != nil && c["status"] != want.status {
				return status.FailedStatus, conditionText(fmt.Sprintf("listener %v", lm["name"]), c)
			}
		}
	}
	if programmed["status"] != "True" {
		if programmed["reason"] == "Pending" {
			return status.InProgressStatus, conditionText("not programmed yet", programmed)
		}
		return status.FailedStatus, conditionText("not programmed", programmed)
	}
	return status.CurrentStatus, ""
}

// istioVerdict reads the validation messages istiod writes into status when its status
// reporting is on. Istio writes nothing otherwise, so without an error kstatus decides.
func istioVerdict(obj *unstructured.Unstructured) (status.Status, string, bool) {
	msgs, _, _ := unstructured.NestedSlice(obj.Object, "status", "validationMessages")
	var errs []string
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		if level := fmt.Sprint(mm["level"]); level != "ERROR" && level != "3" {
			continue
		}
		typ, _ := mm["type"].(map[string]any)
		errs = append(errs, fmt.Sprintf("%v %v", typ["code"], typ["name"]))
	}
	if len(errs) == 0 {
		return "", "", false
	}
	return status.FailedStatus, "Istio: " + strings.Join(errs, ", "), true
}

// findCondition returns the condition of this type, or nil.
func findCondition(conds []any, typ string) map[string]any {
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			return m
		}
	}
	return nil
}

// stale reports whether a condition was written for an older generation of the object.
func stale(obj *unstructured.Unstructured, cond map[string]any) bool {
	g, ok := cond["observedGeneration"].(int64)
	if !ok {
		if f, isFloat := cond["observedGeneration"].(float64); isFloat {
			g, ok = int64(f), true
		}
	}
	return ok && g < obj.GetGeneration()
}

func conditionText(what string, c map[string]any) string {
	s := fmt.Sprintf("%s (%v)", what, c["reason"])
	if m, _ := c["message"].(string); m != "" {
		s += ": " + m
	}
	return s
}

// sameParent compares a route's parentRef with one its status names, filling in the defaults
// (group gateway.networking.k8s.io, kind Gateway, the route's namespace).
func sameParent(route *unstructured.Unstructured, want, got map[string]any) bool {
	if got == nil {
		return false
	}
	norm := func(ref map[string]any) [6]string {
		s := func(k, def string) string {
			if v, ok := ref[k]; ok && v != nil && fmt.Sprint(v) != "" {
				return fmt.Sprint(v)
			}
			return def
		}
		return [6]string{s("group", "gateway.networking.k8s.io"), s("kind", "Gateway"), s("namespace", route.GetNamespace()), s("name", ""), s("sectionName", ""), s("port", "")}
	}
	return norm(want) == norm(got)
}

func parentName(route *unstructured.Unstructured, ref map[string]any) string {
	kind, _ := ref["kind"].(string)
	if kind == "" {
		kind = "Gateway"
	}
	ns, _ := ref["namespace"].(string)
	if ns == "" {
		ns = route.GetNamespace()
	}
	s := fmt.Sprintf("parent %s %s/%v", kind, ns, ref["name"])
	if sec, _ := ref["sectionName"].(string); sec != "" {
		s += "#" + sec
	}
	return s
}
