"""`sigdeploy serve`: run the prediction server on the registry champion (or a bundle).

The same entry point is the serving image's (``python -m components.serving``). Flags win
over the environment (AIP_* of the Vertex AI contract, SIGDEPLOY_*), which wins over the
defaults of :class:`components.serving.config.ServeConfig`.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping

from components.serving.config import BACKENDS, ServeConfig

log = logging.getLogger(__name__)


# Every option's help names its default, taken from ServeConfig so that the two never differ.
DEFAULTS = ServeConfig()
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry",
        help=f"local registry directory (default: $SIGDEPLOY_REGISTRY or ./{DEFAULTS.registry})",
    )
    p.add_argument(
        "--model-name",
        help="model name in the registry "
        f"(default: $SIGDEPLOY_MODEL_NAME or {DEFAULTS.model_name})",
    )
    p.add_argument(
        "--storage-uri",
        help="serve this bundle (gs://... or a directory) instead of the registry champion "
        "(default: $AIP_STORAGE_URI or none)",
    )
    p.add_argument(
        "--wait-for-champion",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start even with no champion yet (or no bundle at a local --storage-uri) and "
        "answer 503 until one is deployed; without it such a start is an error "
        "(default: $SIGDEPLOY_WAIT_FOR_CHAMPION or off; on in the serving image)",
    )
    p.add_argument(
        "--port", type=int, help=f"TCP port (default: $AIP_HTTP_PORT or {DEFAULTS.port})"
    )
    p.add_argument(
        "--host",
        help=f"interface to bind (default: {DEFAULTS.host}; the serving image passes 0.0.0.0)",
    )
    p.add_argument(
        "--max-instances",
        type=int,
        help="instances per request "
        f"(default: $SIGDEPLOY_SERVE_MAX_INSTANCES or {DEFAULTS.max_instances})",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        help="request body size in bytes "
        f"(default: $SIGDEPLOY_SERVE_MAX_BODY_BYTES or {DEFAULTS.max_body_bytes}, 10 MiB)",
    )
    p.add_argument(
        "--max-inflight-bytes",
        type=int,
        help="request bodies held at once, all requests together; past it a request is a 503 "
        f"(default: $SIGDEPLOY_SERVE_MAX_INFLIGHT_BYTES or {DEFAULTS.max_inflight_bytes}, "
        "160 MiB)",
    )
    p.add_argument(
        "--large-request-slots",
        type=int,
        help="requests over 64 KiB decoded and predicted at once; the others wait "
        f"(default: $SIGDEPLOY_SERVE_LARGE_REQUEST_SLOTS or {DEFAULTS.large_request_slots})",
    )
    p.add_argument(
        "--read-timeout",
        type=float,
        help="seconds a client has to send a request's head, and then its body, before the "
        "connection is closed "
        f"(default: $SIGDEPLOY_SERVE_READ_TIMEOUT or {DEFAULTS.read_timeout:g})",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="network runtime; auto: ONNX Runtime, numpy when it is missing or disagrees "
        f"(default: $SIGDEPLOY_SERVE_BACKEND or {DEFAULTS.backend})",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="intra-op threads of the network "
        f"(default: $SIGDEPLOY_SERVE_THREADS or {DEFAULTS.threads})",
    )
    p.add_argument(
        "--poll-seconds",
        type=float,
        help="how often to look for a new champion "
        f"(default: $SIGDEPLOY_SERVE_POLL_SECONDS or {DEFAULTS.poll_seconds:g})",
    )
    p.add_argument(
        "--drift-window",
        type=int,
        help="recent rows kept for /stats "
        f"(default: $SIGDEPLOY_SERVE_DRIFT_WINDOW or {DEFAULTS.drift_window})",
    )
    p.add_argument(
        "--psi-threshold",
        type=float,
        help="PSI that counts as drift "
        f"(default: $SIGDEPLOY_SERVE_PSI_THRESHOLD or {DEFAULTS.psi_threshold:g})",
    )
    p.add_argument(
        "--shift-threshold",
        type=float,
        help="mean shift in training std units that counts as drift "
        f"(default: $SIGDEPLOY_SERVE_SHIFT_THRESHOLD or {DEFAULTS.shift_threshold:g})",
    )
    p.add_argument(
        "--noop-route",
        action="store_true",
        default=None,
        help="add POST /noop answering a constant, for benchmarks "
        "(default: $SIGDEPLOY_SERVE_NOOP_ROUTE or off)",
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log every request (default: off, since it costs per request)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=LOG_LEVELS,
        help="server log level (default: %(default)s)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "serve",
        help="serve the champion over HTTP (Vertex AI custom-container contract)",
        description="Serve the registry champion (hot-swapped on every deploy) or the bundle at "
        "AIP_STORAGE_URI: GET /health, POST /predict, GET /stats.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> ServeConfig:
    names = (
        "registry",
        "model_name",
        "storage_uri",
        "wait_for_champion",
        "port",
        "host",
        "max_instances",
        "max_body_bytes",
        "max_inflight_bytes",
        "large_request_slots",
        "read_timeout",
        "backend",
        "threads",
        "poll_seconds",
        "drift_window",
        "psi_threshold",
        "shift_threshold",
        "noop_route",
        "access_log",
    )
    return ServeConfig.from_env(environ, **{n: getattr(args, n, None) for n in names})


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from components.serving.app import create_app
    from components.serving.server import uvicorn_settings

    config = config_from_args(args, os.environ)
    app = create_app(config)  # checks that there is a model to serve (or waits for one)
    level = getattr(logging, args.log_level.upper())
    logging.getLogger("components.serving").setLevel(level)
    source = config.storage_uri or f"registry {config.registry} model {config.model_name}"
    log.info(
        "serving %s on http://%s:%d (health %s, predict %s)",
        source,
        config.host,
        config.port,
        config.health_route,
        config.predict_route,
    )
    uvicorn.run(app, log_level=args.log_level, **uvicorn_settings(config))
    return 0
