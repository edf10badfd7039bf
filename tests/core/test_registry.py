"""The local registry: versions, an atomic champion pointer, an append-only history."""

from __future__ import annotations

import json
import shutil
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


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        (None, "nothing-here': no such directory; nothing registered"),
        ("bundle.json", "bundle.json missing"),
        ("preprocessor.json", "preprocessor.json missing"),
        ("model.safetensors", "model.safetensors missing"),
    ],
)
def test_an_incomplete_bundle_is_refused_and_leaves_the_champion(
    tmp_path, trained_bundle, remove, message
):
    reg = LocalRegistry(tmp_path / "reg", "m")
    reg.register(trained_bundle, {})
    before = reg.pointer.read_bytes()
    partial = tmp_path / "nothing-here"
    if remove:
        shutil.copytree(trained_bundle, partial)
        (partial / remove).unlink()
    with pytest.raises(RegistryError, match=message):
        reg.register(partial, {})
    assert reg.pointer.read_bytes() == before
    assert reg.versions() == [1]
    assert sorted(p.name for p in (reg.model_dir / "versions").iterdir()) == ["1"]


def test_damaged_pointer_is_a_clear_error(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", "m")
    reg.register(trained_bundle, {})
    reg.pointer.write_text("{not json")
    with pytest.raises(RegistryError, match="champion pointer is unreadable"):
        reg.champion()


BAD_NAMES = ["", "has space", "../escape", "-leading", "m\n", "m\r", "..", ".", "a/b", "a\\b"]


@pytest.mark.parametrize("name", BAD_NAMES + [None, 7])
def test_bad_model_names(tmp_path, name):
    with pytest.raises(RegistryError, match="model name") as err:
        LocalRegistry(tmp_path, name)
    assert "\n" not in str(err.value)  # one line, the name quoted
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_vertex_registry_and_the_pipeline_refuse_the_same_names(name):
    from components.core.registry import RegistryConfig
    from components.core.registry.vertex import VertexRegistry

    with pytest.raises(RegistryError, match="model name") as err:
        VertexRegistry("project", "us-central1", name)  # before any call to Google
    assert "\n" not in str(err.value)
    with pytest.raises(RegistryError, match="model name"):
        RegistryConfig("vertex://project/us-central1", name)


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
    assert "line 4 is torn (a write cut short by a crash); skipped" in caplog.text


def test_a_torn_last_line_does_not_swallow_the_next_record(three_versions, caplog):
    """The finding: a rollback appended after a torn line vanished with it."""
    reg = three_versions
    with open(reg.history_path, "a") as fh:
        fh.write('{"time": 1, "event": "dep')
    reg.rollback(reason="after the crash")
    assert [h["event"] for h in reg.history()] == ["deployed"] * 3 + ["rolled_back"]
    assert "removed its last 25 bytes, a line torn by a crash" in caplog.text
    assert reg.history_path.read_bytes().endswith(b"\n")
    assert all(json.loads(line) for line in reg.history_path.read_text().splitlines())


def test_a_whole_last_record_that_lost_only_its_newline_is_kept(three_versions):
    reg = three_versions
    text = reg.history_path.read_text()
    reg.history_path.write_text(text.rstrip("\n"))
    assert [h["event"] for h in reg.history()] == ["deployed"] * 3
    reg.record({"deploy": False})
    assert [h["event"] for h in reg.history()] == ["deployed"] * 3 + ["kept"]


def test_a_record_glued_to_a_torn_line_by_an_older_sigdeploy_is_read(three_versions, caplog):
    reg = three_versions
    glued = '{"time": 1, "decision": {"a": {"b": 1}, "c' + json.dumps(
        {"event": "rolled_back", "version": "2", "previous": "3", "time": 2.0}
    )
    with open(reg.history_path, "a") as fh:
        fh.write(glued + "\n")
    assert [h["event"] for h in reg.history()] == ["deployed"] * 3 + ["rolled_back"]
    assert "line 4: a fragment torn by a crash, then a whole record" in caplog.text


# ------------------------------------------------------------ confined to the registry


@pytest.mark.parametrize(
    "version", ["../../../outside", "/etc", "0", "01", "-1", "1\n", "\u0661", True, None, 2.5]
)
def test_a_pointer_that_is_not_a_version_number_is_refused(three_versions, version):
    reg = three_versions
    (reg.root.parent / "outside").mkdir(exist_ok=True)
    reg.pointer.write_text(json.dumps({"version": version}))
    with pytest.raises(RegistryError, match="not a version number of this registry"):
        reg.champion()


def test_a_version_folder_that_links_out_of_the_registry_is_refused(three_versions, tmp_path):
    reg = three_versions
    outside = tmp_path / "outside"
    shutil.copytree(reg.model_dir / "versions" / "2", outside)
    shutil.rmtree(reg.model_dir / "versions" / "2")
    (reg.model_dir / "versions" / "2").symlink_to(outside)
    with pytest.raises(RegistryError, match="versions/2 leads outside the registry"):
        reg.rollback("2", reason="x")


@pytest.mark.parametrize("version", ["../1", "1/..", " 2 x", "\u0662"])
def test_a_named_version_must_be_a_version_number(three_versions, version):
    with pytest.raises(RegistryError, match="no version"):
        three_versions.version_bundle(version)


# ------------------------------------------------------------ what a crash leaves


def _deploy_stopped_after_the_copy(reg, bundle):
    """What a deploy killed between renaming its folder and moving the pointer leaves."""
    number = max(reg.versions()) + 1
    shutil.copytree(bundle, reg.model_dir / "versions" / str(number))
    return str(number)


def test_a_folder_without_a_record_is_no_version_and_cannot_be_rolled_back_to(
    three_versions, trained_bundle
):
    reg = three_versions
    stray = _deploy_stopped_after_the_copy(reg, trained_bundle)
    assert reg.versions() == [1, 2, 3]
    assert [v.version for v in reg.version_infos()] == ["1", "2", "3"]
    with pytest.raises(RegistryError, match=f"versions/{stray} has no record in history.jsonl"):
        reg.version_bundle(stray)  # what a reader (sigdeploy predict --version) is told
    with pytest.raises(RegistryError, match=f"no version '{stray}'; versions: 1, 2, 3"):
        reg.rollback(stray, reason="x")  # a writer removes the folder first
    assert reg.champion().version == "3"
    assert not (reg.model_dir / "versions" / stray).exists()  # the writer removed it
    # the next deploy numbers on from the history
    assert reg.register(trained_bundle, {"deploy": True}).version == "4"


def test_an_older_folder_without_a_record_is_ignored_not_removed(three_versions, caplog):
    reg = three_versions
    lines = reg.history_path.read_text().splitlines()
    reg.history_path.write_text("\n".join([lines[0], lines[2]]) + "\n")  # v2's record lost
    assert reg.versions() == [1, 3]
    reg.record({"deploy": False})
    assert (reg.model_dir / "versions" / "2").is_dir()  # kept, but no version
    assert "versions/2 has no record in history.jsonl; it is no version" in caplog.text
    with pytest.raises(RegistryError, match="versions/2 has no record"):
        reg.version_bundle("2")


def test_a_promotion_whose_record_a_crash_kept_from_the_history_is_still_history(
    three_versions,
):
    reg = three_versions
    reg.rollback("1", reason="bad v3")
    lines = reg.history_path.read_text().splitlines(keepends=True)
    reg.history_path.write_text("".join(lines[:-1]))  # killed before the append
    assert reg.history()[-1]["event"] == "rolled_back"  # readers see it already
    reg.record({"deploy": False})  # the next writer writes it down
    events = [json.loads(line)["event"] for line in reg.history_path.read_text().splitlines()]
    assert events == ["deployed"] * 3 + ["rolled_back", "kept"]
    assert [h["event"] for h in reg.history()] == events


def test_temporaries_left_by_a_crash_are_ignored_then_removed(three_versions):
    reg = three_versions
    leftovers = [
        reg.model_dir / "versions" / ".4.deadbeef.tmp",
        reg.model_dir / ".champion.0badf00d.tmp",
        reg.model_dir / ".ledger.jsonl.12345678.tmp",
    ]
    leftovers[0].mkdir()
    (leftovers[0] / "bundle.json").write_text("{")
    for path in leftovers[1:]:
        path.write_text("half")
    assert reg.versions() == [1, 2, 3]
    assert reg.champion().version == "3"
    reg.record({"deploy": False})
    assert not any(path.exists() for path in leftovers)
    assert (reg.model_dir / ".lock").exists()


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
