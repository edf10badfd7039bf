"""The serving image as a container, serving the champion that the component image's tasks
wrote (another uid: the kind permission case), checked over the container's port: health,
predict, strict 4xx, a hot swap after a new deploy, the AIP_* variables and AIP_STORAGE_URI
with a local path; and through the aiplatform SDK's own stand-in for a Vertex endpoint
(LocalModel.deploy_to_local_endpoint: Vertex's environment and artifact mount)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests.containers.conftest import COMPONENT_UID, SERVING_UID, free_port, wait_for

pytestmark = [pytest.mark.slow]

MODEL = "digits-mlp"
MOUNT = "/registry"


@pytest.fixture(scope="module")
def digits_rows() -> tuple[list[list[float]], np.ndarray]:
    data = load_digits()
    return data.data[:20].tolist(), data.target[:20]


@pytest.fixture()
def registry_copy(docker_runs, tmp_path) -> Path:
    """A copy of the registry the docker pipeline wrote, owners and modes kept (cp -a)."""
    work, first, *_ = docker_runs
    assert first.returncode == 0, f"the docker pipeline run failed:\n{first.stderr[-3000:]}"
    copy = tmp_path / "registry"
    subprocess.run(["cp", "-a", str(work / "registry"), str(copy)], check=True)
    return copy


def serve(
    run_container, image: str, registry: Path, env: dict[str, str] | None = None, port: int = 8080
) -> tuple[Any, str]:
    host_port = free_port()
    container = run_container(
        image,
        command=["--registry", MOUNT, "--model-name", MODEL],
        environment=env or {},
        volumes={str(registry): {"bind": MOUNT, "mode": "ro"}},
        ports={f"{port}/tcp": ("127.0.0.1", host_port)},
    )
    return container, f"http://127.0.0.1:{host_port}"


def healthy(response: httpx.Response) -> bool:
    return response.status_code == 200


def test_serves_the_champion_the_component_container_wrote(
    registry_copy, serving_image, run_container, digits_rows
):
    versions = registry_copy / MODEL / "versions"
    assert {p.stat().st_uid for p in versions.rglob("*")} == {COMPONENT_UID}
    container, url = serve(run_container, serving_image, registry_copy)
    container.reload()
    assert container.attrs["Config"]["User"] == str(SERVING_UID)
    health = wait_for(f"{url}/health", healthy, container=container).json()
    assert (health["status"], health["model_name"], health["model_version"]) == ("ok", MODEL, "1")
    assert health["features"] == 64 and health["classes"] == 10
    rows, labels = digits_rows
    answer = httpx.post(f"{url}/predict", json={"instances": rows}, timeout=10)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert len(predictions) == len(rows)
    assert sum(p["label"] == y for p, y in zip(predictions, labels, strict=True)) >= 18
    assert "PermissionError" not in container.logs().decode(errors="replace")


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"not json", 400, ""),
        (json.dumps({"instances": [[0] * 63]}).encode(), 400, "expected 64 values"),
        (json.dumps({"instances": [[0] * 63 + ["x"]]}).encode(), 400, "expected a number"),
        (json.dumps({"rows": [[0] * 64]}).encode(), 400, "instances"),
    ],
    ids=["not-json", "short-row", "string-value", "no-instances"],
)
def test_bad_requests_are_strict_4xx(
    registry_copy, serving_image, run_container, body, status, words
):
    container, url = serve(run_container, serving_image, registry_copy)
    wait_for(f"{url}/health", healthy, container=container)
    response = httpx.post(
        f"{url}/predict", content=body, headers={"content-type": "application/json"}, timeout=10
    )
    assert response.status_code == status, response.text
    assert words in response.text
    assert httpx.post(f"{url}/nowhere", json={"instances": []}).status_code == 404
    assert httpx.get(f"{url}/predict").status_code == 405


def test_hot_swap_after_a_new_deploy_from_the_component_image(
    registry_copy, serving_image, component_image, run_container, docker_client, digits_rows
):
    """A second version deployed by the component image (uid 1000) while the server runs:
    the server moves to it without a restart and keeps answering."""
    container, url = serve(run_container, serving_image, registry_copy)
    assert wait_for(f"{url}/health", healthy, container=container).json()["model_version"] == "1"
    deploy = (
        "from components.core.registry import LocalRegistry; "
        f"r = LocalRegistry('{MOUNT}', '{MODEL}'); "
        "import shutil, tempfile; t = tempfile.mkdtemp(); "
        "shutil.copytree(r.champion().path, t + '/b'); "
        "print(r.register(t + '/b', {'deploy': True}).version)"
    )
    out = docker_client.containers.run(
        component_image,
        ["python3", "-c", deploy],
        volumes={str(registry_copy): {"bind": MOUNT, "mode": "rw"}},
        group_add=[str(registry_copy.stat().st_gid)],
        network_mode="none",
        remove=True,
    )
    assert out.decode().strip() == "2"
    moved = wait_for(
        f"{url}/health",
        lambda r: r.status_code == 200 and r.json()["model_version"] == "2",
        container=container,
    )
    assert moved.json()["status"] == "ok"
    rows, _ = digits_rows
    answer = httpx.post(f"{url}/predict", json={"instances": rows}, timeout=10)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == len(rows)
    container.reload()
    assert container.attrs["RestartCount"] == 0 and container.status == "running"


def test_aip_variables_and_a_local_storage_uri(
    registry_copy, serving_image, run_container, digits_rows
):
    """Vertex's contract: the port and routes from AIP_*, the bundle from AIP_STORAGE_URI
    (here a path inside the container, as LocalModel and a mounted bucket give it)."""
    env = {
        "AIP_HTTP_PORT": "9123",
        "AIP_HEALTH_ROUTE": "/v1/ping",
        "AIP_PREDICT_ROUTE": "/v1/models/digits:predict",
        "AIP_STORAGE_URI": f"{MOUNT}/{MODEL}/versions/1",
    }
    host_port = free_port()
    container = run_container(
        serving_image,
        environment=env,
        volumes={str(registry_copy): {"bind": MOUNT, "mode": "ro"}},
        ports={"9123/tcp": ("127.0.0.1", host_port)},
    )
    url = f"http://127.0.0.1:{host_port}"
    health = wait_for(f"{url}/v1/ping", healthy, container=container).json()
    assert health["status"] == "ok" and health["model_version"].startswith("sha256:")
    rows, _ = digits_rows
    answer = httpx.post(f"{url}/v1/models/digits:predict", json={"instances": rows}, timeout=10)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == len(rows)
    assert httpx.get(f"{url}/health").status_code == 404  # the default route is not served


def test_aiplatform_local_model_serves_a_champion_bundle(registry_copy, serving_image, digits_rows):
    """The aiplatform SDK's LocalModel: it starts the container with Vertex's AIP_* variables
    and the artifact directory mounted, checks health and sends the prediction request."""
    from google.cloud.aiplatform.prediction import LocalModel

    bundle = registry_copy / MODEL / "versions" / "1"
    model = LocalModel(
        serving_container_image_uri=serving_image,
        serving_container_predict_route="/predict",
        serving_container_health_route="/health",
        serving_container_ports=[8080],
    )
    rows, _ = digits_rows
    with model.deploy_to_local_endpoint(
        artifact_uri=str(bundle), host_port=str(free_port()), container_ready_timeout=120
    ) as endpoint:
        health = endpoint.run_health_check(verbose=False)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        response = endpoint.predict(
            request=json.dumps({"instances": rows}),
            headers={"Content-Type": "application/json"},
            verbose=False,
        )
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == len(rows)
        assert endpoint.get_container_status() == "running"
    # LocalEndpoint stops its container but leaves it behind (and stops it again when garbage
    # collected, which must find it): removed here, and the endpoint told so.
    endpoint.container.remove(force=True)
    endpoint.container = None


def test_a_registry_only_its_writer_can_read_is_not_served(
    registry_copy, serving_image, run_container
):
    """Files of mode 0600/0700 (what the registry wrote before its shared modes), as a kind
    pod of another uid sees them: never healthy, and the log says why."""
    subprocess.run(["chmod", "-R", "go-rwx", str(registry_copy / MODEL)], check=True)
    container, url = serve(run_container, serving_image, registry_copy)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            assert httpx.get(f"{url}/health", timeout=2).status_code != 200
        time.sleep(0.2)
    assert "Permission denied" in container.logs().decode(errors="replace")


def test_the_serving_image_serves_a_regressor(serving_image, run_container, tmp_path):
    """A regression bundle (written by the core, as the train task writes one) served from
    AIP_STORAGE_URI by the serving image: {"value": ...} predictions equal to the bundle's
    own predict_values, /health saying so."""
    from components.core.model.bundle import load_bundle
    from tests.serving.regression_bundle import TARGET, regression_frame, train_regression_bundle

    frame = regression_frame(300, seed=5)
    bundle_dir = train_regression_bundle(tmp_path / "models" / "prices" / "1", frame, 10)
    subprocess.run(["chmod", "-R", "a+rX", str(tmp_path / "models")], check=True)
    tmp_path.chmod(0o755)
    rows = frame.drop(columns=[TARGET]).head(8)
    expected = load_bundle(bundle_dir).predict_values(rows)
    host_port = free_port()
    container = run_container(
        serving_image,
        environment={"AIP_HTTP_PORT": "8080", "AIP_STORAGE_URI": "/models/prices/1"},
        volumes={str(tmp_path / "models"): {"bind": "/models", "mode": "ro"}},
        ports={"8080/tcp": ("127.0.0.1", host_port)},
    )
    url = f"http://127.0.0.1:{host_port}"
    health = wait_for(f"{url}/health", healthy, container=container).json()
    assert health["task"] == "regression" and health["classes"] == 0
    instances = json.loads(rows.to_json(orient="records"))
    answer = httpx.post(f"{url}/predict", json={"instances": instances}, timeout=10)
    assert answer.status_code == 200, answer.text
    values = [p["value"] for p in answer.json()["predictions"]]
    assert all(set(p) == {"value"} for p in answer.json()["predictions"])
    np.testing.assert_allclose(values, expected, rtol=1e-6)
