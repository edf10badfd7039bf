"""`sigdeploy run --runner docker`: every task of the pipeline in the component image (KFP's
DockerRunner), as the image's non-root user, the registry mounted at its own path. The same
assertions as the subprocess end-to-end test: the first run deploys, an unchanged second run
does not and leaves the champion as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.containers.conftest import COMPONENT_UID, run_cli, tree_digest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_first_run_in_containers_deploys(docker_runs):
    work, first, *_ = docker_runs
    assert first.returncode == 0, first.stderr[-3000:]
    assert "in docker (sigdeploy/python-component:" in first.stderr
    summary = json.loads(first.stdout)
    assert summary["deployed"] is True
    assert summary["compared_with"] == "majority-class baseline"
    assert summary["champion_version"] == "1"
    assert summary["challenger"]["accuracy"] >= 0.9
    for task in ("ingest", "preprocess", "train", "evaluate", "deploy"):
        assert task in first.stderr


def test_the_tasks_ran_as_the_images_non_root_user(docker_runs):
    """The registry's version and the task outputs were written by uid 1000 (the component
    image's user), not by this process: the tasks really ran in the containers."""
    work, first, *_ = docker_runs
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)
    version = work / "registry" / "digits-mlp" / "versions" / "1"
    owners = {p.stat().st_uid for p in version.rglob("*")}
    assert owners == {COMPONENT_UID}, owners
    assert Path(summary["paths"]["model"]).stat().st_uid == COMPONENT_UID


def test_unchanged_second_run_does_not_deploy_and_leaves_the_champion(docker_runs):
    work, _, second, before, pointer = docker_runs
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout)
    assert summary["deployed"] is False
    assert summary["compared_with"] == "version 1"
    assert summary["reason"].startswith("Not deployed")
    assert "deploy       skipped" in second.stderr
    assert summary["champion_version"] == "1"
    champion_dir = work / "registry" / "digits-mlp"
    assert (champion_dir / "champion").read_bytes() == pointer
    assert tree_digest(champion_dir / "versions") == before


def test_a_missing_image_is_one_clear_line(tmp_path, docker_client):
    """A pipeline compiled for an image the engine does not have: refused before any task."""
    pipeline = tmp_path / "p.json"
    subprocess.run(
        [
            sys.executable,
            "compile.py",
            "--target",
            "local",
            "--output",
            str(pipeline),
            "--image",
            "sigdeploy/python-component:no-such-tag",
        ],
        cwd=Path(__file__).resolve().parents[2],
        check=True,
        capture_output=True,
    )
    result, _ = run_cli(
        "run",
        "--runner",
        "docker",
        "--pipeline",
        str(pipeline),
        "--registry",
        str(tmp_path / "reg"),
        "--output-dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "image sigdeploy/python-component:no-such-tag is not in the Docker engine" in last
    assert "make images" in last


def test_no_engine_is_one_clear_line_before_any_task(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result, _ = run_cli(
        "run",
        "--runner",
        "docker",
        "--registry",
        str(tmp_path / "reg"),
        "--output-dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sigdeploy: error: --runner docker: no Docker engine answers")
    assert "make docker-setup" in last
    assert not (tmp_path / "reg").exists()  # nothing created


def test_a_regression_run_in_containers(tmp_path, component_image):
    """The diabetes regression pipeline with every task in the component image gives the
    same decision as on the local runner (training is deterministic on CPU)."""
    common = ["run", "--runner", "docker", "--data", "sklearn:diabetes", "--label", "target"]
    common += ["--model-name", "diabetes-mlp", "--registry", str(tmp_path / "registry")]
    result, _ = run_cli(*common, "--output-dir", str(tmp_path / "runs"), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "in docker (sigdeploy/python-component:" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["deployed"] is True and summary["compared_with"] == "training-mean baseline"
    assert summary["challenger"]["r2"] > 0.3
    bundle = tmp_path / "registry" / "diabetes-mlp" / "versions" / "1"
    assert json.loads((bundle / "bundle.json").read_text())["model_config"]["task"] == "regression"
    assert bundle.stat().st_uid == COMPONENT_UID
