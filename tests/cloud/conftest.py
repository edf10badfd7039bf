"""Fixtures for the cloud tests: the GCS emulator and the recording servers, on free ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud import fakes

PROJECT = "test-proj"
REGION = "us-central1"
EMULATOR_PROJECT_NUMBER = "1234"
REGISTRY = f"{REGION}-docker.pkg.dev/{PROJECT}/sigdeploy"
IMAGE = f"{REGISTRY}/python-component:0.1.0-abc1234"
SERVING = f"{REGISTRY}/python-serving:0.1.0-abc1234"
MODEL = "digits-mlp"


@pytest.fixture(scope="session")
def compiled(tmp_path_factory) -> dict[str, Path]:
    """Compiled once per session: vertex and local (JSON), kind CPU and kind --gpu (YAML)."""
    from pipelines.spec import compile_pipeline

    tmp = tmp_path_factory.mktemp("compiled")
    return {
        "vertex": compile_pipeline("vertex", tmp / "pipeline-vertex.json", image=IMAGE),
        "kind": compile_pipeline("kind", tmp / "pipeline-kind.yaml", image=IMAGE),
        "kind-gpu": compile_pipeline("kind", tmp / "pipeline-kind-gpu.yaml", image=IMAGE, gpu=True),
        "local": compile_pipeline("local", tmp / "pipeline.json"),
    }


@pytest.fixture(autouse=True)
def _offline_google(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No metadata-server probe, no real credentials, no Cloud Resource Manager lookups."""
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "BIGQUERY_EMULATOR_HOST"):
        monkeypatch.delenv(var, raising=False)
    # aiplatform asks Cloud Resource Manager for the project number when it checks who owns
    # the pipeline-root bucket (a gRPC call this machine cannot make: ~60 s of retries).
    # Answer it at that boundary with the number the GCS emulator gives its buckets.
    from google.cloud.aiplatform.utils import resource_manager_utils

    monkeypatch.setattr(
        resource_manager_utils, "get_project_number", lambda *a, **k: EMULATOR_PROJECT_NUMBER
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[str]:
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server(
        "127.0.0.1", port, in_memory=True, project_number=EMULATOR_PROJECT_NUMBER
    )
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def gcs(gcs_server: str, monkeypatch: pytest.MonkeyPatch):
    """A storage client on the emulator, wiped before each test."""
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server)
    client = storage.Client(project=PROJECT)
    for bucket in client.list_buckets():
        for blob in bucket.list_blobs():
            blob.delete()
        bucket.delete()
    return client


def _serve(server: fakes.RecordingServer) -> Iterator[fakes.RecordingServer]:
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def vertex() -> Iterator[fakes.FakeVertex]:
    yield from _serve(fakes.FakeVertex())


@pytest.fixture()
def bigquery_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[fakes.FakeBigQuery]:
    for server in _serve(fakes.FakeBigQuery()):
        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", server.host_port)
        yield server


@pytest.fixture()
def kfp_server() -> Iterator[fakes.FakeKfp]:
    yield from _serve(fakes.FakeKfp())


@pytest.fixture()
def kube_server() -> Iterator[fakes.FakeKube]:
    yield from _serve(fakes.FakeKube())


@pytest.fixture()
def uri(vertex, gcs, tmp_path, monkeypatch):
    """A Vertex registry URI on the recording server, its artifacts in the GCS emulator."""
    import tempfile

    gcs.create_bucket("reg-bucket")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the champion download cache
    return (
        f"vertex://{PROJECT}/{REGION}?artifacts=gs://reg-bucket/registry&api_endpoint={vertex.url}"
    )


@pytest.fixture()
def registry(uri):
    from components.core.registry.vertex import VertexRegistry

    return VertexRegistry.from_uri(uri, MODEL, serving_image=SERVING)
