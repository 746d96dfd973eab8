#!/usr/bin/env bash
# Builds the test-infrastructure binaries from package registries only (Go module proxy,
# crates.io), once, into a cache outside the repository keyed by version:
#   $MONGO_OPERATOR_CACHE/bin/<tool>-<version>/
# Tools whose source is in this repository (argocd-health, grafana-dashboard-check) have no
# release version: their key is a hash of their sources, so an edit rebuilds them and an
# unchanged tree reuses the build.
# A finished build leaves a `.done` marker, so an interrupted build is redone, and a warm
# cache makes this script return in milliseconds.
#
#   e2e/tools.sh [all|k8s|etcd|kwok|helm|ferretdb|mongotools|s3sfs|cyclonus|argocd-health|
#                 grafana-dashboard-check|cert-manager-crds|mongodb-exporter|promtool|
#                 prometheus-operator-crds|exporter-recording|krew]...
#   (all = what the tests need today: every one of them)
#   e2e/tools.sh path <tool>     # prints the directory holding <tool>'s binaries
set -euo pipefail

K8S_VERSION=v1.36.4
K8S_STAGING=v0.36.4
ETCD_VERSION=v3.6.14
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.21.4
FERRETDB_VERSION=v1.24.2
# mongo-tools tags are not semver, so Go knows its commits only by pseudo-version. This is the
# commit of 2025-07-15 (the 100.12 line); the module proxy serves it, the checksum database does
# not list it, so its hash is pinned here instead and checked after download.
MONGOTOOLS_VERSION=20250715-887641268977
MONGOTOOLS_PSEUDO=v0.0.0-20250715155915-887641268977
MONGOTOOLS_H1=h1:J9wFLko0N7sbovyHahuRw1NyfMUsNhaauLK87wQ3ruc=
S3SFS_VERSION=0.14.1
CYCLONUS_VERSION=v0.5.6
# cert-manager's CRDs (its Certificate schema, which the API server then validates what the
# operator writes against). Its controller's binary is in a module the proxy does not serve.
CERT_MANAGER_VERSION=v1.19.1
# Percona's MongoDB exporter. The proxy serves only some of its tags and refuses its version
# list (v0.51.0 is the newest tag it serves).
MONGODB_EXPORTER_VERSION=v0.51.0
# Prometheus's Go module versions v0.3XX.Y are Prometheus 3.XX.Y; v0.316.0 is Prometheus 3.16.0.
PROMTOOL_VERSION=v0.316.0
# The Prometheus Operator's CRDs (PodMonitor, PrometheusRule, ServiceMonitor), from its
# module (v0.85.0: the newest the proxy serves).
PROMETHEUS_OPERATOR_VERSION=v0.85.0
# krew, to install the plugin from its krew manifest as a user would (tests/kubectl_plugin.rs).
KREW_VERSION=v0.4.3

CACHE="${MONGO_OPERATOR_CACHE:-$HOME/.cache/mongo-operator}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Runs Argo CD health scripts in gopher-lua as Argo CD does (tests/argocd_health.rs).
ARGOCD_HEALTH_SRC="$ROOT/e2e/argocd-health"
# Checks Grafana dashboard JSON strictly against the Grafana Foundation SDK's dashboard schema
# (schemaVersion 42, Grafana 12): an unknown or misspelled field, a panel option included, is
# an error rather than silently dropped, and only Prometheus queries are accepted.
GRAFANA_DASHBOARD_CHECK_SRC="$ROOT/e2e/grafana-dashboard-check"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -modcacherw"

# Go's build and module caches for a cold build live in a scratch directory of this run and
# are removed when it ends: only the binaries are kept. Left in place they are 7 GiB (mostly
# Kubernetes), which a CI machine's disk may not have beside the Rust build; a version bump
# rebuilds from the module proxy anyway. -modcacherw lets the module cache be deleted.
go_scratch=""
use_go_scratch() {
  if [[ -n "$go_scratch" ]]; then return 0; fi
  mkdir -p "$CACHE"
  go_scratch=$(mktemp -d "$CACHE/go-scratch.XXXXXX")
  export GOCACHE="$go_scratch/build" GOMODCACHE="$go_scratch/mod"
  trap 'rm -rf "$go_scratch"' EXIT
}

