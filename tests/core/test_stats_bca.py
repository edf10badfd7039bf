"""BCa bootstrap bounds for the macro F1 and log-loss guardrails (issue 13): against
scipy.stats.bootstrap(method="BCa") on the same rows, and the jackknife acceleration against
a brute-force leave-one-out with scikit-learn's metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score

from components.core.evaluation import stats


def _tolerance(se: float, p: float, *resamples: int) -> float:
    """4 Monte-Carlo sds of a bootstrap quantile at level ``p`` (normal approximation),
    two independent runs."""
    z = float(sps.norm.ppf(p))
    per_draw = math.sqrt(p * (1 - p)) / float(sps.norm.pdf(z)) * se
    return 4 * per_draw * math.sqrt(sum(1 / b for b in resamples))


def _skewed_rows(n: int, seed: int):
    """Binary rows where the challenger is sharper: skewed per-row log-loss differences."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    s = 1.5 * y + rng.normal(size=n)
    new = 1 / (1 + np.exp(-2.5 * (s - 0.75)))
    old = 1 / (1 + np.exp(-(s - 0.75)))
    return y, np.c_[1 - new, new], np.c_[1 - old, old]


@pytest.mark.parametrize("sided", ["two-sided", "lower"])
def test_log_loss_bca_matches_scipy(sided):
    """Eight runs each (different seeds): the mean bounds agree within 4 s.e. of their
    difference, the s.e. from the spread over the runs."""
    y, new, old = _skewed_rows(40, seed=2)
    rows = np.arange(y.size)
    improvement = -np.log(old[rows, y]) + np.log(new[rows, y])
    # the acceleration against a brute-force leave-one-row-out jackknife
    theta = np.array([np.delete(improvement, i).mean() for i in rows])
    u = theta.mean() - theta
    want = (u**3).sum() / (6 * ((u**2).sum()) ** 1.5)
    got = stats._skew_acceleration(improvement - improvement.mean(), np.ones(y.size))
    assert got == pytest.approx(want, rel=1e-9)
    confidence = 0.9 if sided == "two-sided" else 0.95
    alternative = "two-sided" if sided == "two-sided" else "greater"
    b, runs = 20_000, 8
    ref = np.array([
        sps.bootstrap(
            (improvement,), np.mean, method="BCa", n_resamples=b, random_state=seed,
            confidence_level=confidence, alternative=alternative,
        ).confidence_interval
        for seed in range(runs)
    ])  # fmt: skip

    def ours(interval):
        return np.array([
            (r.low, r.high)
            for r in (
                stats.bootstrap_difference(
                    "log_loss", y, new, old, confidence=confidence, n_resamples=b,
                    seed=100 + seed, sided=sided, interval=interval,
                )
                for seed in range(runs)
            )
        ])  # fmt: skip

    bca, pct = ours("bca"), ours("percentile")
    ends = [0, 1] if sided == "two-sided" else [0]
    for end in ends:
        se = math.sqrt((bca[:, end].var(ddof=1) + ref[:, end].var(ddof=1)) / runs)
        assert bca[:, end].mean() == pytest.approx(ref[:, end].mean(), abs=4 * se)
        # the correction matters here: BCa moves the bound by more than the noise
        assert abs(pct[:, end].mean() - bca[:, end].mean()) > 4 * se
    assert (
        stats.bootstrap_difference("log_loss", y, new, old, n_resamples=200, interval="bca").method
        == "rows bca"
    )


def test_macro_f1_bca_matches_scipy_and_the_jackknife():
    rng = np.random.default_rng(0)
    n = 60
    y = rng.integers(0, 3, n)
    new = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
    old = np.where(rng.random(n) < 0.6, y, rng.integers(0, 3, n))

    def diff(i):
        return f1_score(y[i], new[i], average="macro") - f1_score(y[i], old[i], average="macro")

    # the acceleration against a brute-force leave-one-row-out jackknife with sklearn
    theta = np.array([diff(np.delete(np.arange(n), i)) for i in range(n)])
    u = theta.mean() - theta
    want = (u**3).sum() / (6 * ((u**2).sum()) ** 1.5)
    assert stats._macro_f1_acceleration(y, new, old) == pytest.approx(want, rel=1e-9, abs=1e-12)

    b_ref, b = 4000, 40_000
    ref = sps.bootstrap(
        (np.arange(n),), diff, vectorized=False, method="BCa", n_resamples=b_ref,
        confidence_level=0.9, random_state=1,
    )  # fmt: skip
    ours = stats.bootstrap_difference(
        "macro_f1", y, new, old, confidence=0.9, n_resamples=b, interval="bca"
    )
    tol = _tolerance(ref.standard_error, 0.05, b_ref, b)
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=tol)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=tol)
    assert ours.method == "label cells bca"


def test_bca_is_only_for_the_bootstrap_guardrails():
    y, new, old = _skewed_rows(30, seed=1)
    with pytest.raises(ValueError, match="bca"):
        stats.bootstrap_difference("auc", y, new[:, 1], old[:, 1], interval="bca")
