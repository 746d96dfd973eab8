#!/usr/bin/env bash
# A real Kubernetes control plane on loopback: etcd, kube-apiserver (TLS + RBAC),
# kube-controller-manager, kube-scheduler and kwok (fake Nodes whose Pods go Running/Ready
# with IPs inside 127.0.0.0/8). No container runtime is needed.
#
#   e2e/cluster.sh up      build the binaries if needed (cached), start everything, wait until ready
#   e2e/cluster.sh down    stop everything and remove the state
#   e2e/cluster.sh env     print `export` lines (KUBECONFIG, PATH with the matching kubectl and helm)
#   e2e/cluster.sh status  say whether it is up
#
# Environment: MONGO_OPERATOR_E2E_DIR (state, default e2e/.run), E2E_APISERVER_PORT (16443),
# E2E_ETCD_PORT (23790), E2E_NODES (6), E2E_PVS (400), E2E_POD_CIDR (127.100.0.0/16).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${MONGO_OPERATOR_E2E_DIR:-$HERE/.run}"
API_PORT="${E2E_APISERVER_PORT:-16443}"
ETCD_PORT="${E2E_ETCD_PORT:-23790}"
ETCD_PEER_PORT=$((ETCD_PORT + 10))
NODES="${E2E_NODES:-6}"
PVS="${E2E_PVS:-400}"
POD_CIDR="${E2E_POD_CIDR:-127.100.0.0/16}"
SERVICE_CIDR=10.96.0.0/16
ZONES=(zone-a zone-b zone-c)

PKI="$STATE/pki"
LOGS="$STATE/logs"
PIDS="$STATE/pids"
KUBECONFIG_FILE="$STATE/admin.kubeconfig"
# Where the tests' operators' ServiceAccounts live (see tests/support/operator.rs).
OPERATOR_SA_NAMESPACE=mongo-operator-tests

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

bins() {
  "$HERE/tools.sh" k8s etcd kwok helm
  K8S_BIN="$("$HERE/tools.sh" path k8s)"
  ETCD_BIN="$("$HERE/tools.sh" path etcd)"
  KWOK_DIR="$("$HERE/tools.sh" path kwok)"
  HELM_BIN="$("$HERE/tools.sh" path helm)"
}

kc() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# --- certificates -------------------------------------------------------------------------
cert() { # name subject [san]
  local name=$1 subj=$2 san=${3:-}
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  local ext="$PKI/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n "$san" ]]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san";
    else echo "extendedKeyUsage=clientAuth"; fi
  } > "$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
}

make_pki() {
  [[ -f "$PKI/.done" ]] && return 0
  log "creating certificates"
  rm -rf "$PKI"; mkdir -p "$PKI"
  openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=mongo-operator-e2e-ca" -days 30 -sha256 -out "$PKI/ca.crt" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=e2e-admin"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kwok "/O=system:masters/CN=kwok"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  touch "$PKI/.done"
}

kubeconfig() { # name cert-name
  local file="$STATE/$1.kubeconfig"
  cat > "$file" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $1
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: e2e
  context: {cluster: e2e, user: $1, namespace: default}
current-context: e2e
KCFG
}

