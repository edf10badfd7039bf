"""The power of the rule that decides, at a pre-declared effect, and the test size it needs.

Never the observed effect: "power for the observed effect" is a function of the p-value alone
(Hoenig & Heisey 2001) and reads every near miss as "too small to tell". Everything here is
at the gain ``target_effect`` the pipeline declares, at the observed discordance (the share of
rows where exactly one model is right: it describes how alike the two models are, not which
is better).

- Accuracy: the rule rejects when the challenger's wins ``c`` reach a critical count ``k(d)``
  among the ``d`` discordant rows (paired.py), so its deploy probability is exact:
  :func:`accuracy_power` sums a binomial weight times a binomial tail over ``d``
  (O(sqrt(n psi)) terms at any ``n``). With a margin the critical counts are those of
  Tango's score at the exact unconditional test's critical value.
- ROC AUC: DeLong's normal law with the variance of the observed scores (a property of the
  design, like the discordance): :func:`auc_power`.

Pure numpy/scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from components.core.evaluation import paired

# Rows searched for "rows needed" go up to this many (beyond: None, "more than").
MAX_ROWS = 10**10
# From this many expected discordant rows on, the deploy probability is the normal law of
# c - b (exact sums cost a second there and differ by less than 0.001: test_power.py).
NORMAL_FROM = 50_000
# The minimum detectable effect is searched to this share of itself.
MDE_PRECISION = 1e-3


@dataclass(frozen=True)
class AccuracyRule:
    """The accuracy test the gate applies: H0 gain <= margin at ``level``."""

    level: float
    margin: float = 0.0
    method: str = "exact"  # the McNemar method (margin 0 only)
    min_discordant: int = 10  # below this many discordant rows the gate does not test

    def critical(self, n: int, psi: float, exact: bool = True) -> tuple[np.ndarray, int]:
        """k(d), the smallest challenger win count that deploys, for every discordant total d
        with non-negligible probability at discordance ``psi``: (k, first d). It does not
        depend on the gain, so one array serves every gain at this ``n`` and ``psi``.
        ``exact=False``: with a margin, the score test's normal critical value."""
        d = _d_range(n, psi)
        if self.margin == 0:
            if self.method == "exact":
                from components.core.evaluation.stats import _exact_critical_counts

                k = _exact_critical_counts(d, self.level)
            else:
                k = paired.conditional_critical_counts(d, self.level, self.method)
        else:
            if exact:
                z = paired.score_critical_value(n, self.margin, self.level, psi)
            else:
                z = float(sps.norm.isf(self.level * (1 - paired.GAMMA_SHARE)))
            k = paired.score_critical_counts(d, n, self.margin, z)
        if self.margin >= 0:  # the gate does not test on fewer discordant rows
            k = np.where(d < self.min_discordant, d + 1, k)
        return k, int(d[0])


def _d_range(n: int, psi: float) -> np.ndarray:
    """The discordant totals rejection_probability sums over at discordance ``psi``."""
    psi = min(max(psi, 0.0), 1.0)
    lo = int(sps.binom.ppf(paired._TAIL, n, psi))
    hi = int(sps.binom.isf(paired._TAIL, n, psi))
    return np.arange(max(lo - 1, 0), min(hi + 1, n) + 1, dtype=np.int64)


def accuracy_power(
    rule: AccuracyRule,
    n: int,
    psi: float,
    gain: float,
    critical: tuple[np.ndarray, int] | None = None,
) -> float | None:
    """P(the rule deploys) at ``n`` rows, discordance ``psi`` and accuracy gain ``gain``;
    None where the gain is impossible at that discordance (|gain| > psi)."""
    if psi <= 0 or abs(gain) > psi + 1e-12 or n <= 0:
        return None
    if n * psi >= NORMAL_FROM:
        return normal_power(rule, n, psi, gain)
    p_c, p_b = (psi + gain) / 2, (psi - gain) / 2
    k, first = critical or rule.critical(n, psi)
    return paired.rejection_probability(n, max(p_b, 0.0), max(p_c, 0.0), k, first)


