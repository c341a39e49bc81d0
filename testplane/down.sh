#!/usr/bin/env bash
# Stops the test control plane started by testplane/up.sh.
#
# Kills only the PIDs recorded in <state dir>/pids (TERM, up to ~10 s grace, then
# KILL) — never by process name — and removes the run dir. Safe to run when
# nothing is up. State dir: ${TESTPLANE_DIR:-<repo>/.testplane}.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
state="${TESTPLANE_DIR:-$repo/.testplane}"
log() { echo "testplane: $*" >&2; }

if [[ ! -d "$state" ]]; then
  log "nothing to stop ($state does not exist)"
  exit 0
fi
state="$(cd "$state" && pwd)"

# Same lock as up.sh; up.sh sets TESTPLANE_LOCKED when it calls us while holding it.
if [[ -z "${TESTPLANE_LOCKED:-}" ]]; then
  exec 9>"$state/lock"
  flock 9
fi

# A PID is only ours if its command line mentions one of our run dirs: every
# component gets paths under "$state/run.XXXXXX". This guards against PIDs reused
# by unrelated processes after a reboot or a crash.
ours() {
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *"$state/run."* ]]
}
# Zombies (children of a still-running up.sh that was interrupted) count as gone.
alive() {
  local st
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$st" && "$st" != Z ]]
}

pids=()
if [[ -f "$state/pids" ]]; then
  while read -r pid; do
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    if alive "$pid" && ours "$pid"; then
      pids=("$pid" "${pids[@]}") # reverse start order: clients, apiserver, etcd
    fi
  done <"$state/pids"
fi

if ((${#pids[@]})); then
  # One shared ~10 s grace period. Stopping in reverse start order lets the
  # apiserver shut down while etcd is still there (otherwise it hangs on etcd).
  log "stopping ${#pids[@]} processes: ${pids[*]}"
  deadline=$(( $(date +%s) + 10 ))
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && (( $(date +%s) < deadline )); do sleep 0.1; done
  done
  left=()
  for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
  if ((${#left[@]})); then
    log "still running after TERM, sending KILL: ${left[*]}"
    kill -KILL "${left[@]}" 2>/dev/null || true
  fi
else
  log "no running processes recorded in $state/pids"
fi

# Remove the run dir(s) (certs, etcd data, logs) and the published files. Any
# run.* dir here belongs to a plane that is now stopped: a live one is recorded.
rm -f "$state/pids" "$state/plane.env" "$state/kubeconfig" "$state/kubeconfig.tmp" "$state/env"
for d in "$state"/run.*; do
  [[ -d "$d" ]] && rm -rf -- "$d"
done
log "stopped"
