"""The empirical-Bayes estimate, from a registry's recorded decisions, of how often this
team's deploys are not better (issue 13, optional part): against the truth of simulated
histories whose challengers' gains are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from components.core.evaluation import bayes


def _history(rng, comparisons, mu, tau, psi=0.1):
    """Simulated decisions: true gains ~ N(mu, tau^2); the gate's exact McNemar rule
    (scipy's binomial tail, at least 10 discordant rows) decides each."""
    gains = np.clip(rng.normal(mu, tau, comparisons), -psi + 1e-3, psi - 1e-3)
    records = []
    for g in gains:
        n = int(rng.integers(300, 3000))
        b, c, _ = rng.multinomial(n, [(psi - g) / 2, (psi + g) / 2, 1 - psi])
        deploy = b + c >= 10 and sps.binom.sf(c - 1, b + c, 0.5) < 0.05
        counts = {"test_rows": n, "only_champion_right": int(b), "only_challenger_right": int(c)}
        records.append({"event": "deployed" if deploy else "kept", "deploy": bool(deploy),
                        "counts": counts})  # fmt: skip
    return gains, records


@pytest.mark.parametrize(("mu", "tau"), [(-0.005, 0.01), (0.0, 0.004), (0.01, 0.015)])
def test_the_estimated_share_of_deploys_not_better_matches_the_truth(mu, tau):
    gains, records = _history(np.random.default_rng(7), 2000, mu, tau)
    got = bayes.history_not_better(records)
    deployed = np.array([r["deploy"] for r in records])
    truth = float(np.mean(gains[deployed] <= 0))
    k = int(deployed.sum())
    se = math.sqrt(max(truth * (1 - truth), 0.01) / k)
    assert got["deploys"] == k and got["decisions"] == 2000
    assert abs(got["share_of_deploys_not_better"] - truth) <= 3 * se + 0.01, (got, truth)
    assert got["prior_mean_gain"] == pytest.approx(mu, abs=0.0015)
    assert got["prior_sd_gain"] == pytest.approx(tau, abs=0.0025)
    # the naive reading "alpha of deploys are not better" is not what this estimates
    assert "empirical Bayes" in got["method"]


def test_too_short_a_history_gives_no_estimate():
    _, records = _history(np.random.default_rng(1), 9, 0.0, 0.01)
    assert bayes.history_not_better(records) is None
    assert bayes.history_not_better([{"event": "rollback"}] * 20) is None
