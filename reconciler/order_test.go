package reconciler

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestNamespaceOrder: a job waits for the job of its cluster that renders its Namespace;
// nothing waits across clusters, on itself, or in a ring.
func TestNamespaceOrder(t *testing.T) {
	east, west := &fleet.Cluster{Cluster: schema.Cluster{Name: "east"}}, &fleet.Cluster{Cluster: schema.Cluster{Name: "west"}}
	ns := func(name string) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion("v1")
		o.SetKind("Namespace")
		o.SetName(name)
		return o
	}
	cm := func(namespace string) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion("v1")
		o.SetKind("ConfigMap")
		o.SetNamespace(namespace)
		o.SetName("c")
		return o
	}
	job := func(c *fleet.Cluster, objs ...*unstructured.Unstructured) Job {
		return Job{Cluster: c, Bundle: &render.Bundle{Objects: objs}}
	}
	for _, tc := range []struct {
		name           string
		jobs           []Job
		wantWaits      []int
		wantDependents [][]int
	}{
		{"owner first", []Job{job(east, cm("istio-system")), job(east, ns("istio-system"), cm("istio-system")), job(east, cm("istio-system"))},
			[]int{1, 0, 1}, [][]int{nil, {0, 2}, nil}},
		{"other cluster", []Job{job(west, cm("istio-system")), job(east, ns("istio-system"))},
			[]int{0, 0}, [][]int{nil, nil}},
		{"chain", []Job{job(east, ns("a")), job(east, ns("b"), cm("a")), job(east, cm("b"))},
			[]int{0, 1, 1}, [][]int{{1}, {2}, nil}},
		{"ring, and one behind it", []Job{job(east, ns("a"), cm("b")), job(east, ns("b"), cm("a")), job(east, cm("a"))},
			[]int{0, 0, 0}, [][]int{{}, {}, nil}},
		{"failed render", []Job{{Cluster: east, RenderErr: errTest}, job(east, cm("x"))},
			[]int{0, 0}, [][]int{nil, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			waits, dependents := namespaceOrder(tc.jobs)
			if diff := cmp.Diff(tc.wantWaits, waits); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantDependents, dependents); diff != "" {
				t.Errorf("dependents (-want +got):\n%s", diff)
			}
		})
	}
}

var errTest = errorString("render failed")

type errorString string

func (e errorString) Error() string { return string(e) }
