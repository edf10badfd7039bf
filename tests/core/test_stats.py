"""Tests for components.core.evaluation.stats against statsmodels, scipy, scikit-learn, brute
force and pinned R pROC values (the live R cross-check is in test_stats_r.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score, log_loss, roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar

from components.core.evaluation import stats

# b = only champion right, c = only challenger right: b + c = 0, < 10, moderate, large.
DISCORDANT = [(0, 4), (3, 9), (9, 3), (12, 5), (40, 61), (500, 560), (4810, 5030), (7, 7)]


# --------------------------------------------------------------------------------------
# McNemar
# --------------------------------------------------------------------------------------


# statsmodels does not clamp |c - b| - 1 at 0 when b == c; that case is tested separately.
STATSMODELS_CASES = [
    (b, c, method, exact, correction)
    for b, c in DISCORDANT
    for method, exact, correction in [
        ("exact", True, False), ("chi2", False, False), ("chi2-corrected", False, True)
    ]
    if not (method == "chi2-corrected" and b == c)
]  # fmt: skip


@pytest.mark.parametrize(("b", "c", "method", "exact", "correction"), STATSMODELS_CASES)
def test_mcnemar_two_sided_matches_statsmodels(b, c, method, exact, correction):
    table = [[25, b], [c, 31]]  # concordant cells must not matter
    ref = statsmodels_mcnemar(table, exact=exact, correction=correction)
    got = stats.mcnemar(b, c, alternative="two-sided", method=method)
    assert got.pvalue == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-300)
    if method == "exact":
        assert got.statistic == c  # statsmodels reports min(b, c)
    else:
        assert got.statistic == pytest.approx(ref.statistic, rel=1e-12)


@pytest.mark.parametrize(("b", "c"), DISCORDANT)
def test_mcnemar_exact_greater_matches_binomtest(b, c):
    ref = sps.binomtest(c, b + c, 0.5, alternative="greater").pvalue
    got = stats.mcnemar(b, c)  # defaults: greater, exact
    assert got.pvalue == pytest.approx(ref, rel=1e-12)
    assert got.statistic == c


@pytest.mark.parametrize(("b", "c"), DISCORDANT)
def test_mcnemar_midp_is_exact_minus_half_point_probability(b, c):
    n = b + c
    greater = sps.binomtest(c, n, 0.5, alternative="greater").pvalue - 0.5 * sps.binom.pmf(
        c, n, 0.5
    )
    k = min(b, c)
    two_sided = min(1.0, 2 * sps.binom.cdf(k, n, 0.5) - sps.binom.pmf(k, n, 0.5))
    assert stats.mcnemar(b, c, method="midp").pvalue == pytest.approx(greater, rel=1e-12)
    got_two = stats.mcnemar(b, c, method="midp", alternative="two-sided").pvalue
    assert got_two == pytest.approx(two_sided, rel=1e-12)
    assert got_two <= stats.mcnemar(b, c, alternative="two-sided").pvalue


@pytest.mark.parametrize("method", ["chi2", "chi2-corrected"])
def test_mcnemar_one_sided_chi2_uses_signed_deviate(method):
    better = stats.mcnemar(40, 61, method=method)
    worse = stats.mcnemar(61, 40, method=method)
    two = stats.mcnemar(40, 61, method=method, alternative="two-sided")
    assert better.pvalue == pytest.approx(two.pvalue / 2, rel=1e-12)
    assert better.pvalue == pytest.approx(sps.norm.sf(math.sqrt(better.statistic)), rel=1e-12)
    assert worse.pvalue == pytest.approx(1 - better.pvalue, rel=1e-12)
    assert worse.pvalue > 0.5


@pytest.mark.parametrize("method", stats.MCNEMAR_METHODS)
@pytest.mark.parametrize("alternative", stats.ALTERNATIVES)
def test_mcnemar_without_discordant_pairs_never_passes(method, alternative):
    res = stats.mcnemar(0, 0, method=method, alternative=alternative)
    assert (res.statistic, res.pvalue) == (0.0, 1.0)
    # statsmodels' exact test agrees; its chi-square versions give NaN here
    assert statsmodels_mcnemar([[5, 0], [0, 7]], exact=True).pvalue == 1.0


def test_mcnemar_continuity_correction_clamps_at_zero():
    res = stats.mcnemar(7, 7, method="chi2-corrected", alternative="two-sided")
    assert (res.statistic, res.pvalue) == (0.0, 1.0)
    # |c - b| = 1: the corrected deviate is 0, so one-sided p is exactly one half
    assert stats.mcnemar(7, 8, method="chi2-corrected").pvalue == 0.5


def test_mcnemar_accepts_numpy_and_integral_float_counts():
    ref = stats.mcnemar(3, 9).pvalue
    assert stats.mcnemar(np.int64(3), np.int32(9)).pvalue == ref
    assert stats.mcnemar(3.0, 9.0).pvalue == ref


@pytest.mark.parametrize("bad", [-1, 2.5, float("nan"), float("inf"), True, "3", None])
def test_mcnemar_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="^b must be a non-negative integer count"):
        stats.mcnemar(bad, 3)
    with pytest.raises(ValueError, match="^c must be a non-negative integer count"):
        stats.mcnemar(3, bad)


def test_mcnemar_rejects_unknown_options():
    with pytest.raises(ValueError, match=r"^method='mid-p' is not recognised; use one of"):
        stats.mcnemar(1, 2, method="mid-p")
    with pytest.raises(ValueError, match=r"^alternative='less' is not recognised"):
        stats.mcnemar(1, 2, alternative="less")


# --------------------------------------------------------------------------------------
# Binomial test, power and minimum detectable effect
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n", "p0"), [(80, 100, 0.7), (7, 10, 0.5), (0, 5, 0.3), (9, 9, 0.9)])
def test_binomial_test_greater_matches_scipy(k, n, p0):
    ref = sps.binomtest(k, n, p0, alternative="greater").pvalue
    assert stats.binomial_test_greater(k, n, p0) == pytest.approx(ref, rel=1e-12)


def test_binomial_test_greater_rejects_bad_input():
    with pytest.raises(ValueError, match="cannot exceed n"):
        stats.binomial_test_greater(11, 10, 0.5)
    with pytest.raises(ValueError, match="^n must be at least 1"):
        stats.binomial_test_greater(0, 0, 0.5)
    with pytest.raises(ValueError, match=r"^p0 must be in \[0, 1\]"):
        stats.binomial_test_greater(3, 10, 1.5)


def _brute_force_power(p01, p10, n, alpha):
    """Sum over every (discordant, challenger-win) count, rejecting by scipy's binomtest."""
    p_disc = p01 + p10
    total = 0.0
    for d in range(1, n + 1):  # no discordant rows never rejects
        for c in range(d + 1):
            if sps.binomtest(c, d, 0.5, alternative="greater").pvalue <= alpha:
                total += sps.binom.pmf(d, n, p_disc) * sps.binom.pmf(c, d, p10 / p_disc)
    return total


