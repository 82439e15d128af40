#!/usr/bin/env bash
# Refreshes the web view's vendored front-end library from npm at its pinned version, after
# checking the package against the integrity npm's registry records for it. The files are
# committed (internal/web/static/vendor/) and embedded into meshcd, so a build needs no npm.
set -euo pipefail
cd "$(dirname "$0")/.."
UPLOT_VERSION=1.6.32
UPLOT_INTEGRITY=sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$UPLOT_VERSION" > /dev/null)
got="sha512-$(openssl dgst -sha512 -binary "$tmp/uplot-$UPLOT_VERSION.tgz" | base64 -w0)"
if [ "$got" != "$UPLOT_INTEGRITY" ]; then
  echo "uplot@$UPLOT_VERSION: integrity $got, want $UPLOT_INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tmp/uplot-$UPLOT_VERSION.tgz" -C "$tmp"
dst=internal/web/static/vendor/uplot
mkdir -p "$dst"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" "$dst/"
echo "uplot $UPLOT_VERSION ($UPLOT_INTEGRITY)" > "$dst/VERSION"
echo "vendored uplot $UPLOT_VERSION into $dst"
