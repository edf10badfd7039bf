"""The local registry: versions, an atomic champion pointer, an append-only history."""

from __future__ import annotations

import json
import threading

import pytest

from components.core.errors import ChampionMovedError, RegistryError
from components.core.registry import LocalRegistry, model_names, open_registry


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


def test_model_names_lists_the_models_a_registry_holds(tmp_path, trained_bundle):
    root = tmp_path / "reg"
    assert model_names(root) == []  # no directory yet: nothing, and nothing is created
    assert not root.exists()
    LocalRegistry(root, "zeta").register(trained_bundle, {"deploy": True})
    LocalRegistry(root, "alpha").record({"deploy": False})  # a model with no champion yet
    (root / ".cache").mkdir()  # not a valid model name: not listed
    (root / "notes.txt").write_text("a file, not a model")
    assert model_names(root) == ["alpha", "zeta"]


def _decision(p: float, acc: float) -> dict:
    return {
        "deploy": True,
        "p_value": p,
        "champion": "version x",
        "metrics": {"challenger": {"accuracy": acc}, "champion": {"accuracy": acc - 0.1}},
        "reason": f"Deployed at p={p}",
    }


@pytest.fixture()
def three_versions(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", "m")
    for i in range(3):
        reg.register(trained_bundle, _decision(0.01 * (i + 1), 0.8 + 0.05 * i))
    return reg


def test_rollback_restores_the_previous_champion_and_records_why(three_versions):
    reg = three_versions
    champion = reg.rollback(reason="v3 misclassifies the new scanner's images")
    assert champion.version == "2" and reg.champion().version == "2"
    assert champion.path == reg.model_dir / "versions" / "2"
    pointer = json.loads(reg.pointer.read_text())
    assert pointer["version"] == "2" and pointer["previous"] == "3"
    last = reg.history()[-1]
    assert last["event"] == "rolled_back"
    assert (last["version"], last["previous"]) == ("2", "3")
    assert last["reason"] == "v3 misclassifies the new scanner's images"
    # A second rollback without a version undoes the first.
    assert reg.rollback(reason="false alarm").version == "3"
    # Registering after a rollback still takes a fresh number.
    assert reg.versions() == [1, 2, 3]


def test_rollback_to_a_named_version(three_versions):
    assert three_versions.rollback("1", reason="back to the first").version == "1"
    assert three_versions.champion().version == "1"


@pytest.mark.parametrize(
    ("version", "message"),
    [("7", "no version '7'; versions: 1, 2, 3"), ("3", "version 3 is already the champion")],
)
def test_rollback_refuses_and_leaves_the_champion(three_versions, version, message):
    before = three_versions.pointer.read_bytes()
    with pytest.raises(RegistryError, match=message):
        three_versions.rollback(version, reason="x")
    assert three_versions.pointer.read_bytes() == before
    assert three_versions.history()[-1]["event"] == "deployed"


def test_rollback_refuses_a_version_that_cannot_serve(three_versions):
    (three_versions.model_dir / "versions" / "2" / "model.safetensors").unlink()
    before = three_versions.pointer.read_bytes()
    with pytest.raises(RegistryError, match="version 2 lacks model.safetensors"):
        three_versions.rollback(reason="x")
    assert three_versions.pointer.read_bytes() == before


def test_rollback_needs_a_champion_and_a_predecessor(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", "m")
    with pytest.raises(RegistryError, match="no champion to roll back"):
        reg.rollback(reason="x")
    reg.register(trained_bundle, {})
    with pytest.raises(RegistryError, match="version 1 has no predecessor"):
        reg.rollback(reason="x")


def test_version_infos_mark_the_champion_and_carry_the_deciding_gate(three_versions):
    three_versions.rollback("2", reason="x")
    infos = three_versions.version_infos()
    assert [(v.version, v.champion) for v in infos] == [("1", False), ("2", True), ("3", False)]
    assert infos[1].decision["p_value"] == pytest.approx(0.02)
    assert infos[0].created <= infos[2].created


def test_history_skips_a_line_torn_by_a_crash(three_versions, caplog):
    with open(three_versions.history_path, "a") as fh:
        fh.write('{"time": 1, "event": "dep')
    assert [h["event"] for h in three_versions.history()] == ["deployed"] * 3
    assert "line 4 is not JSON" in caplog.text


# ------------------------------------------------------------ compare-and-swap promotion


def test_register_promotes_when_the_champion_is_still_the_one_compared_against(
    tmp_path, trained_bundle
):
    reg = LocalRegistry(tmp_path / "reg", "m")
    assert reg.register(trained_bundle, {"deploy": True}, expected=None).version == "1"
    assert reg.register(trained_bundle, {"deploy": True}, expected="1").version == "2"
    assert [(h["event"], h["previous"]) for h in reg.history()] == [
        ("deployed", None),
        ("deployed", "1"),
    ]


@pytest.mark.parametrize(
    ("expected", "reason"),
    [
        (
            "1",
            "the champion moved since evaluation: the decision was made against version 1, "
            "the champion is now version 2",
        ),
        (
            None,
            "the champion moved since evaluation: the decision was made against the baseline, "
            "the champion is now version 2",
        ),
    ],
)
def test_a_stale_decision_keeps_the_champion_and_the_history_says_why(
    tmp_path, trained_bundle, expected, reason
):
    reg = LocalRegistry(tmp_path / "reg", "m")
    reg.register(trained_bundle, {"deploy": True})
    reg.register(trained_bundle, {"deploy": True})
    before = reg.pointer.read_bytes()
    decision = {"deploy": True, "p_value": 0.001, "champion_version": expected}
    with pytest.raises(ChampionMovedError) as info:
        reg.register(trained_bundle, decision, expected=expected)
    assert (info.value.reason, info.value.against, info.value.current) == (reason, expected, "2")
    assert str(info.value) == (
        f"registry '{reg.model_dir}': {reason}; nothing registered, the champion is kept: "
        "run the pipeline again to compare against it"
    )
    assert isinstance(info.value, RegistryError)  # the CLI prints it as one line
    assert reg.pointer.read_bytes() == before
    assert reg.versions() == [1, 2]  # nothing copied in
    last = reg.history()[-1]
    assert (last["event"], last["champion"], last["reason"]) == ("kept", "2", reason)
    assert last["decision"] == decision
    assert "version" not in last  # a rollback looks for the entry that made a version


def test_a_decision_against_a_champion_that_is_gone_is_refused(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", "m")
    reg.register(trained_bundle, {})
    reg.pointer.unlink()  # someone started afresh
    with pytest.raises(ChampionMovedError, match="against version 1, there is no champion now"):
        reg.register(trained_bundle, {}, expected="1")
    assert reg.champion() is None and reg.versions() == [1]


def test_of_concurrent_deploys_against_one_champion_exactly_one_promotes(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", "m")
    reg.register(trained_bundle, {})
    results: list[str] = []

    def deploy(n: int) -> None:
        try:
            reg.register(trained_bundle, {"n": n}, expected="1")
            results.append("promoted")
        except ChampionMovedError:
            results.append("kept")

    threads = [threading.Thread(target=deploy, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["kept"] * 5 + ["promoted"]
    assert reg.versions() == [1, 2] and reg.champion().version == "2"
    events = [h["event"] for h in reg.history()]
    assert events == ["deployed", "deployed"] + ["kept"] * 5  # the lock orders them
