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


# --------------------------------------------------------------------------------------
# A pipeline's life: many models compared on shared test rows (gate_lifetime.py)
# --------------------------------------------------------------------------------------
#
# A row is either easy (every model gets it right) or contested; on a contested row each
# model is right independently with its own probability q, its quality. Two models of the
# same quality then disagree on 2 q (1 - q) of the contested rows, and what ties their
# comparisons together is the rows themselves: a champion that happened to be right on many
# contested test rows looks better than it is on every later comparison there. With 20%
# contested rows and q = 1/2 the first champion is 90% accurate and two equally good
# models disagree on 10% of rows; a challenger with q = 0.65 is 3 points better at the same
# 10% discordance. Only contested rows enter a McNemar count, so only they are simulated.


@dataclass(frozen=True)
class RowModel:
    contested: float = 0.20  # share of test rows on which models can differ
    accuracy: float = 0.90  # the first champion's accuracy

    @property
    def quality(self) -> float:
        """The first champion's chance of being right on a contested row."""
        q = (self.accuracy - (1 - self.contested)) / self.contested
        if not 0 < q < 1:
            raise ValueError(f"accuracy {self.accuracy} needs contested > {1 - self.accuracy}")
        return q

    def improved(self, quality: np.ndarray, gain: float) -> np.ndarray:
        """The quality of a model ``gain`` more accurate (an accuracy difference)."""
        return quality + gain / self.contested


def contested_rows(
    rng: np.random.Generator, replicates: int, rows: int, contested: float
) -> np.ndarray:
    """(replicates x slots) mask of the contested rows among ``rows`` i.i.d. test rows, as
    left-aligned slots (the easy rows carry no information)."""
    counts = rng.binomial(rows, contested, size=replicates)
    slots = int(counts.max()) if replicates else 0
    return np.arange(slots)[None, :] < counts[:, None]


def right_on(rng: np.random.Generator, quality: np.ndarray | float, rows: np.ndarray) -> np.ndarray:
    """Which contested rows a model of ``quality`` (per replicate, or one value) gets right."""
    q = np.broadcast_to(np.asarray(quality, dtype=np.float64), rows.shape[:1])
    return (rng.random(rows.shape) < q[:, None]) & rows


def discordant_counts(
    new: np.ndarray, old: np.ndarray, use: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(b, c) per replicate on the rows in ``use``: rows only the champion (``old``) got
    right, and rows only the challenger (``new``) got right."""
    return (old & ~new & use).sum(axis=1), (new & ~old & use).sum(axis=1)


def mcnemar_greater(b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The exact one-sided McNemar p-value P(Bin(b + c, 1/2) >= c), vectorised (1 when
    b + c = 0), as ``stats.mcnemar(b, c)`` computes it one pair at a time."""
    from scipy import stats as sps

    b, c = np.asarray(b), np.asarray(c)
    d = b + c
    return np.where(d > 0, sps.binom.sf(c - 1, np.maximum(d, 1), 0.5), 1.0)


def full_rows(
    rng: np.random.Generator, new: np.ndarray, old: np.ndarray, rows: int, k: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One replicate's contested outcomes (1-D, real slots only) laid out as ``rows`` test
    rows with the easy ones right for both: labels and the two probability matrices that
    ``gate.decide`` takes."""
    n_contested = new.shape[0]
    new_right = np.r_[new, np.ones(rows - n_contested, dtype=bool)]
    old_right = np.r_[old, np.ones(rows - n_contested, dtype=bool)]
    y = rng.integers(0, k, size=rows)
    return y, _proba(y, new_right, k), _proba(y, old_right, k)
