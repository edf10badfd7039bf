"""AIP_STORAGE_URI: the bundle from a local path, from gs:// (a local GCS emulator that the
real google-cloud-storage client talks to), and a clear error when it is not there."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from components.core.model.bundle import load_bundle
from components.serving.config import ServeConfig


def _check_predictions(client, bundle, digits_test):
    offline = load_bundle(bundle)
    answer = client.post("/predict", json={"instances": digits_test.to_numpy()[:50].tolist()})
    assert answer.status_code == 200
    proba = np.array(
        [
            [p["probabilities"][str(c)] for c in offline.classes]
            for p in answer.json()["predictions"]
        ]
    )
    assert np.abs(proba - offline.predict_proba(digits_test.iloc[:50])).max() < 1e-6
    return answer.json()


def test_storage_uri_local_path(digits_bundles, digits_test, client_for, helpers):
    env = {"AIP_STORAGE_URI": str(digits_bundles[1]), "AIP_HTTP_PORT": str(helpers.free_port())}
    config = ServeConfig.from_env(env, registry="/nonexistent")  # the registry is not used
    client = client_for(config)
    health = client.get("/health").json()
    assert health["model_version"].startswith("sha256:") and health["backend"] == "onnx"
    assert (
        _check_predictions(client, digits_bundles[1], digits_test)["model_version"]
        == health["model_version"]
    )


def test_missing_storage_uri_waiting_answers_503_until_it_appears(
    tmp_path, digits_bundles, client_for, helpers
):
    config = ServeConfig(
        storage_uri=str(tmp_path / "absent"),
        wait_for_champion=True,  # without it the start fails (test_startup.py)
        poll_seconds=0.05,
        port=helpers.free_port(),
    )
    client = client_for(config, wait=False)
    helpers.wait_for(lambda: "last_error" in client.get("/health").json(), 10, "the error")
    health = client.get("/health")
    assert health.status_code == 503
    assert (
        "AIP_STORAGE_URI" in health.json()["last_error"]
        and "no such directory" in health.json()["last_error"]
    )
    assert client.post("/predict", json={"instances": [[0] * 64]}).status_code == 503
    shutil.copytree(digits_bundles[0], tmp_path / "absent")
    helpers.wait_for(lambda: client.get("/health").status_code == 200, 90, "the bundle")
    assert "last_error" not in client.get("/health").json()


@pytest.fixture()
def gcs_emulator(monkeypatch, helpers):
    server_mod = pytest.importorskip("gcp_storage_emulator.server")
    port = helpers.free_port()
    server = server_mod.create_server("127.0.0.1", port, in_memory=True)
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    try:
        yield
    finally:
        server.stop()


def test_storage_uri_gs_is_copied_down(
    gcs_emulator, digits_bundles, digits_test, client_for, helpers
):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test-project", credentials=AnonymousCredentials())
    bucket = client.create_bucket("models")
    for path in digits_bundles[2].iterdir():
        bucket.blob(f"digits/v7/model/{path.name}").upload_from_filename(str(path))
    bucket.blob("digits/v7/other.txt").upload_from_string("outside the prefix")
    config = ServeConfig(storage_uri="gs://models/digits/v7/model", port=helpers.free_port())
    server = client_for(config)
    _check_predictions(server, digits_bundles[2], digits_test)


def test_storage_uri_gs_with_no_bundle_there_is_one_line(gcs_emulator, client_for, helpers):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    storage.Client(project="test-project", credentials=AnonymousCredentials()).create_bucket(
        "models"
    )
    config = ServeConfig(
        storage_uri="gs://models/digits/v9", poll_seconds=0.05, port=helpers.free_port()
    )
    client = client_for(config, wait=False)
    helpers.wait_for(lambda: "last_error" in client.get("/health").json(), 10, "the error")
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["last_error"] == (
        "storage URI (--storage-uri or AIP_STORAGE_URI): 'gs://models/digits/v9': no objects "
        "under this prefix; nothing to download"
    )


def test_the_gs_download_imports_no_pandas_torch_or_sklearn():
    """Serving copies a gs:// bundle with platforms/gcp.py, which the serving image can run."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import components.serving.app, components.core.platforms.gcp, google.cloud.storage\n"
        "print(sorted(m for m in ('torch', 'pandas', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
