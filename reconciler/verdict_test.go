package reconciler

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestControllersVerdicts: routes and proxies are healthy only when their controller says so,
// for the generation meshcd applied; before any controller has read them they are InProgress,
// and a rejection names the controller's reason. The statuses are shaped as Contour, Gateway API
// controllers and istiod write them.
func TestControllersVerdicts(t *testing.T) {
	cases := []struct {
		name, obj, want, msg string
	}{
		{"proxy not read yet", `
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: www, namespace: edge, generation: 1}`, "InProgress", "Contour has not read it yet"},
		{"proxy valid", `
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: www, namespace: edge, generation: 2}
status:
  currentStatus: valid
  description: Valid HTTPProxy
  conditions: [{type: Valid, status: "True", observedGeneration: 2, reason: Valid}]`, "Current", ""},
		{"authorization server not read yet", `
apiVersion: projectcontour.io/v1alpha1
kind: ExtensionService
metadata: {name: authz-extauth, namespace: edge, generation: 1}`, "InProgress", "Contour has not read it yet"},
		{"authorization server valid", `
apiVersion: projectcontour.io/v1alpha1
kind: ExtensionService
metadata: {name: authz-extauth, namespace: edge, generation: 1}
status:
  conditions: [{type: Valid, status: "True", observedGeneration: 1, reason: Valid, message: Valid ExtensionService}]`, "Current", ""},
		{"authorization server without its Service", `
apiVersion: projectcontour.io/v1alpha1
kind: ExtensionService
metadata: {name: authz-extauth, namespace: edge, generation: 1}
status:
  conditions:
  - type: Valid
    status: "False"
    observedGeneration: 1
    reason: ErrorPresent
    message: At least one error present, see Errors for details
    errors: [{type: ServiceError, reason: ServiceUnresolvedReference, message: "unresolved service edge/authz"}]`, "Failed", "ServiceUnresolvedReference: unresolved service edge/authz"},
		{"proxy valid for the previous generation", `
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: www, namespace: edge, generation: 3}
status:
  currentStatus: valid
  conditions: [{type: Valid, status: "True", observedGeneration: 2}]`, "InProgress", "not read this generation"},
		{"proxy invalid", `
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: www, namespace: edge, generation: 1}
status:
  currentStatus: invalid
  description: At least one error present, see Errors for details
  conditions:
  - type: Valid
    status: "False"
    observedGeneration: 1
    errors:
    - {type: ServiceError, reason: ServiceUnresolvedReference, message: 'Service [edge/frontend] not found'}`, "Failed", "ServiceUnresolvedReference: Service [edge/frontend] not found"},
		{"proxy orphaned", `
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: www, namespace: shop, generation: 1}
status: {currentStatus: orphaned, description: this HTTPProxy is not part of a delegation chain from a root HTTPProxy}`, "Failed", "no root HTTPProxy includes it"},
		{"route with no controller", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: shop, generation: 1}
spec: {parentRefs: [{name: ingress, namespace: edge}]}`, "InProgress", "parent Gateway edge/ingress: no controller has accepted it yet"},
		{"route accepted by one of two parents", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: shop, generation: 1}
spec: {parentRefs: [{name: ingress, namespace: edge, sectionName: https}, {name: ingress, namespace: edge, sectionName: http}]}
status:
  parents:
  - parentRef: {group: gateway.networking.k8s.io, kind: Gateway, name: ingress, namespace: edge, sectionName: https}
    controllerName: projectcontour.io/gateway-controller
    conditions:
    - {type: Accepted, status: "True", observedGeneration: 1, reason: Accepted}
    - {type: ResolvedRefs, status: "True", observedGeneration: 1, reason: ResolvedRefs}`, "InProgress", "edge/ingress#http: no controller"},
		{"route not accepted", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: shop, generation: 1}
spec: {parentRefs: [{name: ingress}]}
status:
  parents:
  - parentRef: {name: ingress}
    conditions:
    - {type: Accepted, status: "False", observedGeneration: 1, reason: NoMatchingParent, message: No listeners included by this parent ref allowed this attachment.}`, "Failed", "not accepted (NoMatchingParent): No listeners"},
		{"route with a missing backend", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: shop, generation: 1}
spec: {parentRefs: [{name: ingress, namespace: edge}]}
status:
  parents:
  - parentRef: {name: ingress, namespace: edge}
    conditions:
    - {type: Accepted, status: "True", observedGeneration: 1}
    - {type: ResolvedRefs, status: "False", observedGeneration: 1, reason: BackendNotFound, message: service "shop/checkout" not found}`, "Failed", "references not resolved (BackendNotFound)"},
		{"mesh route rejected by the mesh", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: checkout, namespace: shop, generation: 2}
