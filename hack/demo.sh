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

step "6. meshcd diff: what applying would change on each cluster (everything is new)"
bin/meshcd diff "$work/fleet" | grep -E '^# design' || true
echo "(exit 1 means differences, like kubectl diff; see the YAML with: bin/meshcd diff <repo>)"

step "7. meshcd apply: server-side apply in stages, an inventory in each cluster, then a no-op"
bin/meshcd apply "$work/fleet" --all --prune
kubectl --context east -n shop get virtualservices,destinationrules,peerauthentications
kubectl --context west -n shop get httproutes.gateway.networking.k8s.io,servers.policy.linkerd.io,services
echo "the inventory meshcd keeps in each cluster:"
kubectl --context east -n meshcd-system get configmaps -l meshcd.io/design
echo "applying the same revision again writes nothing (everything unchanged):"
bin/meshcd apply "$work/fleet" --all --prune

step "8. Someone deletes a DestinationRule and edits the VirtualService weights by hand"
kubectl --context east -n shop delete destinationrule frontend
kubectl --context east -n shop patch virtualservice checkout --type=json \
  -p '[{"op":"replace","path":"/spec/http/1/route/0/weight","value":50},{"op":"replace","path":"/spec/http/1/route/1/weight","value":50}]'
echo "meshcd drift reports both, with the fields and who changed them:"
bin/meshcd drift "$work/fleet" || echo "(exit $?: drift found)"
echo "a plain apply names the conflict (kubectl-patch now owns the routes) and changes nothing there:"
bin/meshcd apply "$work/fleet" --cluster east || echo "(exit $?)"
echo "with --force-conflicts (or sync.takeOwnership, or the daemon's drift healing) meshcd takes them back:"
bin/meshcd apply "$work/fleet" --cluster east --force-conflicts
bin/meshcd drift "$work/fleet" --cluster east

step "9. A performance gate: fortio load against a local echo server, judged and written as status files"
mkdir -p "$work/gate/clusters" "$work/gate/designs/shop"
cat > "$work/gate/clusters/east.cue" <<'CUE'
cluster: east: {labels: env: "prod", mesh: "istio"}
CUE
cat > "$work/gate/designs/shop/design.cue" <<'CUE'
design: shop: {
	namespace: "shop"
	gates: "checkout-p99": {
		url: "http://checkout.shop:8080/"
		load: {qps: 100, connections: 4, duration: "3s"}
		thresholds: {p99: "50ms", errorRate: 0.01}
		baseline: {branch: "main", maxRegression: "20%"}
	}
}
CUE
bin/devenv -echo 127.0.0.1:0 -info "$work/echo" &
echo_pid=$!
for _ in $(seq 1 100); do [ -s "$work/echo" ] && break; sleep 0.1; done
source "$work/echo"
echo "a fast target (5 ms) passes and becomes the baseline:"
bin/meshcd gate run shop/checkout-p99 --repo "$work/gate" --url "$ECHO_URL/?delay=5ms" --status-dir "$work/gate/status" --revision aaaaaaa
echo "a change that makes it slower (30 ms) fails the regression budget:"
bin/meshcd gate run shop/checkout-p99 --repo "$work/gate" --url "$ECHO_URL/?delay=30ms" --status-dir "$work/gate/status" --revision bbbbbbb || echo "(exit $?: the gate failed)"
kill "$echo_pid" 2>/dev/null || true
echo "status files, ready to commit beside the design:"
(cd "$work/gate" && find status -type f | sort)

bin/meshcd version

if [ "${DEMO_KEEP:-0}" = 1 ]; then
  step "Everything keeps running (DEMO_KEEP=1). KUBECONFIG=$KUBECONFIG; Ctrl-C stops it."
  wait "$devenv"
else
  step "Done: stopping the clusters and the Git server (DEMO_KEEP=1 keeps them running)."
fi
