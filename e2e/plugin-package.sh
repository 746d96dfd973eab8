#!/usr/bin/env bash
# Packages a built kubectl-mongo as a release archive for this machine's platform and writes
# the krew manifest for it (plugins/krew/kubectl-mongo.yaml with the archive's name and
# sha256 filled in), as a release publishes them:
#   e2e/plugin-package.sh BINARY OUTDIR
# prints the archive's path. `kubectl krew install --manifest=OUTDIR/kubectl-mongo.yaml
# --archive=ARCHIVE` installs it without a download (tests/kubectl_plugin.rs does).
set -euo pipefail
binary=$1 out=$2
root="$(cd "$(dirname "$0")/.." && pwd)"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
OS=$(uname -s | tr '[:upper:]' '[:lower:]')
case "$(uname -m)" in
  x86_64) ARCH=amd64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) ARCH=$(uname -m) ;;
esac
ARCHIVE="kubectl-mongo_v${VERSION}_${OS}_${ARCH}.tar.gz"
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$binary" "$stage/kubectl-mongo"
cp "$root/docs/kubectl-plugin.md" "$stage/README.md"
tar -C "$stage" -czf "$out/$ARCHIVE" kubectl-mongo README.md
SHA256=$(sha256sum "$out/$ARCHIVE" | cut -d' ' -f1)
# Only these five names are replaced; the manifest has no other `$`.
sed -e "s/\${VERSION}/$VERSION/g" -e "s/\${OS}/$OS/g" -e "s/\${ARCH}/$ARCH/g" \
  -e "s/\${ARCHIVE}/$ARCHIVE/g" -e "s/\${SHA256}/$SHA256/g" \
  "$root/plugins/krew/kubectl-mongo.yaml" > "$out/kubectl-mongo.yaml"
echo "$out/$ARCHIVE"
