"""End to end on a regression target: `sigdeploy run` twice on scikit-learn's diabetes data
(442 rows, a numeric disease-progression score), through the real KFP compiler and local
runner.

The first run deploys (the MLP's squared errors are significantly smaller than the training
mean's); the second trains the same model again and must not deploy. A classification run
against the regressor champion, a text label with task=regression and a target with an
infinite value are refused in one line, exit 2, with nothing registered.
"""

from __future__ import annotations

import json

import pytest

from tests.pipelines.test_e2e import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "diabetes-mlp"


def run_in(work, data: str, label: str, runs: str, *more: str):
    """`sigdeploy run` on ``data`` with the registry in ``work`` and its output in
    ``work / runs``."""
    return run_cli(
        *("run", "--data", data, "--label", label, "--registry", str(work / "registry")),
        *("--output-dir", str(work / runs), *more),
        cwd=work,
    )


@pytest.fixture(scope="module")
def regression_runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e-regression")
    first = run_in(work, "sklearn:diabetes", "target", "runs", "--model-name", MODEL, "--json")
    second = run_in(work, "sklearn:diabetes", "target", "runs", "--model-name", MODEL, "--json")
    return work, first, second


def test_first_regression_run_deploys_against_the_training_mean(regression_runs):
    work, first, _ = regression_runs
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)
    assert summary["deployed"] is True
    assert summary["compared_with"] == "training-mean baseline"
    assert summary["test"] == "paired t-test on per-row squared errors (one-sided)"
    assert summary["challenger"]["r2"] > 0.3 and summary["challenger"]["rmse"] < 65
    assert summary["champion"]["r2"] < 0.05  # the mean predicts no variation
    assert "'target' is a regression target" in first.stderr
    decision = json.loads(open(summary["paths"]["decision"]).read())
    assert decision["task"] == "regression"
    assert decision["improvement_ci"]["mse"]["low"] > 0
    assert decision["power"]["target_effect"] == 0.01
    bundle = json.loads((work / "registry" / MODEL / "versions" / "1" / "bundle.json").read_text())
    assert bundle["model_config"]["task"] == "regression" and bundle["classes"] == []
    assert bundle["inputs"]["task"] == "regression"
    assert bundle["training"]["target"]["loss"] == "mse"
    assert bundle["training"]["val_accuracy"] is None
    report = (work / "runs" / "report.html").read_text()
    assert "RMSE" in report


def test_second_regression_run_does_not_deploy(regression_runs):
    _, first, second = regression_runs
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout)
    assert summary["deployed"] is False
    assert summary["compared_with"] == "version 1"
    assert summary["reason"].startswith("Not deployed")
    assert summary["counts"]["test_rows"] == json.loads(first.stdout)["counts"]["test_rows"]


def test_a_classification_run_against_the_regressor_champion_is_refused(regression_runs):
    work = regression_runs[0]
    out = run_in(work, "sklearn:wine", "target", "runs-wine", "--model-name", MODEL)
    assert out.returncode == 2, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert "is a regressor and this run's label is a classification target" in line
    assert "pass task=regression, or start a new model name" in line
    assert sorted(p.name for p in (work / "registry" / MODEL / "versions").iterdir()) == ["1"]


@pytest.mark.parametrize(
    ("column", "param", "expected"),
    [
        (
            ["cheap", "dear"] * 30,
            "task=regression",
            "label 'price' is text (e.g. 'cheap') and task=regression needs a number",
        ),
        ([1.5, 2.5] * 29 + [float("inf"), 3.0], "task=auto", "value(s) that are missing or not"),
    ],
)
def test_bad_regression_targets_are_refused_in_one_line(tmp_path, column, param, expected):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=60), "z": rng.normal(size=60), "price": column})
    frame.to_csv(tmp_path / "prices.csv", index=False)
    out = run_in(tmp_path, str(tmp_path / "prices.csv"), "price", "runs", "--param", param)
    assert out.returncode == 2, out.stderr[-2000:]
    assert expected in out.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "registry").exists() or not any((tmp_path / "registry").iterdir())
