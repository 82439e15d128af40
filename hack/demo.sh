#!/usr/bin/env bash
# make demo: starts local clusters and a local Git server seeded from examples/, shows what is
# there, and stops everything at the end (or keeps it running with DEMO_KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/meshcd-demo-XXXX)
info=$work/info
current="starting"
step() { current=$1; printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Every process the demo starts is stopped on any exit: the end, a failed step, Ctrl-C.
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'rc=$?; echo; echo "the demo stopped in step \"$current\": line $LINENO, exit $rc"; [ -s "$work/daemon.log" ] && { echo "the daemon log ends:"; tail -20 "$work/daemon.log"; }' ERR
# echo_server NAME DELAY: a local fortio echo server answering DELAY late, its URL in $NAME.
echo_server() {
  bin/devenv -echo 127.0.0.1:0 -echo-delay "$2" -echo-key "$1" -info "$work/$1" > /dev/null &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$work/$1" ] && break; sleep 0.1; done
  source "$work/$1"
}

step "1. Start 3 local clusters (real etcd + kube-apiserver) and a Git server holding examples/shop"
bin/devenv -n 3 -names east,west,central -kubeconfig "$work/kubeconfig" -seed examples/shop -info "$info" &
devenv=$!
pids+=("$devenv")
for _ in $(seq 1 600); do [ -s "$info" ] && break; kill -0 "$devenv" 2>/dev/null || exit 1; sleep 0.5; done
[ -s "$info" ] || { echo "devenv did not become ready"; exit 1; }
source "$info"
export KUBECONFIG

# A real Git host (Gitea, built by make testbin) for the pull request of step 14, started now
# because it takes a few seconds; it holds a second fleet repo with a payments design.
mkdir -p "$work/payments/clusters" "$work/payments/designs/payments"
cp examples/shop/clusters/*.cue "$work/payments/clusters/"
payments_design() { # payments_design STABLE CANARY [GATE]: the payments design
  cat > "$1/designs/payments/design.cue" <<CUE
// The payments team's API, in a repo of its own on a Git host.
design: payments: {
	namespace: "payments"
	targets: matchLabels: env: "prod"
	services: api: {
		port: 8080
		versions: {stable: labels: version: "v1", canary: labels: version: "v2"}
		routes: [{to: {stable: $2, canary: $3}}]
	}
	${4:-}
}
CUE
}
payments_design "$work/payments" 90 10
if [ -x bin/testbin/gitea ]; then
  bin/devenv -gitea -seed "$work/payments" -info "$work/gitea" > "$work/gitea.log" 2>&1 &
  pids+=($!)
fi

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

step "9. A side-by-side gate: two versions loaded in one run, in alternating slices"
echo_server STABLE_URL 0s
echo_server SLOW_URL 50ms
echo_server FIXED_URL 0s
echo "stable answers at $STABLE_URL; the canary at $SLOW_URL answers 50 ms later; a fixed canary at $FIXED_URL as fast as stable"
mkdir -p "$work/gate/clusters" "$work/gate/designs/shop"
cat > "$work/gate/clusters/east.cue" <<'CUE'
cluster: east: {labels: env: "prod", mesh: "istio"}
CUE
canary_gate() { # the gate judging the canary at $1 against stable
  cat > "$work/gate/designs/shop/design.cue" <<CUE
design: shop: {
	namespace: "shop"
	gates: canary: {
		load: {qps: 100, connections: 8, duration: "4s"}
		thresholds: errorRate: 0.01
		// A regression is 50% slower and at least 20 ms slower: far above a busy machine's noise.
		compare: {baseline: "stable", candidate: "canary", urls: {stable: "$STABLE_URL/", canary: "$1/"}, maxRegression: "50%", minDifference: "20ms"}
	}
}
CUE
}
canary_gate "$SLOW_URL"
echo "the slow canary against stable, machine noise hitting both alike:"
bin/meshcd gate run shop/canary --repo "$work/gate" --status-dir "$work/gate/status" --revision aaaaaaa \
  && echo "(unexpected: the slow canary passed; see the ratios above)" || echo "(exit $?: the gate failed, and says by how much)"
canary_gate "$FIXED_URL"
echo "a canary as fast as stable:"
bin/meshcd gate run shop/canary --repo "$work/gate" --status-dir "$work/gate/status" --revision bbbbbbb \
  || echo "(unexpected: exit $?; the ratios above say why)"
echo "status files, ready to commit beside the design:"
(cd "$work/gate" && find status -type f | sort)

step "10. The daemon: meshcd run keeps the clusters equal to Git on its own"
addr=127.0.0.1:$(( 20000 + RANDOM % 20000 ))
if [ -x bin/testbin/gitea ]; then
  for _ in $(seq 1 300); do [ -s "$work/gitea" ] && break; sleep 0.2; done
fi
cat > "$work/meshcd.yaml" <<YAML
listen: $addr
cacheDir: $work/cache
repos:
- url: $GIT_URL
  branch: main
  interval: 1s
  allowHTTP: true
  pullRequests: refs/pull/*/head
YAML
if [ -s "$work/gitea" ]; then
  source "$work/gitea"
  export DEMO_GITEA_TOKEN=$GITEA_TOKEN DEMO_GITEA_HOOK=demo-hook-secret
  cat >> "$work/meshcd.yaml" <<YAML
- url: $GITEA_CLONE_URL   # the payments repo on Gitea; pushes are announced by its webhook
  branch: main
  interval: 1m
  allowHTTP: true
  username: $GITEA_USER
  password: {env: DEMO_GITEA_TOKEN}
  pullRequests: refs/pull/*/head
  feedback: {provider: gitea, token: {env: DEMO_GITEA_TOKEN}}
webhooks: {gitea: {env: DEMO_GITEA_HOOK}}
YAML
else
  echo "(no Gitea in bin/testbin, so step 14 is left out: make testbin builds it)"
fi
cat >> "$work/meshcd.yaml" <<YAML
gates: {allowLoopback: true, previewHosts: ["127.0.0.1"]}
clusters:
  east: {kubeconfig: $KUBECONFIG, context: east}
  west: {kubeconfig: $KUBECONFIG, context: west}
  central: {kubeconfig: $KUBECONFIG, context: central}
YAML
cat "$work/meshcd.yaml"
bin/meshcd run --config "$work/meshcd.yaml" > "$work/daemon.log" 2>&1 &
daemon=$!
pids+=("$daemon")
push_main() { # pushes the demo clone's commit as a person would: rebased on meshcd's status commits
  for _ in 1 2 3 4 5; do
    git -C "$work/fleet" pull --quiet --rebase origin main && git -C "$work/fleet" push --quiet origin HEAD:main 2>/dev/null && return 0
    sleep 1
  done
  return 1
}
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $(( secs * 5 ))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "timed out after $secs s waiting for: $what"; return 1
}
wait_for 60 "the first status commit" git --git-dir "$GIT_DIR_BARE" cat-file -e main:status/README.md
echo "meshcd synced the repo and committed its status; status/README.md on main now reads:"
git --git-dir "$GIT_DIR_BARE" show main:status/README.md
echo "(the daemon's log is in $work/daemon.log; its API: curl http://$addr/api/v1/status)"
echo "the fleet in a browser, live: http://$addr/ (pull requests: http://$addr/pulls, rollouts: http://$addr/rollouts)"
gitea_api() { # gitea_api METHOD PATH [JSON]: Gitea's API as the admin
  curl -sf -X "$1" -H "Authorization: token $GITEA_TOKEN" -H 'Content-Type: application/json' "$GITEA_URL/api/v1$2" ${3:+-d "$3"}
}
if [ -n "${GITEA_URL:-}" ]; then
  gitea_api POST "/repos/$GITEA_REPO/hooks" "{\"type\":\"gitea\",\"active\":true,\"events\":[\"push\",\"pull_request\"],\"config\":{\"url\":\"http://$addr/hooks/gitea\",\"content_type\":\"json\",\"secret\":\"$DEMO_GITEA_HOOK\"}}" > /dev/null
  echo "Gitea at $GITEA_URL holds the payments repo ($GITEA_URL/$GITEA_REPO); its webhook now tells meshcd of every push and pull request"
fi

step "11. A pushed weight change reaches every cluster"
git -C "$work/fleet" pull --quiet
sed -i 's/{to: {stable: 90, canary: 10}}/{to: {stable: 50, canary: 50}}/' "$work/fleet/designs/shop/design.cue"
git -C "$work/fleet" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -am "shop: canary to 50%"
push_main
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
echo "status/drift/east.json:"; { git --git-dir "$GIT_DIR_BARE" show main:status/drift/east.json | head -20; } || true
echo "and in Prometheus:"; curl -s "http://$addr/metrics" | grep -E '^meshcd_drift_(detected|healed)_total' || true

step "13. A pull request gets a preview of what it would change, from a server-side dry run"
git -C "$work/fleet" checkout --quiet -b canary-100
sed -i 's/{to: {stable: 50, canary: 50}}/{to: {canary: 100}}/' "$work/fleet/designs/shop/design.cue"
git -C "$work/fleet" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -am "shop: all traffic to the canary"
git -C "$work/fleet" push --quiet origin HEAD:refs/pull/7/head
wait_for 30 "the preview" git --git-dir "$GIT_DIR_BARE" cat-file -e main:status/pr/7.md
{ git --git-dir "$GIT_DIR_BARE" show main:status/pr/7.md | head -30; } || true
echo "(nothing was applied: east's canary weight is still $(weight))"

step "14. The same on a real Git host: Gitea shows the preview on the pull request itself"
if [ -n "${GITEA_URL:-}" ]; then
  statuses() { # the PR head's commit statuses, one line each
    gitea_api GET "/repos/$GITEA_REPO/commits/$1/statuses?limit=50" | tr '{' '\n' | grep '"context"' \
      | sed -E 's/.*"status":"([a-z]+)".*"description":"(([^"\\]|\\.)*)".*"context":"([^"]*)".*/  \4: \1 — \2/' | awk -F': ' '!seen[$1]++'
  }
  gitea_clone=$work/payments-clone
  git clone --quiet "${GITEA_CLONE_URL/http:\/\//http://$GITEA_USER:$GITEA_TOKEN@}" "$gitea_clone"
  git -C "$gitea_clone" checkout --quiet -b half
  payments_design "$gitea_clone" 50 50 "gates: latency: {url: \"$SLOW_URL/\", triggers: [\"pr\"], load: {qps: 20, connections: 2, duration: \"6s\"}, thresholds: p99: \"30ms\"}"
  git -C "$gitea_clone" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -am "payments: half to the canary, gated"
  git -C "$gitea_clone" push --quiet origin half 2>/dev/null
  head=$(git -C "$gitea_clone" rev-parse HEAD)
  pr=$(gitea_api POST "/repos/$GITEA_REPO/pulls" '{"head":"half","base":"main","title":"payments: half to the canary"}' | grep -o '"number":[0-9]*' | head -1 | cut -d: -f2)
  echo "opened pull request #$pr; its head $head is previewed and its gate (p99 under 30 ms, against a server 50 ms slow) runs"
  if wait_for 90 "the gate's check on the PR" bash -c "curl -sf -H 'Authorization: token $GITEA_TOKEN' '$GITEA_URL/api/v1/repos/$GITEA_REPO/commits/$head/statuses' | grep -q 'meshcd/gate/payments/latency'"; then
    echo "the checks on the PR head, as Gitea shows them (the newest of each):"
    statuses "$head"
    echo "meshcd's one comment on the PR begins:"
    gitea_api GET "/repos/$GITEA_REPO/issues/$pr/comments" | grep -o '"body":"[^"]*' | head -1 | sed 's/^"body":"//; s/\\n/\n/g' | sed -n '2,14p'
  else
    echo "(no verdict yet; the daemon log ends:)"; tail -5 "$work/daemon.log"
  fi
  echo "see it in a browser: $GITEA_URL/$GITEA_REPO/pulls/$pr (user $GITEA_USER, password $GITEA_PASSWORD; DEMO_KEEP=1 keeps it running)"
