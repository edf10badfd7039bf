"""`sigdeploy predict`: a table scored with the champion, a version or a bundle."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.core.model.bundle import load_bundle
from components.core.registry import LocalRegistry
from pipelines.cli import main


@pytest.fixture()
def registry(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", "digits-mlp")
    reg.register(trained_bundle, {"deploy": True})
    return reg


@pytest.fixture()
def test_csv(tmp_path, digits_parts):
    path = tmp_path / "test.csv"
    digits_parts["test"].to_csv(path, index=False)
    return path


def _predict(capsys, *args):
    code = main(["predict", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_scores_with_the_champion_and_keeps_every_input_column(
    registry, test_csv, tmp_path, trained_bundle, capsys
):
    out_path = tmp_path / "scored.parquet"
    code, out, err = _predict(
        capsys, "--data", str(test_csv), "--output", str(out_path), "--registry", str(registry.root)
    )
    assert code == 0, err
    data = pd.read_csv(test_csv)
    scored = pd.read_parquet(out_path)
    assert out.strip() == f"scored {len(data):,} rows with digits-mlp version 1 -> {out_path}"
    assert list(scored.columns[: data.shape[1]]) == list(data.columns)
    pd.testing.assert_frame_equal(scored[data.columns], data)
    proba = scored[[f"probability_{c}" for c in range(10)]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    bundle = load_bundle(trained_bundle)
    assert (scored["predicted_label"].to_numpy() == bundle.predict(data)).all()
    accuracy = float((scored["predicted_label"] == data["label"]).mean())
    assert accuracy >= 0.9
    assert f"accuracy {accuracy:.4f} against column 'label' ({len(data)} labelled rows)" in err


def test_unlabelled_data_with_an_id_column_and_jsonl_output(registry, test_csv, tmp_path, capsys):
    unlabelled = tmp_path / "new.csv"
    frame = pd.read_csv(test_csv).drop(columns=["label"]).head(25)
    frame.insert(0, "request_id", [f"r{i}" for i in range(25)])  # not a feature: kept
    frame.to_csv(unlabelled, index=False)
    out_path = tmp_path / "scored.jsonl"
    args = ["--data", str(unlabelled), "--output", str(out_path), "--registry", str(registry.root)]
    code, out, _ = _predict(capsys, *args, "--json")
    summary = json.loads(out)
    assert code == 0
    assert summary == {
        "rows": 25,
        "output": str(out_path),
        "accuracy": None,
        "labelled_rows": 0,
        "model_name": "digits-mlp",
        "version": "1",
    }
    records = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert len(records) == 25 and "label" not in records[0]
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(25)]
    assert records[0]["predicted_label"] in range(10)


def test_a_named_version_or_a_bundle(registry, test_csv, tmp_path, trained_bundle, capsys):
    registry.register(trained_bundle, {"deploy": True})  # version 2 is the champion
    base = ["--data", str(test_csv), "--registry", str(registry.root), "--json"]
    code, out, _ = _predict(capsys, *base, "--output", str(tmp_path / "a.csv"), "--version", "1")
    assert code == 0 and json.loads(out)["version"] == "1"
    code, out, _ = _predict(
        capsys, *base, "--output", str(tmp_path / "b.csv"), "--bundle", str(trained_bundle)
    )
    assert code == 0 and json.loads(out)["model"] == str(trained_bundle)
    assert pd.read_csv(tmp_path / "a.csv").equals(pd.read_csv(tmp_path / "b.csv"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"output": "scored.xlsx"}, "--output {out}: write a .csv, .parquet, .jsonl file"),
        ({"drop": "pixel_0_3"}, "lacks 1 feature column(s) the model was trained on: pixel_0_3"),
        ({"add": "predicted_label"}, "already has column(s) predicted_label"),
        ({"version": "4"}, "no version '4'; versions: 1"),
        ({"model_name": "nobody"}, "no model 'nobody' there"),
        ({"data": "missing.csv"}, "no such file or folder"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    registry, test_csv, tmp_path, capsys, change, message
):
    data = pd.read_csv(test_csv)
    if "drop" in change:
        data = data.drop(columns=[change["drop"]])
    if "add" in change:
        data[change["add"]] = 0
    source = tmp_path / "input.csv"
    data.to_csv(source, index=False)
    out_path = tmp_path / change.get("output", "scored.csv")
    args = ["--data", str(tmp_path / change.get("data", "input.csv")), "--output", str(out_path)]
    args += [
        "--registry",
        str(registry.root),
        "--model-name",
        change.get("model_name", "digits-mlp"),
    ]
    if "version" in change:
        args += ["--version", change["version"]]
    code, out, err = _predict(capsys, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("sigdeploy: error: ")
    assert message.format(out=out_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.csv", "reg", "test.csv"]


def test_accuracy_counts_only_labelled_rows(registry, test_csv, tmp_path, capsys):
    """Missing labels make pandas read the integer label column as floats (3.0): those rows
    are left out and the others still compare equal to the integer classes."""
    data = pd.read_csv(test_csv)
    data.loc[:9, "label"] = None
    source = tmp_path / "partly.csv"
    data.to_csv(source, index=False)
    out_path = tmp_path / "scored.csv"
    args = ["--data", str(source), "--output", str(out_path), "--registry", str(registry.root)]
    code, out, _ = _predict(capsys, *args, "--json")
    summary = json.loads(out)
    scored = pd.read_csv(out_path)
    labelled = scored.iloc[10:]
    expected = float((labelled["predicted_label"] == labelled["label"].astype(int)).mean())
    assert code == 0 and summary["labelled_rows"] == len(data) - 10
    assert summary["accuracy"] == pytest.approx(expected) and expected >= 0.9


@pytest.fixture(scope="module")
def regression_bundle(tmp_path_factory):
    from tests.serving.regression_bundle import regression_frame, train_regression_bundle

    path = tmp_path_factory.mktemp("regression") / "bundle"
    return train_regression_bundle(path, regression_frame())


def test_a_regressor_writes_predicted_value_and_reports_rmse(regression_bundle, tmp_path, capsys):
    from components.core.evaluation.regression import regression_metrics
    from tests.serving.regression_bundle import NAME, TARGET, regression_frame

    registry = LocalRegistry(tmp_path / "reg", NAME)
    registry.register(regression_bundle, {"deploy": True})
    data = regression_frame(150, seed=4)
    source, out_path = tmp_path / "houses.csv", tmp_path / "scored.csv"
    data.to_csv(source, index=False)
    args = ["--data", str(source), "--output", str(out_path), "--registry", str(registry.root)]
    code, out, err = _predict(capsys, *args, "--model-name", NAME)
    assert code == 0, err
    assert out.strip() == f"scored 150 rows with {NAME} version 1 -> {out_path}"
    scored = pd.read_csv(out_path)
    assert list(scored.columns) == [*data.columns, "predicted_value"]
    assert not any(c.startswith("probability_") or c == "predicted_label" for c in scored.columns)
    expected = load_bundle(regression_bundle).predict_values(pd.read_csv(source))
    np.testing.assert_allclose(scored["predicted_value"], expected, rtol=1e-12)
    metrics = regression_metrics(scored[TARGET], scored["predicted_value"])
    assert err.strip() == (
        f"rmse {metrics['rmse']:.6g}, mae {metrics['mae']:.6g}, r2 {metrics['r2']:.4f} "
        f"against column 'y' (150 labelled rows)"
    )
    assert "accuracy" not in err and metrics["r2"] > 0.8

    # --json, and a bundle directory: the metrics in place of accuracy
    json_out = tmp_path / "scored.jsonl"
    code, out, _ = _predict(
        capsys,
        "--data",
        str(source),
        "--output",
        str(json_out),
        "--bundle",
        str(regression_bundle),
        "--json",
    )
    summary = json.loads(out)
    assert code == 0
    assert summary.keys() == {"rows", "output", "rmse", "mae", "r2", "labelled_rows", "model"}
    assert {k: summary[k] for k in metrics} == pytest.approx(metrics)
    assert summary["labelled_rows"] == 150


def test_a_regressor_on_unlabelled_data_reports_no_metrics(regression_bundle, tmp_path, capsys):
    from tests.serving.regression_bundle import TARGET, regression_frame

    source = tmp_path / "new.csv"
    regression_frame(20, seed=5).drop(columns=TARGET).to_csv(source, index=False)
    args = ["--data", str(source), "--output", str(tmp_path / "s.csv"), "--bundle"]
    code, out, err = _predict(capsys, *args, str(regression_bundle), "--json")
    assert code == 0 and err == ""
    summary = json.loads(out)
    assert (summary["rmse"], summary["mae"], summary["r2"], summary["labelled_rows"]) == (
        None,
        None,
        None,
        0,
    )
    code, out, err = _predict(capsys, *args[:-1], "--bundle", str(regression_bundle))
    assert code == 0 and err == "" and out.startswith("scored 20 rows with ")
