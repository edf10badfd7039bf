"""benchmarks/image_size.py, once: its three comparison lines, from the real images."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(\w+): ours=([\d.]+) (MB|s) (\w+)=([\d.]+) (MB|s) ratio=([\d.]+)$")


def test_image_size_benchmark_prints_its_lines(docker_runs, serving_image, component_image):
    work, first, *_ = docker_runs
    assert first.returncode == 0, first.stderr[-3000:]
    out = subprocess.run(
        [
            sys.executable,
            "benchmarks/image_size.py",
            "--repeats",
            "1",
            "--registry",
            str(work / "registry"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = {m.group(1): m for line in out.stdout.splitlines() if (m := LINE.match(line))}
    assert set(found) == {"image_serving_size", "image_component_size", "serve_start_to_healthy"}
    # the serving image is the one without torch: smaller than the same image with it
    assert float(found["image_serving_size"].group(7)) < 1
    assert 0 < float(found["serve_start_to_healthy"].group(2)) < 60