else
  echo "(left out: no Gitea; make testbin builds it)"
fi

step "15. A canary rolled out by the daemon, each step gated side by side against stable"
git -C "$work/fleet" checkout --quiet main
git -C "$work/fleet" pull --quiet origin main
rollout_gate() { # the design's rollout gate, with the canary at $1
  sed -i '/^\tgates: canary:/d' "$work/fleet/designs/shop/design.cue"
  sed -i "s|^\tsync: {|\tgates: canary: {load: {qps: 100, connections: 8, duration: \"4s\"}, thresholds: errorRate: 0.01, compare: {baseline: \"stable\", candidate: \"canary\", urls: {stable: \"$STABLE_URL/\", canary: \"$1/\"}, maxRegression: \"50%\", minDifference: \"20ms\"}, rollout: {service: \"checkout\", version: \"canary\", steps: [10, 50, 100]}}\n\tsync: {|" "$work/fleet/designs/shop/design.cue"
}
rollout_file() { git --git-dir "$GIT_DIR_BARE" show main:designs/shop/rollout-canary.cue 2>/dev/null; }
rollout_gate "$SLOW_URL"
git -C "$work/fleet" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -am "shop: roll the canary out in steps"
push_main
echo "the canary answers 50 ms slower than stable; the gate measures both before any step:"
if wait_for 120 "the rollout's first decision" bash -c "git --git-dir '$GIT_DIR_BARE' show main:designs/shop/rollout-canary.cue | grep -q 'current:'"; then
  rollout_file
  wait_for 30 "the verdict's status file" git --git-dir "$GIT_DIR_BARE" cat-file -e main:status/gates/shop/canary/east.md || true
  { git --git-dir "$GIT_DIR_BARE" show main:status/gates/shop/canary/east.md 2>/dev/null | sed -n '1,12p'; } || true
  rollout_file | grep -q held && echo "meshcd rolled back and holds: the slow canary never got traffic." \
    || echo "(unexpected: the rollout advanced; the verdict above says why)"
