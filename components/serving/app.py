"""The HTTP app (FastAPI on uvicorn) of the Vertex AI custom-container contract.

Routes (the first two from AIP_HEALTH_ROUTE / AIP_PREDICT_ROUTE):

- ``GET /health``: 200 with the model version once a model is loaded, 503 before; with
  ``inputs`` (source kind, image size and mode, feature count, columns accepted and ignored)
  when the bundle records how its training rows were made;
- ``POST /predict``: ``{"instances": [...]}`` -> ``{"predictions": [{"label": ...,
  "probabilities": {...}}], "model_version": ...}``; bad input is a 4xx
  ``{"error": ..., "instance": i, "field": name}``, never a 500;
- ``GET /stats``: training/serving skew per feature over the recent rows;
- ``POST /noop`` (only with ``noop_route``): reads the body, answers a constant: the
  framework's own cost, for the load benchmark.

Building the app loads nothing: the model is loaded by a background thread started in the
lifespan, so the server starts at once and reports 503 until the model is ready.

Small requests are decoded on the event loop and their rows micro-batched into one network
call per loop turn (``batching``); bodies over 64 KiB are handled in a worker thread so that
a big batch does not hold up health checks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from components.serving.batching import MicroBatcher
from components.serving.config import ServeConfig
from components.serving.instances import BadRequest
from components.serving.loader import ModelHolder

log = logging.getLogger(__name__)

# Bodies above this are decoded in a worker thread so that one big batch does not hold up
# health checks and small requests on the event loop.
OFFLOAD_BYTES = 64 * 1024
NOOP_ANSWER = b'{"predictions":[]}'
JSON = "application/json"


def create_app(config: ServeConfig, holder: ModelHolder | None = None) -> FastAPI:
    holder = holder or ModelHolder(config)
    batcher = MicroBatcher()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        holder.start()
        try:
            yield
        finally:
            holder.stop()

    app = FastAPI(
        title="sigdeploy prediction server",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.holder = holder
    app.state.config = config

    async def health(_: Request) -> Response:
        return _json(holder.status(), 200 if holder.current is not None else 503)

    async def predict(request: Request) -> Response:
        model = holder.current  # taken once: this request is answered by this model only
        if model is None:
            return _not_ready()
        try:
            body = await read_body(request, config.max_body_bytes)
            if len(body) > OFFLOAD_BYTES:
                out = await run_in_threadpool(model.predict_body, body, config.max_instances)
            else:
                rows = model.decoder.decode(body, config.max_instances)
                out = model.answer(rows, await batcher.run(model, rows))
        except BadRequest as exc:
            return _json(exc.to_json(), exc.status)
        return Response(out, media_type=JSON)

    async def stats(_: Request) -> Response:
        model = holder.current
        if model is None:
            return _not_ready()
        report = await run_in_threadpool(model.monitor.check)
        return _json({"model_name": model.name, "model_version": model.version, **report}, 200)

    async def noop(request: Request) -> Response:
        try:
            await read_body(request, config.max_body_bytes)
        except BadRequest as exc:
            return _json(exc.to_json(), exc.status)
        return Response(NOOP_ANSWER, media_type=JSON)

    # Plain Starlette routes: the handlers parse and answer raw bytes themselves, so
    # FastAPI's validation layer would only add cost.
    app.add_route(config.health_route, health, methods=["GET"])
    app.add_route(config.predict_route, predict, methods=["POST"])
    app.add_route("/stats", stats, methods=["GET"])
    if config.noop_route:
        app.add_route("/noop", noop, methods=["POST"])
    app.add_exception_handler(Exception, _internal_error)
    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 BadRequest once it passes ``limit`` bytes.

    An oversized body is still read (and dropped) up to a hard cap, so that the client
    gets the 413 instead of a connection reset while it is still sending.
    """
    drain_cap = 16 * limit + (1 << 26)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > drain_cap:
        raise _too_big(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > drain_cap:
            break
    if size > limit:
        raise _too_big(limit)
    return b"".join(chunks)


def _too_big(limit: int) -> BadRequest:
    return BadRequest(
        413,
        f"request body exceeds the limit of {limit} bytes; send fewer instances per request",
        field="body",
    )


def _json(obj: Any, status: int) -> Response:
    return Response(
        json.dumps(obj, separators=(",", ":")).encode(), status_code=status, media_type=JSON
    )


def _not_ready() -> Response:
    return _json(
        {
            "error": "no model is loaded yet; retry when the health route answers 200",
            "instance": None,
            "field": None,
        },
        503,
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error(
        "unexpected error on %s %s",
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return _json(
        {
            "error": f"internal error ({type(exc).__name__}); see the server log",
            "instance": None,
            "field": None,
        },
        500,
    )