log() { printf '[tools] %s\n' "$*" >&2; }

# A short hash of a Go module's sources (go.mod, go.sum, *.go), names included.
source_hash() {
  (cd "$1" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum) | sha256sum | cut -c1-16
}

dir_of() {
  case "$1" in
    k8s) echo "$CACHE/bin/k8s-$K8S_VERSION" ;;
    etcd) echo "$CACHE/bin/etcd-$ETCD_VERSION" ;;
    kwok) echo "$CACHE/bin/kwok-$KWOK_VERSION" ;;
    helm) echo "$CACHE/bin/helm-$HELM_VERSION" ;;
    ferretdb) echo "$CACHE/bin/ferretdb-$FERRETDB_VERSION" ;;
    mongotools) echo "$CACHE/bin/mongotools-$MONGOTOOLS_VERSION" ;;
    s3sfs) echo "$CACHE/bin/s3sfs-$S3SFS_VERSION" ;;
    cyclonus) echo "$CACHE/bin/cyclonus-$CYCLONUS_VERSION" ;;
    argocd-health) echo "$CACHE/bin/argocd-health-$(source_hash "$ARGOCD_HEALTH_SRC")" ;;
    grafana-dashboard-check) echo "$CACHE/bin/grafana-dashboard-check-$(source_hash "$GRAFANA_DASHBOARD_CHECK_SRC")" ;;
    cert-manager-crds) echo "$CACHE/bin/cert-manager-crds-$CERT_MANAGER_VERSION" ;;
    mongodb-exporter) echo "$CACHE/bin/mongodb-exporter-$MONGODB_EXPORTER_VERSION" ;;
    exporter-recording) echo "$CACHE/bin/exporter-recording-$MONGODB_EXPORTER_VERSION" ;;
    promtool) echo "$CACHE/bin/promtool-$PROMTOOL_VERSION" ;;
    prometheus-operator-crds) echo "$CACHE/bin/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION" ;;
    krew) echo "$CACHE/bin/krew-$KREW_VERSION" ;;
    *) log "unknown tool: $1"; return 1 ;;
  esac
}

# Runs a build function into a fresh temporary work dir, then marks the output done.
build() {
  local tool=$1 out; out=$(dir_of "$tool")
  if [[ -f "$out/.done" ]]; then return 0; fi
  # One build per tool at a time: a second caller waits for the first and reuses its result.
  mkdir -p "$CACHE/locks"
  exec {lock}> "$CACHE/locks/$tool.lock"
  flock "$lock"
  if [[ -f "$out/.done" ]]; then flock -u "$lock"; return 0; fi
  log "building $tool into $out (cold; cached afterwards)"
  use_go_scratch
  local start=$SECONDS work; work=$(mktemp -d)
  rm -rf "$out"; mkdir -p "$out"
  ( cd "$work" && "build_${tool//-/_}" "$out" )
  rm -rf "$work"
  touch "$out/.done"
  flock -u "$lock"
  log "built $tool in $((SECONDS - start)) s"
}

build_k8s() {
  local out=$1
  printf 'module local/k8sbins\n\ngo 1.26.0\n' > go.mod
  # k8s.io/kubernetes replaces its staging modules with local paths, which `go install`
  # refuses; a wrapper module pins each one to its published tag instead.
  local m
  for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client \
    cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator \
    kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission \
    sample-apiserver sample-cli-plugin sample-controller streaming; do
    echo "replace k8s.io/$m => k8s.io/$m $K8S_STAGING" >> go.mod
  done
  local P=k8s.io/kubernetes/cmd V=k8s.io/component-base/version
  go get "$P/kube-apiserver@$K8S_VERSION" "$P/kube-controller-manager@$K8S_VERSION" \
    "$P/kube-scheduler@$K8S_VERSION" "$P/kubectl@$K8S_VERSION"
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  # Without these ldflags /version reports v0.0.0-master, which breaks helm's kubeVersion checks.
  go build -ldflags "-s -w -X $V.gitVersion=$K8S_VERSION -X $V.gitMajor=1 -X $V.gitMinor=$minor -X $V.gitTreeState=clean" \
    -o "$out/" "$P/kube-apiserver" "$P/kube-controller-manager" "$P/kube-scheduler" "$P/kubectl"
}

