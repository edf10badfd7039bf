# The serving image: `python -m components.serving` (the Vertex AI custom-container
# contract: AIP_HTTP_PORT, AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE, AIP_STORAGE_URI) on
# ONNX Runtime and numpy; no torch, pandas or scikit-learn. A container that starts before
# the first deploy waits for it (SIGDEPLOY_WAIT_FOR_CHAMPION, health 503) instead of
# exiting and crash-looping; pass --no-wait-for-champion to make that an error.
#
#   docker build -f docker/serving.Dockerfile -t sigdeploy/python-serving:0.1.0 .
#   docker run -p 8080:8080 -e AIP_STORAGE_URI=gs://BUCKET/PATH sigdeploy/python-serving:0.1.0
#
# BASE_IMAGE: the public Python image Cloud Build pulls by default; scripts/docker-setup.sh
# makes a local stand-in where no public registry can be reached (scripts/build-images.sh).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    SIGDEPLOY_WAIT_FOR_CHAMPION=true

WORKDIR /app

COPY docker/serving-requirements.txt /tmp/serving-requirements.txt
RUN pip install --no-cache-dir -r /tmp/serving-requirements.txt \
    && rm /tmp/serving-requirements.txt \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin serving

# The package root, the core (serving imports only its registry, errors, io, bundle_format
# and mlp_numpy modules, which need no torch) and the serving package.
COPY components/__init__.py components/
COPY components/core/ components/core/
COPY components/serving/ components/serving/

USER 10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "components.serving", "--host", "0.0.0.0"]
