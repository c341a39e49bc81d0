#!/usr/bin/env bash
# The demo (`make demo`): the one-machine stack, an agent team activated, one persona's
# scheduled task run now by a real pod, its answer, the memory it stored and the team's status.
#
#   - `sympozium dev up`: the test control plane, the local node (pods as local processes),
#     and Sympozium installed as pods (controller, NATS, built-in policies, skills, packs).
#   - Provider: OPENAI_API_KEY, else ANTHROPIC_API_KEY, else OLLAMA_URL (an OpenAI-compatible
#     Ollama URL ending in /v1); with none of them the stack's offline scripted model answers,
#     and says so in every answer.
# The stack keeps running afterwards; `sympozium dev down` (or `make demo-down`) stops it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
ns="${SYMPOZIUM_SYSTEM_NAMESPACE:-sympozium-system}"
pack=platform-team
started=$(date +%s)
# Colours only on a terminal (and never with NO_COLOR): piped or logged output stays plain.
if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then bold=$'\033[1m' yellow=$'\033[33m' plain=$'\033[0m'; else bold='' yellow='' plain=''; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
sym() { "$repo/target/debug/sympozium" -n "$ns" "$@"; }

# Before the long build: what the machine lacks is installed (as root) or named with the
# command to run, within seconds rather than after a build and a timeout.
say "Checking this machine's prerequisites (scripts/prereqs.sh)"
bash "$repo/scripts/prereqs.sh" --root

say "Building Sympozium (cargo build --workspace --bins)"
cargo build -q --locked --workspace --bins

say "Starting the one-machine stack (sympozium dev up)"
kubeconfig_line="$(sym dev up | tee /dev/stderr | tail -n1)"
export KUBECONFIG="${kubeconfig_line#export KUBECONFIG=}"

if [[ -n "${OPENAI_API_KEY:-}" ]]; then
  provider=(--provider openai --api-key "$OPENAI_API_KEY" --model "${DEMO_MODEL:-gpt-4o-mini}")
  echo "provider: OpenAI (OPENAI_API_KEY)"
elif [[ -n "${ANTHROPIC_API_KEY:-}" ]]; then
  provider=(--provider anthropic --api-key "$ANTHROPIC_API_KEY" --model "${DEMO_MODEL:-claude-sonnet-4-20250514}")
  echo "provider: Anthropic (ANTHROPIC_API_KEY)"
elif [[ -n "${OLLAMA_URL:-}" ]]; then
  provider=(--provider ollama --base-url "$OLLAMA_URL" --model "${DEMO_MODEL:-llama3}")
  echo "provider: Ollama at $OLLAMA_URL"
else
  provider=(--provider openai --api-key offline --model sympozium-offline
            --base-url "http://offline-model.$ns.svc:8080/v1")
  printf '%sprovider: OFFLINE SCRIPTED MODEL (no key in OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_URL).\n' "$yellow"
  printf 'Answers are scripted and say so; the pods, tools, memory and bus are all real.%s\n' "$plain"
fi

say "The agent-team catalog"
sym packs list

say "Activating $pack: one instance, schedule and memory per persona"
sym packs activate "$pack" "${provider[@]}"
for _ in $(seq 1 120); do
  phase="$(sym packs list -o json | python3 -c "import json,sys; print(next((p.get('status',{}).get('phase','') for p in json.load(sys.stdin) if p['metadata']['name']=='$pack'), ''))")"
  [[ "$phase" == Ready ]] && break
  sleep 1
done
sym instances list
sym schedules list

instance="$(sym instances list -o json | python3 -c "import json,sys; print(sorted(i['metadata']['name'] for i in json.load(sys.stdin) if i['metadata'].get('labels',{}).get('sympozium.ai/persona-pack')=='$pack')[0])")"
schedule="$(sym schedules list -o json | python3 -c "import json,sys; print(next(s['metadata']['name'] for s in json.load(sys.stdin) if s['spec']['instanceRef']=='$instance'))")"

say "Running $schedule's task now (sympozium schedules trigger): a pod on the local node"
sym schedules list -o json | python3 -c "import json,sys; print('task:', next(s['spec']['task'] for s in json.load(sys.stdin) if s['metadata']['name']=='$schedule'))"
run="$(sym schedules trigger "$schedule" | awk '{print $1}' | sed 's#^agentrun/##')"
echo "agentrun/$run"

say "The agent's log, streamed from its pod (sympozium runs logs -f $run)"
sym runs logs "$run" --follow --wait 5m

say "The run's result and token usage"
sym runs get "$run" -o json | python3 -c '
import json, sys
run = json.load(sys.stdin); st = run.get("status", {})
print("phase:", st.get("phase")); print("tokens:", st.get("tokenUsage"))
print("result:\n" + (st.get("result") or st.get("error") or "(none)"))'

say "What the agent stored in its memory (read with the instance's memory token, through the API server's service proxy)"
sym memory "$instance" --limit 5

say "The team's status"
sym packs show "$pack"
sym runs list

say "The web dashboard (sympozium serve, in the background; make demo-down stops it)"
# `serve` forwards a local port to the stack's API server pod through the Kubernetes API; the
# token is the one in Secret sympozium-ui-token. A forward of an earlier demo is replaced.
dash_port="${DEMO_DASHBOARD_PORT:-9090}"
dash_log="$repo/target/demo-dashboard.log"
dash_pid="$repo/target/demo-dashboard.pid"
if [[ -f "$dash_pid" ]] && kill -0 "$(cat "$dash_pid")" 2>/dev/null; then kill "$(cat "$dash_pid")" || true; sleep 1; fi
nohup "$repo/target/debug/sympozium" -n "$ns" serve --port "$dash_port" >"$dash_log" 2>&1 &
echo $! >"$dash_pid"
for _ in $(seq 1 60); do
  grep -q '^Token: ' "$dash_log" 2>/dev/null && curl -fsS "http://127.0.0.1:$dash_port/readyz" >/dev/null 2>&1 && break
  sleep 1
done
if ! grep -q '^Sympozium dashboard: ' "$dash_log"; then
  echo "the dashboard did not start; its log:" >&2
  cat "$dash_log" >&2
  exit 1
fi
grep -E '^(Sympozium dashboard|Token): ' "$dash_log"

say "Done in $(( $(date +%s) - started ))s. Explore with: export ${kubeconfig_line#export }; sympozium tui"
echo "${bold}Dashboard: $(sed -n 's/^Sympozium dashboard: //p' "$dash_log")${plain} (token above)"
