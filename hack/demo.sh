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
echo "status files, ready to commit beside the design:"
(cd "$work/gate" && find status -type f | sort)

step "10. The daemon: meshcd run keeps the clusters equal to Git on its own"
addr=127.0.0.1:$(( 20000 + RANDOM % 20000 ))
cat > "$work/meshcd.yaml" <<YAML
listen: $addr
cacheDir: $work/cache
repos:
- url: $GIT_URL
  branch: main
  interval: 1s
  allowHTTP: true
  pullRequests: refs/pull/*/head
gates: {allowLoopback: true, previewHosts: ["127.0.0.1"]}
clusters:
  east: {kubeconfig: $KUBECONFIG, context: east}
  west: {kubeconfig: $KUBECONFIG, context: west}
  central: {kubeconfig: $KUBECONFIG, context: central}
YAML
cat "$work/meshcd.yaml"
bin/meshcd run --config "$work/meshcd.yaml" > "$work/daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon ${echo_pid:-} 2>/dev/null || true; cleanup' EXIT
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local n=$(( $1 * 5 )) what=$2; shift 2
  for _ in $(seq 1 $n); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "timed out waiting for: $what"; tail -20 "$work/daemon.log"; exit 1
}
wait_for 60 "the first status commit" git --git-dir "$GIT_DIR_BARE" cat-file -e main:status/README.md
echo "meshcd synced the repo and committed its status; status/README.md on main now reads:"
git --git-dir "$GIT_DIR_BARE" show main:status/README.md
echo "(the daemon's log is in $work/daemon.log; its API: curl http://$addr/api/v1/status)"

step "11. A pushed weight change reaches every cluster"
git -C "$work/fleet" pull --quiet
sed -i 's/{to: {stable: 90, canary: 10}}/{to: {stable: 50, canary: 50}}/' "$work/fleet/designs/shop/design.cue"
git -C "$work/fleet" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -am "shop: canary to 50%"
git -C "$work/fleet" push --quiet origin HEAD:main
weight() { kubectl --context east -n shop get virtualservice checkout -o jsonpath='{.spec.http[1].route[?(@.destination.subset=="canary")].weight}'; }
wait_for 30 "the new weight on east" bash -c '[ "$(kubectl --context east -n shop get virtualservice checkout -o jsonpath="{.spec.http[1].route[?(@.destination.subset==\"canary\")].weight}")" = 50 ]'
echo "east canary weight is now $(weight); west's HTTPRoute:"
kubectl --context west -n shop get httproute checkout-1 -o jsonpath='{range .spec.rules[0].backendRefs[*]}{.name}={.weight}{"  "}{end}'; echo

step "12. An out-of-band edit is healed within a second and recorded"
kubectl --context east -n shop patch virtualservice checkout --type=json -p '[{"op":"replace","path":"/spec/http/1/route/0/weight","value":1},{"op":"replace","path":"/spec/http/1/route/1/weight","value":99}]'
start=$(date +%s%N)
wait_for 10 "the heal" bash -c '[ "$(kubectl --context east -n shop get virtualservice checkout -o jsonpath="{.spec.http[1].route[?(@.destination.subset==\"canary\")].weight}")" = 50 ]'
echo "healed after $(( ($(date +%s%N) - start) / 1000000 )) ms (including kubectl's own round trips)"
wait_for 15 "the drift ledger" git --git-dir "$GIT_DIR_BARE" cat-file -e main:status/drift/east.json
echo "status/drift/east.json:"; git --git-dir "$GIT_DIR_BARE" show main:status/drift/east.json | head -20
echo "and in Prometheus:"; curl -s "http://$addr/metrics" | grep -E '^meshcd_drift_(detected|healed)_total' || true

step "13. A pull request gets a preview of what it would change, from a server-side dry run"
git -C "$work/fleet" checkout --quiet -b canary-100
sed -i 's/{to: {stable: 50, canary: 50}}/{to: {canary: 100}}/' "$work/fleet/designs/shop/design.cue"
git -C "$work/fleet" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -am "shop: all traffic to the canary"
git -C "$work/fleet" push --quiet origin HEAD:refs/pull/7/head
wait_for 30 "the preview" git --git-dir "$GIT_DIR_BARE" cat-file -e main:status/pr/7.md
git --git-dir "$GIT_DIR_BARE" show main:status/pr/7.md | head -30
echo "(nothing was applied: east's canary weight is still $(weight))"

step "14. The daemon gates a pushed change, and a latency regression fails the gate"
git -C "$work/fleet" checkout --quiet main
git -C "$work/fleet" pull --quiet origin main
sed -i "s|^\tsync: {|\tgates: \"checkout-latency\": {url: \"$ECHO_URL/?delay=5ms\", load: {qps: 50, connections: 2, duration: \"2s\"}, thresholds: {p99: \"50ms\"}, baseline: {branch: \"main\", maxRegression: \"50%\"}}\n\tsync: {|" "$work/fleet/designs/shop/design.cue"
git -C "$work/fleet" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -am "shop: a latency gate"
git -C "$work/fleet" push --quiet origin HEAD:main
gate_md() { git --git-dir "$GIT_DIR_BARE" show main:status/gates/shop/checkout-latency/east.md 2>/dev/null; }
wait_for 60 "the gate's first verdict" bash -c "git --git-dir '$GIT_DIR_BARE' show main:status/gates/shop/checkout-latency/east.md | grep -q passed"
gate_md | head -12
echo "now a change that makes checkout slower (80 ms):"
git -C "$work/fleet" pull --quiet origin main
sed -i "s|?delay=5ms|?delay=80ms|" "$work/fleet/designs/shop/design.cue"
git -C "$work/fleet" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -am "shop: slower checkout"
git -C "$work/fleet" push --quiet origin HEAD:main
wait_for 60 "the failing verdict" bash -c "git --git-dir '$GIT_DIR_BARE' show main:status/gates/shop/checkout-latency/east.md | grep -q failed"
gate_md | head -14
echo "the fleet matrix marks it:"
git --git-dir "$GIT_DIR_BARE" show main:status/README.md | sed -n '5,8p'
kill "$echo_pid" 2>/dev/null || true

step "15. SIGTERM stops the daemon cleanly"
kill -TERM "$daemon"; wait "$daemon" || true
tail -3 "$work/daemon.log"

bin/meshcd version

if [ "${DEMO_KEEP:-0}" = 1 ]; then
  step "Everything keeps running (DEMO_KEEP=1). KUBECONFIG=$KUBECONFIG; Ctrl-C stops it."
  wait "$devenv"
else
  step "Done: stopping the clusters and the Git server (DEMO_KEEP=1 keeps them running)."
fi
