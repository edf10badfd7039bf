"""A damaged bundle is refused in one line at every entry point that reads one: register
(nothing copied, the champion untouched), evaluate (a damaged challenger or champion: no
decision written), and `sigdeploy predict` (exit code 2, no output written). Serving is in
tests/serving/test_integrity.py. A bundle from before manifests is accepted, with a warning."""

from __future__ import annotations

import shutil

import pytest

from components.core import steps
from components.core.errors import RegistryError
from components.core.evaluation.gate import GatePolicy
from components.core.registry import LocalRegistry
from pipelines.cli import main
from tests.bundle_damage import DAMAGES, assert_one_line, flip_weight_bytes, make_old

MODEL = "digits-mlp"


@pytest.fixture(scope="module")
def split_files(tmp_path_factory, digits_parts):
    root = tmp_path_factory.mktemp("splits")
    paths = {}
    for name, frame in digits_parts.items():
        paths[name] = str(root / f"{name}.parquet")
        frame.to_parquet(paths[name], index=False)
    paths["csv"] = str(root / "test.csv")
    digits_parts["test"].to_csv(paths["csv"], index=False)
    return paths


@pytest.fixture()
def registry(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", MODEL)
    reg.register(trained_bundle, {"deploy": True})
    return reg


def _registry_state(reg):
    return (
        reg.pointer.read_bytes(),
        reg.history_path.read_bytes(),
        sorted(p.name for p in reg.versions_dir.iterdir()),
    )


def _damaged_copy(trained_bundle, tmp_path, damage):
    folder = tmp_path / "damaged"
    shutil.copytree(trained_bundle, folder)
    damage(folder)
    return folder


@pytest.mark.parametrize("what", list(DAMAGES))
def test_register_refuses_a_damaged_bundle_and_keeps_the_champion(
    trained_bundle, tmp_path, registry, what
):
    damage, clause = DAMAGES[what]
    folder = _damaged_copy(trained_bundle, tmp_path, damage)
    before = _registry_state(registry)
    with pytest.raises(RegistryError) as info:
        registry.register(folder, {"deploy": True})
    assert_one_line(str(info.value), folder, clause)
    assert _registry_state(registry) == before
    assert registry.champion().version == "1"


@pytest.mark.parametrize("what", ["flipped weight bytes", "edited preprocessor.json"])
def test_rollback_refuses_a_version_damaged_since_it_was_registered(trained_bundle, registry, what):
    if what not in DAMAGES:
        pytest.fail(f"no damage named {what!r}; catalogue: {sorted(DAMAGES)}")
    damage, clause = DAMAGES[what]
    registry.register(trained_bundle, {"deploy": True})  # version 2, champion
    damage(registry.versions_dir / "1")  # version 1 damaged on disk afterwards
    before = _registry_state(registry)
    with pytest.raises(RegistryError) as info:
        registry.rollback("1", reason="test")
    message = str(info.value)
    assert "\n" not in message and clause in message
    assert "the champion stays version 2" in message
    assert _registry_state(registry) == before
    assert registry.champion().version == "2"


def test_vertex_register_verifies_before_staging_anything(trained_bundle, tmp_path, monkeypatch):
    from components.core.platforms import gcp
    from components.core.registry.vertex import VertexRegistry

    staged = []
    monkeypatch.setattr(gcp, "upload_dir", lambda *args, **kwargs: staged.append(args))
    folder = _damaged_copy(trained_bundle, tmp_path, flip_weight_bytes)
    registry = VertexRegistry.from_uri("vertex://my-project/us-central1?artifacts=gs://b/x", MODEL)
    with pytest.raises(RegistryError, match="model.safetensors does not match its sha256"):
        registry.register(folder, {"deploy": True})
    assert staged == []


def _evaluate(tmp_path, bundle, files, registry):
    return steps.evaluate(
        str(bundle),
        files["train"],
        files["test"],
        str(registry.root),
        MODEL,
        GatePolicy(),
        str(tmp_path / "out" / "decision.json"),
        str(tmp_path / "out" / "report.html"),
        str(tmp_path / "out" / "summary.md"),
    )


@pytest.mark.parametrize("role", ["challenger", "champion"])
@pytest.mark.parametrize("what", list(DAMAGES))
def test_evaluate_refuses_a_damaged_challenger_or_champion_and_decides_nothing(
    trained_bundle, tmp_path, registry, split_files, what, role
):
    damage, clause = DAMAGES[what]
    if role == "challenger":
        challenger = where = _damaged_copy(trained_bundle, tmp_path, damage)
    else:
        challenger, where = trained_bundle, registry.champion().path
        damage(where)  # damaged in the registry, after register checked it
    before = _registry_state(registry)
    with pytest.raises(RegistryError) as info:
        _evaluate(tmp_path, challenger, split_files, registry)
    assert_one_line(str(info.value), where, clause)
    assert not (tmp_path / "out").exists()
    assert _registry_state(registry) == before
    assert not registry.ledger_path.exists() or registry.ledger_path.read_text() == ""


def _predict(capsys, *args):
    code = main(["predict", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("source", ["--bundle", "the champion"])
@pytest.mark.parametrize("what", list(DAMAGES))
def test_predict_refuses_a_damaged_bundle_with_exit_code_2(
    trained_bundle, tmp_path, registry, split_files, capsys, what, source
):
    damage, clause = DAMAGES[what]
    output = tmp_path / "scored.csv"
    args = ["--data", split_files["csv"], "--output", str(output)]
    if source == "--bundle":
        where = _damaged_copy(trained_bundle, tmp_path, damage)
        args += ["--bundle", str(where)]
    else:
        where = registry.champion().path
        damage(where)
        args += ["--registry", str(registry.root), "--model-name", MODEL]
    code, out, err = _predict(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("sigdeploy: error: ") and len(err.strip().splitlines()) == 1
    assert_one_line(err.strip().removeprefix("sigdeploy: error: "), where, clause)
    assert not output.exists()


def test_a_bundle_from_before_manifests_is_accepted_with_a_warning(
    trained_bundle, tmp_path, split_files, capsys, caplog
):
    """Refusing every bundle written before manifests would strand a running registry's
    champion; such a bundle loads unverified, and each reader says so."""
    old = tmp_path / "old"
    shutil.copytree(trained_bundle, old)
    make_old(old)
    registry = LocalRegistry(tmp_path / "reg", MODEL)
    with caplog.at_level("WARNING"):
        champion = registry.register(old, {"deploy": True})
    assert f"model bundle '{old}' has no manifest.json" in caplog.text
    assert not (champion.path / "manifest.json").exists()
    caplog.clear()
    output = tmp_path / "scored.csv"
    with caplog.at_level("WARNING"):
        code, _out, err = _predict(
            capsys,
            *("--data", split_files["csv"], "--output", str(output)),
            *("--registry", str(registry.root), "--model-name", MODEL),
        )
    assert code == 0, err
    assert output.exists()
    assert f"model bundle '{champion.path}' has no manifest.json" in caplog.text + err
