# The component image: every pipeline task (ingest, preprocess, train, evaluate, deploy) runs
# in it on Vertex AI, on kind and under `sigdeploy run --runner docker`. A Python base, torch,
# the project with its `gcp` extra at pinned versions (docker/component-requirements.txt), a
# non-root user.
#
#   scripts/build-images.sh            (tags VERSION-GITSHA, pushes; see there for a local build)
#   docker build -f docker/component.Dockerfile -t sigdeploy/python-component:0.1.0 .
#
# BASE_IMAGE: any Debian-like image whose `python3`/`pip` on PATH are Python 3.11; the default
# is the public one that Cloud Build pulls, scripts/docker-setup.sh makes a local stand-in.
# TORCH: PyPI's Linux wheel by default, which is the CUDA build (it brings the CUDA runtime as
# nvidia-* wheels, so the Vertex GPU nodes' driver is all it needs); a CPU build passes e.g.
# TORCH=torch==2.13.0+cpu and TORCH_FIND_LINKS=<a URL that lists that wheel>.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TORCH=torch==2.13.0
ARG TORCH_FIND_LINKS=

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/sigdeploy

# torch first (the biggest layer, changed least), then the pinned dependencies, then the
# project without resolving again: a code edit rebuilds only the last layers. TORCH is pinned
# (==) by its default and by scripts/build-images.sh; hadolint cannot see through the ARG.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ${TORCH_FIND_LINKS:+--find-links "$TORCH_FIND_LINKS"} "$TORCH"

COPY docker/component-requirements.txt /tmp/component-requirements.txt
RUN pip install --no-cache-dir -r /tmp/component-requirements.txt \
    && rm /tmp/component-requirements.txt

COPY pyproject.toml README.md ./
COPY components/ components/
COPY pipelines/ pipelines/
RUN pip install --no-cache-dir --no-deps . \
    && python3 -c "import torch, kfp, google.cloud.aiplatform, components.core.steps" \
    && useradd --uid 1000 --create-home --shell /bin/bash sigdeploy

# KFP writes the task's code and outputs under the home and /tmp; Vertex mounts buckets at
# /gcs. Nothing here needs root.
USER 1000:1000
ENV HOME=/home/sigdeploy
WORKDIR /home/sigdeploy
