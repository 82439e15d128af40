// Package deploy holds meshcd's own deployment: a Helm chart (chart/meshcd), a kustomize base
// (kustomize/) and, at the repo root, a Containerfile. It has no Go code; its test renders both
// with meshcd's own renderer and server-side dry-runs every object on a real kube-apiserver.
package deploy
