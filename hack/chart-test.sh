#!/usr/bin/env bash
# Packaging tests (`make chart-test`): helm lint --strict and helm template with the default and
# the ci/ values, the rendered manifests and the kustomize build validated against the Kubernetes
# schemas (kubernetes-validate --strict), values.schema.json refusing typos, the samples against our
# CRD, and chart/kustomize parity (tests/packaging/check_packaging.py). Needs `make tools venv`.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM=".tools/bin/helm"
KUBECTL=".tools/bin/kubectl"
PY=".venv/bin/python"
VALIDATE=".venv/bin/kubernetes-validate"
K8S_VERSION="${K8S_VERSION:-1.35.0}"
CHART="charts/elasticache-export-operator"
export HELM_CACHE_HOME="$PWD/.tools/helm/cache" HELM_CONFIG_HOME="$PWD/.tools/helm/config" HELM_DATA_HOME="$PWD/.tools/helm/data"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
fail() { echo "chart-test: $*" >&2; exit 1; }

echo "== helm lint --strict"
"$HELM" lint --strict "$CHART" >/dev/null || "$HELM" lint --strict "$CHART"
for values in "$CHART"/ci/*-values.yaml; do
  "$HELM" lint --strict "$CHART" -f "$values" >/dev/null || "$HELM" lint --strict "$CHART" -f "$values"
done

echo "== helm template (default and ci/ values)"
"$HELM" template ecx "$CHART" --namespace elasticache-export-system > "$out/default.yaml"
"$HELM" template ecx "$CHART" --namespace elasticache-export-system --include-crds > "$out/default-with-crds.yaml"
for values in "$CHART"/ci/*-values.yaml; do
  name="$(basename "$values" .yaml)"
  "$HELM" template ecx "$CHART" --namespace elasticache-export-system -f "$values" --skip-crds > "$out/$name.yaml"
done
grep -q "kind: CustomResourceDefinition" "$out/templated-crd-values.yaml" || fail "crds.install=true renders no CRD"
grep -q "helm.sh/resource-policy: keep" "$out/templated-crd-values.yaml" || fail "the templated CRD is not kept on uninstall"
grep -q -- "--namespaces=team-a,team-b" "$out/namespaced-ha-values.yaml" || fail "watchNamespaces is not passed to the operator"
grep -q "eks.amazonaws.com/role-arn" "$out/namespaced-ha-values.yaml" || fail "the IRSA annotation is missing"

echo "== values.schema.json refuses mistakes"
expect_refused() {
  if "$HELM" template ecx "$CHART" "$@" >/dev/null 2>"$out/err"; then
    fail "helm template $* should have failed"
  fi
}
expect_refused --set operatr.concurrency=2                  # typo at the top level
expect_refused --set operator.concurency=2                  # typo one level down
expect_refused --set metrics.serviceMonitor.intervl=1m      # typo two levels down
expect_refused --set operator.logFormat=xml                 # value outside the enum
expect_refused --set replicaCount=2 --set leaderElection.enabled=false

echo "== kustomize (config/default, config/samples)"
"$KUBECTL" kustomize config/default > "$out/kustomize.yaml"
"$KUBECTL" kustomize config/samples > "$out/samples.yaml"

echo "== kubernetes-validate --strict (Kubernetes $K8S_VERSION)"
"$VALIDATE" --strict --quiet -k "$K8S_VERSION" "$out"/default-with-crds.yaml "$out"/*-values.yaml "$out/kustomize.yaml"

echo "== CRD copy, samples against the CRD, chart/kustomize parity"
"$PY" tests/packaging/check_packaging.py "$out/default.yaml" "$out/kustomize.yaml"
