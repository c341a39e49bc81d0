#!/usr/bin/env bash
# Starts the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok with one fake node) on 127.0.0.1 with random free ports.
#
#   testplane/up.sh            -> last stdout line is the kubeconfig path
#   testplane/down.sh          -> stops it
#
# Idempotent: if the plane recorded in the state dir is healthy it just prints the
# kubeconfig path. State dir: ${TESTPLANE_DIR:-<repo>/.testplane}. Progress goes to
# stderr; stdout carries only the kubeconfig path.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
state="${TESTPLANE_DIR:-$repo/.testplane}"
mkdir -p "$state"
state="$(cd "$state" && pwd)" # absolute: the path we print must work from anywhere
timeout_s="${TESTPLANE_TIMEOUT:-120}"

log() { echo "testplane: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Serialise concurrent up/down calls on the same state dir (e.g. parallel test
# runners); the second caller then finds the plane healthy and returns at once.
exec 9>"$state/lock"
flock 9

# --- already running? ------------------------------------------------------------
# kill -0 is not enough: a dead but not yet reaped process (zombie) passes it.
alive() {
  local st
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$st" && "$st" != [ZX] ]]
}
pids_alive() {
  [[ -s "$state/pids" ]] || return 1
  local pid
  while read -r pid; do
    [[ -n "$pid" ]] || continue
    alive "$pid" || return 1
  done <"$state/pids"
}
# plane.env is written by us below (RUN_DIR, SERVER, CA, TOKEN_HEADER, BIN_DIR).
apiserver_ready() { # $1 server  $2 ca  $3 header file
  curl -fsS --max-time 2 --cacert "$2" -H "@$3" "$1/readyz" >/dev/null 2>&1
}
if [[ -f "$state/plane.env" && -f "$state/kubeconfig" ]]; then
  # shellcheck disable=SC1091
  source "$state/plane.env"
  if pids_alive && apiserver_ready "$SERVER" "$CA" "$TOKEN_HEADER"; then
    log "already running ($SERVER)"
    echo "$state/kubeconfig"
    exit 0
  fi
fi
if [[ -e "$state/pids" || -e "$state/plane.env" ]]; then
  log "found a stale or unhealthy plane in $state; cleaning it up first"
  TESTPLANE_LOCKED=1 "$here/down.sh" >&2
fi

# --- binaries --------------------------------------------------------------------
# build.sh prints the binary dir as its last line (instant when cached). The
# machine-wide lock stops parallel up.sh calls (different state dirs) from running
# two cold builds at once; the second one then finds the cache filled.
bin="$(
  exec 8>"${TMPDIR:-/tmp}/sympozium-testplane-build.$(id -u).lock" 9>&-
  flock 8
  "$here/build.sh" 8>&- | tail -n1
)"
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
  [[ -x "$bin/$b" ]] || die "build.sh did not produce $bin/$b"
done

started_at=$(date +%s.%N)
run="$(mktemp -d "$state/run.XXXXXX")" # 0700; every component's args mention it,
                                       # which down.sh uses to double-check PIDs
: >"$state/pids"

