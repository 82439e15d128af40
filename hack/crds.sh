#!/usr/bin/env bash
# Copies the CRDs meshcd renders to from their upstream Go modules at the pinned versions into
# internal/testenv/crds, where the test clusters embed them. Run by `make crds` after a pin changes.
set -euo pipefail
ISTIO=istio.io/api@v1.32.0
GATEWAY=sigs.k8s.io/gateway-api@v1.6.3
CONTOUR=github.com/projectcontour/contour@v1.33.8
out=$(cd "$(dirname "$0")/.." && pwd)/internal/testenv/crds
dir() { (cd "$(mktemp -d)" && go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",/\1/p'); }
istio=$(dir $ISTIO); gateway=$(dir $GATEWAY); contour=$(dir $CONTOUR)
{ echo "# Source: $ISTIO kubernetes/customresourcedefinitions.gen.yaml"; cat "$istio/kubernetes/customresourcedefinitions.gen.yaml"; } > "$out/istio.yaml"
{ echo "# Source: $GATEWAY config/crd/standard/*.yaml (CustomResourceDefinitions only)"
  for f in "$gateway"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
    grep -q '^kind: CustomResourceDefinition' "$f" || continue
    echo "---"; cat "$f"
  done; } > "$out/gateway-api.yaml"
{ echo "# Source: $CONTOUR examples/contour/01-crds.yaml"; cat "$contour/examples/contour/01-crds.yaml"; } > "$out/contour.yaml"
# Linkerd is not served as a Go module; its rendered CRDs come from the shared folder with their provenance.
if [ -f "$(dirname "$0")/../../shared/crds/linkerd-crds.yaml" ]; then
  install -m 0644 "$(dirname "$0")/../../shared/crds/linkerd-crds.yaml" "$out/linkerd.yaml"
fi
