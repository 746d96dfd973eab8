#!/usr/bin/env bash
# Renders the one-file install manifest from the Helm chart and prints it: the `mongo-operator`
# namespace, the CRDs, the ServiceAccount, RBAC, the Deployment and the metrics Service, with
# the chart's defaults but every namespace watched (`clusterWide`: a quick start, not the
# least-privileged install, which is Helm with `watchNamespaces`). `make release-manifest` writes it to deploy/install.yaml (committed);
# tests/install.rs renders it again and fails when the committed file differs.
#
#   kubectl apply --server-side -f deploy/install.yaml
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

e2e/tools.sh helm
HELM="$(e2e/tools.sh path helm)/helm"

echo "# mongo-operator $(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/mongo-operator/Chart.yaml): everything in one file."
echo "#   kubectl apply --server-side -f install.yaml"
echo "# Generated from charts/mongo-operator by \`make release-manifest\`; do not edit by hand."
echo "# It watches every namespace (clusterWide): for production, install the Helm chart with"
echo "# watchNamespaces, which gives the operator a Role in each of those namespaces only."
"$HELM" template mongo-operator charts/mongo-operator \
  --namespace mongo-operator --include-crds --set createNamespace=true --set clusterWide=true
