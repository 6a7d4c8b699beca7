#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) and helm from the Go module proxy, once per pin.
#
#   e2e/controlplane/build.sh        # prints the folder holding the binaries
#
# Binaries go to $POSTURE_CACHE/controlplane/<kubernetes version>/ (default
# POSTURE_CACHE=$HOME/.cache/posture). A stamp holding the hash of the pins,
# go.mod, go.sum and our main packages decides whether a rebuild is needed, so a
# changed pin rebuilds and an unchanged one costs nothing. The folder is filled
# in a temporary sibling and renamed into place: an interrupted build never
# leaves a half set of binaries behind.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
source ./pins.env

cache_root="${POSTURE_CACHE:-$HOME/.cache/posture}/controlplane"
out="$cache_root/$KUBERNETES_VERSION"
stamp=$(cat pins.env go.mod go.sum build.sh $(find cmd -name '*.go' | sort) | sha256sum | cut -c1-16)

if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache_root"
tmp=$(mktemp -d "$cache_root/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# -mod=readonly: a build never edits go.mod or go.sum (that is gen-gomod.sh's job).
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

echo "building control plane $KUBERNETES_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION into $out (the first build takes about 7 minutes on 2 cores)" >&2
timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -f "%e s wall, %M KiB peak RSS" -a -o "$tmp/.build-times")
"${timer[@]}" go build -trimpath -ldflags "$kube_ldflags" -o "$tmp/" \
  ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubectl >&2
"${timer[@]}" go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" ./cmd/etcd >&2
"${timer[@]}" go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  -o "$tmp/helm" helm.sh/helm/v3/cmd/helm >&2

"$tmp/kube-apiserver" --version >&2
echo "$stamp" > "$tmp/.stamp"
rm -rf "$out.old"
[ -d "$out" ] && mv "$out" "$out.old"
mv "$tmp" "$out"
rm -rf "$out.old"
trap - EXIT
echo "$out"