@pytest.mark.parametrize(("p01", "p10", "n"), [(0.1, 0.3, 30), (0.05, 0.08, 25), (0.2, 0.2, 20)])
def test_mcnemar_power_matches_brute_force(p01, p10, n):
    ref = _brute_force_power(p01, p10, n, 0.05)
    assert stats.mcnemar_power(p01, p10, n, 0.05) == pytest.approx(ref, rel=1e-9, abs=1e-14)


def test_mcnemar_power_matches_simulation_and_behaves():
    rng = np.random.default_rng(3)
    cells = rng.multinomial(1000, [0.05, 0.08, 0.87], size=20_000)
    pvalues = sps.binom.sf(cells[:, 1] - 1, cells[:, 0] + cells[:, 1], 0.5)
    simulated = np.mean(pvalues <= 0.05)
    power = stats.mcnemar_power(0.05, 0.08, 1000, 0.05)
    assert power == pytest.approx(simulated, abs=4 * math.sqrt(0.25 / 20_000))
    assert stats.mcnemar_power(0.05, 0.05, 1000, 0.05) <= 0.05  # exact test keeps its size
    assert stats.mcnemar_power(0.05, 0.10, 1000, 0.05) > power
    assert stats.mcnemar_power(0.0, 0.0, 1000, 0.05) == 0.0
    with pytest.raises(ValueError, match="exceeds 1"):
        stats.mcnemar_power(0.7, 0.6, 100)


def test_minimum_detectable_effect_is_the_power_threshold():
    n, rate = 1000, 0.13
    mde = stats.mcnemar_minimum_detectable_effect(n, rate, 0.05, 0.8)
    assert 0.0 < mde < rate

    def power_at(delta):
        return stats.mcnemar_power((rate - delta) / 2, (rate + delta) / 2, n, 0.05)

    assert power_at(mde) >= 0.8
    assert power_at(mde - 1e-6) < 0.8
    assert stats.mcnemar_minimum_detectable_effect(4000, rate, 0.05, 0.8) < mde


def test_minimum_detectable_effect_is_inf_when_nothing_is_detectable():
    # about 2 discordant rows: the exact test needs at least 5 to reject at 5%
    assert stats.mcnemar_minimum_detectable_effect(1000, 0.002) == math.inf
    assert stats.mcnemar_minimum_detectable_effect(1000, 0.0) == math.inf


# --------------------------------------------------------------------------------------
# DeLong
# --------------------------------------------------------------------------------------

