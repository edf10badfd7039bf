"""The HTTP app (FastAPI on uvicorn) of the Vertex AI custom-container contract.

Routes (the first two from AIP_HEALTH_ROUTE / AIP_PREDICT_ROUTE):

- ``GET /health``: 200 with the model version once a model is loaded, 503 before and
  whenever no valid model is loaded (with the reason); with ``inputs`` (source kind, image
  size and mode, feature count, columns accepted and ignored) when the bundle records how
  its training rows were made; ``integrity``: "verified" (every file matched the bundle's
  manifest) or "unverified" (a bundle written before sigdeploy kept one); ``refused``: the
  champion version whose bundle failed its checks, and why, while the previous model
  keeps serving;
- ``POST /predict``: ``{"instances": [...]}`` -> ``{"predictions": [{"label": ...,
  "probabilities": {...}}], "model_version": ...}``, or from a regressor (/health says
  ``"task": "regression"``) ``{"predictions": [{"value": ...}], ...}``; bad input is a 4xx
  ``{"error": ..., "instance": i, "field": name}``, never a 500: a Content-Type other than
  JSON is a 415 (none at all is taken as JSON), a body over ``max_body_bytes`` a 413, one
  not sent within ``read_timeout`` seconds a 408 (and the connection is closed);
- ``GET /stats``: training/serving skew per feature over the recent rows;
- ``POST /noop`` (only with ``noop_route``): reads the body, answers a constant: the
  framework's own cost, for the load benchmark.

Building the app loads nothing: the model is loaded by a background thread started in the
lifespan, so the server starts at once and reports 503 until the model is ready.

Small requests are decoded on the event loop and their rows micro-batched into one network
call per loop turn (``batching``); bodies over 64 KiB are handled in a worker thread so that
a big batch does not hold up health checks.

Memory per request is bounded: a body is held once (``BodyReader``), a large one is parsed a
run of instances at a time (``instances``), at most ``large_request_slots`` large ones are
decoded and run at once, and the bodies held by all requests together stay under
``max_inflight_bytes`` (a request that would pass it is a 503 with Retry-After). A 10 MiB
body then costs about 3x its size at its peak, and 16 of them at once fit a 512 MiB pod.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from components.serving.batching import MicroBatcher
from components.serving.config import ServeConfig
from components.serving.errors import BadRequest
from components.serving.loader import ModelHolder

log = logging.getLogger(__name__)

# Bodies above this are decoded in a worker thread so that one big batch does not hold up
# health checks and small requests on the event loop.
OFFLOAD_BYTES = 64 * 1024
NOOP_ANSWER = b'{"predictions":[]}'
JSON = "application/json"
# Extra headers by status: a late body leaves the connection in an unknown state, and a
# busy server tells the client when to come back.
_HEADERS = {408: {"connection": "close"}, 503: {"retry-after": "1"}}


def create_app(config: ServeConfig, holder: ModelHolder | None = None) -> FastAPI:
    holder = holder or ModelHolder(config)
    batcher = MicroBatcher()
    reader = BodyReader(config)
    large_slots = asyncio.Semaphore(config.large_request_slots)

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
            return _not_ready(holder.last_error is not None)
        held = reader.hold()
        try:
            body = await reader.read(request, held, json_only=True)
            if len(body) > OFFLOAD_BYTES:
                async with large_slots:
                    out = await run_in_threadpool(model.predict_body, body, config.max_instances)
            else:
                rows = model.decoder.decode(body, config.max_instances)
                out = model.answer(rows, await batcher.run(model, rows))
        except BadRequest as exc:
            return _json(exc.to_json(), exc.status, _HEADERS.get(exc.status))
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is there to read it
        except Exception as exc:  # noqa: BLE001 - one log record, a JSON 500, no reset
            return await _internal_error(request, exc)
        finally:
            held.release()
        return Response(out, media_type=JSON)

    async def stats(_: Request) -> Response:
        model = holder.current
        if model is None:
            return _not_ready(holder.last_error is not None)
        report = await run_in_threadpool(model.monitor.check)
        return _json({"model_name": model.name, "model_version": model.version, **report}, 200)

    async def noop(request: Request) -> Response:
        held = reader.hold()
        try:
            await reader.read(request, held, json_only=False)
        except BadRequest as exc:
            return _json(exc.to_json(), exc.status, _HEADERS.get(exc.status))
        except ClientDisconnect:
            return Response(status_code=400)
        finally:
            held.release()
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


class BodyReader:
    """Reads request bodies within their limits: ``max_body_bytes`` each (413), all held at
    once ``max_inflight_bytes`` (503), each in ``read_timeout`` seconds from its head (408),
    and, where asked, declared JSON (415).

    Deadlines are checked by one timer every ``tick`` seconds for all the bodies being read,
    not by a timer each: arming and cancelling one per request cost 10% of the throughput
    of single-row requests. All of it runs on the event loop, so nothing needs a lock.
    """

    def __init__(self, config: ServeConfig) -> None:
        self.limit = config.max_body_bytes
        self.budget = config.max_inflight_bytes
        self.held = 0  # bytes of bodies held by the requests in flight
        self.timeout = config.read_timeout
        self.tick = min(1.0, config.read_timeout / 4)
        self._due: dict[asyncio.Task[Any], float] = {}  # the tasks reading a body, by deadline
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def hold(self) -> Hold:
        return Hold(self)

    async def read(self, request: Request, hold: Hold, json_only: bool) -> bytes | bytearray:
        """The body, held once (as received when it came in one piece), taken from the
        budget through ``hold``; a BadRequest 413, 415, 408 or 503.

        An oversized body is still read (and dropped) up to a hard cap, so that the client
        gets the 413 instead of a connection reset while it is still sending.
        """
        length = kind = None
        for name, value in request.scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                kind = value
        if json_only and kind is not None and kind != b"application/json":
            check_content_type(kind.decode("latin-1"))
        limit, drain_cap = self.limit, 16 * self.limit + (1 << 26)
        declared = int(length) if length is not None and length.isdigit() else None
        if declared is not None and declared > drain_cap:
            raise _too_big(limit)
        keep = declared is None or declared <= limit  # else only drain it, for the 413
        expected = declared if keep and declared else 0
        hold.take(expected)
        body: bytes | bytearray = b""
        buffer: bytearray | None = None  # a body in several pieces, filled in place
        size = 0
        task = self._watch()
        try:
            while True:
                message = await request.receive()
                if message["type"] != "http.request":
                    raise ClientDisconnect()
                chunk, more = message.get("body", b""), message.get("more_body", False)
                end = size + len(chunk)
                if keep and end <= limit:
                    if end > hold.size:  # no Content-Length
                        hold.take(end - hold.size)
                    if size or more:
                        buffer = bytearray(expected) if buffer is None else buffer
                        buffer[size:end] = chunk
                    else:
                        body = chunk
                elif end > drain_cap:
                    break
                size = end
                if not more:
                    break
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            if hasattr(task, "uncancel"):  # Python 3.11+: the cancellation was ours
                task.uncancel()
            raise BadRequest(
                408,
                f"the request body did not arrive within {self.timeout:g} s of its head; "
                "send it at once",
                field="body",
            ) from None
        finally:
            self._due.pop(task, None)
        if size > limit:
            raise _too_big(limit)
        if buffer is not None:
            del buffer[size:]  # a body shorter than its Content-Length
            return buffer
        return body

    def _watch(self) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        self._due[task] = loop.time() + self.timeout
        if self._timer is None:
            self._timer = loop.call_later(self.tick, self._sweep)
        return task

    def _sweep(self) -> None:
        """Cancel the reads past their deadline (each ends in a 408); again in a tick."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, due in list(self._due.items()):
            if due <= now:
                del self._due[task]
                self._expired.add(task)
                task.cancel()
        self._timer = loop.call_later(self.tick, self._sweep) if self._due else None


