#!/usr/bin/env bash
# What this machine needs for `make demo`, `make test` and CI (`.ci/run`): Debian packages
# and the Go and Rust toolchains. The one list of them; everything that needs them runs this.
#
#   scripts/prereqs.sh            install missing packages when root (apt-get); otherwise
#                                 print the exact command to run and exit 1 at once
#   scripts/prereqs.sh --check    install nothing; one line per requirement on stdout:
#                                 `ok <command> <detail>`, `missing <command> <Debian packages>`
#                                 or `needs <command> <what to do>` (toolchains, root);
#                                 exit 1 when something is missing (`sympozium doctor` and
#                                 `sympozium dev up` read this)
#   scripts/prereqs.sh --root     also require root (the demo's local node needs it for
#                                 per-pod network namespaces)
#
# Exit codes: 0 all there; 1 something missing (the message says what to run).
set -euo pipefail

check_only=false
need_root=false
for arg in "$@"; do
  case "$arg" in
    --check) check_only=true ;;
    --root) need_root=true ;;
    -h | --help)
      sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "prereqs: unknown option $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

# Command -> the Debian package that provides it. Add new test or demo dependencies here.
declare -A pkg_for=(
  [openssl]=openssl [curl]=curl [flock]=util-linux [setsid]=util-linux [nsenter]=util-linux
  [setpriv]=util-linux [python3]=python3 [nats-server]=nats-server [tmux]=tmux
  [bwrap]=bubblewrap [busybox]=busybox [ip]=iproute2 [make]=make [nft]=nftables
  [chromium]=chromium
  [buildah]=buildah [objcopy]=binutils [update-ca-certificates]=ca-certificates
)
# Toolchains apt does not provide in the versions needed: the oldest version that works.
# (Debian 12's nodejs is 18, too old for vite 7.)
go_min="1.26"   # testplane/go/go.mod
rust_min="1.88" # let-chains in the workspace (edition 2024)
node_min="20.19" # vite 7 (web/): the dashboard build and its browser test

# `sort -V` orders versions: $1 >= $2 when $2 sorts first.
version_at_least() { [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$2" ]]; }

missing_cmds=()
missing_pkgs=()
scan() {
  missing_cmds=()
  missing_pkgs=()
  local cmd
  for cmd in $(printf '%s\n' "${!pkg_for[@]}" | sort); do
    if command -v "$cmd" >/dev/null 2>&1; then
      $check_only && echo "ok $cmd ${pkg_for[$cmd]}"
    else
      $check_only && echo "missing $cmd ${pkg_for[$cmd]}"
      missing_cmds+=("$cmd")
      missing_pkgs+=("${pkg_for[$cmd]}")
    fi
  done
  # The serving test installs the official openai and mcp Python SDKs into a venv (pip).
  if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    $check_only && echo "missing python3-venv python3-venv python3-pip"
    missing_cmds+=("python3-venv")
    missing_pkgs+=(python3-venv python3-pip)
  elif $check_only; then
    echo "ok python3-venv python3-venv"
  fi
  return 0
}

toolchain_problems=()
toolchains() {
  toolchain_problems=()
  local v
  if ! command -v go >/dev/null 2>&1; then
    toolchain_problems+=("go: not found; install Go $go_min or newer (https://go.dev/doc/install)")
  else
    v="$(go env GOVERSION 2>/dev/null | sed 's/^go//')"
    if version_at_least "${v:-0}" "$go_min"; then
      $check_only && echo "ok go Go $v"
    else
      toolchain_problems+=("go: version ${v:-unknown} is older than $go_min (https://go.dev/doc/install)")
    fi
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    toolchain_problems+=("cargo: not found; install Rust $rust_min or newer (https://rustup.rs)")
  else
    v="$(cargo --version 2>/dev/null | awk '{print $2}')"
    if version_at_least "${v:-0}" "$rust_min"; then
      $check_only && echo "ok cargo Rust $v"
    else
      toolchain_problems+=("cargo: Rust ${v:-unknown} is older than $rust_min (rustup update)")
    fi
  fi
  if ! command -v node >/dev/null 2>&1; then
    toolchain_problems+=("node: not found; install Node.js $node_min or newer with npm (https://nodejs.org/en/download)")
  else
    v="$(node --version 2>/dev/null | sed 's/^v//')"
    if version_at_least "${v:-0}" "$node_min"; then
      $check_only && echo "ok node Node.js $v"
    else
      toolchain_problems+=("node: version ${v:-unknown} is older than $node_min (https://nodejs.org/en/download)")
    fi
  fi
  if command -v npm >/dev/null 2>&1; then
    $check_only && echo "ok npm npm"
  else
    toolchain_problems+=("npm: not found; it comes with Node.js (https://nodejs.org/en/download)")
  fi
  if $check_only; then
    local p
    for p in "${toolchain_problems[@]}"; do echo "needs ${p%%:*} ${p#*: }"; done
  fi
  return 0
}

is_root() { [[ "$(id -u)" == 0 ]]; }

scan
toolchains
if $need_root; then
  if is_root; then
    $check_only && echo "ok root running as root"
  else
    $check_only && echo "needs root run as root: the local node needs it for a network namespace per pod"
  fi
fi

if $check_only; then
  ((${#missing_cmds[@]} == 0 && ${#toolchain_problems[@]} == 0)) && { ! $need_root || is_root; } && exit 0
  exit 1
fi

status=0
if ((${#missing_pkgs[@]})); then
  pkgs="$(printf '%s\n' "${missing_pkgs[@]}" | sort -u | tr '\n' ' ')"
  pkgs="${pkgs% }"
  if is_root; then
    echo "prereqs: installing $pkgs (missing: ${missing_cmds[*]})" >&2
    apt-get update -qq >&2
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >&2
    hash -r
    scan
    if ((${#missing_cmds[@]})); then
      echo "prereqs: still missing after apt-get install: ${missing_cmds[*]}" >&2
      status=1
    fi
  else
    echo "prereqs: missing ${missing_cmds[*]}; install them (as root) with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y $pkgs" >&2
    status=1
  fi
fi
if ((${#toolchain_problems[@]})); then
  for p in "${toolchain_problems[@]}"; do echo "prereqs: $p" >&2; done
  status=1
fi
if $need_root && ! is_root; then
  echo "prereqs: the local node needs root (a network namespace per pod); run as root, e.g.:" >&2
  echo "  sudo env \"PATH=\$PATH\" make demo" >&2
  status=1
fi
exit "$status"