# Pinned from R 4.2.2, pROC 1.18.0:
#   r1 <- roc(y, a, levels=c(0,1), direction="<"); r2 <- roc(y, b, levels=c(0,1), direction="<")
#   roc.test(r1, r2, method="delong", paired=TRUE, alternative=...)
# Data set 1 has ties (one decimal), data set 2 has none.
R_Y1 = [0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1]
R_Y1 += [1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1]
R_A1 = [1.2, 0.6, 0.6, -1.4, -2.1, 1.6, -0.2, 1.8, 2.8, 0.9, -1.1, 0.4, 1.8, -0.3, 1.0, 1.3]
R_A1 += [1.3, 0.7, -0.9, 0.9, 1.6, 0.8, 0.4, -0.8, 0.4, 0.3, -0.5, 2.1, 0.2, 1.9, 0.4, 1.1]
R_A1 += [-0.8, 0.5, 2.0, 0.1, 0.5, 0.7, 1.1, 0.8]
R_B1 = [-0.6, 0.3, 0.1, 0.8, 0.2, 0.6, 0.5, 1.6, -0.1, -0.1, 0.9, -0.1, 0.8, -0.7, 0.4, 0.4]
R_B1 += [-1.3, -0.7, 0.4, 2.6, 0.9, 0.3, -0.4, 0.4, -2.1, 0.4, -0.3, -0.1, 2.7, -2.1, -0.0, 0.5]
R_B1 += [0.5, -1.2, -0.5, -1.5, -0.1, 0.2, 0.2, 0.2]
R_Y2 = [0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0]
R_A2 = [-1.5301, -0.4778, -0.9785, 0.7912, 2.6609, -0.8075, 1.5675, 0.8844, -0.5836, 1.4883]
R_A2 += [1.7105, 1.6638, 0.3749, 1.6761, 1.3588, -1.5471, 0.8594, 0.1194, -0.6415, 2.0004]
R_A2 += [2.3623, 0.4007, 0.0745, 2.1767, 1.4112, 0.6829, 1.5335, 0.6672, 1.4385, -0.6757]
R_B2 = [0.2031, -0.4633, 0.1273, -0.6872, -0.0793, -0.1962, 1.3988, 1.1452, -1.3235, -0.2946]
R_B2 += [1.1469, -1.4924, 0.0368, 0.4027, 1.257, 0.6894, -0.3272, -0.3686, -0.2502, 1.5235]
R_B2 += [0.072, 0.1963, 0.3526, 0.3792, 0.3027, -1.1141, 0.4885, -0.4436, 1.1661, 0.6531]
R_PINNED = [
    # (y, a, b, alternative, auc1, auc2, z, p)
    (R_Y1, R_A1, R_B1, "greater", 0.73684210526315785, 0.63032581453634084,
     0.80880559765891424, 0.20931348796044977),
    (R_Y1, R_A1, R_B1, "two-sided", 0.73684210526315785, 0.63032581453634084,
     0.80880559765891424, 0.41862697592089954),
    (R_Y2, R_A2, R_B2, "greater", 0.87782805429864252, 0.51583710407239824,
     3.4298403542487206, 0.00030196823597931135),
    (R_Y2, R_A2, R_B2, "two-sided", 0.87782805429864252, 0.51583710407239824,
     3.4298403542487206, 0.0006039364719586227),
    (R_Y2, R_B2, R_A2, "greater", 0.51583710407239824, 0.87782805429864252,
     -3.4298403542487206, 0.99969803176402072),
]  # fmt: skip


@pytest.mark.parametrize(("y", "a", "b", "alternative", "auc1", "auc2", "z", "p"), R_PINNED)
def test_delong_matches_pinned_proc_values(y, a, b, alternative, auc1, auc2, z, p):
    res = stats.delong(y, a, b, alternative=alternative)
    assert res.auc_challenger == pytest.approx(auc1, abs=1e-12)
    assert res.auc_champion == pytest.approx(auc2, abs=1e-12)
    assert res.statistic == pytest.approx(z, abs=1e-9)
    assert res.pvalue == pytest.approx(p, abs=1e-9, rel=1e-9)


