"""The local registry: versions, an atomic champion pointer, an append-only history."""

from __future__ import annotations

import json
import threading

import pytest

from components.core.errors import RegistryError
from components.core.registry import LocalRegistry, open_registry


def test_register_moves_champion_and_keeps_history(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", "digits-mlp")
    assert reg.champion() is None
    first = reg.register(trained_bundle, {"deploy": True, "p_value": 0.01})
    second = reg.register(trained_bundle, {"deploy": True, "p_value": 0.02})
    assert (first.version, second.version) == ("1", "2")
    assert reg.champion().version == "2"
    assert (reg.champion().path / "bundle.json").is_file()
    reg.record({"deploy": False, "p_value": 0.4})
    events = [h["event"] for h in reg.history()]
    assert events == ["deployed", "deployed", "kept"]
    assert json.loads(reg.pointer.read_text())["previous"] == "1"


def test_concurrent_deploys_get_distinct_versions(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", "m")
    versions: list[str] = []
    threads = [
        threading.Thread(target=lambda: versions.append(reg.register(trained_bundle, {}).version))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions, key=int) == ["1", "2", "3", "4"]
    assert reg.champion().version in versions


def test_failed_register_leaves_champion_untouched(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", "m")
    reg.register(trained_bundle, {})
    before = reg.pointer.read_bytes()
    with pytest.raises(RegistryError, match="bundle.json missing"):
        reg.register(tmp_path / "nothing-here", {})
    assert reg.pointer.read_bytes() == before
    assert reg.versions() == [1]


def test_damaged_pointer_is_a_clear_error(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", "m")
    reg.register(trained_bundle, {})
    reg.pointer.write_text("{not json")
    with pytest.raises(RegistryError, match="champion pointer is unreadable"):
        reg.champion()


@pytest.mark.parametrize("name", ["", "has space", "../escape", "-leading"])
def test_bad_model_names(tmp_path, name):
    with pytest.raises(RegistryError, match="model name"):
        LocalRegistry(tmp_path, name)


def test_open_registry_rejects_unknown_scheme():
    with pytest.raises(RegistryError, match="unsupported scheme"):
        open_registry("s3://bucket/x", "m")


def test_open_registry_refuses_an_empty_uri():
    with pytest.raises(RegistryError, match="registry is empty"):
        open_registry("", "m")