def normal_power(rule: AccuracyRule, n: int, psi: float, gain: float) -> float:
    """The deploy probability from the normal law of c - b ~ N(n gain, n (psi - gain^2)):
    the rule rejects when c - b - n margin reaches z sqrt(n (psi - margin^2))."""
    level = rule.level * (1 - paired.GAMMA_SHARE) if rule.margin else rule.level
    z = float(sps.norm.isf(level))
    m = rule.margin
    spread = math.sqrt(max(n * (psi - gain * gain), 1e-300))
    shift = n * (gain - m) - z * math.sqrt(max(n * (psi - m * m), 0.0))
    return float(sps.norm.sf(-shift / spread))


def method_words(n: int, psi: float) -> str:
    """How accuracy_power computes at this size."""
    if n * psi >= NORMAL_FROM:
        return f"normal law of the discordant counts (at least {NORMAL_FROM:,} expected)"
    return "exact (binomial sums over the critical counts)"


def accuracy_mde(rule: AccuracyRule, n: int, psi: float, target_power: float) -> float | None:
    """The smallest gain found with ``target_power`` at ``n`` rows and discordance ``psi``;
    None when even every discordant row favouring the challenger falls short."""
    if psi <= 0 or n <= 0:
        return None
    k = rule.critical(n, psi) if n * psi < NORMAL_FROM else None

    def power(g: float) -> float:
        return accuracy_power(rule, n, psi, g, k) or 0.0

    if power(psi) < target_power:
        return None
    lo, hi = max(rule.margin, -psi), psi
    # a first guess from the normal law brackets it in a few steps at any n
    z = float(sps.norm.isf(rule.level) + sps.norm.isf(1 - target_power))
    guess = rule.margin + z * math.sqrt(psi / n)
    for g in (guess * 0.9, guess * 1.1):
        if lo < g < hi:
            if power(g) >= target_power:
                hi = g
            else:
                lo = g
    while hi - lo > MDE_PRECISION * max(hi, 1e-9):
        mid = 0.5 * (lo + hi)
        if power(mid) >= target_power:
            hi = mid
        else:
            lo = mid
    return hi


def accuracy_rows_needed(
    rule: AccuracyRule, psi: float, gain: float, target_power: float
) -> int | None:
    """About how many test rows reach ``target_power`` at ``gain`` and discordance ``psi``
    (the exact power of the exact rule; with a margin, the score test's normal critical value,
    which the exact one approaches from about 2,000 discordant rows on). None when the gain
    is not above the margin or impossible at this discordance."""
    if psi <= 0 or gain <= rule.margin or gain > psi:
        return None
    z_a, z_b = sps.norm.isf(rule.level), sps.norm.isf(1 - target_power)
    # normal approximation to start from (McNemar's with the margin shifted)
    spread = math.sqrt(max(psi - gain * gain, 1e-12))
    guess = ((z_a * spread + z_b * spread) / (gain - rule.margin)) ** 2
    guess = max(int(guess), 10)

    def ok(n: int) -> bool:
        k = rule.critical(n, psi, exact=False)
        return (accuracy_power(rule, n, psi, gain, k) or 0.0) >= target_power

    lo, hi = max(guess // 2, 1), guess * 2
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_ROWS:
            return None
    while ok(lo) and lo > 1:
        hi, lo = lo, max(lo // 2, 1)
    while hi - lo > max(1, hi // 200):  # to 0.5%: "about N rows"
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True)
class AucRule:
    """DeLong's test of H0 AUC gain <= margin at ``level``, Student t with ``df``."""

    level: float
    margin: float
    se: float  # standard error of the AUC difference at the observed scores
    df: int
    n: int  # test rows the se was measured on

    def power(self, gain: float) -> float | None:
        if self.se <= 0:
            return None
        t_crit = float(sps.t.isf(self.level, self.df))
        return float(sps.norm.sf(t_crit - (gain - self.margin) / self.se))

    def mde(self, target_power: float) -> float | None:
        if self.se <= 0:
            return None
        t_crit = float(sps.t.isf(self.level, self.df))
        return self.margin + (t_crit + float(sps.norm.isf(1 - target_power))) * self.se

    def rows_needed(self, gain: float, target_power: float) -> int | None:
        """The se falls as 1 / sqrt(rows) at the same class balance."""
        if self.se <= 0 or gain <= self.margin:
            return None
        z = float(sps.norm.isf(self.level) + sps.norm.isf(1 - target_power))
        return max(int(math.ceil(self.n * (z * self.se / (gain - self.margin)) ** 2)), 1)


__all__ = [
    "AccuracyRule",
    "AucRule",
    "accuracy_mde",
    "accuracy_power",
    "accuracy_rows_needed",
]
