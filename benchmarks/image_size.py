"""The built images as figures: each image's size, and the serving container's time from
`docker run` to its first healthy answer, beside the peer a user would otherwise pick.

Needs a Docker engine with the images of `make images`. Peers:

- serving image vs the same image with torch's CPU wheel added (what serving the model in
  torch, as training does, would need): built here from a two-line Dockerfile on top of ours,
  torch from TORCH_WHEELS (default: the first folder in PIP_FIND_LINKS) or PyPI.
- start-up: our serving container vs that torch image running the same server after
  `import torch` (the least a torch-backed server does before it answers).
- component image vs the base it is built on (what the project adds: torch, kfp, Google).

    python benchmarks/image_size.py [--repeats 3]

Prints `NAME: ours=VALUE UNIT PEER=VALUE UNIT ratio=R` lines.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components import images  # noqa: E402

PEER = "sigdeploy-bench/python-serving-torch:latest"
TORCH = os.environ.get("TORCH_PIN", "torch==2.13.0")
LOCAL_BASE = os.environ.get("LOCAL_BASE", "sigdeploy-local/python:3.11-bookworm")
PUBLIC_BASE = "python:3.11-slim-bookworm"


def line(name: str, ours: float, peer_name: str, peer: float, unit: str) -> str:
    digits = 1 if unit == "s" else 0
    return (
        f"{name}: ours={ours:.{digits}f} {unit} {peer_name}={peer:.{digits}f} {unit} "
        f"ratio={ours / peer:.2f}"
    )


def docker_sdk() -> Any:
    try:
        sdk = importlib.import_module("docker")
        sdk.from_env  # noqa: B018 - the repository's docker/ folder has no from_env
    except (ImportError, AttributeError):
        sys.exit("image_size: the docker Python package is missing: pip install 'docker>=7.1'")
    return sdk


def size_mb(client: Any, name: str) -> float:
    return float(client.images.get(name).attrs["Size"]) / 1e6


def build_peer(client: Any) -> None:
    """Our serving image plus torch's CPU wheel, served to the build from 127.0.0.1."""
    wheels = (
        os.environ.get("TORCH_WHEELS") or (os.environ.get("PIP_FIND_LINKS", "").split() or [""])[0]
    )
    server = None
    find_links = ""
    if wheels and Path(wheels).is_dir():
        port = int(os.environ.get("TORCH_WHEELS_PORT", "18432"))  # fixed: a cached layer
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                wheels,
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        find_links = f"--find-links http://127.0.0.1:{port}/"
        time.sleep(0.5)
    dockerfile = (
        f"FROM {images.SERVING_IMAGE}\nUSER 0\n"
        f"RUN pip install --no-cache-dir {find_links} '{TORCH}'\nUSER 10001\n"
    )
    try:
        with tempfile.TemporaryDirectory() as ctx:
            (Path(ctx) / "Dockerfile").write_text(dockerfile)
            subprocess.run(
                ["docker", "build", "--network", "host", "-q", "-t", PEER, ctx],
                check=True,
                stdout=subprocess.DEVNULL,
                env={**os.environ, "DOCKER_BUILDKIT": "0"},
            )
    finally:
        if server is not None:
            server.terminate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_to_healthy(
    client: Any, image: str, registry: Path, entrypoint: list[str] | None
) -> float:
    port = free_port()
    started = time.perf_counter()
    container = client.containers.run(
        image,
        entrypoint=entrypoint,
        command=["--registry", "/registry", "--model-name", "digits-mlp"]
        if not entrypoint
        else None,
        detach=True,
        volumes={str(registry): {"bind": "/registry", "mode": "ro"}},
        ports={"8080/tcp": ("127.0.0.1", port)},
    )
    try:
        deadline = started + 120
        while time.perf_counter() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            time.sleep(0.02)
        raise SystemExit(f"image_size: {image} not healthy in 120 s:\n{container.logs()[-2000:]!r}")
    finally:
        container.remove(force=True)


def make_registry(root: Path) -> Path:
    """A registry with one digits champion, trained now with `sigdeploy run` (3 epochs)."""
    registry = root / "registry"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("sigdeploy")),
            "run",
            "--registry",
            str(registry),
            "--output-dir",
            str(root / "runs"),
            "--quiet",
            "--param",
            "max_epochs=3",
        ],
        cwd=root,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # start-up is measured here, not permissions (tests/containers checks those)
    subprocess.run(["chmod", "-R", "a+rX", str(registry)], check=True)
    return registry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="start-ups per image (median)")
    parser.add_argument(
        "--registry",
        help="a registry with a digits-mlp champion (default: train one now with `sigdeploy run`)",
    )
    args = parser.parse_args()
    sdk = docker_sdk()
    client = sdk.from_env()
    for name in (images.COMPONENT_IMAGE, images.SERVING_IMAGE):
        try:
            client.images.get(name)
        except sdk.errors.ImageNotFound:
            sys.exit(f"image_size: {name} is not built; run `make images`")
    build_peer(client)
    base = next((b for b in (LOCAL_BASE, PUBLIC_BASE) if _has(client, sdk, b)), None)

    print(
        line(
            "image_serving_size",
            size_mb(client, images.SERVING_IMAGE),
            "serving_with_torch",
            size_mb(client, PEER),
            "MB",
        )
    )
    if base is not None:
        print(
            line(
                "image_component_size",
                size_mb(client, images.COMPONENT_IMAGE),
                "its_base",
                size_mb(client, base),
                "MB",
            )
        )

    with tempfile.TemporaryDirectory(prefix="image-size-") as tmp:
        registry = Path(args.registry) if args.registry else make_registry(Path(tmp))
        ours, peer = [], []
        torch_first = [
            "python",
            "-c",
            "import torch, runpy, sys; sys.argv = ['serve', '--host', "
            "'0.0.0.0', '--registry', '/registry', '--model-name', 'digits-mlp']; "
            "runpy.run_module('components.serving', run_name='__main__')",
        ]
        for _ in range(args.repeats):
            ours.append(start_to_healthy(client, images.SERVING_IMAGE, registry, None))
            peer.append(start_to_healthy(client, PEER, registry, torch_first))
    print(
        line(
            "serve_start_to_healthy",
            statistics.median(ours),
            "serving_with_torch",
            statistics.median(peer),
            "s",
        )
    )
    client.close()
    return 0


def _has(client: Any, sdk: Any, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except sdk.errors.ImageNotFound:
        return False


if __name__ == "__main__":
    sys.exit(main())