# If anything below fails (or we are interrupted), stop what we started.
ok=0
cleanup() {
  local rc=$?
  if [[ $ok != 1 ]]; then
    log "start-up failed; tearing down what was started"
    # Keep the component logs: down.sh deletes the run dir.
    rm -rf "$state/failed-logs" && mkdir -p "$state/failed-logs"
    cp "$run"/*.log "$state/failed-logs/" 2>/dev/null || true
    log "component logs kept in $state/failed-logs/"
    TESTPLANE_LOCKED=1 "$here/down.sh" >&2 || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- ports -----------------------------------------------------------------------
# Random ports below the usual ephemeral range (so outgoing connections do not
# collide with them), each checked by actually binding it.
read -r apiserver_port etcd_port etcd_peer_port < <(python3 - <<'EOF'
import random, socket
ports = []
for p in random.sample(range(10000, 32000), 200):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        ports.append(p)
    except OSError:
        pass
    finally:
        s.close()
    if len(ports) == 3:
        break
print(*ports)
EOF
)
[[ -n "${etcd_peer_port:-}" ]] || die "could not find free loopback ports"
server="https://127.0.0.1:$apiserver_port"

# --- PKI -------------------------------------------------------------------------
# EC CA; apiserver serving cert with SANs for every name clients use (rustls
# rejects certs without a SAN for the address); EC service-account key pair.
pki="$run/pki"
mkdir -p "$pki"
(
  cd "$pki"
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
  openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=testplane-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out ca.crt 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out apiserver.key 2>/dev/null
  openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr 2>/dev/null
  cat >apiserver.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes.default.svc,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc.cluster.local
EOF
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -sha256 -days 3650 \
    -set_serial "0x$(openssl rand -hex 16)" -extfile apiserver.ext -out apiserver.crt 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
  openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
  token="$(openssl rand -hex 32)"
  echo "$token,admin,admin,system:masters" >tokens.csv
  # curl reads the header from a file so the token never shows up in `ps`.
  echo "Authorization: Bearer $token" >auth-header
  echo "$token" >token
  chmod 600 ./*.key tokens.csv auth-header token
) || die "openssl failed to create the PKI in $pki"
token="$(cat "$pki/token")"

cat >"$run/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testplane
  cluster:
    server: $server
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: testplane
  context:
    cluster: testplane
    user: admin
    namespace: default
current-context: testplane
EOF
chmod 600 "$run/kubeconfig"

# Recorded before any process starts so a half-started plane can be found and
# torn down by down.sh.
printf '%s=%q\n' RUN_DIR "$run" SERVER "$server" CA "$pki/ca.crt" \
  TOKEN_HEADER "$pki/auth-header" BIN_DIR "$bin" >"$state/plane.env"

# --- process helpers -------------------------------------------------------------
declare -A pid_of log_of
start() { # name, then the command; own session, log in the run dir, PID recorded
  local name=$1; shift
  log_of[$name]="$run/$name.log"
  # 9>&- : children must not inherit the state-dir lock, or it would stay held.
  setsid "$@" </dev/null >"${log_of[$name]}" 2>&1 9>&- &
  pid_of[$name]=$!
  echo "${pid_of[$name]}" >>"$state/pids"
}

deadline=$(( $(date +%s) + timeout_s ))
# wait_for <component whose log explains a failure> <what> <command...>
wait_for() {
  local name=$1 what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    local dead=""
    for n in "${!pid_of[@]}"; do
      alive "${pid_of[$n]}" || dead=$n
    done
    if [[ -n $dead || $(date +%s) -ge $deadline ]]; then
      if [[ -n $dead ]]; then
        log "$dead exited unexpectedly while waiting for: $what"
        name=$dead
      else
        log "timed out after ${timeout_s}s waiting for: $what"
      fi
      log "see the $name log ($state/failed-logs/$name.log once torn down) — last lines:"
      tail -n 40 "${log_of[$name]}" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

kc() { "$bin/kubectl" --kubeconfig="$run/kubeconfig" "$@"; }

# --- etcd ------------------------------------------------------------------------
log "starting etcd on 127.0.0.1:$etcd_port"
start etcd "$bin/etcd" \
  --name=testplane \
  --data-dir="$run/etcd-data" \
  --listen-client-urls="http://127.0.0.1:$etcd_port" \
  --advertise-client-urls="http://127.0.0.1:$etcd_port" \
  --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster="testplane=http://127.0.0.1:$etcd_peer_port" \
  --unsafe-no-fsync=true \
  --log-level=warn
etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$etcd_port/health" | grep -q '"health":"true"'; }
wait_for etcd "etcd /health" etcd_healthy

# --- kube-apiserver --------------------------------------------------------------
# PodNodeSelector: a namespace annotated scheduler.alpha.kubernetes.io/node-selector
# pins its pods to a node; PodTolerationRestriction: one annotated
# scheduler.alpha.kubernetes.io/defaultTolerations lets them onto a tainted node. Tests of
# the local node (sympozium-node, tainted so nothing else lands there) use both beside kwok.
log "starting kube-apiserver on $server"
# --enable-aggregator-routing: webhooks and aggregated APIs behind a Service are called on
# their endpoints' pod IPs (which the local node routes to this host) instead of the
# ClusterIP, which nothing on the host serves (there is no kube-proxy).
start kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$etcd_port" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$apiserver_port" \
  --cert-dir="$run/apiserver-certs" \
  --tls-cert-file="$pki/apiserver.crt" \
  --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --token-auth-file="$pki/tokens.csv" \
  --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --allow-privileged=true \
  --endpoint-reconciler-type=none \
  --enable-priority-and-fairness=false \
  --kubelet-preferred-address-types=InternalIP \
  --enable-aggregator-routing=true \
  --enable-admission-plugins=PodNodeSelector,PodTolerationRestriction
wait_for kube-apiserver "kube-apiserver /readyz" apiserver_ready "$server" "$pki/ca.crt" "$pki/auth-header"

# --- kube-controller-manager -----------------------------------------------------
# Needed for GC, Deployment/ReplicaSet/Job controllers, default ServiceAccounts and
# node-lifecycle (which removes the not-ready taint from the fake node).
log "starting kube-controller-manager"
start kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig="$run/kubeconfig" \
  --leader-elect=false \
  --secure-port=0 \
  --controllers='*' \
  --root-ca-file="$pki/ca.crt" \
  --service-account-private-key-file="$pki/sa.key"

# --- kube-scheduler --------------------------------------------------------------
cat >"$run/scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $run/kubeconfig
leaderElection:
  leaderElect: false
EOF
log "starting kube-scheduler"
start kube-scheduler "$bin/kube-scheduler" --config="$run/scheduler.yaml" --secure-port=0

# --- kwok ------------------------------------------------------------------------
# Standalone kwok has no built-in stages; ours live in testplane/stages. It only
# manages nodes annotated kwok.x-k8s.io/node=fake and renews their Leases. The
# node IP (pods' hostIP) is loopback: log and exec requests the apiserver sends to
# the "kubelet" fail fast on this machine instead of dialling a private address.
# KWOK_WORKDIR keeps it from also loading a user's ~/.kwok/kwok.yaml.
stage_args=()
for f in "$here"/stages/*.yaml; do stage_args+=("--config=$f"); done
log "starting kwok"
start kwok env KWOK_WORKDIR="$run/kwok" "$bin/kwok" \
  --kubeconfig="$run/kubeconfig" \
  "${stage_args[@]}" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-lease-duration-seconds=40 \
  --node-ip=127.0.0.1 \
  --cidr=10.244.0.0/16

# --- the fake node ---------------------------------------------------------------
log "creating node kwok-node-0"
cat >"$run/node.yaml" <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
spec: {}
status:
  capacity:
    cpu: "32"
    memory: 256Gi
    pods: "110"
    ephemeral-storage: 1Ti
  allocatable:
    cpu: "32"
    memory: 256Gi
    pods: "110"
    ephemeral-storage: 1Ti
EOF
wait_for kube-apiserver "creating Node kwok-node-0" kc apply -f "$run/node.yaml"

node_ready() {
  [[ "$(kc get node kwok-node-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
# Admission puts node.kubernetes.io/not-ready on a new Node; node-lifecycle in kcm
# removes it once the node is Ready. Until then nothing schedules.
node_untainted() { [[ -z "$(kc get node kwok-node-0 -o jsonpath='{.spec.taints}')" ]]; }
default_sa() { kc -n default get serviceaccount default; }

wait_for kwok "node kwok-node-0 Ready (set by kwok)" node_ready
wait_for kube-controller-manager "node kwok-node-0 untainted (node-lifecycle controller)" node_untainted
wait_for kube-controller-manager "ServiceAccount default/default (serviceaccount controller)" default_sa

# Smoke test of the pod path: the scheduler binds a pod and kwok's pod stages
# (which kwok only compiles when the first pod shows up, so a broken stage file
# would otherwise go unnoticed) take it to Running and delete it again.
cat >"$run/smoke-pod.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: testplane-smoke
  namespace: kube-system
  finalizers: [testplane.sympozium.ai/smoke]
spec:
  automountServiceAccountToken: false
  containers:
  - name: smoke
    image: smoke
EOF
smoke() { kc -n kube-system get pod testplane-smoke -o jsonpath="$1"; }
smoke_scheduled() { [[ -n "$(smoke '{.spec.nodeName}')" ]]; }
smoke_running() { [[ "$(smoke '{.status.phase}')" == Running ]]; }
smoke_gone() {
  local out
  out="$(kc -n kube-system get pod testplane-smoke --ignore-not-found -o name)" && [[ -z "$out" ]]
}
wait_for kube-controller-manager "creating a smoke-test pod (needs ServiceAccount kube-system/default)" \
  kc apply -f "$run/smoke-pod.yaml"
wait_for kube-scheduler "smoke-test pod scheduled" smoke_scheduled
wait_for kwok "smoke-test pod Running (kwok pod-ready stage)" smoke_running
kc -n kube-system delete pod testplane-smoke --wait=false >/dev/null
wait_for kwok "smoke-test pod deleted (kwok pod-delete stage)" smoke_gone

# Publish the kubeconfig and a convenience env file atomically.
cp "$run/kubeconfig" "$state/kubeconfig.tmp" && mv "$state/kubeconfig.tmp" "$state/kubeconfig"
cat >"$state/env" <<EOF
export KUBECONFIG=$state/kubeconfig
export PATH=$bin:\$PATH
EOF

ok=1
rm -rf "$state/failed-logs"
log "ready in $(python3 -c "print(round($(date +%s.%N) - $started_at, 1))")s: $server (logs: $run/*.log; source $state/env)"
echo "$state/kubeconfig"
