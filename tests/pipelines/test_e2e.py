"""End to end: `sigdeploy run` twice on the embedded digits data.

The first run deploys (the challenger beats the majority-class baseline); the second trains
the same model again and must NOT deploy: it is no better than the champion it just became.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIGDEPLOY = str(Path(sys.executable).with_name("sigdeploy"))


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [SIGDEPLOY, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    common = [
        "run",
        "--registry",
        str(work / "registry"),
        "--output-dir",
        str(work / "runs"),
        "--json",
    ]
    first = run_cli(*common, cwd=work)
    second = run_cli(*common, cwd=work)
    return work, first, second


def test_first_run_deploys_against_the_baseline(two_runs):
    work, first, _ = two_runs
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)
    assert summary["deployed"] is True
    assert summary["compared_with"] == "majority-class baseline"
    assert summary["p_value"] < 0.05
    assert summary["challenger"]["accuracy"] >= 0.9
    assert summary["champion_version"] == "1"
    assert Path(summary["paths"]["report"]).read_text().startswith("<!doctype html>")
    for task in ("ingest", "preprocess", "train", "evaluate", "deploy"):
        assert task in first.stderr


def test_second_run_does_not_deploy_and_says_why(two_runs):
    work, _, second = two_runs
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout)
    assert summary["deployed"] is False
    assert summary["compared_with"] == "version 1"
    assert summary["p_value"] >= 0.05
    assert summary["reason"].startswith("Not deployed")
    assert "deploy       skipped" in second.stderr
    assert summary["champion_version"] == "1"
    # Both models were scored on the very same test rows.
    assert summary["counts"]["test_rows"] == json.loads(two_runs[1].stdout)["counts"]["test_rows"]


def test_registry_after_two_runs(two_runs):
    from components.core.registry import LocalRegistry

    work = two_runs[0]
    reg = LocalRegistry(work / "registry", "digits-mlp")
    assert reg.versions() == [1]
    assert reg.champion().version == "1"
    assert [h["event"] for h in reg.history()] == ["deployed", "kept"]


def test_schema_mismatch_with_champion_fails_clearly_and_keeps_it(two_runs):
    work = two_runs[0]
    pointer = work / "registry" / "digits-mlp" / "champion"
    before = pointer.read_bytes()
    result = run_cli(
        "run",
        "--data",
        "sklearn:wine",
        "--registry",
        str(work / "registry"),
        "--output-dir",
        str(work / "runs-wine"),
        cwd=work,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sigdeploy: error:")
    # refused before any task: the champion cannot be scored on the wine columns
    assert "champion version 1 of 'digits-mlp': needs 64 feature column(s)" in last
    assert "Traceback" not in result.stderr and "ingest" not in result.stderr
    assert pointer.read_bytes() == before


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A folder of PNGs with every default: read at 28x28, as the model's bundle records."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    work = tmp_path_factory.mktemp("images")
    digits = load_digits()
    for i, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        if target in (0, 1, 7):
            folder = work / "imgs" / f"digit{target}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((pixels * 15).astype(np.uint8)).save(folder / f"{i}.png")
    args = ["--registry", str(work / "registry"), "--model-name", "glyphs"]
    result = run_cli("run", "--data", "imgs", *args, "--output-dir", "runs", "--json", cwd=work)
    return work, args, result


def test_an_image_folder_runs_with_the_default_size(image_run):
    work, _, result = image_run
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["deployed"] is True and summary["challenger"]["accuracy"] > 0.9
    bundle = json.loads((Path(summary["paths"]["champion"]) / "bundle.json").read_text())
    assert bundle["inputs"]["source_kind"] == "image_folder"
    assert bundle["inputs"]["image_size"] == 28 and len(bundle["schema"]["features"]) == 784
    # progress came while the tasks ran, and the report opens as a web page
    assert "  train          epoch 1/60: train loss" in result.stderr
    assert Path(summary["paths"]["report"]).name == "report.html"
    assert (work / "runs" / "summary.md").read_text().startswith("## sigdeploy: glyphs")


def test_predict_reads_images_at_the_size_the_model_was_trained_at(image_run):
    work, args, _ = image_run
    scored = run_cli("predict", "--data", "imgs", *args, "--output", "p.csv", cwd=work)
    assert scored.returncode == 0, scored.stderr
    accuracy = float(scored.stderr.split("accuracy ")[1].split()[0])
    assert accuracy > 0.9
    wrong = run_cli(
        "predict", "--data", "imgs", *args, "--output", "q.csv", "--image-size", "16", cwd=work
    )
    assert wrong.returncode == 2 and not (work / "q.csv").exists()
    assert wrong.stderr.strip() == (
        "sigdeploy: error: --image-size 16: model 'glyphs' was trained on 28x28 images; "
        "drop --image-size or pass 28"
    )


def test_another_split_salt_leaves_out_the_rows_the_champion_saw(two_runs):
    """Issue 12: a run with another split_salt re-drew the test rows and silently compared on
    rows the champion had trained on; they are now left out, and the decision says so."""
    work = two_runs[0]
    result = run_cli(
        "run", "--registry", str(work / "registry"), "--output-dir", str(work / "runs-salt"),
        "--param", "split_salt=other", "--json", cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    decision = json.loads(Path(summary["paths"]["decision"]).read_text())
    excluded = decision["excluded"]
    assert excluded["guarantee"] == "full" and excluded["rows"] > 0.6 * excluded["test_rows"]
    assert excluded["compared"] == summary["counts"]["test_rows"]
    assert (
        f"{excluded['rows']:,} of {excluded['test_rows']:,} test rows were left out"
        in (summary["reason"])
    )
    assert "trained or validated on" in result.stderr  # the evaluate task said so
