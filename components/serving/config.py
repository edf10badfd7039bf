"""Serving configuration: one frozen dataclass, read from the environment once at start-up.

The Vertex AI custom-container contract sets ``AIP_HTTP_PORT``, ``AIP_HEALTH_ROUTE``,
``AIP_PREDICT_ROUTE`` and ``AIP_STORAGE_URI``; the ``SIGDEPLOY_*`` variables tune the rest.
Command-line flags win over the environment, which wins over the defaults below; the port
and routes default to what the platforms declare (components/core/serving_contract.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from components.core import serving_contract as contract
from components.core.errors import ConfigError
from components.core.registry.base import DEFAULT_MODEL_NAME

BACKENDS = ("auto", "onnx", "numpy")


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # interface to bind; the serving image passes 0.0.0.0
    port: int = contract.SERVING_PORT  # AIP_HTTP_PORT
    health_route: str = contract.HEALTH_ROUTE  # AIP_HEALTH_ROUTE
    predict_route: str = contract.PREDICT_ROUTE  # AIP_PREDICT_ROUTE
    storage_uri: str = ""  # AIP_STORAGE_URI: a bundle at gs://... or a path; empty = registry
    registry: str = "registry"  # local registry root whose champion is served
    model_name: str = DEFAULT_MODEL_NAME  # model name inside the registry
    # start even with nothing to serve yet (no champion in the registry, no bundle at a
    # local storage_uri) and answer 503 until it appears; off: such a start is an error
    wait_for_champion: bool = False
    max_instances: int = 10_000  # more instances in one request is a 413
    max_body_bytes: int = 10 * 1024 * 1024  # a larger request body is a 413
    # request bodies held at once, all requests together: one that would pass it is a 503
    # (16 bodies of 10 MiB fit: the server then peaks at ~310 MB, of a kind pod's 512 MiB)
    max_inflight_bytes: int = 160 * 1024 * 1024
    large_request_slots: int = 2  # bodies over 64 KiB decoded and run at once; others wait
    # seconds a client has to send a request's head (from its connection or last response),
    # and then its body; past them the connection is closed (a 408 for a late body)
    read_timeout: float = 10.0
    backend: str = "auto"  # auto = ONNX Runtime, numpy if it is missing or disagrees
    threads: int = 1  # intra-op threads for the network; requests already run concurrently
    poll_seconds: float = 1.0  # how often the champion pointer is checked for a new deploy
    drift_window: int = 5_000  # recent rows kept for the training/serving skew report
    drift_min_rows: int = 200  # fewer rows than this in the window: report, but never warn
    psi_threshold: float = 0.2  # PSI above this counts as drift (0.2 is the usual "shifted")
    shift_threshold: float = 0.5  # |mean shift| in training std units above this is drift
    drift_check_seconds: float = 10.0  # how often the background thread logs drift warnings
    noop_route: bool = False  # add POST /noop (a constant answer): the framework floor
    access_log: bool = False  # uvicorn access log; off because it costs per request

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.port < 65536:
            problems.append(f"port={self.port} must be 1-65535")
        for name in ("health_route", "predict_route"):
            if not str(getattr(self, name)).startswith("/"):
                problems.append(f"{name}={getattr(self, name)!r} must start with '/'")
        if self.health_route == self.predict_route:
            problems.append("health and predict routes must differ")
        for name in (
            "max_instances",
            "max_body_bytes",
            "large_request_slots",
            "threads",
            "drift_window",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if self.max_inflight_bytes < self.max_body_bytes:
            problems.append(
                f"max_inflight_bytes={self.max_inflight_bytes} must be >= "
                f"max_body_bytes={self.max_body_bytes}"
            )
        for name in (
            "poll_seconds",
            "psi_threshold",
            "shift_threshold",
            "drift_check_seconds",
            "read_timeout",
        ):
            if not getattr(self, name) > 0:
                problems.append(f"{name}={getattr(self, name)} must be > 0")
        if self.drift_min_rows < 0:
            problems.append(f"drift_min_rows={self.drift_min_rows} must be >= 0")
        if self.backend not in BACKENDS:
            problems.append(f"backend={self.backend!r} must be one of {', '.join(BACKENDS)}")
        if problems:
            raise ConfigError("serving configuration: " + "; ".join(problems))

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> ServeConfig:
        """Defaults, then the environment, then ``overrides`` that are not None."""
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in ENV_VARS.items():
            raw = environ.get(var, "").strip()
            if raw:
                values[name] = _parse(var, raw, types[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> ServeConfig:
        return replace(self, **changes)


# field -> environment variable; read only by ServeConfig.from_env at start-up.
ENV_VARS = {
    "port": contract.PORT_ENV,
    "health_route": contract.HEALTH_ROUTE_ENV,
    "predict_route": contract.PREDICT_ROUTE_ENV,
    "storage_uri": contract.STORAGE_URI_ENV,
    "registry": "SIGDEPLOY_REGISTRY",
    "model_name": "SIGDEPLOY_MODEL_NAME",
    "wait_for_champion": "SIGDEPLOY_WAIT_FOR_CHAMPION",
    "max_instances": "SIGDEPLOY_SERVE_MAX_INSTANCES",
    "max_body_bytes": "SIGDEPLOY_SERVE_MAX_BODY_BYTES",
    "max_inflight_bytes": "SIGDEPLOY_SERVE_MAX_INFLIGHT_BYTES",
    "large_request_slots": "SIGDEPLOY_SERVE_LARGE_REQUEST_SLOTS",
    "read_timeout": "SIGDEPLOY_SERVE_READ_TIMEOUT",
    "backend": "SIGDEPLOY_SERVE_BACKEND",
    "threads": "SIGDEPLOY_SERVE_THREADS",
    "poll_seconds": "SIGDEPLOY_SERVE_POLL_SECONDS",
    "drift_window": "SIGDEPLOY_SERVE_DRIFT_WINDOW",
    "drift_min_rows": "SIGDEPLOY_SERVE_DRIFT_MIN_ROWS",
    "psi_threshold": "SIGDEPLOY_SERVE_PSI_THRESHOLD",
    "shift_threshold": "SIGDEPLOY_SERVE_SHIFT_THRESHOLD",
    "drift_check_seconds": "SIGDEPLOY_SERVE_DRIFT_CHECK_SECONDS",
    "noop_route": "SIGDEPLOY_SERVE_NOOP_ROUTE",
}


def _parse(var: str, raw: str, kind: Any) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError:
        raise ConfigError(
            f"environment variable {var}={raw!r}: not a valid {kind}; fix or unset it"
        ) from None
    return raw
