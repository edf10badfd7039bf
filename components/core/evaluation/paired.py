"""Paired accuracy: the tests behind the gate's accuracy checks, the bounds that invert them,
and their exact rejection probabilities (the power report builds on these).

Both models are scored on the same rows. A row is right for both, for neither, for the
champion only (``b`` rows) or for the challenger only (``c`` rows); only those ``d = b + c``
discordant rows carry information about the accuracy gain ``gain = p_c - p_b`` (the
challenger's share of rows it alone gets right minus the champion's). Writing the discordance
``psi = p_b + p_c`` and the challenger's share of it ``pi = p_c / psi``, ``gain = psi (2 pi - 1)``;
``d`` is Binomial(n, psi) and, given ``d``, ``c`` is Binomial(d, pi).

- **No margin (H0: gain <= 0, i.e. pi <= 1/2)**: McNemar's test, conditional on ``d``: exact
  (binomial), mid-p, chi-square or chi-square with Edwards' correction
  (:func:`conditional_pvalue` at any null share ``pi0``). The exact test keeps its level
  for every ``d``; the others can exceed it (:func:`conditional_size` says by how much).
  :func:`conditional_bound` inverts the same test on ``pi`` and states it as a gain
  conditional on the observed discordance: it is above 0 exactly when the test rejects.
- **A margin (H0: gain <= delta, delta != 0)**: conditioning no longer removes the nuisance
  ``psi``. :func:`score_z` is Tango's (1998) score statistic (the constrained maximum
  likelihood under ``gain = delta``; it agrees with R ``PropCIs::scoreci.mp``). Its normal
  p-value is liberal with few discordant rows (exact size up to 0.088 at alpha 0.05 with 60
  rows), so :func:`margin_test` reports Berger & Boos's (1994) exact unconditional p-value:
  the largest tail probability of the observed score over every null ``(psi, pi)`` whose
  ``psi`` lies in a (1 - gamma) Clopper-Pearson interval, plus gamma. It never exceeds its
  level, at any sample size. :func:`margin_bound` inverts it: the lowest gain the data
  leave at the level, above ``delta`` exactly when the test rejects.
- **Rejection probabilities**: every one of these tests rejects when ``c`` reaches a
  critical count ``k(d)`` (:func:`critical_counts`), so its probability of rejecting at any
  ``(n, p_b, p_c)`` is a sum over ``d`` of a binomial weight times a binomial tail
  (:func:`rejection_probability`): exact, and O(sqrt(n psi)) terms at any ``n``.

Pure numpy/scipy; nothing here reads files or imports the gate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special as spc
from scipy import stats as sps

CONDITIONAL_METHODS = ("exact", "midp", "chi2", "chi2-corrected")
# Berger-Boos gamma as a share of the level: the p-value's floor and the price of validity.
GAMMA_SHARE = 1e-3
# Binomial tails below this are left out of the sums over d.
_TAIL = 1e-14
# Grid over psi for the supremum, then refined twice around the best point.
_GRID = 48
_REFINE = 16
# Above this many expected discordant rows the score test's critical value for power is
# the normal one (its exact size there is within a few per cent of the level, and the
# exact calibration would cost seconds); below it the critical value is calibrated exactly.
CALIBRATE_BELOW = 2000
# From this many observed discordant rows on, the margin test and its bound use Tango's
# statistic with its normal law (the exact unconditional supremum costs seconds there and
# changes the p-value by a few per cent of itself at most; measured in gate_null.py).
ASYMPTOTIC_FROM = 5000

# A critical count per discordant total: the smallest c that rejects (d + 1 = never).
CriticalCounts = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class MarginTest:
    """Tango's score test of H0: gain <= delta, with its exact unconditional p-value."""

    statistic: float  # Tango's z at delta
    pvalue: float  # Berger-Boos: sup of the tail over the psi interval, plus gamma
    normal_pvalue: float  # the score test's normal p-value (liberal at few discordant rows)
    gamma: float
    delta: float


# --------------------------------------------------------------------------------------
# The McNemar family, conditional on the discordant rows
# --------------------------------------------------------------------------------------


