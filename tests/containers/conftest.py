"""Fixtures for the container tests: the Docker engine and the two images `make images` built.

Every test here is marked `containers`. Where the engine does not answer or an image is
missing, the tests are skipped with the reason on a developer's machine, and FAIL under CI
(CI=true), where .ci/run has set up the engine and built the images: a container test that
cannot run is a broken CI, not a pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from components import images

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COMPONENT_UID = 1000  # docker/component.Dockerfile's USER
SERVING_UID = 10001  # docker/serving.Dockerfile's USER


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.containers)


def cannot_run(reason: str) -> None:
    """Fail under CI, skip elsewhere, naming what to do."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"container test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        sdk = importlib.import_module("docker")
        sdk.from_env  # noqa: B018 - the repository's docker/ folder has no from_env
    except (ImportError, AttributeError):
        cannot_run("the docker Python package is missing: pip install -e '.[dev]'")
    try:
        client = sdk.from_env()
        client.ping()
    except sdk.errors.DockerException as exc:
        cannot_run(f"no Docker engine answers ({exc}); run `make docker-setup`")
    yield client
    client.close()


def _image(client: Any, name: str) -> str:
    try:
        client.images.get(name)
    except Exception:  # docker.errors.ImageNotFound
        cannot_run(f"image {name} is not built; run `make images`")
    return name


@pytest.fixture(scope="session")
def component_image(docker_client: Any) -> str:
    return _image(docker_client, images.COMPONENT_IMAGE)


@pytest.fixture(scope="session")
def serving_image(docker_client: Any) -> str:
    return _image(docker_client, images.SERVING_IMAGE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    url: str, until: Callable[[httpx.Response], bool], timeout: float = 60.0, container: Any = None
) -> httpx.Response:
    """Poll ``url`` until ``until(response)``; fail with the container's log otherwise."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            last = response = httpx.get(url, timeout=2.0)
            if until(response):
                return response
        if container is not None:
            container.reload()
            if container.status == "exited":
                break
        time.sleep(0.1)
    log = container.logs().decode(errors="replace")[-3000:] if container is not None else ""
    pytest.fail(f"{url}: no wanted answer in {timeout:.0f} s (last: {last!r})\n{log}")


@pytest.fixture()
def run_container(docker_client: Any) -> Iterator[Callable[..., Any]]:
    """Start a detached container; every one started is removed after the test."""
    started: list[Any] = []

    def start(image: str, **kwargs: Any) -> Any:
        container = docker_client.containers.run(image, detach=True, **kwargs)
        started.append(container)
        return container

    yield start
    for container in started:
        with contextlib.suppress(Exception):
            container.remove(force=True)


SIGDEPLOY = str(Path(sys.executable).with_name("sigdeploy"))


def run_cli(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    result = subprocess.run(
        [SIGDEPLOY, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return result, time.perf_counter() - started


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def docker_runs(tmp_path_factory: pytest.TempPathFactory, component_image: str) -> Any:
    """`sigdeploy run --runner docker` twice on the embedded digits data: (work folder, first
    result, second result, the versions' digests and the champion pointer after the first).
    The registry it leaves (written by the component image's uid) is what the serving tests
    serve; they serve copies, so that the assertions here hold whatever runs first."""
    work = tmp_path_factory.mktemp("docker-e2e")
    common = ["run", "--runner", "docker", "--registry", str(work / "registry")]
    # the first run faces the majority-class baseline, which a trained model beats: it deploys
    common += ["--output-dir", str(work / "runs"), "--json", "--param", "baseline=majority"]
    first, first_s = run_cli(*common, cwd=work)
    champion_dir = work / "registry" / "digits-mlp"
    before = tree_digest(champion_dir / "versions") if champion_dir.exists() else {}
    pointer = (champion_dir / "champion").read_bytes() if champion_dir.exists() else b""
    second, second_s = run_cli(*common, cwd=work)
    print(f"docker e2e: first run {first_s:.1f} s, second run {second_s:.1f} s")
    (work / "timings.json").write_text(json.dumps({"first_s": first_s, "second_s": second_s}))
    return work, first, second, before, pointer
