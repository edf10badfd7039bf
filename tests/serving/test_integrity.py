"""Serving a damaged bundle: the load is refused in one line; a server swapping to one keeps
the model it has and names the refused version in /health; a server with no valid model is
not healthy (503, with the reason); a bundle from before manifests serves "unverified".
Requests never hash files: the checks run once per load."""

from __future__ import annotations

import shutil

import pytest

from components.core.errors import RegistryError
from components.core.registry import LocalRegistry
from components.serving.loader import ModelHolder
from components.serving.model import load_serving_model
from tests.bundle_damage import DAMAGES, assert_one_line, flip_weight_bytes, make_old

MODEL = "digits-mlp"
ROW = {"instances": [[0] * 64]}


@pytest.mark.parametrize("what", list(DAMAGES))
def test_load_refuses_a_damaged_bundle_in_one_line(tmp_path, digits_bundles, what):
    damage, clause = DAMAGES[what]
    folder = tmp_path / "bundle"
    shutil.copytree(digits_bundles[0], folder)
    damage(folder)
    with pytest.raises(RegistryError) as info:
        load_serving_model(folder, "1")
    assert_one_line(str(info.value), folder, clause)


@pytest.mark.parametrize("what", list(DAMAGES))
def test_a_hot_swap_to_a_damaged_bundle_keeps_the_previous_model(
    registry, config_for, digits_bundles, what
):
    damage, clause = DAMAGES[what]
    holder = ModelHolder(config_for(registry))  # polled by hand: no thread, no timing
    holder.poll()
    assert holder.current is not None and holder.current.version == "1"
    served = holder.current
    version = registry.register(digits_bundles[1], {"deploy": True})
    damage(version.path)  # damaged in the registry, after register checked it
    holder.poll()
    assert holder.current is served  # the previous model keeps serving
    status = holder.status()
    assert status["status"] == "ok" and status["model_version"] == "1"
    assert status["refused"]["version"] == "2"
    assert_one_line(status["refused"]["reason"], version.path, clause)
    holder.poll()  # the pointer has not changed: no new attempt before the back-off
    assert holder.current is served
    registry.register(digits_bundles[2], {"deploy": True})  # a valid version 3
    holder.poll()
    assert holder.current.version == "3"
    assert not {"refused", "last_error"} & set(holder.status())


def test_a_server_with_no_valid_model_is_not_healthy(
    tmp_path, digits_bundles, config_for, client_for, helpers
):
    registry = LocalRegistry(tmp_path / "reg", MODEL)
    first = registry.register(digits_bundles[0], {"deploy": True})
    flip_weight_bytes(first.path)
    client = client_for(config_for(registry), wait=False)
    helpers.wait_for(lambda: "refused" in client.get("/health").json(), 20, "the refusal")
    health = client.get("/health")
    assert health.status_code == 503
    answer = health.json()
    assert answer["status"] == "unavailable" and "model_version" not in answer
    assert answer["refused"]["version"] == "1"
    assert "model.safetensors does not match its sha256" in answer["refused"]["reason"]
    assert answer["last_error"] == answer["refused"]["reason"]
    predict = client.post("/predict", json=ROW)
    assert predict.status_code == 503
    assert predict.json()["error"].startswith("no valid model is loaded (the health route")
    registry.register(digits_bundles[1], {"deploy": True})  # a valid version 2
    helpers.wait_for(lambda: client.get("/health").status_code == 200, 20, "version 2")
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/predict", json=ROW).json()["model_version"] == "2"


def test_a_damaged_bundle_by_storage_uri_is_not_healthy(
    tmp_path, digits_bundles, config_for, client_for, helpers
):
    folder = tmp_path / "bundle"
    shutil.copytree(digits_bundles[0], folder)
    DAMAGES["reversed class labels"][0](folder)
    client = client_for(config_for(storage_uri=str(folder)), wait=False)
    helpers.wait_for(lambda: "refused" in client.get("/health").json(), 20, "the refusal")
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["refused"]["storage_uri"] == str(folder)
    assert "bundle.json does not match its sha256" in health.json()["refused"]["reason"]


def test_a_bundle_from_before_manifests_serves_unverified(
    tmp_path, digits_bundles, config_for, client_for, caplog
):
    old = tmp_path / "old"
    shutil.copytree(digits_bundles[0], old)
    make_old(old)
    with caplog.at_level("WARNING"):
        client = client_for(config_for(storage_uri=str(old)))
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["integrity"] == "unverified"
    assert f"model bundle '{old}' has no manifest.json" in caplog.text
    assert client.post("/predict", json=ROW).status_code == 200


def test_requests_never_read_the_bundle(registry, config_for, client_for, monkeypatch):
    """The manifest is checked once per load: a request hashes nothing, reads no file."""
    from components.core import bundle_format

    client = client_for(config_for(registry))
    calls = []
    monkeypatch.setattr(bundle_format, "sha256_of", lambda path: calls.append(path))
    for _ in range(5):
        assert client.post("/predict", json=ROW).status_code == 200
    assert client.get("/health").status_code == 200
    assert calls == []
