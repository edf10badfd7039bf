"""evaluation/paired.py against independent references: scipy's binomial test, statsmodels'
McNemar and Clopper-Pearson, a numerical constrained maximum likelihood for Tango's score,
and brute-force enumeration of every table for exact sizes and rejection probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps

from components.core.evaluation import paired

sm = pytest.importorskip("statsmodels.stats.contingency_tables")
proportion = pytest.importorskip("statsmodels.stats.proportion")

TABLES = [(3, 9), (10, 4), (0, 5), (7, 7), (20, 35), (1, 30), (120, 150)]


@pytest.mark.parametrize(("b", "c"), TABLES)
def test_conditional_pvalues_match_scipy_and_statsmodels(b, c):
    d = b + c
    exact = float(paired.conditional_pvalue(c, d, 0.5, "exact"))
    assert exact == pytest.approx(sps.binomtest(c, d, 0.5, alternative="greater").pvalue)
    # statsmodels' exact McNemar is two-sided: twice the smaller one-sided tail
    other = float(paired.conditional_pvalue(b, d, 0.5, "exact"))
    two = sm.mcnemar([[0, b], [c, 0]], exact=True).pvalue
    assert min(1.0, 2 * min(exact, other)) == pytest.approx(two, rel=1e-9)
    chi2 = sm.mcnemar([[0, b], [c, 0]], exact=False, correction=False).statistic
    z = math.copysign(math.sqrt(chi2), c - b)
    got = float(paired.conditional_pvalue(c, d, 0.5, "chi2"))
    assert got == pytest.approx(sps.norm.sf(z), rel=1e-9)


@pytest.mark.parametrize(("b", "c"), TABLES)
def test_exact_bound_is_clopper_pearson_at_the_observed_discordance(b, c):
    n, level = 400, 0.025
    d = b + c
    low, _ = proportion.proportion_confint(c, d, alpha=2 * level, method="beta")
    want = (d / n) * (2 * low - 1) if c else -(d / n)
    assert paired.conditional_bound(b, c, n, level, "exact") == pytest.approx(want, abs=1e-12)
    # above 0 exactly when the test rejects
    rejects = paired.conditional_pvalue(c, d, 0.5, "exact") < level
    assert (paired.conditional_bound(b, c, n, level, "exact") > 0) == bool(rejects)


def _score_reference(b, c, n, delta):
    """Tango's z from a numerical constrained maximum likelihood of p_b under gain = delta."""

    def nll(q):
        return -(
            b * math.log(q) + c * math.log(q + delta) + (n - b - c) * math.log(1 - 2 * q - delta)
        )

    lo, hi = max(1e-12, -delta + 1e-12), (1 - delta) / 2 - 1e-12
    q = optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-14}).x
    return (c - b - n * delta) / math.sqrt(n * (2 * q + delta * (1 - delta)))


@pytest.mark.parametrize(
    ("b", "c", "n", "delta"),
    [
        (5, 12, 100, 0.02),
        (8, 3, 60, -0.05),
        (20, 30, 500, 0.0),
        (1, 9, 40, 0.1),
        (40, 25, 300, -0.03),
    ],
)
def test_tango_score_matches_a_numerical_constrained_mle(b, c, n, delta):
    assert float(paired.score_z(b, c, n, delta)) == pytest.approx(
        _score_reference(b, c, n, delta), rel=1e-6, abs=1e-7
    )


def _multinomial(n, p_b, p_c):
    """Every (b, c) table of n rows with its probability."""
    tables = [(b, c) for b in range(n + 1) for c in range(n + 1 - b)]
    probs = [
        sps.multinomial.pmf([b, c, n - b - c], n, [p_b, p_c, 1 - p_b - p_c]) for b, c in tables
    ]
    return tables, np.array(probs)


@pytest.mark.parametrize("delta", [0.05, -0.05])
def test_margin_test_never_exceeds_its_level_enumerated(delta):
    n, level = 20, 0.05
    tables, _ = _multinomial(n, 0.1, 0.1)
    rejects = {t: paired.margin_test(*t, n, delta, level).pvalue < level for t in tables}
    worst = 0.0
    for psi in (max(abs(delta), 0.06), 0.1, 0.2, 0.4, 0.7):
        p_c = (psi + delta) / 2  # on H0's boundary: gain = delta
        _, probs = _multinomial(n, psi - p_c, p_c)
        size = float(sum(p for t, p in zip(tables, probs, strict=True) if rejects[t]))
        worst = max(worst, size)
        assert size <= level + 1e-12, (psi, size)
    assert worst > 0.01  # and it is not trivially conservative


def test_margin_bound_inverts_the_margin_test():
    b, c, n, level = 4, 20, 360, 0.05
    low = paired.margin_bound(b, c, n, level)
    assert paired.margin_test(b, c, n, low - 1e-4, level).pvalue < level
    assert paired.margin_test(b, c, n, low + 1e-4, level).pvalue >= level
    # the asymptotic score bound is the normal score test inverted
    z = float(paired.score_z(b, c, n, paired.score_bound(b, c, n, level)))
    assert z == pytest.approx(sps.norm.isf(level), abs=1e-6)


@pytest.mark.parametrize(
    ("p_b", "p_c", "margin"), [(0.05, 0.1, 0.0), (0.1, 0.15, 0.02), (0.2, 0.1, -0.05)]
)
def test_rejection_probability_matches_brute_force(p_b, p_c, margin):
    n, level = 30, 0.05
    tables, probs = _multinomial(n, p_b, p_c)
    if margin == 0:
        reject = [paired.conditional_pvalue(c, b + c, 0.5, "exact") < level for b, c in tables]
        k = lambda d: paired.conditional_critical_counts(d, level, "exact")  # noqa: E731
    else:
        z = 1.5
        reject = [paired.score_z(b, c, n, margin) >= z for b, c in tables]
        k = lambda d: paired.score_critical_counts(d, n, margin, z)  # noqa: E731
    want = float(np.dot(probs, reject))
    assert paired.rejection_probability(n, p_b, p_c, k) == pytest.approx(want, abs=1e-10)


def test_approximate_methods_exceed_their_level_and_exact_does_not():
    d = np.arange(10, 400)
    assert paired.conditional_size(d, 0.05, "exact").max() <= 0.05
    assert paired.conditional_size(d, 0.05, "midp").max() > 0.05
    assert paired.conditional_size(d, 0.05, "chi2").max() > 0.05