build_etcd() {
  local out=$1
  printf 'module local/etcd\n\ngo 1.26.0\n' > go.mod
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  local out=$1
  GOBIN="$out" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  # Standalone kwok has no default stages; keep the ones that ship in the module beside it.
  local st; st="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  mkdir -p "$out/stage"
  cp "$st/node/fast/node-initialize.yaml" "$st/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
    "$st/pod/fast/pod-ready.yaml" "$st/pod/fast/pod-complete.yaml" "$st/pod/fast/pod-delete.yaml" "$out/stage/"
  chmod u+w "$out"/stage/*
}

build_helm() {
  local out=$1 H=helm.sh/helm/v3
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  GOBIN="$out" go install -ldflags "-s -w -X $H/internal/version.version=$HELM_VERSION \
    -X $H/pkg/chartutil.k8sVersionMajor=1 -X $H/pkg/chartutil.k8sVersionMinor=$minor \
    -X $H/pkg/lint/rules.k8sVersionMajor=1 -X $H/pkg/lint/rules.k8sVersionMinor=$minor" "$H/cmd/helm@$HELM_VERSION"
}

build_ferretdb() {
  local out=$1 M=github.com/FerretDB/FerretDB
  # The proxy serves this version but refuses the module's version list, which
  # `go install pkg@version` reads for deprecation notices; a pinned wrapper module avoids it.
  printf 'module local/ferret\n\ngo 1.24\n\nrequire %s %s\n' "$M" "$FERRETDB_VERSION" > go.mod
  go mod download "$M@$FERRETDB_VERSION"
  # Its release process generates build/version/version.txt, which the module zip lacks and the
  # binary embeds (it panics at start without it): build from a copy that has it.
  local src; src="$(go env GOMODCACHE)/github.com/!ferret!d!b/!ferret!d!b@$FERRETDB_VERSION"
  cp -r "$src" ferret-src && chmod -R u+w ferret-src
  echo "$FERRETDB_VERSION" > ferret-src/build/version/version.txt
  echo "replace $M => ./ferret-src" >> go.mod
  go build -mod=mod -ldflags "-s -w" -o "$out/ferretdb" "$M/cmd/ferretdb"
}

build_mongotools() {
  local out=$1 M=github.com/mongodb/mongo-tools
  printf 'module local/mt\n\ngo 1.26\n' > go.mod
  GONOSUMDB=$M go get "$M/mongodump/main@$MONGOTOOLS_PSEUDO" "$M/mongorestore/main@$MONGOTOOLS_PSEUDO"
  if ! grep -qF "$M $MONGOTOOLS_PSEUDO $MONGOTOOLS_H1" go.sum; then
    log "mongo-tools $MONGOTOOLS_PSEUDO does not have the pinned hash $MONGOTOOLS_H1"; return 1
  fi
  go build -ldflags "-s -w" -o "$out/mongodump" "$M/mongodump/main"
  go build -ldflags "-s -w" -o "$out/mongorestore" "$M/mongorestore/main"
}

build_s3sfs() {
  local out=$1
  cargo install s3s-fs --version "$S3SFS_VERSION" --features binary --locked --root "$out/.cargo" >&2
  mv "$out/.cargo/bin/s3s-fs" "$out/"; rm -rf "$out/.cargo"
}

build_krew() {
  local out=$1
  GOBIN="$out" go install -ldflags "-s -w" "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION"
}

build_cyclonus() {
  local out=$1
  GOBIN="$out" go install -ldflags "-s -w" "github.com/mattfenwick/cyclonus/cmd/cyclonus@$CYCLONUS_VERSION"
}

build_argocd_health() {
  local out=$1
  # The module's own go.mod and go.sum pin gopher-lua (the version Argo CD builds with), so
  # this needs nothing but the module proxy, and nothing is written into the repository.
  go build -C "$ARGOCD_HEALTH_SRC" -buildvcs=false -ldflags "-s -w" -o "$out/argocd-health" .
}

build_grafana_dashboard_check() {
  local out=$1
  # The module's own go.mod and go.sum pin the Grafana Foundation SDK (v0.0.22: dashboard
  # schemaVersion 42, Grafana 12), so this needs nothing but the module proxy, and nothing is
  # written into the repository.
  go build -C "$GRAFANA_DASHBOARD_CHECK_SRC" -buildvcs=false -ldflags "-s -w" -o "$out/grafana-dashboard-check" .
}

build_cert_manager_crds() {
  local out=$1 M=github.com/cert-manager/cert-manager
  printf 'module local/cm\n\ngo 1.25\n' > go.mod
  go mod download "$M@$CERT_MANAGER_VERSION"
  local src; src="$(go env GOMODCACHE)/github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION/deploy/crds"
  cp "$src"/cert-manager.io_*.yaml "$out/"
}

build_mongodb_exporter() {
  local out=$1 M=github.com/percona/mongodb_exporter
  # `go install pkg@version` reads the module's version list, which the proxy refuses: build
  # through a wrapper module that requires the pinned version instead.
  printf 'module local/mongodb-exporter\n\ngo 1.26\n\nrequire %s %s\n' "$M" "$MONGODB_EXPORTER_VERSION" > go.mod
  # main.version is only what --version prints; the exporter starts without it.
  go build -mod=mod -ldflags "-s -w -X main.version=$MONGODB_EXPORTER_VERSION" -o "$out/mongodb_exporter" "$M"
}

build_exporter_recording() {
  local out=$1 M=github.com/percona/mongodb_exporter
  # A real mongod's getDiagnosticData answer (4.2.8, recorded by Percona for the exporter's
  # own tests): replayed to the exporter, it shows the names it gives the sections no
  # stand-in here has (WiredTiger's cache, memory) (tests/dashboard.rs).
  printf 'module local/er\n\ngo 1.26\n' > go.mod
  go mod download "$M@$MONGODB_EXPORTER_VERSION"
  cp "$(go env GOMODCACHE)/github.com/percona/mongodb_exporter@$MONGODB_EXPORTER_VERSION/exporter/testdata/get_diagnostic_data.json" "$out/"
}

build_promtool() {
  local out=$1
  # remove_all_sd leaves out the cloud service discoveries (AWS, Azure, GCE, Consul...), which
  # the e2e tests do not use: 2.5 min instead of 11 on 2 cores. Kubernetes SD stays (promtool
  # imports it itself), as do file and http SD.
  GOBIN="$out" go install -tags remove_all_sd -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
}

build_prometheus_operator_crds() {
  local out=$1 M=github.com/prometheus-operator/prometheus-operator
  printf 'module local/po\n\ngo 1.25\n' > go.mod
  go mod download "$M@$PROMETHEUS_OPERATOR_VERSION"
  local src; src="$(go env GOMODCACHE)/github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION"
  for kind in podmonitors prometheusrules servicemonitors; do
    cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$out/"
  done
}

ALL=(k8s etcd kwok helm ferretdb mongotools s3sfs cyclonus argocd-health grafana-dashboard-check cert-manager-crds
  mongodb-exporter promtool prometheus-operator-crds exporter-recording krew)

case "${1:-all}" in
  path) dir_of "$2" ;;
  all) for t in "${ALL[@]}"; do build "$t"; done ;;
  *) for t in "$@"; do build "$t"; done ;;
esac
