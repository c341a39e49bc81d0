#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok) from their Go modules into a cache directory keyed by a
# hash of the inputs, so only the first build on a machine is slow.
# Prints the directory holding the binaries as its last line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="v1.36.3"
KWOK_VERSION="v0.8.0"

key="$(cat "$here/go/go.mod" "$here/go/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
cache_root="${SYMPOZIUM_TESTPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sympozium-testplane}"
out="$cache_root/$key/bin"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

complete() {
  for b in "${bins[@]}"; do [[ -x "$out/$b" ]] || return 1; done
}

if complete; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "testplane: go toolchain not found" >&2; exit 1; }
mkdir -p "$out.partial"
start=$(date +%s)
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

cd "$here/go"
echo "testplane: building kubernetes $K8S_VERSION components (cold build takes a while)" >&2
go build -ldflags "$ldflags" -o "$out.partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl
echo "testplane: building etcd" >&2
go build -ldflags "-s -w" -o "$out.partial/etcd" go.etcd.io/etcd/server/v3
echo "testplane: building kwok $KWOK_VERSION" >&2
# kwok resolves its own module graph on purpose: it is not part of our go.mod.
(cd / && GOBIN="$out.partial" GOFLAGS="-trimpath -buildvcs=false" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION")

rm -rf "$out"
mv "$out.partial" "$out"
echo "testplane: built in $(( $(date +%s) - start ))s into $out" >&2
echo "$out"
