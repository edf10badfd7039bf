"""Simulating the gate: how often it deploys a challenger that is no better, and how often it
deploys one that is, side by side with the naive "deploy if the metric is higher" rule.

Each comparison draws paired test rows from four cells: both models right, only the
challenger right, only the champion right, both wrong. Equal accuracy with realistic error
correlation means the two "only one right" cells have the same probability (half the
discordant rate each); an effect moves probability from one to the other. The gate is the
real ``gate.decide`` on probability matrices built from those rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from components.core.evaluation.gate import GatePolicy, decide


@dataclass(frozen=True)
class Scenario:
    n_rows: int = 360  # test rows per comparison
    accuracy: float = 0.90  # the champion's accuracy
    discordant: float = 0.06  # share of rows where exactly one model is right
    effect: float = 0.0  # challenger accuracy minus champion accuracy (0 = the null)
    n_classes: int = 10


@dataclass(frozen=True)
class SimResult:
    comparisons: int
    gate_rate: float  # share of comparisons the gate deployed
    naive_rate: float  # share the naive rule deployed (challenger's accuracy strictly higher)
    gate_mc_error: float  # Monte-Carlo standard error of gate_rate


def cell_probabilities(s: Scenario) -> np.ndarray:
    """[both right, only challenger right, only champion right, both wrong]."""
    only_new = (s.discordant + s.effect) / 2
    only_old = (s.discordant - s.effect) / 2
    both = s.accuracy - only_old
    wrong = 1.0 - both - only_new - only_old
    p = np.array([both, only_new, only_old, wrong])
    if (p < -1e-12).any() or not math.isclose(p.sum(), 1.0):
        raise ValueError(f"scenario {s} gives impossible cell probabilities {p}")
    return np.clip(p, 0, 1)


def _proba(y: np.ndarray, correct: np.ndarray, k: int) -> np.ndarray:
    pred = np.where(correct, y, (y + 1) % k)
    p = np.full((y.shape[0], k), 0.1 / (k - 1))
    p[np.arange(y.shape[0]), pred] = 0.9
    return p


def simulate(
    policy: GatePolicy, scenario: Scenario, comparisons: int = 2000, seed: int = 0
) -> SimResult:
    rng = np.random.default_rng(seed)
    cells = rng.choice(4, size=(comparisons, scenario.n_rows), p=cell_probabilities(scenario))
    labels = rng.integers(0, scenario.n_classes, size=(comparisons, scenario.n_rows))
    new_right = (cells == 0) | (cells == 1)
    old_right = (cells == 0) | (cells == 2)
    naive = new_right.sum(1) > old_right.sum(1)
    deployed = np.zeros(comparisons, dtype=bool)
    for i in range(comparisons):
        y = labels[i]
        d = decide(
            policy,
            y,
            _proba(y, new_right[i], scenario.n_classes),
            _proba(y, old_right[i], scenario.n_classes),
            champion_name="champion",
            first_run=False,
            explain=False,
        )
        deployed[i] = d.deploy
    rate = float(deployed.mean())
    return SimResult(
        comparisons=comparisons,
        gate_rate=rate,
        naive_rate=float(naive.mean()),
        gate_mc_error=math.sqrt(max(rate * (1 - rate), 1e-12) / comparisons),
    )
