"""The regression gate's statistics against scipy and statsmodels, and a null simulation:
a challenger no better than the champion is deployed at most alpha of the time."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from components.core.evaluation.regression import (
    linear_baseline,
    mean_baseline,
    minimum_detectable_effect,
    paired_bootstrap,
    paired_improvement,
    paired_test,
    power,
    regression_metrics,
)


def _pair(seed: int, n: int = 200, gain: float = 0.0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n) * 3
    old = y + rng.normal(scale=1.0, size=n)
    new = y + rng.normal(scale=1.0, size=n) * (1 - gain)
    return y, new, old


def test_metrics_match_scikit_learn():
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y, new, _ = _pair(0)
    m = regression_metrics(y, new)
    assert m["rmse"] == pytest.approx(mean_squared_error(y, new) ** 0.5, rel=1e-12)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, new), rel=1e-12)
    assert m["r2"] == pytest.approx(r2_score(y, new), rel=1e-12)


@pytest.mark.parametrize(("seed", "margin"), [(1, 0.0), (2, 0.05), (3, -0.1)])
def test_paired_t_test_is_scipy_ttest_rel(seed, margin):
    y, new, old = _pair(seed, gain=0.1)
    d = paired_improvement(y, new, old)
    ours = paired_test(d, "ttest", margin)
    ref = sps.ttest_rel((old - y) ** 2, (new - y) ** 2 + margin, alternative="greater")
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-9)


@pytest.mark.parametrize("loss", ["squared", "absolute"])
def test_wilcoxon_is_scipy_signed_rank(loss):
    y, new, old = _pair(4, n=80, gain=0.2)
    d = paired_improvement(y, new, old, loss)
    ours = paired_test(d, "wilcoxon", 0.01, loss)
    ref = sps.wilcoxon(d - 0.01, alternative="greater")
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_power_and_mde_match_statsmodels():
    from statsmodels.stats.power import NormalIndPower

    sd, n, level = 2.0, 150, 0.025
    effect = 0.4
    # one sample: statsmodels' two-sample normal power with ratio=0 is the one-sample form
    ref = NormalIndPower().power(effect / sd, nobs1=n, alpha=level, ratio=0, alternative="larger")
    assert power(effect, sd, n, level) == pytest.approx(ref, rel=1e-9)
    mde = minimum_detectable_effect(sd, n, level, 0.8)
    assert power(mde, sd, n, level) == pytest.approx(0.8, rel=1e-9)


def test_bootstrap_interval_covers_the_mean_and_matches_scipy():
    y, new, old = _pair(5, n=400, gain=0.1)
    d = paired_improvement(y, new, old)
    low, high = paired_bootstrap(d, resamples=4000, seed=1)
    ref = sps.bootstrap((d,), np.mean, n_resamples=4000, method="percentile", rng=2)
    assert low < d.mean() < high
    width = high - low
    assert low == pytest.approx(ref.confidence_interval.low, abs=0.1 * width)
    assert high == pytest.approx(ref.confidence_interval.high, abs=0.1 * width)


@pytest.mark.parametrize("method", ["ttest", "wilcoxon"])
def test_no_better_challenger_is_deployed_at_most_alpha_of_the_time(method):
    """Null simulation: both models' errors from one distribution (heavy-tailed for the
    t-test's sake), 100 rows, 1,000 comparisons."""
    rng = np.random.default_rng(7)
    alpha, sims, n = 0.05, 1000, 100
    deployed = 0
    for _ in range(sims):
        y = rng.normal(size=n)
        new = y + rng.standard_t(4, size=n)
        old = y + rng.standard_t(4, size=n)
        deployed += paired_test(paired_improvement(y, new, old), method).deploy(alpha)
    rate = deployed / sims
    # Monte-Carlo s.e. at alpha: sqrt(0.05 * 0.95 / 1000) = 0.007; allow three of them
    assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / sims)


def test_a_real_improvement_is_found():
    y, new, old = _pair(8, n=500, gain=0.3)
    d = paired_improvement(y, new, old)
    assert paired_test(d, "ttest").deploy(0.025)
    assert paired_test(d, "wilcoxon").deploy(0.025)
    # and the same challenger against itself is not
    assert not paired_test(paired_improvement(y, new, new), "ttest").deploy(0.025)


def test_baselines():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(300, 3))
    y = 2 + x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=300)
    assert np.allclose(mean_baseline(y, 4), y.mean())
    pred = linear_baseline(x[:200], y[:200], x[200:])
    from sklearn.linear_model import LinearRegression

    ref = LinearRegression().fit(x[:200], y[:200]).predict(x[200:])
    np.testing.assert_allclose(pred, ref, atol=1e-4)


def test_bad_inputs():
    with pytest.raises(ValueError, match="method"):
        paired_test(np.ones(3), "sign")
    with pytest.raises(ValueError, match="finite"):
        paired_test(np.array([1.0, np.nan]))
    assert paired_test(np.zeros(5)).p_value == 1.0
