#!/usr/bin/env bash
# Everything CI checks, in one command (`make test`): formatting, lints, unit tests, and the
# tests that need a Kubernetes control plane. It brings the local control plane up when it is
# not running and tears it down afterwards (a control plane that was already up is left up).
#
# Set MONGO_OPERATOR_TEST_CONTEXT=current to test against the cluster in the current kube
# context instead of the local control plane.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

t0=$SECONDS
phase() { printf '\n==> %s (at %ds)\n' "$*" $((SECONDS - t0)); }
timings=()
timed() { local name=$1 s=$SECONDS; shift; "$@"; timings+=("$name: $((SECONDS - s)) s"); }

phase "formatting"
timed fmt cargo fmt --all -- --check

started_cluster=false
cleanup() {
  if $started_cluster; then e2e/cluster.sh down || true; fi
}
trap cleanup EXIT

phase "test tools"
timed "test tools (cached after the first build)" e2e/tools.sh all

if [[ "${MONGO_OPERATOR_TEST_CONTEXT:-local}" != current ]]; then
  phase "local control plane"
  if ! e2e/cluster.sh status > /dev/null 2>&1; then started_cluster=true; fi
  timed "control plane start" e2e/cluster.sh up > /dev/null
  eval "$(e2e/cluster.sh env)"
fi

phase "lints"
timed clippy cargo clippy --workspace --all-targets --locked -- -D warnings

phase "tests"
log="$(mktemp)"
# The RBAC audit reads what the suite's operators did, so it runs after everything else.
rbac_audit=every_rule_of_the_chart_rbac_is_used_and_none_is_missing
# The suite runs with its own cluster DNS as resolver (e2e/with-cluster-dns).
timed "cargo test" bash -c 'set -o pipefail; e2e/with-cluster-dns cargo test --workspace --locked --no-fail-fast -- --include-ignored --skip "$2" 2>&1 | tee "$1"' _ "$log" "$rbac_audit"
if [[ -n "${MONGO_OPERATOR_AUDIT_LOG:-}" ]]; then
  phase "RBAC audit (every rule of the chart used by the suite's operators)"
  timed "rbac audit" bash -c 'set -o pipefail; e2e/with-cluster-dns cargo test --locked --test rbac_audit -- --include-ignored --exact "$2" --nocapture 2>&1 | tee -a "$1"' _ "$log" "$rbac_audit"
fi

phase "done"
printf '%s\n' "${timings[@]}"
printf 'total: %d s\n' $((SECONDS - t0))
# One closing line over every test binary, in the plain form CI reads.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
rm -f "$log"
