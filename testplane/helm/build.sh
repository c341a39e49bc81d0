#!/usr/bin/env bash
# Builds the `helm` CLI from its Go module (pinned in testplane/helm/go.mod) into a
# cache directory keyed by a hash of the inputs, like testplane/build.sh does for the
# test plane. Tests use it for `helm lint`, `helm template`, `helm install`; it is never
# shipped. Prints the path of the helm binary as its last line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELM_VERSION="v3.21.4"

key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
cache_root="${SYMPOZIUM_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sympozium-helm}"
out="$cache_root/$key/bin"

if [[ -x "$out/helm" ]]; then
  echo "$out/helm"
  exit 0
fi

# Tests running side by side may all find no binary: one builds, the others wait for it.
mkdir -p "$cache_root"
exec 9>"$cache_root/$key.lock"
flock 9
if [[ -x "$out/helm" ]]; then
  echo "$out/helm"
  exit 0
fi

command -v go >/dev/null || { echo "helm-build: go toolchain not found" >&2; exit 1; }
mkdir -p "$out.partial"
start=$(date +%s)
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"
cd "$here"
echo "helm-build: building helm $HELM_VERSION (cold build takes a few minutes)" >&2
go build -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  -o "$out.partial/helm" helm.sh/helm/v3/cmd/helm
rm -rf "$out"
mv "$out.partial" "$out"
echo "helm-build: built in $(( $(date +%s) - start ))s into $out" >&2
echo "$out/helm"
