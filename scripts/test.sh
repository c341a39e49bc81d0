#!/usr/bin/env bash
# Runs every test of the workspace against a real test control plane.
#
# Starts its own plane (state in .testplane/test-run) unless TESTPLANE_KUBECONFIG already
# points at one, exports TESTPLANE_KUBECONFIG/TESTPLANE_KUBECTL for the tests, and stops
# only the plane it started, by the PIDs testplane/up.sh recorded.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# Packages and toolchains first (installed as root, else the command to run is printed).
bash "$repo/scripts/prereqs.sh"

started=""
stop_plane() {
  if [[ -n "$started" ]]; then
    TESTPLANE_DIR="$started" bash testplane/down.sh || true
  fi
}
trap stop_plane EXIT

if [[ -z "${TESTPLANE_KUBECONFIG:-}" ]]; then
  export TESTPLANE_DIR="$repo/.testplane/test-run"
  started="$TESTPLANE_DIR"
  TESTPLANE_KUBECONFIG="$(bash testplane/up.sh | tail -n1)"
  export TESTPLANE_KUBECONFIG
  # plane.env names the folder of the plane's binaries, kubectl among them.
  # shellcheck disable=SC1091
  source "$TESTPLANE_DIR/plane.env"
  export TESTPLANE_KUBECTL="$BIN_DIR/kubectl"
  unset TESTPLANE_DIR
fi
export TESTPLANE_KUBECTL="${TESTPLANE_KUBECTL:-$(command -v kubectl || echo kubectl)}"
echo "test: control plane kubeconfig $TESTPLANE_KUBECONFIG" >&2

mkdir -p "$repo/target"
# Incremental state is worth its disk (~4 GiB) only when a developer rebuilds the same
# checkout again and again; a CI run builds once.
if [[ "${CI:-}" == "true" ]]; then
  export CARGO_INCREMENTAL=0
fi
echo "test: $(df -h "$repo/target" | awk 'NR==2 { print $4 }') free on the target directory's disk" >&2
# The dashboard's packages (web/package-lock.json) for its browser test, which drives
# Debian's chromium with playwright-core and checks the committed build is current.
(cd "$repo/web" && npm ci --no-audit --no-fund --loglevel=error)
# Every binary first: end-to-end tests run other crates' programs (the local node runs
# pods from target/debug), which `cargo test` alone builds only for crates it tests.
cargo build --workspace --bins --locked
# errexit off for the pipeline: a failing test must still reach the summary below.
set +e
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$repo/target/test-output.log"
status=${PIPESTATUS[0]}
set -e

# Stop the plane now so the summary below is the last thing printed.
stop_plane
started=""

# One summary line over every test binary, in cargo's own words.
# A build failure fails no test but must not read as "ok".
awk -v status="$status" '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "test result: %s. %d passed; %d failed; %d ignored (all test binaries)\n",
           (f == 0 && status == 0 ? "ok" : "FAILED"), p, f, i }' "$repo/target/test-output.log"
exit "$status"
