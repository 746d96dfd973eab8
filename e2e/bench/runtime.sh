#!/usr/bin/env bash
# Operator runtime benchmark (`make bench-runtime`): the shipped binary's size, how long
# `mongo-operator run` takes from process start to /readyz answering 200, and its memory when
# idle, with no MongoCluster and with N MongoClusters in the watched namespace (no members run,
# so those clusters wait on unreachable members, looked at again every 5 s).
#
# The binary is the static release build of e2e/static-build.sh (what the image ships). It
# runs against the local control plane (started if needed), with leader election on, as in the
# chart.
#
#   e2e/bench/runtime.sh [N]     (default: 50)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
N="${1:-50}"

BIN="$(e2e/static-build.sh)"
e2e/cluster.sh up > /dev/null
eval "$(e2e/cluster.sh env)"
"$BIN" crd | kubectl apply --server-side --field-manager=mongo-operator -f - > /dev/null
NS="bench-runtime-$RANDOM"
kubectl create namespace "$NS" > /dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=$(mktemp)
pid=""
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; kubectl delete namespace "$NS" --wait=false > /dev/null 2>&1 || true; rm -f "$LOG"; }
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

start=$(date +%s%N)
"$BIN" run --namespaces "$NS" --listen "127.0.0.1:$PORT" --controls-listen 127.0.0.1:0 --log-format json --log-level warn \
  --leader-election-namespace "$NS" --leader-election-lease bench > "$LOG" 2>&1 &
pid=$!
until [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" == 200 ]]; do
  kill -0 "$pid" 2>/dev/null || { echo "the operator exited:"; cat "$LOG"; exit 1; }
  sleep 0.01
done
ready_ms=$(( ($(date +%s%N) - start) / 1000000 ))
sleep 20
idle_empty=$(rss_kib "$pid")

for i in $(seq "$N"); do
  printf 'apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoCluster\nmetadata: {name: c%s}\nspec: {version: "8.0.4"}\n---\n' "$i"
done | kubectl -n "$NS" apply --server-side -f - > /dev/null
# Let the first reconciles (objects created, members found unreachable) finish.
sleep 45
idle_loaded=$(rss_kib "$pid")
peak=$(hwm_kib "$pid")
reconciles=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^mongo_operator_reconciles_total/ { s += $NF } END { print s + 0 }')

printf '\n%-44s %s\n' "measure" "value"
printf '%-44s %.1f MiB (%s bytes)\n' "binary size (static, stripped)" "$(echo "$(stat -c %s "$BIN") / 1048576" | bc -l)" "$(stat -c %s "$BIN")"
printf '%-44s %s ms\n' "start to /readyz 200 (leader, caches synced)" "$ready_ms"
printf '%-44s %s MiB\n' "idle RSS, no MongoCluster (after 20 s)" "$((idle_empty / 1024))"
printf '%-44s %s MiB\n' "RSS with $N MongoClusters (after 45 s)" "$((idle_loaded / 1024))"
printf '%-44s %s MiB\n' "peak RSS" "$((peak / 1024))"
printf '%-44s %s\n' "reconciles in those 45 s" "$reconciles"
