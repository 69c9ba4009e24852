#!/usr/bin/env bash
# Builds the local stack's binaries from source through the Go module proxy:
# the Temporal CLI (dev server + Web UI), etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and KWOK. Everything lands under $NIGHTWATCH_CACHE (default
# ~/.cache/nightwatch), keyed by version, so a warm machine skips every step.
# Usage: build.sh [temporal|etcd|kubernetes|kwok ...]   (default: all)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

command -v go >/dev/null || die "the Go toolchain ('go') is not on PATH; install Go 1.26 or newer"
export GOMODCACHE="$NW_CACHE/go/mod" GOCACHE="$NW_CACHE/go/build" GOFLAGS=-buildvcs=false GOTOOLCHAIN=auto CGO_ENABLED=0

# Each part is built into a temporary folder and renamed into place at the end,
# so an interrupted build never leaves a half-written binary that looks finished.
part() { # name version binaries... ; runs build_<name> when any binary is missing
  local name=$1 version=$2; shift 2
  local dest; dest=$(bin_dir "$name" "$version")
  local missing=0 b
  for b in "$@"; do [ -x "$dest/$b" ] || missing=1; done
  if [ $missing = 0 ]; then log "$name $version: cached in $dest"; return; fi
  local tmp="$dest.partial"; rm -rf "$tmp"; mkdir -p "$tmp"
  log "$name $version: building (cold builds take minutes on 2 cores)…"
  local t0=$SECONDS
  "build_$name" "$version" "$tmp"
  rm -rf "$dest"; mv "$tmp" "$dest"
  log "$name $version: built in $((SECONDS - t0)) s"
}

build_temporal() { GOBIN="$2" go install "github.com/temporalio/cli/cmd/temporal@$1"; }

build_kwok() { GOBIN="$2" go install "sigs.k8s.io/kwok/cmd/kwok@$1"; }

# etcd's server module points its sibling modules at local folders with `replace`, so it
# cannot be `go install`ed; a wrapper module pins the siblings to the same release.
build_etcd() {
  local v=$1 out=$2 src="$NW_CACHE/src/etcd-$1"
  rm -rf "$src"; mkdir -p "$src"
  cat >"$src/go.mod" <<MOD
module nightwatch.local/etcd

go 1.26

require (
	go.etcd.io/etcd/server/v3 $v
	go.etcd.io/etcd/api/v3 $v
	go.etcd.io/etcd/client/pkg/v3 $v
	go.etcd.io/etcd/client/v3 $v
	go.etcd.io/etcd/pkg/v3 $v
)
MOD
  cat >"$src/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$src" && go mod tidy && go build -o "$out/etcd" .)
}

# k8s.io/kubernetes replaces its staging modules (k8s.io/api, k8s.io/apiserver, …) with
# local folders. A wrapper module requires the release and replaces each staging module
# with its published v0.Y.Z twin; the list is generated from the release's own go.mod.
build_kubernetes() {
  local v=$1 out=$2 src="$NW_CACHE/src/kubernetes-$1"
  local minor=${v#v1.}; minor=${minor%%.*}
  local staging="v0.${v#v1.}"
  rm -rf "$src"; mkdir -p "$src"
  local mod; mod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$mod" ] || die "could not download k8s.io/kubernetes@$v"
  {
    printf 'module nightwatch.local/kubernetes\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$v"
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*#\t\1 => \1 '"$staging"'#p' "$mod"
    printf ')\n'
  } >"$src/go.mod"
  local pkgs="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler"
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  # shellcheck disable=SC2086
  # Every package pinned to the release: a bare path would mean @upgrade, i.e. whatever newer
  # release the proxy serves by now, which conflicts with the pinned ones.
  local p pinned=""
  for p in $pkgs; do pinned="$pinned $p@$v"; done
  # shellcheck disable=SC2086
  (cd "$src" && go get $pinned && go build -ldflags "$ld" -o "$out/" $pkgs)
}

source "$here/versions.env"
want=${*:-temporal etcd kwok kubernetes}
t_all=$SECONDS
for p in $want; do
  case $p in
    temporal)   part temporal "$TEMPORAL_CLI_VERSION" temporal ;;
    etcd)       part etcd "$ETCD_VERSION" etcd ;;
    kwok)       part kwok "$KWOK_VERSION" kwok ;;
    kubernetes) part kubernetes "$KUBERNETES_VERSION" kube-apiserver kube-controller-manager kube-scheduler ;;
    *) die "unknown part '$p' (expected temporal, etcd, kwok or kubernetes)" ;;
  esac
done
log "stack binaries ready in $((SECONDS - t_all)) s"
