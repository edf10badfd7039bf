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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry", help="local registry directory (default: $SIGDEPLOY_REGISTRY or ./registry)"
    )
    p.add_argument(
        "--model-name",
        help="model name in the registry (default: $SIGDEPLOY_MODEL_NAME or digits-mlp)",
    )
    p.add_argument(
        "--storage-uri",
        help="serve this bundle (gs://... or a directory) instead "
        "of the registry champion (default: $AIP_STORAGE_URI)",
    )
    p.add_argument("--port", type=int, help="TCP port (default: $AIP_HTTP_PORT or 8080)")
    p.add_argument("--host", help="interface to bind (default: 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--max-instances", type=int, help="instances per request (default 10000)")
    p.add_argument("--max-body-bytes", type=int, help="request body size (default 10 MiB)")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="network runtime (default auto: ONNX Runtime, numpy when it is missing or disagrees)",
    )
    p.add_argument("--threads", type=int, help="intra-op threads of the network (default 1)")
    p.add_argument(
        "--poll-seconds", type=float, help="how often to look for a new champion (default 1)"
    )
    p.add_argument("--drift-window", type=int, help="recent rows kept for /stats (default 5000)")
    p.add_argument("--psi-threshold", type=float, help="PSI that counts as drift (default 0.2)")
    p.add_argument(
        "--shift-threshold",
        type=float,
        help="mean shift in training std units that counts as drift (default 0.5)",
    )
    p.add_argument(
        "--noop-route",
        action="store_true",
        default=None,
        help="add POST /noop answering a constant (benchmarks)",
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log every request (off by default: it costs per request)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default info)",
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
        "port",
        "host",
        "max_instances",
        "max_body_bytes",
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

    config = config_from_args(args, os.environ)
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
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level=args.log_level,
        access_log=config.access_log,
        timeout_graceful_shutdown=5,
    )
    return 0