class Hold:
    """What one request holds of a BodyReader's budget; ``release`` gives it all back."""

    __slots__ = ("reader", "size")

    def __init__(self, reader: BodyReader) -> None:
        self.reader = reader
        self.size = 0

    def take(self, size: int) -> None:
        reader = self.reader
        if reader.held + size > reader.budget:
            raise BadRequest(
                503,
                f"the server holds {reader.held} bytes of request bodies (limit "
                f"{reader.budget}); retry shortly, or send smaller requests",
                field="body",
            )
        reader.held += size
        self.size += size

    def release(self) -> None:
        self.reader.held -= self.size
        self.size = 0


def check_content_type(declared: str) -> None:
    """A 415 unless ``declared`` is JSON (application/json or any ``+json`` type) in UTF-8.
    No Content-Type at all is taken as JSON: the body is parsed strictly anyway."""
    kind, *params = (part.strip().lower() for part in declared.split(";"))
    charset = next((p.partition("=")[2].strip('"') for p in params if p.startswith("charset=")), "")
    if (kind == JSON or (kind.startswith("application/") and kind.endswith("+json"))) and (
        charset in ("", "utf-8", "utf8")
    ):
        return
    raise BadRequest(
        415,
        f"Content-Type {declared.strip()!r} is not JSON in UTF-8; "
        "send Content-Type: application/json",
        field="content-type",
    )


def _too_big(limit: int) -> BadRequest:
    return BadRequest(
        413,
        f"request body exceeds the limit of {limit} bytes; send fewer instances per request",
        field="body",
    )


def _json(obj: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(obj, separators=(",", ":")).encode(),
        status_code=status,
        media_type=JSON,
        headers=headers,
    )


def _not_ready(failed: bool = False) -> Response:
    """503 for a request with no model to answer it; ``failed``: the last load was refused
    (the health route says why)."""
    what = "no valid model is loaded (the health route says why)"
    if not failed:
        what = "no model is loaded yet"
    return _json(
        {
            "error": f"{what}; retry when the health route answers 200",
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
