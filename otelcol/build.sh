#!/usr/bin/env bash
# Builds the test OpenTelemetry Collector (OTLP receiver + file exporter, see go/main.go)
# from its Go modules into a cache directory keyed by a hash of the inputs, like
# testplane/build.sh, so only the first build on a machine is slow.
# Prints the path of the collector binary as its last line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
key="$(cat "$here/go/go.mod" "$here/go/go.sum" "$here/go/main.go" "$here/build.sh" | sha256sum | cut -c1-16)"
cache_root="${SYMPOZIUM_OTELCOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sympozium-otelcol}"
out="$cache_root/$key/bin/sympozium-test-otelcol"

if [[ -x "$out" ]]; then
  echo "$out"
  exit 0
fi

# Tests running side by side may all find no binary: one builds, the others wait for it.
mkdir -p "$cache_root"
exec 9>"$cache_root/$key.lock"
flock 9
if [[ -x "$out" ]]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "otelcol: go toolchain not found" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
start=$(date +%s)
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"
cd "$here/go"
echo "otelcol: building the test collector (cold build takes a few minutes)" >&2
go build -ldflags "-s -w" -o "$out.partial" .
mv "$out.partial" "$out"
echo "otelcol: built in $(( $(date +%s) - start ))s into $out" >&2
echo "$out"
