#!/usr/bin/env bash
# Backup data-path benchmark (`make bench-backup`): throughput and peak memory of
# `mongo-operator backup` from a file-backed archive source into s3s-fs on loopback, and of
# `mongo-operator restore` of each backup back out of the store, next to plain `cat` of the same
# bytes into a file, for 1 GiB and 4 GiB.
#
# The source stands in for mongodump: a script that cats a prepared archive-like file (base64
# of random bytes, which zstd shrinks to about 76 %, a little less than real BSON). mongorestore
# is stood in for by `cat > /dev/null`, so the restore figures are the data path's alone:
# reading the stored archive once, checking it, decrypting and decompressing it into the pipe.
# FerretDB answers the backup's buildInfo. Everything runs on this machine; nothing leaves
# loopback.
#
#   e2e/bench/backup.sh [SIZES_GIB...]     (default: 1 4)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SIZES=("$@")
[[ $# -eq 0 ]] && SIZES=(1 4)

e2e/tools.sh ferretdb s3sfs > /dev/null
cargo build --release --locked -q
BIN=target/release/mongo-operator
FERRET="$(e2e/tools.sh path ferretdb)/ferretdb"
S3SFS="$(e2e/tools.sh path s3sfs)/s3s-fs"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mongo-operator-bench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; return 1; }

FP=$(port); mkdir -p "$WORK/ferret"
"$FERRET" --handler=sqlite --sqlite-url="file:$WORK/ferret/" --state-dir="$WORK/ferret" \
  --listen-addr="127.0.0.1:$FP" --debug-addr=- --telemetry=disable --log-level=error > /dev/null 2>&1 &
pids+=($!); wait_port "$FP"
SP=$(port); mkdir -p "$WORK/s3/bench" "$WORK/s3b/bench"
"$S3SFS" --host 127.0.0.1 --port "$SP" --access-key AK --secret-key SK "$WORK/s3" > /dev/null 2>&1 &
pids+=($!); wait_port "$SP"
SP2=$(port)
"$S3SFS" --host 127.0.0.1 --port "$SP2" --access-key AK --secret-key SK "$WORK/s3b" > /dev/null 2>&1 &
pids+=($!); wait_port "$SP2"

mkdir -p "$WORK/secrets/destinations/a" "$WORK/secrets/destinations/b" "$WORK/secrets/encryption"
for d in a b; do printf AK > "$WORK/secrets/destinations/$d/access-key-id"; printf SK > "$WORK/secrets/destinations/$d/secret-access-key"; done
printf 'a long random passphrase for the benchmark' > "$WORK/secrets/encryption/key"
cat > "$WORK/fake-mongodump" <<SCRIPT
#!/bin/sh
exec cat "\$BENCH_ARCHIVE"
SCRIPT
cat > "$WORK/fake-mongorestore" <<SCRIPT
#!/bin/sh
exec cat > /dev/null
SCRIPT
chmod +x "$WORK/fake-mongodump" "$WORK/fake-mongorestore"

dest() { printf '{"name":"%s","s3":{"bucket":"bench","endpoint":"http://127.0.0.1:%s","region":"us-east-1","forcePathStyle":true,"credentialsSecretRef":{"name":"x"}}}' "$1" "$2"; }
plan() { # name compression encrypted destinations-json
  printf '{"cluster":"bench","backup":"%s","source":{"uri":"mongodb://127.0.0.1:%s/?directConnection=true"},"oplog":false,"destinations":[%s],"compression":"%s","encrypted":%s}' \
    "$1" "$FP" "$4" "$2" "$3"
}

# Runs a command under GNU time; prints "seconds max_rss_kib".
measure() {
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" > "$WORK/out" 2> "$WORK/err" || { cat "$WORK/err" "$WORK/out" >&2; return 1; }
  cat "$WORK/time"
}

rows=()
for gib in "${SIZES[@]}"; do
  src="$WORK/archive-$gib"
  echo "preparing a ${gib} GiB source..." >&2
  # base64 ends on SIGPIPE once head has enough, which is expected.
  head -c "$((gib * 1024 * 1024 * 1024))" < <(base64 -w 0 /dev/urandom) > "$src"
  bytes=$(stat -c %s "$src")
  sync
  read -r t m < <(measure sh -c "cat '$src' > '$WORK/copy'"); rm -f "$WORK/copy"
  rows+=("$gib GiB|cat > file|$t|$(awk -v b="$bytes" -v t="$t" 'BEGIN{printf "%.0f", b/1048576/t}')|$((m / 1024))")
  for variant in "zstd, 1 store|zstd|false|$(dest a "$SP")" "zstd+age, 2 stores|zstd|true|$(dest a "$SP"),$(dest b "$SP2")" "none, 1 store|none|false|$(dest a "$SP")"; do
    IFS='|' read -r label comp enc dests <<< "$variant"
    name="b-$gib-${comp}-${enc}"
    read -r t m < <(BENCH_ARCHIVE="$src" MONGODUMP="$WORK/fake-mongodump" MONGO_OPERATOR_SECRETS_DIR="$WORK/secrets" \
      MONGO_OPERATOR_LOG_LEVEL=warn MONGO_OPERATOR_PLAN="$(plan "$name" "$comp" "$enc" "$dests")" measure "$BIN" backup)
    stored=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["manifest"]["sizeBytes"])' "$WORK/out")
    # What a restore by name knows from the MongoBackup's status: the checksum, and whether
    # the backup was encrypted.
    checksum=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["manifest"]["checksum"])' "$WORK/out")
    rows+=("$gib GiB|backup: $label|$t|$(awk -v b="$bytes" -v t="$t" 'BEGIN{printf "%.0f", b/1048576/t}')|$((m / 1024))|$((stored * 100 / bytes)) %")
    # The restore reads the first destination's copy once, checking it on the way.
    first=$(printf '%s' "$dests" | python3 -c 'import json,sys; print(json.dumps(json.loads("["+sys.stdin.read()+"]")[0]))')
    restore_plan=$(printf '{"location":{"destination":%s,"path":"bench/%s/manifest.json"},"target":{"uri":"mongodb://127.0.0.1:%s/?directConnection=true"},"expected":{"checksum":"%s","encrypted":%s}}' "$first" "$name" "$FP" "$checksum" "$enc")
    read -r t m < <(MONGORESTORE="$WORK/fake-mongorestore" MONGO_OPERATOR_SECRETS_DIR="$WORK/secrets" \
      MONGO_OPERATOR_LOG_LEVEL=warn MONGO_OPERATOR_PLAN="$restore_plan" measure "$BIN" restore)
    rows+=("$gib GiB|restore: $label|$t|$(awk -v b="$bytes" -v t="$t" 'BEGIN{printf "%.0f", b/1048576/t}')|$((m / 1024))")
    rm -rf "$WORK/s3/bench/"* "$WORK/s3b/bench/"*
  done
  rm -f "$src"
done

printf '\n%-7s | %-26s | %9s | %9s | %12s | %s\n' size run seconds "MiB/s" "peak RSS MiB" "stored/source"
printf -- '--------|----------------------------|-----------|-----------|--------------|--------------\n'
for r in "${rows[@]}"; do IFS='|' read -r a b c d e f <<< "$r"; printf '%-7s | %-26s | %9s | %9s | %12s | %s\n' "$a" "$b" "$c" "$d" "$e" "${f:-}"; done
