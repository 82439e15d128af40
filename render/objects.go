package render

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// newObject builds an object from plain values; spec may be nil.
func newObject(apiVersion, kind, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	meta := map[string]any{"name": name}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}}
	if spec != nil {
		o.Object["spec"] = spec
	}
	return o
}

// namespace is the design's Namespace, marked for sidecar injection where the mesh needs it.
func namespace(d *schema.Design, c *schema.Cluster) *unstructured.Unstructured {
	ns := newObject("v1", "Namespace", "", d.Namespace, nil)
	switch c.Mesh {
	case schema.MeshIstio:
		ns.SetLabels(map[string]string{"istio-injection": "enabled"})
	case schema.MeshLinkerd:
		ns.SetAnnotations(map[string]string{"linkerd.io/inject": "enabled"})
	}
	return ns
}

// host is a service's cluster-local DNS name.
func host(svc, ns string) string { return svc + "." + ns + ".svc.cluster.local" }

// podSelector selects a service's pods: meshcd's convention is that workloads carry
// app: <service>, and each version adds its own labels.
func podSelector(svc string, version map[string]string) map[string]any {
	out := map[string]any{"app": svc}
	for k, v := range version {
		out[k] = v
	}
	return out
}

// versionServices are one Service per version (<service>-<version>), the weighted backends of
// Gateway API routes on linkerd and gateway-api clusters.
func versionServices(ns, name string, svc schema.Service, annotations map[string]string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, v := range slices.Sorted(maps.Keys(svc.Versions)) {
		port := map[string]any{"name": portName(svc), "port": int64(svc.Port), "targetPort": int64(svc.Port), "protocol": "TCP"}
		if svc.Protocol == "grpc" {
			// HTTP/2 without TLS: how Gateway API controllers (and Istio) know to speak it.
			port["appProtocol"] = "kubernetes.io/h2c"
		}
		s := newObject("v1", "Service", ns, name+"-"+v, map[string]any{
			"selector": podSelector(name, svc.Versions[v].Labels),
			"ports":    []any{port},
		})
		if len(annotations) > 0 {
			s.SetAnnotations(annotations)
		}
		out = append(out, s)
	}
	return out
}

func portName(svc schema.Service) string {
	switch svc.Protocol {
	case "grpc":
		return "grpc"
	case "tcp":
		return "tcp"
	}
	return "http"
}

// routeName names the object made from one route: its name, or <service>-<index>.
func routeName(svc string, i int, r schema.Route) string {
	if r.Name != "" {
		return svc + "-" + r.Name
	}
	return svc + "-" + strconv.Itoa(i)
}

// principal is the SPIFFE-style identity of a service account written namespace/name.
func principal(sa string) string {
	ns, name, _ := strings.Cut(sa, "/")
	return "cluster.local/ns/" + ns + "/sa/" + name
}