def _brute_force_delong(y, a, b):
    """DeLong (1988) straight from the definition: an n_pos x n_neg kernel per classifier."""
    y = np.asarray(y, dtype=bool)

    def placements(s):
        kernel = (s[y][:, None] > s[~y][None, :]) + 0.5 * (s[y][:, None] == s[~y][None, :])
        return kernel.mean(axis=1), kernel.mean(axis=0), kernel.mean()

    v10a, v01a, auc_a = placements(np.asarray(a, float))
    v10b, v01b, auc_b = placements(np.asarray(b, float))
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    cov = s10 / y.sum() + s01 / (~y).sum()
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    return auc_a, auc_b, (auc_a - auc_b) / math.sqrt(var)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("block", [None, 1, 5])
def test_delong_matches_brute_force_with_ties(seed, block, monkeypatch):
    if block is not None:  # small blocks put block boundaries inside tie groups and runs
        monkeypatch.setattr(stats, "_DELONG_BLOCK", block)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 160))
    y = rng.random(n) < rng.uniform(0.2, 0.8)
    y[:2], y[2:4] = True, False
    decimals = [0, 1, 3, 6][seed % 4]  # from heavy ties to (almost) none
    a = np.round(rng.normal(size=n) + rng.uniform(0, 2) * y, decimals)
    b = np.round(rng.normal(size=n) + rng.uniform(0, 2) * y, decimals)
    auc_a, auc_b, z = _brute_force_delong(y, a, b)
    res = stats.delong(y.astype(int), a, b, alternative="two-sided")
    assert res.auc_challenger == pytest.approx(auc_a, abs=1e-13)
    assert res.auc_champion == pytest.approx(auc_b, abs=1e-13)
    assert res.statistic == pytest.approx(z, rel=1e-10)
    assert res.pvalue == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-8)
    assert stats.delong(y, a, b).pvalue == pytest.approx(sps.norm.sf(z), rel=1e-8)
    assert res.auc_challenger == pytest.approx(roc_auc_score(y, a), abs=1e-13)


def test_delong_without_ties_uses_the_streaming_path_and_agrees(monkeypatch):
    rng = np.random.default_rng(11)
    y = rng.random(500) < 0.3
    a, b = rng.normal(size=500) + y, rng.normal(size=500) + 0.5 * y
    default = stats.delong(y, a, b)
    monkeypatch.setattr(stats, "_DELONG_BLOCK", 7)
    small_blocks = stats.delong(y, a, b)
    assert small_blocks.statistic == pytest.approx(default.statistic, rel=1e-12)
    assert small_blocks.auc_challenger == default.auc_challenger
    assert default.statistic == pytest.approx(_brute_force_delong(y, a, b)[2], rel=1e-10)


def test_delong_zero_variance_gives_no_evidence():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.7])
    same = stats.delong(y, s, s.copy())
    assert (same.statistic, same.pvalue, same.variance) == (0.0, 1.0, 0.0)
    perfect_a, perfect_b = y + 0.1 * np.arange(6), 2.0 * y
    both_perfect = stats.delong(y, perfect_a, perfect_b, alternative="two-sided")
    assert both_perfect.auc_challenger == both_perfect.auc_champion == 1.0
    assert (both_perfect.statistic, both_perfect.pvalue) == (0.0, 1.0)
    # Every positive tied with every negative for the champion, perfect challenger: the
    # difference 0.5 has zero estimated variance, which must not become an infinite z.
    degenerate = stats.delong(y, y.astype(float), np.zeros(6))
    assert degenerate.auc_challenger - degenerate.auc_champion == 0.5
    assert (degenerate.statistic, degenerate.pvalue) == (0.0, 1.0)


def test_delong_perfect_challenger_is_finite_and_matches_brute_force():
    rng = np.random.default_rng(5)
    y = rng.random(80) < 0.5
    perfect = y + rng.random(80) * 0.5
    noisy = rng.normal(size=80) + y
    res = stats.delong(y, perfect, noisy)
    assert res.auc_challenger == 1.0
    assert math.isfinite(res.statistic) and 0.0 <= res.pvalue < 0.05
    assert res.statistic == pytest.approx(_brute_force_delong(y, perfect, noisy)[2], rel=1e-10)


def test_delong_bool_and_int_labels_agree():
    y, a, b = np.array(R_Y2), np.array(R_A2), np.array(R_B2)
    assert stats.delong(y.astype(bool), a, b) == stats.delong(y, a, b)
    assert stats.delong(y.astype(float), a, b) == stats.delong(y, a, b)


@pytest.mark.parametrize(
    ("y", "a", "b", "match"),
    [
        ([0, 0, 0, 0], [1, 2, 3, 4], [1, 2, 3, 4], "at least two of each class"),
        ([0, 0, 0, 1], [1, 2, 3, 4], [1, 2, 3, 4], "at least two of each class"),
        ([0, 1, 2, 1], [1, 2, 3, 4], [1, 2, 3, 4], "^y_true must contain only 0 and 1"),
        ([0, 1, 0, 1], [1, np.nan, 3, 4], [1, 2, 3, 4], "^scores_challenger contains NaN"),
        ([0, 1, 0, 1], [1, 2, 3, 4], [1, 2, np.inf, 4], "^scores_champion contains NaN or inf"),
        ([0, 1, 0, 1], [1, 2, 3], [1, 2, 3, 4], "^scores_challenger has 3 rows but y_true has 4"),
        ([], [], [], "^y_true is empty"),
        ([0, 1, 0, 1], [[1, 2, 3, 4]], [1, 2, 3, 4], "^scores_challenger must be 1-D"),
    ],
)
def test_delong_rejects_bad_input(y, a, b, match):
    with pytest.raises(ValueError, match=match):
        stats.delong(y, a, b)


