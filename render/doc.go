// Package render will turn a design and a target cluster into the ordered, digested list of
// objects to apply: the mesh compiler (istio, linkerd, gateway-api, contour), kustomize and helm,
// per-cluster overlays and the render cache. It never talks to a cluster.
package render
