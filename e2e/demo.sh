#!/usr/bin/env bash
# A simulated 3-member MongoCluster on the local control plane, shown Ready.
#
# Starts the control plane (if needed), installs the CRDs, runs the operator for the `demo`
# namespace, applies examples/cluster-minimal.yaml, and stands the replica-set simulator in for
# mongod on the Pods' IPs (kwok gives Pods 127.100.x.y addresses). Then waits with
# `kubectl wait --for=condition=Ready` and shows what the operator made.
#
#   e2e/demo.sh          show it Ready, then stop the operator and the simulator
#   e2e/demo.sh --keep   leave them running until Ctrl-C (try `kubectl -n demo get mgc -w`)
set -euo pipefail
cd "$(dirname "$0")/.."
KEEP="${1:-}"
NS=demo
RUN=e2e/.run/demo
mkdir -p "$RUN"

e2e/cluster.sh up > /dev/null
eval "$(e2e/cluster.sh env)"
cargo build --locked -q --bin mongo-operator -p mongo-operator
cargo build --locked -q --bin mongo-replset-sim -p mongo-replset-sim
BIN=target/debug

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$BIN/mongo-operator" crd | kubectl apply --server-side --field-manager=mongo-operator -f - > /dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s > /dev/null
# A fresh namespace each time: the simulator keeps no data between runs.
kubectl delete namespace "$NS" --ignore-not-found --wait=true > /dev/null
kubectl create namespace "$NS" > /dev/null
# The operator dials members by their DNS names, which kwok's Pods do not have: it runs with a
# hosts file of its own (in a private mount namespace), filled in below once the Pods have IPs.
printf '127.0.0.1 localhost\n' > "$RUN/hosts"
unshare --mount --propagation private sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$RUN/hosts" \
  "$BIN/mongo-operator" run --namespace "$NS" --image mongo-operator:dev --log-format text --leader-election false --listen 127.0.0.1:0 --controls-listen 127.0.0.1:0 > "$RUN/operator.log" 2>&1 &
pids+=($!)
echo "[demo] operator running (log: $RUN/operator.log)"

kubectl -n "$NS" apply -f examples/cluster-minimal.yaml
echo "[demo] waiting for the keyFile Secret and three Pods with IPs"
for _ in $(seq 1 120); do
  kubectl -n "$NS" get secret demo-internal > /dev/null 2>&1 && break
  sleep 0.5
done
ips=()
for _ in $(seq 1 240); do
  mapfile -t ips < <(kubectl -n "$NS" get pods -l app.kubernetes.io/instance=demo \
    -o jsonpath='{range .items[*]}{.metadata.name}={.status.podIP}{"\n"}{end}' | grep -E '=[0-9]' || true)
  [ "${#ips[@]}" -ge 3 ] && break
  sleep 0.5
done
[ "${#ips[@]}" -ge 3 ] || { echo "[demo] the Pods never got IPs; see kubectl -n $NS get pods" >&2; exit 1; }

kubectl -n "$NS" get secret demo-internal -o jsonpath='{.data.keyfile}' | base64 -d > "$RUN/keyfile"
# What mongod reads at startup: the TLS mode from mongod.conf and its certificate from the
# members' Secret (TLS is required by default).
for _ in $(seq 1 120); do
  kubectl -n "$NS" get secret demo-tls > /dev/null 2>&1 && break
  sleep 0.5
done
kubectl -n "$NS" get secret demo-tls -o jsonpath='{.data.tls\.pem}' | base64 -d > "$RUN/tls.pem"
tls_mode=$(kubectl -n "$NS" get configmap demo-mongod-config -o jsonpath='{.data.mongod\.conf}' | awk '/^  tls:/ { t = 1 } t && $1 == "mode:" { print $2; exit }')
args=()
hosts=""
for entry in "${ips[@]}"; do
  pod="${entry%%=*}"; ip="${entry#*=}"
  args+=(--member "$pod=$pod.demo-members.$NS.svc.cluster.local:27017@$ip:27017")
  hosts+="$ip $pod.demo-members.$NS.svc.cluster.local"$'\n'
done
# Rewritten in place: the bind mount holds on to the file, not its name.
printf '127.0.0.1 localhost\n%s' "$hosts" > "$RUN/hosts"
"$BIN/mongo-replset-sim" --control 127.0.0.1:27199 --repl-set demo --key-file "$RUN/keyfile" \
  --election-timeout-ms 1000 --heartbeat-ms 100 --initial-sync-ms 500 \
  --tls-mode "${tls_mode:-disabled}" --tls-certificate-key-file "$RUN/tls.pem" "${args[@]}" > "$RUN/sim.log" 2>&1 &
pids+=($!)
echo "[demo] simulated members listening on ${ips[*]#*=}"

start=$(date +%s)
kubectl -n "$NS" wait --for=condition=Ready mongocluster/demo --timeout=120s
echo "[demo] Ready after $(( $(date +%s) - start )) s of simulated members"
kubectl -n "$NS" get mongocluster demo
kubectl -n "$NS" get statefulset,pods,services,secrets,configmaps,pdb -l app.kubernetes.io/instance=demo
kubectl -n "$NS" get events --field-selector involvedObject.kind=MongoCluster --sort-by=.eventTime \
  -o custom-columns=TIME:.eventTime,REASON:.reason,MESSAGE:.message | tail -n 10
if [ "$KEEP" = "--keep" ]; then
  echo "[demo] running; Ctrl-C stops the operator and the simulator (the control plane stays: make cluster-down)"
  wait
fi
