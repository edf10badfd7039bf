# syntax=docker/dockerfile:1.7
# The component image: every pipeline task (ingest, preprocess, train, evaluate, deploy) runs
# in it on Vertex AI and on kind. CUDA PyTorch base; the project installed with its `gcp`
# extra at pinned versions (docker/component-requirements.txt); a non-root user.
#
#   scripts/build-images.sh            (tags VERSION-GITSHA, pushes with docker buildx)
#   docker buildx build -f docker/component.Dockerfile -t sigdeploy/python-component:0.1.0 .
#
# BASE_IMAGE must ship torch within pyproject's range (torch>=2.4) so pip keeps it instead of
# pulling a second, multi-GB CUDA wheel.
ARG BASE_IMAGE=pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/sigdeploy

# Dependencies first (pinned in docker/component-requirements.txt, inside pyproject's ranges),
# so code edits reuse this layer; then the project itself without resolving again.
COPY docker/component-requirements.txt /tmp/component-requirements.txt
RUN pip install --no-cache-dir -r /tmp/component-requirements.txt \
    && rm /tmp/component-requirements.txt

COPY pyproject.toml README.md ./
COPY components/ components/
COPY pipelines/ pipelines/
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import torch, kfp, google.cloud.aiplatform, components.core.steps" \
    && useradd --uid 1000 --create-home --shell /bin/bash sigdeploy

# KFP writes the task's code and outputs under the home and /tmp; Vertex mounts buckets at
# /gcs. Nothing here needs root.
USER 1000:1000
ENV HOME=/home/sigdeploy
WORKDIR /home/sigdeploy
