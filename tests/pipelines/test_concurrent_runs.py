"""Two `sigdeploy run` at once on one registry: promotion is compare-and-swap.

A weak champion first (one epoch), then two runs started together with different seeds.
Both usually evaluate against that champion and both say deploy; only the first deploy may
promote, the other finds the champion moved and keeps it. Whatever the timing, every
promotion in the history was decided against the champion it replaced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from components.core.registry import LocalRegistry

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIGDEPLOY = str(Path(sys.executable).with_name("sigdeploy"))
MOVED = "the champion moved since evaluation"


def _start(work: Path, name: str, *args: str) -> subprocess.Popen[str]:
    cmd = [SIGDEPLOY, "run", "--registry", str(work / "registry"), "--json"]
    cmd += ["--output-dir", str(work / name), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        cmd, cwd=work, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _finish(run: subprocess.Popen[str]) -> dict:
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err[-3000:]
    return json.loads(out) | {"stderr": err}


@pytest.fixture(scope="module")
def raced(tmp_path_factory):
    work = tmp_path_factory.mktemp("concurrent")
    # a deliberately weak first champion (1 epoch) that the raced runs can beat; the
    # first-run guard would rightly refuse it, and it is not what this test is about
    first = _finish(_start(work, "runs-0", "--epochs", "1", "--param", "first_run_guard=none"))
    assert first["deployed"] and first["champion_version"] == "1"
    runs = [_start(work, f"runs-{seed}", "--param", f"seed={seed}", "--epochs", "6")
            for seed in (1, 2)]  # fmt: skip
    return work, [_finish(run) for run in runs]


def test_every_promotion_was_decided_against_the_champion_it_replaced(raced):
    work, _ = raced
    reg = LocalRegistry(work / "registry", "digits-mlp")
    champion = None
    promoted: Counter[str | None] = Counter()  # champion compared against -> promotions
    for entry in reg.history():
        against = entry.get("decision", {}).get("champion_version")
        if entry["event"] == "deployed":
            assert against == champion == entry["previous"], entry
            promoted[against] += 1
            champion = entry["version"]
        elif entry["event"] == "kept" and str(entry.get("reason", "")).startswith(MOVED):
            assert entry["champion"] == champion != against, entry
    assert all(n == 1 for n in promoted.values()), promoted
    assert reg.champion().version == champion
    assert len(reg.versions()) == sum(promoted.values())


def test_of_two_runs_against_the_same_champion_at_most_one_deploys(raced):
    work, (one, two) = raced
    decisions = [json.loads(Path(s["paths"]["decision"]).read_text()) for s in (one, two)]
    if decisions[0]["champion_version"] == decisions[1]["champion_version"]:
        assert not (one["deployed"] and two["deployed"])
    if all(d["deploy"] for d in decisions) and decisions[0]["champion_version"] == "1":
        # the race this test is about: one promotes, the other keeps its winner and says so
        winner, loser = (one, two) if one["deployed"] else (two, one)
        assert winner["deployed"] and not loser["deployed"]
        reason = f"{MOVED}: the decision was made against version 1, the champion is now "
        assert loser["champion_moved"].startswith(reason)
        assert f"not promoted, the champion is kept: {reason}" in loser["stderr"]
    for summary in (one, two):  # a run that was refused says so, and nothing else failed
        assert (
            summary["deployed"]
            or not summary["champion_moved"]
            or MOVED in summary["champion_moved"]
        )