spec: {parentRefs: [{group: "", kind: Service, name: checkout}]}
status:
  parents:
  - parentRef: {group: "", kind: Service, name: checkout}
    controllerName: linkerd.io/policy-controller
    conditions:
    - {type: Accepted, status: "False", observedGeneration: 2, reason: NoMatchingParent}`, "Failed", "parent Service shop/checkout: not accepted (NoMatchingParent)"},
		{"mesh route no mesh reported on", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: checkout, namespace: shop, generation: 1}
spec: {parentRefs: [{group: "", kind: Service, name: checkout}]}`, "Current", ""},
		{"gateway programmed", `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ingress, namespace: edge, generation: 1}
status:
  conditions: [{type: Programmed, status: "True", observedGeneration: 1}]
  listeners: [{name: https, conditions: [{type: Accepted, status: "True"}, {type: Conflicted, status: "False"}]}]`, "Current", ""},
		{"gateway with a conflicted listener", `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ingress, namespace: edge, generation: 1}
status:
  conditions: [{type: Programmed, status: "True", observedGeneration: 1}]
  listeners: [{name: https, conditions: [{type: Conflicted, status: "True", reason: HostnameConflict}]}]`, "Failed", "listener https (HostnameConflict)"},
		{"gateway pending", `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ingress, namespace: edge, generation: 1}
status:
  conditions: [{type: Programmed, status: "False", reason: Pending, observedGeneration: 1}]`, "InProgress", "not programmed yet"},
		{"backend TLS policy refused", `
apiVersion: gateway.networking.k8s.io/v1alpha3
kind: BackendTLSPolicy
metadata: {name: ext-legacy, namespace: edge, generation: 1}
status:
  ancestors:
  - ancestorRef: {group: gateway.networking.k8s.io, kind: Gateway, name: ingress-edge, namespace: edge}
    controllerName: projectcontour.io/gateway-controller
    conditions:
    - {type: Accepted, status: "False", observedGeneration: 1, reason: Invalid, message: BackendTLSPolicy.Spec.Validation.WellKnownCACertificates is unsupported.}`, "Failed", "WellKnownCACertificates is unsupported"},
		{"backend TLS policy nobody reported on", `
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: ext-legacy, namespace: edge, generation: 1}`, "InProgress", "no controller"},
		{"istio object with a validation error", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: shop, generation: 1}
status:
  validationMessages:
  - {level: ERROR, type: {code: IST0101, name: ReferencedResourceNotFound}}
  - {level: INFO, type: {code: IST0118, name: PortNameIsNotUnderNamingConvention}}`, "Failed", "IST0101 ReferencedResourceNotFound"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, msg, ok := verdict(decode(t, c.obj))
			if !ok {
				t.Fatal("no verdict")
			}
			if st.String() != c.want || !strings.Contains(msg, c.msg) {
				t.Errorf("got %s %q, want %s containing %q", st, msg, c.want, c.msg)
			}
		})
	}
	// Istio objects without errors, and kinds no controller judges, are left to kstatus.
	for _, obj := range []string{
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}",
	} {
		if _, _, ok := verdict(decode(t, obj)); ok {
			t.Errorf("%s: judged, want kstatus", obj)
		}
	}
}

// decode reads an object as the watch cache holds it (integers as int64).
func decode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	data, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return obj
}
