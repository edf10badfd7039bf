#!/usr/bin/env bash
# Undo scripts/kind-up.sh: stop the port-forward and delete the kind cluster (its volume,
# and so the kind registry, goes with it).
#
#   scripts/kind-down.sh        (make kind-down)
set -euo pipefail

CLUSTER="${CLUSTER:-sigdeploy}"
STATE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/sigdeploy"
PID_FILE="$STATE_DIR/kind-$CLUSTER-port-forward.pid"

if [[ -f "$PID_FILE" ]]; then
    pid="$(cat "$PID_FILE")"
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi
    rm -f "$PID_FILE"
fi
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    kind delete cluster --name "$CLUSTER"
else
    echo "kind-down: no cluster named $CLUSTER"
fi
