#!/usr/bin/env bash
# A local Kubeflow Pipelines for sigdeploy: kind cluster + pinned standalone KFP + our images.
#
#   scripts/kind-up.sh          (make kind-up)
#
# 1. creates the kind cluster $CLUSTER (default sigdeploy) unless it exists;
# 2. installs standalone KFP $KFP_VERSION (pinned; platform-agnostic manifests) and waits;
# 3. applies deploy/kind/: the shared volume (sigdeploy-data, the registry lives on it) and
#    the Role that lets the deploy task create the serving Deployment/Service;
# 4. builds the component and serving images (scripts/build-images.sh --load) and loads
#    them into the cluster; their tags go to $IMAGES_ENV for `make run-kind`;
# 5. port-forwards the KFP UI + API to http://localhost:$UI_PORT (pid in $PID_FILE).
#
# Needs docker (with buildx), kind >= 0.20 and kubectl on PATH, ~8 GB free memory, and the
# internet (KFP manifests and images). SKIP_BUILD=1 reuses images already in $IMAGES_ENV.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${CLUSTER:-sigdeploy}"
KFP_VERSION="${KFP_VERSION:-2.14.3}"
UI_PORT="${UI_PORT:-8080}"
STATE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/sigdeploy"
IMAGES_ENV="${IMAGES_ENV:-$STATE_DIR/kind-$CLUSTER.env}"
PID_FILE="$STATE_DIR/kind-$CLUSTER-port-forward.pid"
KFP_MANIFESTS="github.com/kubeflow/pipelines/manifests/kustomize"

for tool in docker kind kubectl; do
    command -v "$tool" >/dev/null || { echo "kind-up: $tool is not on PATH" >&2; exit 2; }
done
mkdir -p "$STATE_DIR"

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    echo "kind-up: cluster $CLUSTER exists; reusing it"
else
    kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml --wait 180s
fi
CONTEXT="kind-$CLUSTER"

echo "kind-up: installing Kubeflow Pipelines $KFP_VERSION"
kubectl --context "$CONTEXT" apply -k "$KFP_MANIFESTS/cluster-scoped-resources?ref=$KFP_VERSION"
kubectl --context "$CONTEXT" wait --for condition=established --timeout=120s \
    crd/applications.app.k8s.io
kubectl --context "$CONTEXT" apply -k "$KFP_MANIFESTS/env/platform-agnostic?ref=$KFP_VERSION"
kubectl --context "$CONTEXT" apply -f deploy/kind/storage.yaml -f deploy/kind/rbac.yaml

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    scripts/build-images.sh --load | tee /dev/stderr \
        | sed -n 's/^component=/SIGDEPLOY_COMPONENT_IMAGE=/p; s/^serving=/SIGDEPLOY_SERVING_IMAGE=/p' \
        > "$IMAGES_ENV"
fi
# shellcheck source=/dev/null
. "$IMAGES_ENV"
for image in "$SIGDEPLOY_COMPONENT_IMAGE" "$SIGDEPLOY_SERVING_IMAGE"; do
    kind load docker-image --name "$CLUSTER" "$image"
done

echo "kind-up: waiting for KFP (first start pulls images: several minutes)"
kubectl --context "$CONTEXT" -n kubeflow wait --for=condition=Available deployment --all \
    --timeout=1200s

if [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    kill "$(cat "$PID_FILE")"
fi
nohup kubectl --context "$CONTEXT" -n kubeflow port-forward svc/ml-pipeline-ui \
    "$UI_PORT:80" >"$STATE_DIR/kind-$CLUSTER-port-forward.log" 2>&1 &
echo $! >"$PID_FILE"
for _ in $(seq 30); do
    curl -fsS "http://localhost:$UI_PORT/apis/v2beta1/healthz" >/dev/null 2>&1 && break
    sleep 2
done
curl -fsS "http://localhost:$UI_PORT/apis/v2beta1/healthz" >/dev/null
echo "kind-up: KFP UI and API at http://localhost:$UI_PORT; images in $IMAGES_ENV"
echo "kind-up: next: make run-kind"
