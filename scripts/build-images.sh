#!/usr/bin/env bash
# Build (and push) the component and serving images with docker buildx.
#
#   REGISTRY=us-central1-docker.pkg.dev/PROJECT/sigdeploy scripts/build-images.sh   # push
#   scripts/build-images.sh --load                        # local docker only (for kind load)
#
# Tags: VERSION-GITSHA (what pipelines should pin) and VERSION. The image names come from
# components/images.py, the version from pyproject.toml. Prints one line per image:
# component=<uri> and serving=<uri>, the values for `compile.py --image` and
# `--param serving_image=`.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=--push
[[ "${1:-}" == "--load" ]] && MODE=--load
# Vertex AI runs linux/amd64; a --load build for kind defaults to this machine's platform.
if [[ "$MODE" == --push ]]; then PLATFORM="${PLATFORM:-linux/amd64}"; else PLATFORM="${PLATFORM:-}"; fi
PYTHON="${PYTHON:-python3}"

VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)"
# Cloud Build has no .git: it passes SHORT_SHA (triggers) or GIT_SHA (manual builds).
SHA="${SHORT_SHA:-${GIT_SHA:-}}"
REVISION="${COMMIT_SHA:-$SHA}"
if [[ -z "$SHA" ]]; then
    SHA="$(git rev-parse --short=7 HEAD)"
    REVISION="$(git rev-parse HEAD)"
    if ! git diff --quiet HEAD -- components pipelines docker pyproject.toml; then
        SHA="${SHA}-dirty"  # never reuse a clean tag for uncommitted code
    fi
fi
TAG="${VERSION}-${SHA}"

# image names from components/images.py without repository and tag, e.g. python-component
if command -v "$PYTHON" >/dev/null; then
    read -r COMPONENT SERVING < <("$PYTHON" -c '
from components import images
name = lambda uri: uri.split("/", 1)[1].rsplit(":", 1)[0]
print(name(images.COMPONENT_IMAGE), name(images.SERVING_IMAGE))')
else
    COMPONENT="$(sed -n 's|^COMPONENT_IMAGE = f"{REPOSITORY}/\(.*\):{VERSION}"$|\1|p' components/images.py)"
    SERVING="$(sed -n 's|^SERVING_IMAGE = f"{REPOSITORY}/\(.*\):{VERSION}"$|\1|p' components/images.py)"
fi

if [[ "$MODE" == --push && -z "${REGISTRY:-}" ]]; then
    echo "build-images: set REGISTRY (e.g. us-central1-docker.pkg.dev/PROJECT/sigdeploy)" \
         "or pass --load for a local build" >&2
    exit 2
fi
REPO="${REGISTRY:-sigdeploy}"

build() {  # build NAME DOCKERFILE KEY
    local name="$1" dockerfile="$2"
    if [[ ! -f "$dockerfile" ]]; then
        echo "build-images: $dockerfile missing, skipping $name" >&2
        return
    fi
    docker buildx build "$MODE" \
        ${PLATFORM:+--platform "$PLATFORM"} \
        --file "$dockerfile" \
        --label "org.opencontainers.image.version=$VERSION" \
        --label "org.opencontainers.image.revision=$REVISION" \
        --tag "$REPO/$name:$TAG" \
        --tag "$REPO/$name:$VERSION" \
        .
    echo "${3}=$REPO/$name:$TAG"
}

build "$COMPONENT" docker/component.Dockerfile component
build "$SERVING" docker/serving.Dockerfile serving
