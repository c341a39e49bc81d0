#!/usr/bin/env bash
# `make fuzz`: every fuzz target (the `tests/fuzz.rs` files, bolero) for a bounded time each
# under libFuzzer, on the nightly toolchain, through cargo-bolero.
#
#   FUZZ_TIME=60s      time per target (default 60s)
#   FUZZ_ENGINE=random use bolero's random engine on the default toolchain instead (no
#                      nightly, no coverage guidance; what `cargo test` runs for ~1s)
#   FUZZ_TARGETS="sympozium-bus:bus_envelope ..."  a subset (crate:test)
#
# The committed seeds (tests/__fuzz__/<test>/corpus) are copied to target/fuzz-corpus, which
# libFuzzer grows; crashes land in target/fuzz-crashes/<crate>/<test>. A crash is a bug:
# add its input to the committed corpus directory (it then replays in every `cargo test`)
# and fix the code. Exit status 1 when any target crashed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
time="${FUZZ_TIME:-60s}"
engine="${FUZZ_ENGINE:-libfuzzer}"

# crate:test of every target; `cargo test -p <crate> --test fuzz` lists the same.
all_targets=(
  sympozium-webhook:admission_review sympozium-webhook:resource_quantity
  sympozium-controller:crd_specs sympozium-controller:schedule_requests sympozium-controller:cron_expressions
  sympozium-channels:platform_payloads sympozium-channels:request_signatures sympozium-channels:answer_splitting
  sympozium-bus:bus_envelope sympozium-bus:origin_headers sympozium-bus:traceparent_header
  sympozium-memory:memory_requests
  sympozium-agent-runner:llm_stream sympozium-agent-runner:tool_calls sympozium-agent-runner:path_confinement
  sympozium-agent-runner:memory_marker_filter sympozium-agent-runner:durations
)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"

if [[ "$engine" == "random" ]]; then
  # bolero's own engine under plain `cargo test`, for FUZZ_TIME per target.
  secs="${time%s}"
  status=0
  for t in "${targets[@]}"; do
    crate="${t%%:*}" name="${t#*:}"
    echo "fuzz: $crate $name (random engine, ${secs}s)" >&2
    BOLERO_RANDOM_TEST_TIME_MS=$((secs * 1000)) cargo test -q --locked -p "$crate" --test fuzz -- \
      --exact "$name" --nocapture 2>&1 | grep -E "iterations/s|panicked|FAILED|test result" || status=1
  done
  exit "$status"
fi

# cargo-bolero, installed once into a cache (not the user's ~/.cargo/bin).
tools="${XDG_CACHE_HOME:-$HOME/.cache}/sympozium-fuzz"
if [[ ! -x "$tools/bin/cargo-bolero" ]]; then
  echo "fuzz: installing cargo-bolero into $tools" >&2
  cargo install --locked --root "$tools" cargo-bolero
fi
export PATH="$tools/bin:$PATH"
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: libFuzzer needs the nightly toolchain: rustup toolchain install nightly (or FUZZ_ENGINE=random)" >&2
  exit 1
fi

status=0
for t in "${targets[@]}"; do
  crate="${t%%:*}" name="${t#*:}"
  seeds="crates/$crate/tests/__fuzz__/$name/corpus"
  corpus="target/fuzz-corpus/$crate/$name"
  crashes="target/fuzz-crashes/$crate/$name"
  mkdir -p "$corpus" "$crashes"
  [[ -d "$seeds" ]] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: $crate $name (libFuzzer, $time)" >&2
  if ! cargo bolero test --toolchain nightly --sanitizer NONE -p "$crate" -T "$time" \
    --corpus-dir "$corpus" --crashes-dir "$crashes" "$name"; then
    echo "fuzz: $crate $name CRASHED; inputs in $crashes" >&2
    status=1
  fi
done
exit "$status"
