"""Fixtures for the serving tests: tiny real bundles trained with the core, registries, and
a real uvicorn server on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.core.registry import LocalRegistry
from components.serving.config import ServeConfig

LABEL = "label"
MODEL = "digits-mlp"


@pytest.fixture(scope="session")
def digits_bundles(
    tmp_path_factory: pytest.TempPathFactory, digits_parts, bundle_trainer
) -> list[Path]:
    """Three digits bundles that differ (seeds and widths), so that their answers do too."""
    root = tmp_path_factory.mktemp("digits-bundles")
    train, val = digits_parts["train"], digits_parts["val"]
    return [
        bundle_trainer(root / f"b{i}", train, val, seed=i, hidden=hidden, max_epochs=3)
        for i, hidden in enumerate([(64, 32), (48,), (64, 32)])
    ]


@pytest.fixture(scope="session")
def digits_test(digits_parts) -> pd.DataFrame:
    return digits_parts["test"].drop(columns=LABEL)


def mixed_frame(
    n: int, seed: int, shift: float = 0.0, colors: tuple[float, ...] = (0.5, 0.3, 0.2)
) -> pd.DataFrame:
    """Continuous numeric features (distinct deciles) and one categorical, with gaps."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(0.0, 1.0, n) + shift,
            "x2": rng.normal(3.0, 2.0, n),
            "color": rng.choice(["red", "green", "blue"], size=n, p=list(colors)),
        }
    )
    frame.loc[rng.choice(n, n // 20, replace=False), "x2"] = np.nan
    frame[LABEL] = np.where(frame["x1"] + (frame["color"] == "red") > 0.5, "yes", "no")
    return frame


@pytest.fixture(scope="session")
def mixed_bundle(tmp_path_factory: pytest.TempPathFactory, bundle_trainer) -> Path:
    frame = mixed_frame(1200, seed=0)
    path = tmp_path_factory.mktemp("mixed") / "bundle"
    return bundle_trainer(
        path, frame.iloc[:900], frame.iloc[900:], seed=0, hidden=(16,), max_epochs=3, name="mixed"
    )


@pytest.fixture()
def registry(tmp_path: Path, digits_bundles: list[Path]) -> LocalRegistry:
    reg = LocalRegistry(tmp_path / "registry", MODEL)
    reg.register(digits_bundles[0], {"deploy": True})
    return reg


@pytest.fixture()
def config_for(tmp_path: Path) -> Callable[..., ServeConfig]:
    def make(registry: LocalRegistry | None = None, **changes) -> ServeConfig:
        base = ServeConfig(
            registry=str(registry.root if registry else tmp_path / "empty"),
            model_name=MODEL,
            poll_seconds=0.05,
            port=free_port(),
        )
        return base.with_(**changes)

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def running_server(config: ServeConfig) -> Iterator[str]:
    """The app on real uvicorn in a thread; yields its base URL once it answers."""
    import uvicorn

    from components.serving.app import create_app
    from components.serving.server import uvicorn_settings

    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_settings(config))
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 20, "uvicorn to start")
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture()
def client_for() -> Iterator[Callable[..., object]]:
    """An in-process TestClient (lifespan running) whose model is loaded."""
    from fastapi.testclient import TestClient

    from components.serving.app import create_app

    stack = contextlib.ExitStack()

    def make(config: ServeConfig, wait: bool = True) -> TestClient:
        client = stack.enter_context(TestClient(create_app(config)))
        if wait:
            wait_for(
                lambda: client.get(config.health_route).status_code == 200, 30, "the model to load"
            )
        return client

    with stack:
        yield make


@pytest.fixture(scope="session")
def helpers():
    """Plain helper functions for tests (conftest modules are not imported directly)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        wait_for=wait_for,
        running_server=running_server,
        mixed_frame=mixed_frame,
        free_port=free_port,
    )
