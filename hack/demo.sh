#!/usr/bin/env bash
# make demo: starts local clusters and a local Git server seeded from examples/, shows what is
# there, and stops everything at the end (or keeps it running with DEMO_KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/meshcd-demo-XXXX)
info=$work/info
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() { [ -n "${devenv:-}" ] && kill "$devenv" 2>/dev/null && wait "$devenv" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

step "1. Start 3 local clusters (real etcd + kube-apiserver) and a Git server holding examples/shop"
bin/devenv -n 3 -names east,west,central -kubeconfig "$work/kubeconfig" -seed examples/shop -info "$info" &
devenv=$!
for _ in $(seq 1 600); do [ -s "$info" ] && break; kill -0 "$devenv" 2>/dev/null || exit 1; sleep 0.5; done
[ -s "$info" ] || { echo "devenv did not become ready"; exit 1; }
source "$info"
export KUBECONFIG

step "2. The clusters serve the mesh CRDs meshcd renders to"
for ctx in east west central; do
  printf '%-8s %s CRDs: ' "$ctx" "$(kubectl --context "$ctx" get crd -o name | wc -l)"
  kubectl --context "$ctx" get crd -o name | sed 's#.*/##' | grep -E '^(virtualservices|httproutes|servers|httpproxies)\.' | tr '\n' ' '; echo
done

step "3. The fleet repo is served over smart HTTP"
git ls-remote "$GIT_URL"
echo "clone it with: git clone $GIT_URL"

step "4. meshcd validates the fleet repo as cloned from Git"
git clone --quiet "$GIT_URL" "$work/fleet"
bin/meshcd validate "$work/fleet"
echo "and a repo with a mistake in it (examples/invalid/weights-not-100):"
bin/meshcd validate examples/invalid/weights-not-100 || echo "(exit $?: meshcd refuses it and names the file, line and path)"

step "5. meshcd renders the shop design for each cluster's mesh (east runs Istio, west Linkerd)"
for c in east west; do
  bin/meshcd render "$work/fleet" --cluster $c > "$work/$c.yaml"
  printf '%-5s %s\n' "$c:" "$(grep -E '^kind:' "$work/$c.yaml" | sort | uniq -c | tr -s ' ' | tr '\n' ',' | sed 's/,$//')"
done
echo "(see them with: bin/meshcd render <repo> --cluster east)"

step "6. Until meshcd's own apply engine lands, kubectl applies the rendered bundles server-side"
for c in east west; do
  kubectl --context $c apply --server-side --field-manager=meshcd -f "$work/$c.yaml" | sed "s/^/$c: /"
done
kubectl --context east -n shop get virtualservices,destinationrules,peerauthentications
kubectl --context west -n shop get httproutes.gateway.networking.k8s.io,servers.policy.linkerd.io,services

bin/meshcd version

if [ "${DEMO_KEEP:-0}" = 1 ]; then
  step "Everything keeps running (DEMO_KEEP=1). KUBECONFIG=$KUBECONFIG; Ctrl-C stops it."
  wait "$devenv"
else
  step "Done: stopping the clusters and the Git server (DEMO_KEEP=1 keeps them running)."
fi