def test_delong_rejects_unknown_alternative():
    with pytest.raises(ValueError, match="^alternative='less' is not recognised"):
        stats.delong(R_Y2, R_A2, R_B2, alternative="less")


# --------------------------------------------------------------------------------------
# Paired bootstrap
# --------------------------------------------------------------------------------------


def _paired_labels(n, seed, k=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    a = np.where(rng.random(n) < 0.80, y, rng.integers(0, k, n))
    b = np.where(rng.random(n) < 0.74, y, rng.integers(0, k, n))
    return y, a, b


def _assert_intervals_agree(ours, low, high, draws_sd, tol_sd):
    assert abs(ours.low - low) < tol_sd * draws_sd, (ours.low, low, draws_sd)
    assert abs(ours.high - high) < tol_sd * draws_sd, (ours.high, high, draws_sd)


def test_bootstrap_accuracy_matches_naive_row_resampling():
    y, a, b = _paired_labels(1500, seed=1)
    right_a, right_b = (a == y).astype(float), (b == y).astype(float)
    rng = np.random.default_rng(99)
    naive = np.concatenate([
        right_a[i].mean(axis=1) - right_b[i].mean(axis=1)
        for i in (rng.integers(0, y.size, size=(1000, y.size)) for _ in range(10))
    ])  # fmt: skip
    low, high = np.quantile(naive, [0.025, 0.975])
    ours = stats.bootstrap_difference("accuracy", y, a, b, n_resamples=10_000, seed=5)
    assert ours.estimate == pytest.approx(right_a.mean() - right_b.mean(), abs=1e-15)
    assert (ours.confidence, ours.n_resamples, ours.sided) == (0.95, 10_000, "two-sided")
    # Monte-Carlo sd of a 2.5% quantile of 10^4 draws is ~0.03 bootstrap sds, and the
    # difference lives on a grid of 1/1500 (~0.05 sds).
    _assert_intervals_agree(ours, low, high, naive.std(), tol_sd=0.15)
    assert (ours.high - ours.low) == pytest.approx(high - low, rel=0.05)


def test_bootstrap_accuracy_is_reproducible_and_seeded():
    y, a, b = _paired_labels(300, seed=2)
    first = stats.bootstrap_difference("accuracy", y, a, b, n_resamples=2000, seed=7)
    assert stats.bootstrap_difference("accuracy", y, a, b, n_resamples=2000, seed=7) == first
    other = stats.bootstrap_difference("accuracy", y, a, b, n_resamples=2000, seed=8)
    assert (other.low, other.high) != (first.low, first.high)


def test_bootstrap_accuracy_cost_does_not_depend_on_rows():
    # 10^7 rows, 10^4 resamples: row resampling would need 10^11 draws.
    n = 10_000_000
    y = np.zeros(n, dtype=np.int8)
    a, b = y.copy(), y.copy()
    a[:3_000_000] = 1  # challenger wrong on 30%
    b[2_000_000:4_500_000] = 1  # champion wrong on 25%
    res = stats.bootstrap_difference("accuracy", y, a, b, n_resamples=10_000)
    assert res.estimate == pytest.approx(-0.05, abs=1e-12)
    # only the challenger right on 15% of rows, only the champion on 20%
    se = math.sqrt((0.15 + 0.20 - 0.05**2) / n)
    assert res.low == pytest.approx(-0.05 - 1.96 * se, abs=0.15 * se)
    assert res.high == pytest.approx(-0.05 + 1.96 * se, abs=0.15 * se)


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_bootstrap_one_sided_bounds(metric):
    y, a, b = _paired_labels(300, seed=3)
    two = stats.bootstrap_difference(metric, y, a, b, confidence=0.90, n_resamples=3000)
    lower = stats.bootstrap_difference(metric, y, a, b, confidence=0.95, n_resamples=3000,
                                       sided="lower")  # fmt: skip
    upper = stats.bootstrap_difference(metric, y, a, b, confidence=0.95, n_resamples=3000,
                                       sided="upper")  # fmt: skip
    # Same seed, same draws: the one-sided 95% bounds are the two-sided 90% ends.
    assert lower.low == pytest.approx(two.low, abs=1e-12) and lower.high == math.inf
    assert upper.high == pytest.approx(two.high, abs=1e-12) and upper.low == -math.inf
    assert lower.low < lower.estimate < upper.high
    assert lower.sided == "lower" and lower.estimate == two.estimate


def test_macro_f1_from_cells_equals_sklearn_on_a_resample():
    y, a, b = _paired_labels(250, seed=4, k=3)
    a[:6] = 3  # only the challenger ever says class 3, which never occurs
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = rng.integers(0, y.size, y.size)
        cells = (y[idx] * 4 + a[idx]) * 4 + b[idx]
        ids, counts = np.unique(cells, return_counts=True)
        true_cls, a_cls, b_cls = ids // 16, (ids // 4) % 4, ids % 4
        got_a = stats._macro_f1_from_cells(counts[None, :], true_cls, a_cls, 4)[0]
        got_b = stats._macro_f1_from_cells(counts[None, :], true_cls, b_cls, 4)[0]
        # sklearn averages over the classes in y or that model's predictions
        assert got_a == pytest.approx(f1_score(y[idx], a[idx], average="macro"), abs=1e-12)
        assert got_b == pytest.approx(f1_score(y[idx], b[idx], average="macro"), abs=1e-12)


def _plain_macro_f1(y, pred):
    """Macro F1 over the classes seen in y or pred, row by row (sklearn's definition)."""
    classes = np.union1d(y, pred)
    tp = np.array([np.sum((y == k) & (pred == k)) for k in classes])
    return np.mean(2 * tp / np.array([np.sum(y == k) + np.sum(pred == k) for k in classes]))


def test_bootstrap_macro_f1_matches_naive_row_bootstrap():
    y, a, b = _paired_labels(200, seed=6)
    labels = np.array(["cat", "dog", "eel"])  # string labels work too
    ours = stats.bootstrap_difference(
        "macro_f1", labels[y], labels[a], labels[b], confidence=0.8, n_resamples=4000
    )
    ref_estimate = f1_score(y, a, average="macro") - f1_score(y, b, average="macro")
    assert ours.estimate == pytest.approx(ref_estimate, abs=1e-12)
    rng = np.random.default_rng(1)
    naive = []
    for _ in range(2000):
        i = rng.integers(0, y.size, y.size)
        naive.append(_plain_macro_f1(y[i], a[i]) - _plain_macro_f1(y[i], b[i]))
    low, high = np.quantile(naive, [0.1, 0.9])
    _assert_intervals_agree(ours, low, high, np.std(naive), tol_sd=0.3)


@pytest.mark.parametrize("binary", [False, True])
def test_bootstrap_log_loss_reports_improvement(binary):
    rng = np.random.default_rng(8)
    n, k = 300, 2 if binary else 3
    y = rng.integers(0, k, n)
    logits_a = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    logits_b = rng.normal(size=(n, k)) + 0.8 * np.eye(k)[y]
    pa = np.exp(logits_a) / np.exp(logits_a).sum(1, keepdims=True)
    pb = np.exp(logits_b) / np.exp(logits_b).sum(1, keepdims=True)
    if binary:
        pa, pb = pa[:, 1], pb[:, 1]
    ours = stats.bootstrap_difference("log_loss", y, pa, pb, n_resamples=4000)
    labels = list(range(k))
    ref = log_loss(y, pb, labels=labels) - log_loss(y, pa, labels=labels)
    assert ours.estimate == pytest.approx(ref, rel=1e-12)
    assert ours.estimate > 0  # the challenger's loss is lower
    loss_a = -np.log(pa[np.arange(n), y] if not binary else np.where(y == 1, pa, 1 - pa))
    loss_b = -np.log(pb[np.arange(n), y] if not binary else np.where(y == 1, pb, 1 - pb))
    idx = np.random.default_rng(2).integers(0, n, size=(4000, n))
    naive = (loss_b - loss_a)[idx].mean(axis=1)
    low, high = np.quantile(naive, [0.025, 0.975])
    _assert_intervals_agree(ours, low, high, naive.std(), tol_sd=0.25)


def test_bootstrap_log_loss_clips_certain_mistakes_like_sklearn():
    y = np.array([0, 1, 1, 0])
    certain, unsure = [0.0, 1.0, 1.0, 1.0], [0.5] * 4  # the last row is certain and wrong
    res = stats.bootstrap_difference("log_loss", y, certain, unsure, n_resamples=50)
    assert res.estimate == pytest.approx(log_loss(y, unsure) - log_loss(y, certain), rel=1e-12)
    assert math.isfinite(res.low) and math.isfinite(res.high)


def test_grouped_auc_equals_sklearn_on_resamples():
    rng = np.random.default_rng(9)
    n = 120
    y = rng.random(n) < 0.4
    s = np.round(rng.normal(size=n) + y, 1)  # ties
    grouped = stats._GroupedScores(s, y)
    rows = rng.integers(0, n, size=(5, n))
    got = grouped.auc(rows)
    for i in range(5):
        assert got[i] == pytest.approx(roc_auc_score(y[rows[i]], s[rows[i]]), abs=1e-12)
    assert grouped.auc(np.arange(n)[None, :])[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def _rank_auc(y, s):
    """AUC from midranks (Mann-Whitney), one resample at a time."""
    ranks = sps.rankdata(s)
    n_pos = y.sum()
    return (ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (y.size - n_pos))


def test_bootstrap_auc_matches_naive_and_accepts_matrices():
    rng = np.random.default_rng(10)
    n = 300
    y = (rng.random(n) < 0.4).astype(int)
    a = np.round(rng.normal(size=n) + 1.2 * y, 2)
    b = np.round(rng.normal(size=n) + 0.8 * y, 2)
    ours = stats.bootstrap_difference("auc", y, a, b, n_resamples=3000)
    assert ours.estimate == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)
    as_matrix = stats.bootstrap_difference(
        "auc", y, np.column_stack([-a, a]), np.column_stack([-b, b]), n_resamples=3000
    )
    assert as_matrix == ours
    idx = np.random.default_rng(3).integers(0, n, size=(3000, n))
    naive = np.array([_rank_auc(y[i], a[i]) - _rank_auc(y[i], b[i]) for i in idx])
    low, high = np.quantile(naive, [0.025, 0.975])
    _assert_intervals_agree(ours, low, high, naive.std(), tol_sd=0.25)


def test_bootstrap_auc_drops_resamples_missing_a_class():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 1])
    s = np.arange(8.0)
    res = stats.bootstrap_difference("auc", y, s, s[::-1], n_resamples=2000)
    # P(a resample of 8 rows has no positive) = (6/8)^8 ~ 0.10, so some are dropped
    assert 1500 < res.n_resamples < 2000