def conditional_pvalue(
    c: np.ndarray | int, d: np.ndarray | int, pi0: float, method: str
) -> np.ndarray:
    """One-sided p-value of H0: pi <= pi0 from ``c`` challenger wins in ``d`` discordant rows.

    At ``pi0 = 1/2`` these are ``stats.mcnemar(..., alternative="greater")``'s p-values
    for each method; ``d = 0`` gives 1 (no evidence).
    """
    if method not in CONDITIONAL_METHODS:
        raise ValueError(f"method={method!r}: use one of {', '.join(CONDITIONAL_METHODS)}")
    d_int = np.asarray(d, dtype=np.int64)
    c = np.asarray(c, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method in ("exact", "midp"):
            p = sps.binom.sf(c - 1, d_int, pi0) if pi0 < 1 else (c >= d).astype(np.float64)
            p = np.where(c <= 0, 1.0, p)
            if method == "midp":
                p = p - 0.5 * sps.binom.pmf(c, d, pi0)
        else:
            excess = c - d * pi0
            if method == "chi2-corrected":
                excess = np.sign(excess) * np.maximum(np.abs(excess) - 0.5, 0.0)
            spread = np.sqrt(d * pi0 * (1 - pi0))
            z = np.where(spread > 0, excess / np.where(spread > 0, spread, 1.0), 0.0)
            p = sps.norm.sf(z)
    return np.clip(np.where(d > 0, p, 1.0), 0.0, 1.0)


def conditional_critical_counts(d: np.ndarray, level: float, method: str) -> np.ndarray:
    """Smallest ``c`` whose conditional p-value at pi0 = 1/2 is below ``level``, per ``d``."""
    d = np.asarray(d, dtype=np.int64)
    return _smallest_rejecting(d, lambda c: conditional_pvalue(c, d, 0.5, method) < level)


def conditional_size(d: np.ndarray, level: float, method: str) -> np.ndarray:
    """The exact probability that a no-better challenger (pi = 1/2) is deployed, per ``d``:
    at most ``level`` for "exact", above it at some ``d`` for the others."""
    d = np.asarray(d, dtype=np.int64)
    k = conditional_critical_counts(d, level, method)
    return np.asarray(spc.bdtrc(k - 1, d, 0.5), dtype=np.float64) * (k <= d)


def conditional_bound(b: int, c: int, n: int, level: float, method: str) -> float:
    """Lower ``1 - level`` bound of the gain from the McNemar test ``method``, conditional on
    the observed discordance ``d / n``: ``(d / n) (2 pi_L - 1)`` with ``pi_L`` the lowest
    share of the discordant rows the test leaves (Clopper-Pearson for "exact"). Above 0
    exactly when the test rejects at ``level``; 0 with no discordant rows."""
    d = b + c
    if d == 0 or n == 0:
        return 0.0
    if method == "exact":
        pi_low = float(sps.beta.ppf(level, c, d - c + 1)) if c > 0 else 0.0
    else:
        lo, hi = 0.0, 1.0
        if float(conditional_pvalue(c, d, 1e-12, method)) >= level:
            pi_low = 0.0
        else:
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                if float(conditional_pvalue(c, d, mid, method)) < level:
                    lo = mid
                else:
                    hi = mid
            pi_low = lo
    return (d / n) * (2.0 * pi_low - 1.0)


# --------------------------------------------------------------------------------------
# Tango's score test with a margin, made exact (Berger-Boos)
# --------------------------------------------------------------------------------------


def score_z(b: np.ndarray | int, c: np.ndarray | int, n: int, delta: float) -> np.ndarray:
    """Tango's score statistic for H0: gain = delta from ``b`` champion-only and ``c``
    challenger-only rows of ``n``: ``(c - b - n delta) / sqrt(n (2 q + delta (1 - delta)))``
    where ``q`` is the constrained maximum likelihood estimate of ``p_b`` (the positive root
    of ``2n q^2 - ((b + c) - (2n - c + b) delta) q - b delta (1 - delta) = 0``). At
    ``delta = 0`` it is McNemar's signed deviate ``(c - b) / sqrt(b + c)`` (0 when b = c = 0).
    """
    b = np.asarray(b, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    linear = (b + c) - (2.0 * n - c + b) * delta
    root = np.sqrt(np.maximum(linear * linear + 8.0 * n * b * delta * (1.0 - delta), 0.0))
    q = (linear + root) / (4.0 * n)
    spread2 = n * (2.0 * q + delta * (1.0 - delta))
    excess = c - b - n * delta
    with np.errstate(invalid="ignore", divide="ignore"):
        z = excess / np.sqrt(np.where(spread2 > 0, spread2, 1.0))
    return np.where(spread2 > 1e-300, z, np.sign(excess) * np.where(excess != 0, np.inf, 0.0))


def score_critical_counts(d: np.ndarray, n: int, delta: float, z: float) -> np.ndarray:
    """Smallest ``c`` with Tango's statistic at least ``z`` (it rises with c at fixed d)."""
    d = np.asarray(d, dtype=np.int64)
    return _smallest_rejecting(d, lambda c: score_z(d - c, c, n, delta) >= z)


def _smallest_rejecting(d: np.ndarray, rejects: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Vectorised bisection for the smallest c in [0, d] with rejects(c), d + 1 if none;
    ``rejects`` must be monotone in c (false, then true)."""
    lo = np.zeros_like(d)
    hi = d + 1
    while True:
        open_ = lo < hi
        if not open_.any():
            return hi
        mid = (lo + hi) // 2
        ok = rejects(np.minimum(mid, d)) & (mid <= d)
        hi = np.where(open_ & ok, mid, hi)
        lo = np.where(open_ & ~ok, mid + 1, lo)


def _null_share(psi: np.ndarray, delta: float) -> np.ndarray:
    """The largest challenger share pi that H0 (gain <= delta) allows at discordance psi."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip((1.0 + delta / psi) / 2.0, 0.0, 1.0)


def _discordance_interval(d: int, n: int, gamma: float) -> tuple[float, float]:
    """Two-sided (1 - gamma) Clopper-Pearson interval of psi from d discordant of n rows."""
    lo = float(sps.beta.ppf(gamma / 2, d, n - d + 1)) if d > 0 else 0.0
    hi = float(sps.beta.ppf(1 - gamma / 2, d + 1, n - d)) if d < n else 1.0
    return lo, hi


def _d_range(n: int, psi_lo: float, psi_hi: float) -> np.ndarray:
    """The discordant totals with non-negligible probability for any psi in the range."""
    spread_lo = math.sqrt(n * psi_lo * (1 - psi_lo)) + 1
    spread_hi = math.sqrt(n * psi_hi * (1 - psi_hi)) + 1
    first = max(0, math.floor(n * psi_lo - 10 * spread_lo))
    last = min(n, math.ceil(n * psi_hi + 10 * spread_hi))
    return np.arange(first, last + 1, dtype=np.int64)


def rejection_probability(
    n: int, p_b: float, p_c: float, critical: CriticalCounts | np.ndarray, d_first: int = 0
) -> float:
    """Exact probability that a test rejecting when ``c >= k(d)`` rejects, at ``n`` rows
    whose champion-only and challenger-only probabilities are ``p_b`` and ``p_c``.

    ``critical``: a function of the discordant totals, or a precomputed array of k(d) for
    d = d_first, d_first + 1, ... covering the range with non-negligible probability.
    """
    psi = p_b + p_c
    if n <= 0 or psi <= 0:
        return 0.0
    psi = min(psi, 1.0)
    lo = int(sps.binom.ppf(_TAIL, n, psi))
    hi = int(sps.binom.isf(_TAIL, n, psi))
    d = np.arange(max(lo - 1, 0), min(hi + 1, n) + 1, dtype=np.int64)
    if callable(critical):
        k = critical(d)
    else:
        index = d - d_first
        if index[0] < 0 or index[-1] >= critical.size:
            raise ValueError("critical counts do not cover the discordant totals")
        k = critical[index]
    weight = sps.binom.pmf(d, n, psi)
    share = min(p_c / psi, 1.0)
    tail = np.where(k <= 0, 1.0, np.where(k > d, 0.0, spc.bdtrc(k - 1, d, share)))
    return float(np.clip(np.dot(weight, tail), 0.0, 1.0))


def _sup_tail(n: int, delta: float, psi_lo: float, psi_hi: float, k_of: CriticalCounts) -> float:
    """Largest rejection probability over H0's boundary (pi at its largest) for psi in
    [psi_lo, psi_hi]: a grid, then two refinements around the best point."""
    if psi_hi <= 0:
        return 0.0
    span = np.linspace(psi_lo, psi_hi, _GRID)
    if psi_lo < delta < psi_hi:
        span = np.sort(np.r_[span, delta])
    d = _d_range(n, psi_lo, psi_hi)
    k = k_of(d)

    def tail(psi: float) -> float:
        if psi <= 0:
            return 0.0
        share = float(_null_share(np.asarray(psi), delta))
        return rejection_probability(n, psi * (1 - share), psi * share, k, int(d[0]))

    values = [tail(p) for p in span]
    best = int(np.argmax(values))
    top = values[best]
    for _ in range(2):
        left = span[max(best - 1, 0)]
        right = span[min(best + 1, span.size - 1)]
        span = np.linspace(left, right, _REFINE)
        values = [tail(p) for p in span]
        best = int(np.argmax(values))
        top = max(top, values[best])
    return top


def margin_test(b: int, c: int, n: int, delta: float, level: float) -> MarginTest:
    """Tango's score test of H0: gain <= ``delta`` with Berger & Boos's exact unconditional
    p-value at ``gamma = GAMMA_SHARE x level``: the supremum, over every null (psi, pi) with
    psi in the (1 - gamma) Clopper-Pearson interval of the discordance, of the probability of
    a score at least the observed one, plus gamma. Never above the level under H0 (the
    interval misses psi with probability at most gamma; inside it the supremum bounds the
    tail). Its floor is gamma: "p = 2.5e-05" at level 0.025 means "at most that"."""
    gamma = GAMMA_SHARE * level
    z_obs = float(score_z(b, c, n, delta))
    normal = float(sps.norm.sf(z_obs))
    d_obs = b + c
    psi_lo, psi_hi = _discordance_interval(d_obs, n, gamma)
    if delta < 0:  # H0 needs the champion-only share to reach -delta
        psi_lo = max(psi_lo, -delta)
    if psi_lo > psi_hi:  # no null parameter is consistent with the data
        return MarginTest(z_obs, gamma, normal, gamma, delta)
    if not math.isfinite(z_obs):
        tail = 0.0 if z_obs > 0 else 1.0
    elif d_obs >= ASYMPTOTIC_FROM:
        tail = normal
    else:
        z_at = z_obs - 1e-9 * max(1.0, abs(z_obs))  # the observed table itself counts

        def k_of(d: np.ndarray) -> np.ndarray:
            return score_critical_counts(d, n, delta, z_at)

        tail = _sup_tail(n, delta, psi_lo, psi_hi, k_of)
    return MarginTest(z_obs, float(min(1.0, tail + gamma)), normal, gamma, delta)


def score_bound(b: int, c: int, n: int, level: float) -> float:
    """Tango's asymptotic lower ``1 - level`` bound of the gain (the normal score test
    inverted; R ``PropCIs::scoreci.mp``'s lower limit at confidence ``1 - 2 level``)."""
    z = float(sps.norm.isf(level))
    lo, hi = -1.0 + 1e-12, 1.0 - 1e-12
    for _ in range(80):  # the statistic falls as delta rises
        mid = 0.5 * (lo + hi)
        if float(score_z(b, c, n, mid)) >= z:
            lo = mid
        else:
            hi = mid
    return lo


def margin_bound(b: int, c: int, n: int, level: float) -> float:
    """The lowest gain the exact unconditional score test leaves at ``level``: the largest
    ``delta`` at which it rejects H0: gain <= delta, to 1e-5. Above a margin exactly when
    :func:`margin_test` rejects there (its p-value rises with delta)."""
    if n == 0:
        return -1.0
    if b + c >= ASYMPTOTIC_FROM:
        return score_bound(b, c, n, level - GAMMA_SHARE * level)

    def rejects(delta: float) -> bool:
        return margin_test(b, c, n, delta, level).pvalue < level

    hi = (c - b) / n  # the score is 0 there: never rejected below level 1/2
    lo = min(score_bound(b, c, n, level), hi)
    step = 1e-3
    while not rejects(lo):  # the exact test is the stricter one: walk down
        hi = lo
        lo = max(-1.0, lo - step)
        step *= 2
        if lo <= -1.0:
            return -1.0
    while hi - lo > 1e-5:
        mid = 0.5 * (lo + hi)
        if rejects(mid):
            lo = mid
        else:
            hi = mid
    return lo


def score_critical_value(n: int, delta: float, level: float, psi: float) -> float:
    """The score statistic the exact unconditional test needs at ``n`` rows when the
    discordance is about ``psi``: the normal one at ``level - gamma`` above
    ``CALIBRATE_BELOW`` expected discordant rows, else the smallest z whose largest tail
    over the (1 - gamma) interval around ``n psi`` discordant rows, plus gamma, is below
    the level. For the power of :func:`margin_test`; its region is then ``c >= k(d)``."""
    gamma = GAMMA_SHARE * level
    z_normal = float(sps.norm.isf(level - gamma))
    if n * psi >= CALIBRATE_BELOW:
        return z_normal
    psi_lo, psi_hi = _discordance_interval(int(round(n * psi)), n, gamma)
    if delta < 0:
        psi_lo = max(psi_lo, -delta)
    if psi_lo > psi_hi:
        return -math.inf

    def size(z: float) -> float:
        return _sup_tail(n, delta, psi_lo, psi_hi, lambda d: score_critical_counts(d, n, delta, z))

    lo, hi = z_normal - 1.0, z_normal + 4.0
    if size(lo) + gamma < level:
        return lo
    for _ in range(14):  # to 5 / 2^14 in z
        mid = 0.5 * (lo + hi)
        if size(mid) + gamma < level:
            hi = mid
        else:
            lo = mid
    return hi


__all__ = [
    "CONDITIONAL_METHODS",
    "MarginTest",
    "conditional_bound",
    "conditional_critical_counts",
    "conditional_pvalue",
    "conditional_size",
    "margin_bound",
    "margin_test",
    "rejection_probability",
    "score_bound",
    "score_critical_counts",
    "score_critical_value",
    "score_z",
]