# --- processes ----------------------------------------------------------------------------
alive() { [[ -f "$PIDS/$1.pid" ]] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

start() { # name command...
  local name=$1; shift
  if alive "$name"; then return 0; fi
  setsid "$@" > "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$PIDS/$name.pid"
}

wait_for() { # description seconds command...
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" > /dev/null 2>&1; do
    if (( SECONDS >= deadline )); then die "timed out after ${limit}s waiting for $what (logs in $LOGS)"; fi
    sleep 0.5
  done
}

stop_all() {
  local name pid
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [[ -f "$PIDS/$name.pid" ]] || continue
    pid=$(cat "$PIDS/$name.pid")
    # setsid made each process a group leader: signal the whole group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PIDS/$name.pid"
  done
}

# --- cluster objects ----------------------------------------------------------------------
seed_objects() {
  local i zone nodes="" pvs=""
  for ((i = 0; i < NODES; i++)); do
    zone=${ZONES[$((i % ${#ZONES[@]}))]}
    nodes+="---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {node.alpha.kubernetes.io/ttl: \"0\", kwok.x-k8s.io/node: fake}
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    topology.kubernetes.io/zone: $zone
    topology.kubernetes.io/region: e2e
    type: kwok
"
  done
  for ((i = 0; i < PVS; i++)); do
    pvs+="---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: e2e-pv-$i
  labels: {e2e.mongo.operator.rs/pool: default}
spec:
  capacity: {storage: 200Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: standard
  hostPath: {path: $STATE/volumes/pv-$i}
"
  done
  kc apply --server-side --field-manager=e2e-cluster -f - > /dev/null <<OBJ
$nodes---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
allowVolumeExpansion: true
reclaimPolicy: Delete
---
apiVersion: v1
kind: Namespace
metadata:
  name: $OPERATOR_SA_NAMESPACE
$pvs
OBJ
}

nodes_ready() {
  local ready
  ready=$(kc get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
  [[ "$ready" -ge "$NODES" ]]
}

# --- commands -----------------------------------------------------------------------------
up() {
  local t0=$SECONDS
  bins
  mkdir -p "$STATE" "$LOGS" "$PIDS" "$STATE/volumes"
  if alive kube-apiserver && alive etcd && alive kwok && kc get --raw /readyz > /dev/null 2>&1; then
    log "already up"; print_env; return 0
  fi
  stop_all
  make_pki
  kubeconfig admin admin; kubeconfig controller-manager controller-manager
  kubeconfig scheduler scheduler; kubeconfig kwok kwok

  start etcd "$ETCD_BIN/etcd" --name e2e --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --listen-metrics-urls ""
  wait_for etcd 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ETCD_PORT"

  # Requests of the operators the tests run (their ServiceAccounts live in one namespace) are
  # audited, so tests/rbac.rs can show every rule of the chart's RBAC is used.
  cat > "$STATE/audit-policy.yaml" <<YAML
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:$OPERATOR_SA_NAMESPACE"]
  - level: None
YAML
  # OwnerReferencesPermissionEnforcement (on in OpenShift and hardened clusters) makes setting
  # blockOwnerDeletion need update on the owner's finalizers: the chart's RBAC must grant it.
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --allow-privileged=true \
    --enable-priority-and-fairness=false --profiling=false \
    --enable-admission-plugins OwnerReferencesPermissionEnforcement \
    --audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$LOGS/audit.log" \
    --audit-log-format json --audit-log-maxsize 0 --audit-log-mode blocking
  wait_for kube-apiserver 90 kc get --raw /readyz

  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --bind-address 127.0.0.1 --secure-port 0 --controllers '*' \
    --concurrent-gc-syncs 5 --profiling=false
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --profiling=false
  local st="$KWOK_DIR/stage"
  # No pod-complete stage: a Job's Pod stays Running until something finishes it, as a real
  # one does while its process runs. The backup tests finish backup Pods themselves, with the
  # exit code and termination message of the real `mongo-operator backup` they ran.
  start kwok "$KWOK_DIR/kwok" --kubeconfig "$STATE/kwok.kubeconfig" --manage-all-nodes=true \
    --cidr "$POD_CIDR" --node-ip 127.0.0.1 --node-lease-duration-seconds 40 \
    --config "$st/node-initialize.yaml" --config "$st/node-heartbeat-with-lease.yaml" \
    --config "$st/pod-ready.yaml" --config "$st/pod-delete.yaml"

  seed_objects
  wait_for "$NODES Ready nodes" 60 nodes_ready
  wait_for "the default ServiceAccount" 60 kc -n default get serviceaccount default
  log "up in $((SECONDS - t0)) s"
  print_env
}

print_env() {
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
  echo "export MONGO_OPERATOR_AUDIT_LOG=$LOGS/audit.log"
  echo "export PATH=$K8S_BIN:$HELM_BIN:\$PATH"
}

down() {
  stop_all
  rm -rf "$STATE"
  log "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) bins; print_env ;;
  status) if alive kube-apiserver && alive etcd && alive kwok; then echo up; else echo down; exit 1; fi ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
