"""The step functions the components call, without KFP: evaluate's champion paths."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.core import steps
from components.core.bundle_format import write_manifest
from components.core.errors import SchemaMismatchError
from components.core.evaluation.gate import GatePolicy
from components.core.platforms.deploy_config import DeployConfig
from components.core.registry import LocalRegistry, RegistryConfig


@pytest.fixture()
def split_files(tmp_path, digits_parts):
    paths = {}
    for name, frame in digits_parts.items():
        paths[name] = str(tmp_path / f"{name}.parquet")
        frame.to_parquet(paths[name], index=False)
    return paths


def _evaluate(tmp_path, bundle, files, registry, policy=None):
    return steps.evaluate(
        str(bundle),
        files["train"],
        files["test"],
        str(registry),
        "digits-mlp",
        policy or GatePolicy(),
        str(tmp_path / "decision.json"),
        str(tmp_path / "report.html"),
        str(tmp_path / "summary.md"),
    )


def test_first_run_against_a_logistic_baseline(tmp_path, trained_bundle, split_files):
    ev = _evaluate(
        tmp_path, trained_bundle, split_files, tmp_path / "reg", GatePolicy(baseline="logistic")
    )
    assert ev.decision.champion == "logistic-regression baseline"
    assert ev.champion["accuracy"] > 0.9  # a real baseline, not the majority class
    decision = json.loads((tmp_path / "decision.json").read_text())
    assert decision["champion_version"] is None
    assert set(decision["improvement_ci"]) == {"accuracy", "macro_f1", "log_loss"}
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")


def test_same_model_as_champion_is_not_deployed_and_recorded(tmp_path, trained_bundle, split_files):
    reg = LocalRegistry(tmp_path / "reg", "digits-mlp")
    reg.register(trained_bundle, {"deploy": True})
    ev = _evaluate(tmp_path, trained_bundle, split_files, tmp_path / "reg")
    assert not ev.decision.deploy and ev.decision.p_value == 1.0
    assert ev.champion_version == "1"
    assert [h["event"] for h in reg.history()] == ["deployed", "kept"]
    with pytest.raises(Exception, match="says not to deploy"):
        steps.deploy(
            str(trained_bundle),
            str(tmp_path / "decision.json"),
            RegistryConfig(str(tmp_path / "reg"), "digits-mlp"),
            DeployConfig(),
        )
    assert reg.champion().version == "1"


def test_champion_with_other_features_is_refused(tmp_path, trained_bundle, split_files):
    reg = LocalRegistry(tmp_path / "reg", "digits-mlp")
    champ = reg.register(trained_bundle, {"deploy": True})
    meta = json.loads((champ.path / "bundle.json").read_text())
    meta["schema"]["features"][0] = "renamed_pixel"
    (champ.path / "bundle.json").write_text(json.dumps(meta))
    pre = json.loads((champ.path / "preprocessor.json").read_text())
    pre["numeric"][0] = "renamed_pixel"
    (champ.path / "preprocessor.json").write_text(json.dumps(pre))
    write_manifest(champ.path)  # a champion trained on other features
    before = reg.pointer.read_bytes()
    with pytest.raises(SchemaMismatchError, match="champion version 1 .*renamed_pixel"):
        _evaluate(tmp_path, trained_bundle, split_files, tmp_path / "reg")
    assert reg.pointer.read_bytes() == before
    assert not (tmp_path / "decision.json").exists()


def test_evaluate_and_deploy_run_without_torch(tmp_path, trained_bundle, split_files):
    """Scoring runs in numpy (as the server does): the evaluate and deploy tasks never pay
    for importing torch, and the gate's probabilities equal the torch module's."""
    import subprocess
    import sys

    import numpy as np
    import pandas as pd
    import torch

    from components.core.model.bundle import load_bundle

    code = f"""
import sys
from components.core import steps
from components.core.evaluation.gate import GatePolicy
ev = steps.evaluate({str(trained_bundle)!r}, {split_files["train"]!r}, {split_files["test"]!r},
    {str(tmp_path / "reg")!r}, "digits-mlp", GatePolicy(), {str(tmp_path / "d.json")!r},
    {str(tmp_path / "r.html")!r}, {str(tmp_path / "s.md")!r})