LABELS_4 = ([0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1, 1])  # y_true, challenger, champion
PROBS_4 = ([0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3], [0.2, 0.7, 0.4, 0.1])


@pytest.mark.parametrize(
    ("metric", "data", "kwargs", "match"),
    [
        ("precision", LABELS_4, {}, "^metric='precision' is not recognised"),
        ("accuracy", LABELS_4, {"confidence": 1.0}, "^confidence must be strictly between 0"),
        ("accuracy", LABELS_4, {"confidence": 0.0}, "^confidence must be strictly between 0"),
        ("accuracy", LABELS_4, {"n_resamples": 0}, "^n_resamples must be at least 1"),
        ("accuracy", LABELS_4, {"sided": "left"}, "^sided='left' is not recognised"),
        ("accuracy", ([0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1]), {},
         "^pred_champion has 3 rows but y_true has 4"),
        ("accuracy", ([], [], []), {}, "^y_true is empty"),
        ("accuracy", ([0, 1, 1, 0], [[0.9, 0.1]] * 4, [0, 1, 1, 1]), {},
         "^pred_challenger must be 1-D predicted labels"),
        ("macro_f1", ([0, 1, 1, 0], [[0.9, 0.1]] * 4, [0, 1, 1, 1]), {}, "argmax"),
        ("log_loss", ([0, 1, 1, 0], [0.1, np.nan, 0.3, 0.4], PROBS_4[2]), {},
         "^pred_challenger contains NaN"),
        ("log_loss", ([0, 1, 1, 0], [0.1, 1.2, 0.3, 0.4], PROBS_4[2]), {}, r"in \[0, 1\]"),
        ("log_loss", ([0, 1, 1, 0], [[0.5, 0.6]] * 4, PROBS_4[2]), {}, "must sum to 1"),
        ("auc", ([1, 1, 1, 1], PROBS_4[1], PROBS_4[2]), {}, "single class"),
        ("auc", ([0, 1, 1, 0], [[0.2, 0.3, 0.5]] * 4, PROBS_4[2]), {}, "binary labels only"),
    ],
)  # fmt: skip
def test_bootstrap_rejects_bad_input(metric, data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        stats.bootstrap_difference(metric, *data, **kwargs)


# --------------------------------------------------------------------------------------
# Corrected resampled t-test
# --------------------------------------------------------------------------------------


def test_corrected_ttest_matches_hand_computation():
    d = [0.01, 0.02, 0.015, 0.03, 0.0]
    # mean 0.015; squared deviations sum to 5e-4, var = 1.25e-4;
    # (1/5 + 200/800) * 1.25e-4 = 5.625e-5, sqrt = 0.0075, t = 2.0 on 4 df
    res = stats.corrected_resampled_ttest(d, 800, 200)
    assert res.statistic == pytest.approx(2.0, rel=1e-12)
    assert res.df == 4 and res.mean == pytest.approx(0.015)
    assert res.pvalue == pytest.approx(sps.t.sf(2.0, 4), rel=1e-12)
    two = stats.corrected_resampled_ttest(d, 800, 200, alternative="two-sided")
    assert two.pvalue == pytest.approx(2 * sps.t.sf(2.0, 4), rel=1e-12)


def test_corrected_ttest_reduces_to_one_sample_t_without_correction_term():
    d = np.random.default_rng(4).normal(0.01, 0.02, size=10)
    ref = sps.ttest_1samp(d, 0.0)
    res = stats.corrected_resampled_ttest(d, 1e12, 1, alternative="two-sided")
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    corrected = stats.corrected_resampled_ttest(d, 900, 100, alternative="two-sided")
    ratio = math.sqrt((1 / 10) / (1 / 10 + 100 / 900))
    assert corrected.statistic == pytest.approx(ref.statistic * ratio, rel=1e-12)


def test_corrected_ttest_zero_variance_is_finite():
    zero = stats.corrected_resampled_ttest([0.0] * 5, 800, 200)
    assert (zero.statistic, zero.pvalue) == (0.0, 1.0)
    tiny = stats.corrected_resampled_ttest([1e-17, 0.0, -1e-17], 800, 200)
    assert (tiny.statistic, tiny.pvalue) == (0.0, 1.0)
    better = stats.corrected_resampled_ttest([0.01] * 5, 800, 200)
    assert better.statistic == stats.T_STATISTIC_CAP and better.pvalue < 1e-12
    worse = stats.corrected_resampled_ttest([-0.01] * 5, 800, 200)
    assert worse.statistic == -stats.T_STATISTIC_CAP and worse.pvalue == pytest.approx(1.0)
    # 0.1 + 0.2 - 0.3 style rounding noise must not turn into a huge t either
    noisy = stats.corrected_resampled_ttest([0.3, 0.1 + 0.2, 0.3], 800, 200)
    assert noisy.statistic == stats.T_STATISTIC_CAP


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0.1], 800, 200), "at least 2 splits"),
        (([0.1, np.nan], 800, 200), "^differences contains NaN"),
        (([0.1, 0.2], 0, 200), "^n_train must be a positive number"),
        (([0.1, 0.2], 800, -1), "^n_test must be a positive number"),
        (([0.1, 0.2], 800, "x"), "^n_test must be a positive number"),
    ],
)
def test_corrected_ttest_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        stats.corrected_resampled_ttest(*args)


