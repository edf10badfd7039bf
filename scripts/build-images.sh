#!/usr/bin/env bash
# Build the component and serving images from docker/*.Dockerfile.
#
#   REGISTRY=us-central1-docker.pkg.dev/PROJECT/sigdeploy scripts/build-images.sh   # push
#   scripts/build-images.sh --load    # into this machine's engine, public bases (kind load)
#   scripts/build-images.sh --local   # no public registry: engine + local base set up first
#
# --local (what `make images` does without REGISTRY) runs scripts/docker-setup.sh (Debian's
# engine, a debootstrapped Python base) and builds FROM that base, with torch's CPU wheel
# from TORCH_WHEELS (default: the first folder in PIP_FIND_LINKS), served to the build over
# 127.0.0.1 (--network host) so that no wheel and no host path lands in a layer. The
# Dockerfiles are the same ones Cloud Build uses; only the build arguments differ.
#
# Build arguments, passed on when set: BASE_IMAGE, TORCH (a pinned requirement),
# TORCH_FIND_LINKS. With buildx (Cloud Build) the build is `docker buildx build`; without it
# (Debian's docker.io has no buildx) a plain `docker build`, then `docker push` to push.
#
# Tags: VERSION-GITSHA (what pipelines should pin) and VERSION. The image names come from
# components/images.py, the version from pyproject.toml. Prints one line per image:
# component=<uri> and serving=<uri>, the values for `compile.py --image` and
# `--param serving_image=`.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=--push
case "${1:-}" in
    --load) MODE=--load ;;
    --local) MODE=--local ;;
    "") ;;
    *) echo "build-images: unknown option $1; use --load, --local or none (push)" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3}"

if [[ "$MODE" == --push && -z "${REGISTRY:-}" ]]; then
    echo "build-images: set REGISTRY (e.g. us-central1-docker.pkg.dev/PROJECT/sigdeploy)" \
         "or pass --load / --local for a local build" >&2
    exit 2
fi

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
    read -r COMPONENT SERVING DIGEST < <("$PYTHON" -c '
from components import images
name = lambda uri: uri.split("/", 1)[1].rsplit(":", 1)[0]
print(name(images.COMPONENT_IMAGE), name(images.SERVING_IMAGE), images.source_digest())')
else
    COMPONENT="$(sed -n 's|^COMPONENT_IMAGE = f"{REPOSITORY}/\(.*\):{VERSION}"$|\1|p' components/images.py)"
    SERVING="$(sed -n 's|^SERVING_IMAGE = f"{REPOSITORY}/\(.*\):{VERSION}"$|\1|p' components/images.py)"
fi
REPO="${REGISTRY:-sigdeploy}"

NETWORK="${NETWORK:-}"
if [[ "$MODE" == --local ]]; then
    BASE_IMAGE="$(scripts/docker-setup.sh | sed -n 's/^BASE_IMAGE=//p')"
    TORCH="${TORCH:-${TORCH_PIN:-torch==2.13.0}}"
    TORCH_WHEELS="${TORCH_WHEELS:-${PIP_FIND_LINKS%% *}}"
    NETWORK=host
    if [[ -z "${TORCH_FIND_LINKS:-}" && -n "$TORCH_WHEELS" && -d "$TORCH_WHEELS" ]]; then
        # A fixed port: the URL is a build argument, part of the layers' cache key, so a
        # changing one would rebuild the torch layer every time.
        PORT="${TORCH_WHEELS_PORT:-18431}"
        "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$TORCH_WHEELS" "$PORT" \
            >/dev/null 2>&1 &
        SERVER=$!
        trap 'kill "$SERVER" 2>/dev/null || true' EXIT
        TORCH_FIND_LINKS="http://127.0.0.1:$PORT/"
        for _ in $(seq 50); do
            "$PYTHON" -c "import urllib.request as u; u.urlopen('$TORCH_FIND_LINKS', timeout=1)" \
                2>/dev/null && break
            kill -0 "$SERVER" 2>/dev/null || {
                echo "build-images: cannot serve $TORCH_WHEELS on 127.0.0.1:$PORT (in use?);" \
                     "set TORCH_WHEELS_PORT to a free port" >&2
                exit 1
            }
            sleep 0.1
        done
    elif [[ -z "${TORCH_FIND_LINKS:-}" ]]; then
        echo "build-images: no torch wheel folder (TORCH_WHEELS or PIP_FIND_LINKS):" \
             "$TORCH comes from PyPI, the multi-GB CUDA build on Linux" >&2
    fi
fi

BUILDX=1
if [[ "${BUILDER:-}" == docker ]] || ! docker buildx version >/dev/null 2>&1; then
    BUILDX=0
fi
# Vertex AI runs linux/amd64; a local build defaults to this machine's platform.
if [[ "$MODE" == --push ]]; then PLATFORM="${PLATFORM:-linux/amd64}"; else PLATFORM="${PLATFORM:-}"; fi

build() {  # build NAME DOCKERFILE KEY
    local name="$1" dockerfile="$2" started
    if [[ ! -f "$dockerfile" ]]; then
        echo "build-images: $dockerfile missing, skipping $name" >&2
        return
    fi
    local args=(
        ${PLATFORM:+--platform "$PLATFORM"}
        ${NETWORK:+--network "$NETWORK"}
        --file "$dockerfile"
        --label "org.opencontainers.image.version=$VERSION"
        --label "org.opencontainers.image.revision=$REVISION"
        ${DIGEST:+--label "io.sigdeploy.source-digest=$DIGEST"}
        --tag "$REPO/$name:$TAG"
        --tag "$REPO/$name:$VERSION"
    )
    local arg
    for arg in BASE_IMAGE TORCH TORCH_FIND_LINKS; do
        # TORCH only for the component image: the serving image has no torch
        [[ "$arg" != BASE_IMAGE && "$3" != component ]] && continue
        [[ -n "${!arg:-}" ]] && args+=(--build-arg "$arg=${!arg}")
    done
    started=$SECONDS
    if [[ "$BUILDX" == 1 ]]; then
        local out=--load
        [[ "$MODE" == --push ]] && out=--push
        docker buildx build "$out" "${args[@]}" .
    else
        DOCKER_BUILDKIT=0 docker build "${args[@]}" . >&2
        if [[ "$MODE" == --push ]]; then
            docker push "$REPO/$name:$TAG" >&2
            docker push "$REPO/$name:$VERSION" >&2
        fi
    fi
    echo "build-images: $name built in $((SECONDS - started)) s" >&2
    echo "${3}=$REPO/$name:$TAG"
}

build "$COMPONENT" docker/component.Dockerfile component
build "$SERVING" docker/serving.Dockerfile serving