from components.core.platforms.deploy_config import DeployConfig
from components.core.registry import RegistryConfig
steps.deploy({str(trained_bundle)!r}, {str(tmp_path / "d.json")!r},
    RegistryConfig({str(tmp_path / "reg")!r}, "digits-mlp"), DeployConfig())
print(ev.decision.deploy, "torch" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]

    bundle = load_bundle(trained_bundle)
    x = bundle.transform(pd.read_parquet(split_files["test"]))
    with torch.no_grad():
        reference = torch.softmax(bundle.network(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(bundle.predict_proba_matrix(x), reference, atol=1e-6)


def test_train_step_does_not_import_scikit_learn(tmp_path, digits_parts):
    """The train task loads the fitted preprocessor as plain JSON and reads library versions
    from package metadata: scikit-learn (1.5 s to import) stays out of it."""
    import subprocess
    import sys

    from components.core.data.features import fit_preprocessor
    from components.core.io import write_json

    for name in ("train", "val"):
        digits_parts[name].to_parquet(tmp_path / f"{name}.parquet", index=False)
    write_json(tmp_path / "pre.json", fit_preprocessor(digits_parts["train"], "label").to_json())
    code = f"""
import sys, json
from components.core import steps
from components.core.training.config import TrainConfig
steps.train({str(tmp_path / "train.parquet")!r}, {str(tmp_path / "val.parquet")!r},
    {str(tmp_path / "pre.json")!r}, "label", TrainConfig(max_epochs=2, hidden_sizes=(16,)),
    {str(tmp_path / "model")!r}, "digits-mlp")
versions = json.load(open({str(tmp_path / "model" / "bundle.json")!r}))["library_versions"]
print("sklearn" in sys.modules, versions["scikit-learn"] != "not installed")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


def test_id_columns_and_provenance_travel_from_ingest_to_the_bundle(tmp_path):
    """A customer id is left out at preprocess, recorded in the bundle with how the rows
    were read, and test rows that still carry it are scored (it is no feature)."""
    from components.core.data.features import FeatureConfig
    from components.core.data.sources import SourceConfig, read_provenance
    from components.core.data.split import SplitConfig
    from components.core.model.bundle import load_bundle
    from components.core.training.config import TrainConfig

    rng = np.random.default_rng(1)
    n = 600
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame.insert(0, "customer_id", [f"C{i:05d}" for i in rng.permutation(n)])
    frame["label"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    frame.to_csv(tmp_path / "customers.csv", index=False)
    paths = {k: str(tmp_path / f"{k}.parquet") for k in ("data", "train", "val", "test")}
    split = SplitConfig()
    meta = steps.ingest(SourceConfig(str(tmp_path / "customers.csv")), split, paths["data"])
    assert meta["source_kind"] == "csv" and read_provenance(paths["data"])["source_kind"] == "csv"
    prep = steps.preprocess(
        paths["data"], "label", split, FeatureConfig(), paths["train"], paths["val"],
        paths["test"], str(tmp_path / "pre.json"),
    )  # fmt: skip
    assert prep["preprocessor"]["dropped"] == 1 and prep["preprocessor"]["outputs"] == 3
    assert read_provenance(paths["test"])["source"] == str(tmp_path / "customers.csv")
    steps.train(
        paths["train"], paths["val"], str(tmp_path / "pre.json"), "label",
        TrainConfig(max_epochs=3), str(tmp_path / "model"), "churn",
    )  # fmt: skip
    bundle = load_bundle(tmp_path / "model")
    assert bundle.inputs["source_kind"] == "csv"
    assert bundle.inputs["columns_used"] == ["a", "b", "c"]
    assert list(bundle.dropped_columns) == ["customer_id"]
    assert [row["epoch"] for row in bundle.meta["training_history"]] == [1, 2, 3]
    ev = steps.evaluate(
        str(tmp_path / "model"), paths["train"], paths["test"], str(tmp_path / "reg"),
        "churn", GatePolicy(), str(tmp_path / "decision.json"),
    )  # fmt: skip
    assert ev.challenger["accuracy"] > 0.8  # the test rows kept their customer_id column


# ------------------------------------------------------------ compare-and-swap promotion


def test_a_decision_made_against_a_champion_that_moved_is_not_promoted(
    tmp_path, trained_bundle, split_files, digits_parts, bundle_trainer, monkeypatch
):
    """Two runs evaluate against version 1; the better one deploys first (version 2). The
    other's decision no longer holds: deploying it keeps version 2 and says why."""
    from components.core import progress

    where = RegistryConfig(str(tmp_path / "reg"), "digits-mlp")
    reg = LocalRegistry(where.registry, "digits-mlp")
    train, val = digits_parts["train"], digits_parts["val"]
    weak = bundle_trainer(tmp_path / "weak", train, val, hidden=(4,), max_epochs=1)
    middling = bundle_trainer(tmp_path / "middling", train, val, hidden=(16,), max_epochs=3)
    reg.register(weak, {"deploy": True})  # version 1
    stale, fresh = tmp_path / "stale", tmp_path / "fresh"
    for work, challenger in ((stale, middling), (fresh, trained_bundle)):
        work.mkdir()
        assert _evaluate(work, challenger, split_files, where.registry).decision.deploy
        assert read_decision(work)["champion_version"] == "1"
    deployed = steps.deploy(
        str(trained_bundle), str(fresh / "decision.json"), where, DeployConfig()
    )
    assert deployed["promoted"] and deployed["version"] == "2"
    assert reg.champion().version == "2"
    pointer = reg.pointer.read_bytes()

    said: list[tuple[str, str]] = []
    monkeypatch.setattr(progress, "report", lambda step, message: said.append((step, message)))
    result = steps.deploy(str(middling), str(stale / "decision.json"), where, DeployConfig())
    reason = (
        "the champion moved since evaluation: the decision was made against version 1, "
        "the champion is now version 2"
    )
    assert result == {
        "promoted": False,
        "version": None,
        "uri": "",  # what the deploy component returns: still a string
        "model_name": "digits-mlp",
        "champion": "2",
        "reason": reason,
    }
    assert reg.pointer.read_bytes() == pointer and reg.versions() == [1, 2]
    last = reg.history()[-1]
    assert (last["event"], last["champion"], last["reason"]) == ("kept", "2", reason)
    assert last["decision"] == read_decision(stale)
    assert said == [("deploy", f"not promoted, the champion is kept: {reason}")]


def test_a_first_run_decision_needs_no_champion_at_promotion(tmp_path, trained_bundle):
    where = RegistryConfig(str(tmp_path / "reg"), "digits-mlp")
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps({"deploy": True, "champion_version": None}))
    first = steps.deploy(str(trained_bundle), str(decision), where, DeployConfig())
    assert (first["promoted"], first["version"]) == (True, "1")
    again = steps.deploy(str(trained_bundle), str(decision), where, DeployConfig())
    assert again["promoted"] is False and again["champion"] == "1"
    assert "made against the baseline, the champion is now version 1" in again["reason"]
    assert LocalRegistry(where.registry, "digits-mlp").versions() == [1]


def test_a_decision_that_does_not_name_its_champion_is_refused(tmp_path, trained_bundle):
    """An older decision file (no champion_version) cannot be checked: refused, one line."""
    from components.core.errors import DataError

    where = RegistryConfig(str(tmp_path / "reg"), "digits-mlp")
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps({"deploy": True, "p_value": 0.001}))
    with pytest.raises(DataError) as info:
        steps.deploy(str(trained_bundle), str(decision), where, DeployConfig())
    assert str(info.value) == (
        f"decision '{decision}' does not say which champion it was made against (no "
        "champion_version; written by an older sigdeploy?): nothing registered; run evaluate "
        "again"
    )
    assert not LocalRegistry(where.registry, "digits-mlp").model_dir.exists()


def read_decision(work):
    return json.loads((work / "decision.json").read_text())