def test_large_sample_mean_bootstrap_matches_row_resampling(monkeypatch):
    """The grouped Poisson bootstrap (used for log loss once rows x resamples is large)
    against row-by-row resampling of the same skewed values: both 95% ends agree to within
    Monte-Carlo noise, where a symmetric normal interval misses them."""
    values = np.random.default_rng(1).lognormal(0, 2.5, 20_000)
    sd = values.std() / np.sqrt(values.size)
    monkeypatch.setattr(stats, "_ROWWISE_BOOTSTRAP_BUDGET", 10**12)
    rowwise, method = stats._bootstrap_mean(values, 10_000, np.random.default_rng(2))
    assert method == "rows"
    grouped = stats._grouped_bootstrap_mean(values, 10_000, np.random.default_rng(3))
    ends = [0.025, 0.975]
    want = (np.quantile(rowwise, ends) - values.mean()) / sd
    got = (np.quantile(grouped, ends) - values.mean()) / sd
    # MC sd of each end is ~0.045 bootstrap sds for two independent runs of 10^4 draws
    np.testing.assert_allclose(got, want, atol=0.12)
    assert np.abs(np.array([-1.96, 1.96]) - want).max() > 0.12  # skewed: normal would miss
    assert grouped.mean() == pytest.approx(values.mean(), abs=0.05 * sd)


