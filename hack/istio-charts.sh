#!/usr/bin/env bash
# Copies Istio's own Helm charts (base, istiod, gateway) from the istio.io/istio Go module at
# the version pinned below into examples/istio's designs. The charts are not committed: they
# are ~1.6 MB that this script makes again from the module proxy, checked against the pinned
# sum. examples/istio/PROVENANCE.md says the same for readers. Safe to run again: it only
# copies when the stamp names another version.
set -euo pipefail
cd "$(dirname "$0")/.."
module=istio.io/istio
version=v0.0.0-20260827124520-eed52ebb66ad
sum=h1:ui9TJjRMAV/hb5ehQaZDq7IUGxuQP6dra9lapT/VjHI=
out=examples/istio
stamp=$out/.charts-version
if [[ -f $stamp && $(cat "$stamp") == "$version" ]]; then
	exit 0
fi
info=$(cd /tmp && go mod download -json "$module@$version")
dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$info")
got=$(sed -n 's/^[[:space:]]*"Sum": "\(.*\)",$/\1/p' <<<"$info")
if [[ $got != "$sum" ]]; then
	echo "istio-charts: $module@$version has sum $got, want $sum" >&2
	exit 1
fi
copy() { # chart folder in the module, design that ships it
	rm -rf "$out/designs/$2/chart"
	mkdir -p "$out/designs/$2"
	cp -r "$dir/manifests/charts/$1" "$out/designs/$2/chart"
	chmod -R u+w "$out/designs/$2/chart"
}
copy base istio-base
copy istio-control/istio-discovery istiod
copy gateway istio-ingress
echo "$version" >"$stamp"
echo "istio-charts: copied base, istio-discovery and gateway from $module@$version"
