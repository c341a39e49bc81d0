#!/usr/bin/env bash
# The demo: installs the Sympozium CRDs and the sample manifests into a cluster and shows
# what kubectl users see. Uses the cluster in KUBECONFIG when it answers; otherwise starts
# the local test control plane (testplane/up.sh) and uses that.
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

say "Installing the Sympozium CRDs (server-side apply)"
k apply --server-side --force-conflicts -f deploy/crds/
k wait --for=condition=Established --timeout=60s -f deploy/crds/ >/dev/null

say "Applying the sample manifests into namespace $ns"
k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >/dev/null
k apply -n "$ns" -f deploy/samples/

say "Everything Sympozium in $ns (kubectl get sympozium)"
k get sympozium -n "$ns"

say "Agents, with their printer columns"
k get sympoziuminstances,personapacks,sympoziumschedules -n "$ns"

say "An invalid schedule is refused with the field and the reason"
cat <<'YAML' | k apply -n "$ns" -f - || true
apiVersion: sympozium.ai/v1alpha1
kind: SympoziumSchedule
metadata: {name: broken}
spec: {instanceRef: my-agent, schedule: "@hourly", task: "report", concurrencyPolicy: Sometimes}
YAML

say "Field documentation (kubectl explain sympoziuminstance.spec.agents.default)"
k explain sympoziuminstance.spec.agents.default | head -n 30