def test_log_loss_bootstrap_at_many_rows_takes_the_grouped_path(monkeypatch):
    rng = np.random.default_rng(0)
    n = 40_000
    y = rng.integers(0, 3, n)
    pa, pb = rng.dirichlet(np.ones(3), n), rng.dirichlet(np.ones(3), n)
    used = []
    real = stats._grouped_bootstrap_mean
    monkeypatch.setattr(
        stats, "_grouped_bootstrap_mean", lambda *a, **k: used.append(1) or real(*a, **k)
    )
    res = stats.bootstrap_difference("log_loss", y, pa, pb, n_resamples=10_000)
    assert used == [1] and res.n_resamples == 10_000 and res.method == "quantile groups"
    assert res.low < res.estimate < res.high


def test_auc_bootstrap_at_many_rows_agrees_with_row_resampling(monkeypatch):
    rng = np.random.default_rng(3)
    n = 30_000
    y = rng.integers(0, 2, n)
    a = y + rng.normal(0, 1.2, n)
    b = y + rng.normal(0, 1.3, n)
    large = stats.bootstrap_difference("auc", y, a, b, n_resamples=10_000, seed=1)
    monkeypatch.setattr(stats, "_ROWWISE_BOOTSTRAP_BUDGET", 10**12)
    rowwise = stats.bootstrap_difference("auc", y, a, b, n_resamples=2_000, seed=1)
    assert (large.method, rowwise.method) == ("delong normal", "rows")
    assert large.estimate == pytest.approx(rowwise.estimate, abs=1e-12)
    width = rowwise.high - rowwise.low
    assert large.low == pytest.approx(rowwise.low, abs=0.08 * width)
    assert large.high == pytest.approx(rowwise.high, abs=0.08 * width)
