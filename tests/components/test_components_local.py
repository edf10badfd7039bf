"""Each component run through the KFP local runner (SubprocessRunner, use_venv=False)."""

import json
from dataclasses import fields
from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl, local
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Metrics, Model

from components.core.data.features import FeatureConfig
from components.core.evaluation.gate import GatePolicy
from components.core.platforms.deploy_config import DeployConfig
from components.core.settings import defaults
from components.deploy import deploy
from components.evaluate import evaluate
from components.ingest import ingest
from components.preprocess import preprocess
from components.train import train

pytestmark = pytest.mark.slow


SOURCE = {"label": "label", "image_size": 28, "row_limit": 0, "query": "", "task": "auto"}
SPLIT = {"train_fraction": 0.6, "val_fraction": 0.2, "split_salt": "sigdeploy-v1"}
D = defaults()
GATE = {f.name: D[f.name] for f in fields(GatePolicy)} | {"min_test_rows": 10}
FEATURES = {f.name: D[f.name] for f in fields(FeatureConfig)}
SERVING = {f.name: D[f.name] for f in fields(DeployConfig)}

# The trainer's remaining settings, non-defaults where CPU allows, to see them arrive.
TRAIN_RUNTIME = {
    "schedule": "cosine",
    "warmup_fraction": 0.2,
    "precision": "bf16",
    "compile": False,
    "device": "cpu",
    "deterministic": True,
    "cpu_threads": 1,
    "cuda_graphs": False,
    "data_budget_mb": 0,
    "distributed": "off",
    "regression_loss": "mse",
}


ChainOutputs = NamedTuple(
    "Outputs",
    [
        ("dataset", Dataset),
        ("train_data", Dataset),
        ("val_data", Dataset),
        ("test_data", Dataset),
        ("preprocessor", Artifact),
        ("model", Model),
        ("train_metrics", Metrics),
        ("decision", Artifact),
        ("report", HTML),
        ("challenger_metrics", ClassificationMetrics),
        ("deploy", bool),
        ("p_value", float),
        ("deployed_uri", str),
    ],
)


# The local runner takes input artifacts only inside a pipeline, so the components that
# consume artifacts run in this small test pipeline, which exposes every output to check.
@dsl.pipeline(name="component-chain")
def component_chain(registry: str) -> ChainOutputs:
    ing = ingest(source="sklearn:wine", **SOURCE, **SPLIT)
    prep = preprocess(dataset=ing.outputs["dataset"], label="label", **SPLIT, **FEATURES)
    tr = train(
        train_data=prep.outputs["train_data"],
        val_data=prep.outputs["val_data"],
        preprocessor=prep.outputs["preprocessor"],
        label="label",
        model_name="wine",
        hidden_sizes="32",
        dropout=0.0,
        learning_rate=0.01,
        weight_decay=0.0,
        batch_size=32,
        max_epochs=20,
        patience=5,
        seed=0,
        **TRAIN_RUNTIME,
    )
    ev = evaluate(
        model=tr.outputs["model"],
        train_data=prep.outputs["train_data"],
        test_data=prep.outputs["test_data"],
        registry=registry,
        model_name="wine",
        **GATE,
    )
    dep = deploy(
        model=tr.outputs["model"],
        decision=ev.outputs["decision"],
        registry=registry,
        model_name="wine",
        **SERVING,
    )
    return ChainOutputs(
        ing.outputs["dataset"],
        prep.outputs["train_data"],
        prep.outputs["val_data"],
        prep.outputs["test_data"],
        prep.outputs["preprocessor"],
        tr.outputs["model"],
        tr.outputs["metrics"],
        ev.outputs["decision"],
        ev.outputs["report"],
        ev.outputs["challenger_metrics"],
        ev.outputs["deploy"],
        ev.outputs["p_value"],
        dep.output,
    )


@pytest.fixture(scope="module")
def runner_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kfp")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root / "root"),
        raise_on_error=True,
    )
    return root


@pytest.fixture(scope="module")
def chain(runner_root):
    registry = str(runner_root / "registry")
    return {"registry": registry, **component_chain(registry=registry).outputs}


def test_ingest_alone_on_the_local_runner(runner_root):
    task = ingest(source="sklearn:breast_cancer", **SOURCE, **SPLIT)
    dataset = task.outputs["dataset"]
    assert dataset.metadata["rows"] == 569
    assert dataset.metadata["class_counts"] == {"0": 212, "1": 357}


def test_ingest_writes_parquet_with_metadata(chain):
    dataset = chain["dataset"]
    assert Path(dataset.path).is_file()
    assert dataset.metadata["rows"] == 178
    assert dataset.metadata["label"] == "label"
    assert len(dataset.metadata["sha256"]) == 64
    assert sum(dataset.metadata["class_counts"].values()) == 178


def test_preprocess_writes_raw_splits_that_add_up(chain):
    outs = chain
    rows = [outs[k].metadata["rows"] for k in ("train_data", "val_data", "test_data")]
    assert sum(rows) == 178 and min(rows) > 0
    pre = json.loads(Path(outs["preprocessor"].path).read_text())
    assert len(pre["numeric"]) == 13 and pre["categorical"] == []


def test_train_writes_one_bundle_and_epoch_metrics(chain):
    model = chain["model"]
    assert sorted(p.name for p in Path(model.path).iterdir()) == [
        "bundle.json",
        "manifest.json",
        "model.safetensors",
        "preprocessor.json",
        "split_keys.npy",
    ]
    # the Model artifact carries the sha256 of every other file in it
    manifest = json.loads((Path(model.path) / "manifest.json").read_text())
    assert sorted(manifest["sha256"]) == [
        "bundle.json",
        "model.safetensors",
        "preprocessor.json",
        "split_keys.npy",
    ]
    metrics = chain["train_metrics"].metadata
    assert "epoch001_train_loss" in metrics and "epoch001_val_accuracy" in metrics
    # Every trainer setting reached the core config: bf16 autocast on the CPU, one thread.
    assert model.metadata["precision"] == "bf16" and model.metadata["device"] == "cpu"
    bundle = json.loads((Path(model.path) / "bundle.json").read_text())
    assert {k: bundle["train_config"][k] for k in TRAIN_RUNTIME} == TRAIN_RUNTIME
    assert model.metadata["cuda_graph"] is False and model.metadata["world_size"] == 1


def test_evaluate_outputs_deploy_p_value_and_decision(chain):
    assert chain["deploy"] is True
    assert 0 <= chain["p_value"] < 0.05
    decision = json.loads(Path(chain["decision"].path).read_text())
    assert decision["test"].startswith("one-sided exact McNemar")
    assert decision["champion"] == "majority-class baseline"
    assert decision["reason"].startswith("Deployed")
    conf = chain["challenger_metrics"].metadata["confusionMatrix"]
    assert len(conf["rows"]) == 3
    assert "<svg" in Path(chain["report"].path).read_text()


def test_deploy_registers_champion(chain):
    from components.core.registry import LocalRegistry

    uri = chain["deployed_uri"]
    champion = LocalRegistry(chain["registry"], "wine").champion()
    assert champion is not None and champion.version == "1"
    assert uri == str(champion.path)
