"""A container test that cannot run is a failure under CI (CI=true) and a skip with the reason
elsewhere: pytest run on one container test with an engine address that answers nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = (
    "tests/containers/test_images_built.py"
    "::test_serving_image_has_no_torch_and_the_component_image_has"
)


@pytest.mark.parametrize("ci, code, words", [("true", 1, "ERROR"), ("", 0, "SKIPPED")])
def test_no_engine_fails_under_ci_and_skips_elsewhere(tmp_path, ci, code, words):
    env = {**os.environ, "CI": ci, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", TARGET],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == code, out.stdout[-2000:]
    assert words in out.stdout
    assert "no Docker engine answers" in out.stdout and "make docker-setup" in out.stdout
    if ci:
        assert "container test cannot run under CI" in out.stdout
