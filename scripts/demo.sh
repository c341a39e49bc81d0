#!/usr/bin/env bash
# The demo: installs the Sympozium CRDs and built-in content into a cluster, runs the
# controller manager against it, activates an agent team and starts an agent run — showing
# what kubectl users see at each step. Uses the cluster in KUBECONFIG when it answers;
# otherwise starts the local test control plane (testplane/up.sh) and uses that.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
ns="${DEMO_NAMESPACE:-sympozium-demo}"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

kubectl_bin="$(command -v kubectl || true)"
if [[ -z "${KUBECONFIG:-}" ]] || ! "${kubectl_bin:-false}" version --request-timeout=3s >/dev/null 2>&1; then
  say "No reachable cluster in KUBECONFIG: starting the local test control plane"
  KUBECONFIG="$(bash testplane/up.sh | tail -n1)"
  # shellcheck disable=SC1091
  source "$repo/.testplane/plane.env"
  kubectl_bin="$BIN_DIR/kubectl"
  echo "(stop it later with: make testplane-down)"
fi
export KUBECONFIG
k() { "$kubectl_bin" "$@"; }

say "Building the controller manager"
cargo build -q --locked -p sympozium-controller
controller="$repo/target/debug/sympozium-controller"

say "Installing the Sympozium CRDs (server-side apply)"
k apply --server-side --force-conflicts -f deploy/crds/
k wait --for=condition=Established --timeout=60s -f deploy/crds/ >/dev/null

say "Installing built-in policies, skills and the agent-team catalog into $ns"
k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >/dev/null
k apply -n "$ns" -f deploy/builtin/ >/dev/null
k get personapacks,skillpacks,sympoziumpolicies -n "$ns"

say "Starting the controller manager (watching $ns; log in target/demo-controller.log)"
"$controller" --kubeconfig "$KUBECONFIG" --watch-namespace "$ns" --system-namespace "$ns" \
  --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
  >"$repo/target/demo-controller.log" 2>&1 &
controller_pid=$!
trap 'kill "$controller_pid" 2>/dev/null || true' EXIT

say "Activating the platform-team pack (an agent team from one resource)"
k patch personapack platform-team -n "$ns" --type merge \
  -p '{"spec":{"enabled":true,"authRefs":[{"provider":"openai","secret":"platform-team-openai-key"}]}}'
k wait personapack/platform-team -n "$ns" --for=jsonpath='{.status.phase}'=Ready --timeout=60s
k get personapack platform-team -n "$ns"
k get sympoziuminstances,sympoziumschedules -n "$ns" -l sympozium.ai/persona-pack=platform-team

say "Each persona's memory server, converged by the instance controller"
k wait sympoziuminstance -n "$ns" -l sympozium.ai/persona-pack=platform-team \
  --for=jsonpath='{.status.phase}'=Running --timeout=60s >/dev/null
k get deployments,services,configmaps -n "$ns" -l sympozium.ai/component=memory

say "An agent run: a locked-down Job with its own ServiceAccount and skill RBAC"
cat <<YAML | k apply -n "$ns" -f -
apiVersion: sympozium.ai/v1alpha1
kind: SympoziumInstance
metadata: {name: demo-agent}
spec:
  agents: {default: {model: gpt-4o}}
  skills: [{skillPackRef: k8s-ops}]
  authRefs: [{provider: openai, secret: demo-openai-key}]
---
apiVersion: sympozium.ai/v1alpha1
kind: AgentRun
metadata: {name: demo-run, labels: {sympozium.ai/instance: demo-agent}}
spec:
  instanceRef: demo-agent
  agentId: primary
  sessionKey: demo
  task: Which pods are crash-looping, and why?
  model: {provider: openai, model: gpt-4o, authSecretRef: demo-openai-key}
YAML
k wait agentrun/demo-run -n "$ns" --for=jsonpath='{.status.phase}'=Running --timeout=60s
k get agentrun demo-run -n "$ns"
k get jobs,serviceaccounts,roles -n "$ns" -l sympozium.ai/agent-run=demo-run
k get job demo-run -n "$ns" -o jsonpath='{range .spec.template.spec.containers[*]}{.name}{"  readOnlyRootFilesystem="}{.securityContext.readOnlyRootFilesystem}{"\n"}{end}'

say "An invalid schedule is refused with the field and the reason"
cat <<'YAML' | k apply -n "$ns" -f - || true
apiVersion: sympozium.ai/v1alpha1
kind: SympoziumSchedule
metadata: {name: broken}
spec: {instanceRef: demo-agent, schedule: "@hourly", task: "report"}
YAML

say "Done. Explore with: kubectl get sympozium -n $ns   (KUBECONFIG=$KUBECONFIG)"
