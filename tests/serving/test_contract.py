"""The Vertex AI custom-container contract: routes and port from AIP_* variables, health
503 until a model is loaded, the CLI and module entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from components.core import serving_contract
from components.core.errors import ConfigError
from components.serving.app import create_app
from components.serving.config import ENV_VARS, ServeConfig

REPO = Path(__file__).resolve().parents[2]


def test_config_reads_vertex_environment():
    env = {
        "AIP_HTTP_PORT": "9123",
        "AIP_HEALTH_ROUTE": "/v1/ping",
        "AIP_PREDICT_ROUTE": "/v1/models/m:predict",
        "AIP_STORAGE_URI": "gs://b/m",
        "SIGDEPLOY_SERVE_MAX_INSTANCES": "7",
        "SIGDEPLOY_SERVE_NOOP_ROUTE": "true",
    }
    config = ServeConfig.from_env(env)
    assert (config.port, config.health_route, config.predict_route, config.storage_uri) == (
        9123,
        "/v1/ping",
        "/v1/models/m:predict",
        "gs://b/m",
    )
    assert config.max_instances == 7 and config.noop_route is True
    assert ServeConfig.from_env({}) == ServeConfig()  # defaults without any variable
    assert ServeConfig.from_env(env, port=8081).port == 8081  # a flag wins over the env


def test_defaults_are_the_serving_contract_the_platforms_declare():
    """The server's port and routes, the variables that change them, and what the serving
    image exposes are the ones Vertex AI versions and the kind pods are given."""
    defaults = ServeConfig()
    assert (defaults.port, defaults.health_route, defaults.predict_route) == (
        serving_contract.SERVING_PORT,
        serving_contract.HEALTH_ROUTE,
        serving_contract.PREDICT_ROUTE,
    )
    assert [ENV_VARS[k] for k in ("port", "health_route", "predict_route", "storage_uri")] == [
        serving_contract.PORT_ENV,
        serving_contract.HEALTH_ROUTE_ENV,
        serving_contract.PREDICT_ROUTE_ENV,
        serving_contract.STORAGE_URI_ENV,
    ]
    dockerfile = (REPO / "docker" / "serving.Dockerfile").read_text()
    assert f"\nEXPOSE {serving_contract.SERVING_PORT}\n" in dockerfile


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"AIP_HTTP_PORT": "eighty"}, "AIP_HTTP_PORT='eighty'"),
        ({"AIP_HTTP_PORT": "70000"}, "port=70000"),
        ({"AIP_HEALTH_ROUTE": "health"}, "must start with '/'"),
        ({"SIGDEPLOY_SERVE_BACKEND": "tpu"}, "backend='tpu'"),
    ],
)
def test_bad_environment_is_one_line_config_error(env, needle):
    with pytest.raises(ConfigError) as info:
        ServeConfig.from_env(env)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_building_the_app_loads_nothing(registry, config_for):
    app = create_app(config_for(registry))
    assert app.state.holder.current is None  # loading starts with the lifespan, not before


def test_routes_come_from_the_environment(registry, config_for, client_for):
    env = {"AIP_HEALTH_ROUTE": "/ping", "AIP_PREDICT_ROUTE": "/v1/predict"}
    config = ServeConfig.from_env(
        env,
        **{k: getattr(config_for(registry), k) for k in ("registry", "model_name", "poll_seconds")},
    )
    client = client_for(config)
    assert client.get("/ping").json()["model_version"] == "1"
    body = {"instances": [[0] * 64]}
    assert client.post("/v1/predict", json=body).status_code == 200
    assert client.post("/predict", json=body).status_code == 404
    assert client.get("/health").status_code == 404


def test_health_is_503_until_a_champion_is_deployed(
    tmp_path, registry, config_for, client_for, digits_bundles, helpers
):
    from components.core.registry import LocalRegistry

    empty = LocalRegistry(tmp_path / "later", "digits-mlp")
    config = config_for(empty, wait_for_champion=True)  # without it, such a start fails
    client = client_for(config, wait=False)
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "loading"
    early = client.post("/predict", json={"instances": [[0] * 64]})
    assert early.status_code == 503 and "no model" in early.json()["error"]
    assert client.get("/stats").status_code == 503
    empty.register(digits_bundles[1], {"deploy": True})
    helpers.wait_for(lambda: client.get("/health").status_code == 200, 20, "the deploy")
    answer = client.get("/health").json()
    assert answer["model_version"] == "1" and answer["model_name"] == "digits-mlp"
    assert client.post("/predict", json={"instances": [[0] * 64]}).json()["model_version"] == "1"


def test_health_reports_the_model_and_what_it_takes(registry, config_for, client_for):
    health = client_for(config_for(registry)).get("/health")
    assert health.status_code == 200
    answer = health.json()
    backend = answer.pop("backend")
    assert backend in ("onnx", "numpy")
    # "inputs" only says what the bundle records: this one was trained from a frame, so it
    # knows no source kind, and no column was left out (test_inputs covers the rest)
    assert answer == {
        "status": "ok",
        "model_name": "digits-mlp",
        "model_version": "1",
        "features": 64,
        "classes": 10,
        "integrity": "verified",  # every file matched the bundle's manifest
        "inputs": {"features": 64, "ignored_columns": []},
    }


def test_sigdeploy_serve_is_a_cli_command():
    from components.serving.cli import config_from_args
    from pipelines.cli import build_parser

    args = build_parser().parse_args(
        ["serve", "--registry", "r", "--model-name", "m", "--port", "9000", "--host", "0.0.0.0"]
    )
    assert args.func.__module__ == "components.serving.cli"
    config = config_from_args(args, {"AIP_HTTP_PORT": "7000", "AIP_PREDICT_ROUTE": "/p"})
    assert (config.registry, config.model_name, config.port, config.host, config.predict_route) == (
        "r",
        "m",
        9000,
        "0.0.0.0",
        "/p",
    )


def test_bad_model_name_fails_at_start_with_one_line(tmp_path, capsys):
    from pipelines.cli import main

    code = main(["serve", "--registry", str(tmp_path), "--model-name", "no spaces!"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("sigdeploy: error: model name") and "\n" not in err


def test_module_entry_point_serves_a_bundle_without_torch(tmp_path, digits_bundles, helpers):
    """`python -m components.serving` with the Vertex variables, as the image runs it; the
    serving process never imports torch or pandas."""
    port = helpers.free_port()
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os, runpy, sys, threading, time\n"
        "out, go = sys.argv[1:3]\n"
        "def report():\n"  # once the test has had an answer, list heavy modules loaded
        "    while not os.path.exists(go):\n"
        "        time.sleep(0.05)\n"
        "    heavy = sorted(m for m in ('torch', 'pandas', 'sklearn') if m in sys.modules)\n"
        "    open(out, 'w').write(','.join(heavy) or 'none')\n"
        "threading.Thread(target=report, daemon=True).start()\n"
        "sys.argv = ['components.serving', '--host', '127.0.0.1']\n"
        "runpy.run_module('components.serving', run_name='__main__')\n"
    )
    heavy_file = tmp_path / "heavy.txt"
    env = os.environ | {
        "AIP_HTTP_PORT": str(port),
        "AIP_STORAGE_URI": str(digits_bundles[0]),
        "AIP_HEALTH_ROUTE": "/h",
        "PYTHONPATH": str(REPO),
    }
    trigger = tmp_path / "go"
    proc = subprocess.Popen(
        [sys.executable, str(probe), str(heavy_file), str(trigger)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def healthy():
            try:
                return httpx.get(f"http://127.0.0.1:{port}/h", timeout=2).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                return False

        helpers.wait_for(healthy, 60, "the server process")
        answer = httpx.post(
            f"http://127.0.0.1:{port}/predict", json={"instances": [[0] * 64]}, timeout=5
        ).json()
        assert answer["model_version"].startswith("sha256:")
        trigger.write_text("")
        helpers.wait_for(heavy_file.exists, 10, "the import report")
        assert heavy_file.read_text() == "none"
    finally:
        proc.terminate()
        proc.wait(15)


def test_help_runs_without_error():
    out = subprocess.run(
        [sys.executable, "-m", "components.serving", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "--storage-uri" in out.stdout


def test_a_broken_deploy_keeps_the_previous_model(
    tmp_path, registry, config_for, client_for, digits_bundles, helpers
):
    """Register and rollback refuse a damaged bundle, so a broken champion comes from a
    writer that does not check (an older sigdeploy, a hand edit): here a rollback to a
    version whose weights changed on disk, made without the check."""
    import components.core.model.mlp_numpy as mlp_numpy

    client = client_for(config_for(registry))
    broken = registry.register(digits_bundles[1], {"deploy": True})  # version 2
    helpers.wait_for(lambda: client.get("/health").json()["model_version"] == "2", 20, "v2")
    registry.register(digits_bundles[0], {"deploy": True})  # version 3
    helpers.wait_for(lambda: client.get("/health").json()["model_version"] == "3", 20, "v3")
    (broken.path / "model.safetensors").write_bytes(b"garbage")
    with pytest.MonkeyPatch.context() as patch:  # a writer that does not verify
        patch.setattr(mlp_numpy, "verify_bundle", lambda root: True)
        registry.rollback("2")  # version 2 cannot be loaded
    helpers.wait_for(lambda: "refused" in client.get("/health").json(), 20, "the refusal")
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["model_version"] == "3"
    refused = health.json()["refused"]
    assert refused["version"] == "2"
    assert "model.safetensors does not match its sha256" in refused["reason"]
    assert health.json()["last_error"] == refused["reason"]
    assert client.post("/predict", json={"instances": [[0] * 64]}).json()["model_version"] == "3"
    registry.register(digits_bundles[2], {"deploy": True})  # version 4 is fine again
    helpers.wait_for(lambda: client.get("/health").json()["model_version"] == "4", 20, "v4")
    assert not {"refused", "last_error"} & set(client.get("/health").json())