else
  echo "(no decision yet; the daemon log ends:)"; tail -5 "$work/daemon.log"
fi
echo "the canary is fixed (as fast as stable); deleting the rollout file starts the rollout over:"
git -C "$work/fleet" pull --quiet origin main
rollout_gate "$FIXED_URL"
git -C "$work/fleet" rm --quiet designs/shop/rollout-canary.cue 2>/dev/null || true
git -C "$work/fleet" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -am "shop: a canary as fast as stable"
push_main
if wait_for 180 "the rollout at 100%" bash -c "git --git-dir '$GIT_DIR_BARE' show main:designs/shop/rollout-canary.cue | grep -q 'current: 100'"; then
  echo "meshcd advanced step by step, each commit applied and gated:"
  { git --git-dir "$GIT_DIR_BARE" log --format='  %s' main | grep 'meshcd: rollout' | tac; } || true
  wait_for 30 "the last step applied" bash -c '[ "$(kubectl --context east -n shop get virtualservice checkout -o jsonpath="{.spec.http[1].route[?(@.destination.subset==\"canary\")].weight}")" = 100 ]' || true
  echo "east's canary weight: $(weight)"
else
  echo "(the rollout did not reach 100% in time:)"; rollout_file || true; { git --git-dir "$GIT_DIR_BARE" log --format='  %s' main | grep 'meshcd: rollout' | tac; } || true
fi
echo "the fleet matrix:"
{ git --git-dir "$GIT_DIR_BARE" show main:status/README.md | sed -n '5,8p'; } || true

step "16. SIGTERM stops the daemon cleanly"
kill -TERM "$daemon"; wait "$daemon" || true
tail -3 "$work/daemon.log"

bin/meshcd version

if [ "${DEMO_KEEP:-0}" = 1 ]; then
  step "Everything keeps running (DEMO_KEEP=1). KUBECONFIG=$KUBECONFIG; Ctrl-C stops it."
  wait "$devenv" || true
else
  step "Done: stopping the clusters and the Git server (DEMO_KEEP=1 keeps them running)."
fi
