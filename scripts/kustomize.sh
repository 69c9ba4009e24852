#!/usr/bin/env bash
# kustomize for deploy/ (`bash scripts/kustomize.sh build deploy/overlays/example`): built once from
# the Go module proxy into the nightwatch cache (like the local stack's binaries), then run from
# there. `kubectl apply -k` embeds kustomize too; this one is for machines without kubectl, and for
# test/integration/deploy.test.ts, which renders every kustomization with it.
set -euo pipefail
version=v5.8.2 # v5.8.3 needs a newer Go than 1.26
cache=${NIGHTWATCH_CACHE:-$HOME/.cache/nightwatch}
dir=$cache/bin/kustomize-$version
if [ ! -x "$dir/kustomize" ]; then
  export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOFLAGS=-buildvcs=false GOTOOLCHAIN=local CGO_ENABLED=0
  tmp=$dir.partial.$$
  rm -rf "$tmp" && mkdir -p "$tmp"
  echo "[kustomize] building sigs.k8s.io/kustomize/kustomize/v5@$version (once)…" >&2
  GOBIN=$tmp go install "sigs.k8s.io/kustomize/kustomize/v5@$version" >&2
  mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp" # another build got there first
fi
exec "$dir/kustomize" "$@"
