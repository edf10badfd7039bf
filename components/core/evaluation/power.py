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
  design, like the discordance): :class:`AucRule`.
- The whole rule when it has several parts (Holm over accuracy and ROC AUC, guardrails as
  intersection-union): :class:`RuleModel`, SIMULATED from a parametric model of the
  statistics, not exact. Each draw takes the paired accuracy cells (b, c) from their exact
  multinomial law (the gain shifted to the scenario's, the discordance the observed one)
  and applies the exact critical counts of every accuracy test in the rule; the other
  metrics' estimates (ROC AUC, macro F1, log loss) are drawn from their normal law around
  the scenario's gain, with the standard errors of the observed rows and their correlation
  with the accuracy difference and with each other from per-row influence values of the
  observed rows (on at most ``INFLUENCE_ROWS`` of them). Deploy = some primary test passes
  at alpha / m (what Holm needs for a first rejection) and every guardrail passes at alpha.
  The scenario: every primary metric gains ``target_effect`` (in its own units), every
  guardrail-only metric is unchanged (gain 0). ``SIM_DRAWS`` draws with a fixed seed
  (common random numbers across gains and sizes, so searches are monotone): Monte-Carlo
  s.e. at most 0.0035.

Pure numpy/scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

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

    return smallest_rows(ok, max(guess // 2, 1), guess * 2, share=200)  # to 0.5%


def smallest_rows(ok: Callable[[int], bool], lo: int, hi: int, share: int) -> int | None:
    """About the smallest row count for which ``ok`` holds (``ok`` rising with the rows), to
    1/``share`` of itself: doubling ``hi`` until it holds, halving ``lo`` while it holds,
    then bisecting between them. None beyond MAX_ROWS."""
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_ROWS:
            return None
    while lo > 1 and ok(lo):
        hi, lo = lo, max(lo // 2, 1)
    while hi - lo > max(1, hi // share):
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


# The simulated power of a rule with several parts: draws, seed, and the most rows the
# correlation of the metrics' per-row influence values is estimated on.
SIM_DRAWS = 20_000
SIM_SEED = 20260
INFLUENCE_ROWS = 200_000


@dataclass(frozen=True)
class Part:
    """One test in the rule: H0 "gain <= delta" on ``metric`` at ``level``."""

    metric: str  # accuracy | auc | macro_f1 | log_loss
    primary: bool  # primary (any may pass, Holm) or guardrail (all must pass)
    delta: float  # the margin (primary) or -tolerance (guardrail)
    level: float  # alpha / m for primaries (Holm's first rejection), alpha for guardrails
    method: str = "exact"  # accuracy at delta 0: the McNemar method
    df: int = 0  # ROC AUC: Student t degrees of freedom at the observed rows
    untested: bool = False  # too few rows of a kind: never passes


@dataclass(frozen=True)
class RuleModel:
    """The parametric model of a rule's statistics at the observed rows (module docstring).

    ``metrics`` orders ``corr`` (accuracy first when the rule uses it); ``se`` holds the
    standard error at ``n`` rows of each non-accuracy metric's estimate (accuracy's follows
    from the multinomial law of the cells)."""

    n: int
    psi: float
    parts: tuple[Part, ...]
    metrics: tuple[str, ...]
    se: dict[str, float]
    corr: np.ndarray
    min_discordant: int = 10
    _critical: dict[tuple[Part, int], tuple[np.ndarray, int]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def power(self, gain: float, n: int | None = None) -> tuple[float, float] | None:
        """(P(deploy), its Monte-Carlo s.e.) at ``n`` rows (default: the observed) when each
        primary metric gains ``gain`` and each other metric is unchanged; None where an
        accuracy gain of ``gain`` is impossible at the observed discordance."""
        gains = {p.metric: 0.0 for p in self.parts if not p.primary}
        gains |= {p.metric: gain for p in self.parts if p.primary}
        return self.power_at(gains, n)

    def power_at(self, gains: dict[str, float], n: int | None = None) -> tuple[float, float] | None:
        """(P(deploy), Monte-Carlo s.e.) at the given true gain of each metric."""
        n = n or self.n
        rng = np.random.default_rng(SIM_SEED)
        draws = SIM_DRAWS
        z: dict[str, np.ndarray] = {}
        rest = [m for m in self.metrics if m != "accuracy"]
        noise = rng.standard_normal((draws, len(rest))) if rest else np.zeros((draws, 0))
        b = c = None
        if "accuracy" in self.metrics:
            g = gains.get("accuracy", 0.0)
            if abs(g) > self.psi + 1e-12:
                return None
            normal = n * self.psi >= NORMAL_FROM
            spread = math.sqrt(max((self.psi - g * g) / n, 1e-300))
            if normal:
                u = rng.standard_normal(draws)
                diff = n * g + u * spread * n  # c - b
            else:
                p_b, p_c = max((self.psi - g) / 2, 0.0), max((self.psi + g) / 2, 0.0)
                cells = rng.multinomial(n, [p_b, p_c, max(1 - p_b - p_c, 0.0)], size=draws)
                b, c = cells[:, 0], cells[:, 1]
                diff = (c - b).astype(float)
                u = (diff / n - g) / spread if spread > 1e-150 else np.zeros(draws)
            z["accuracy"] = u
        else:
            u = None
        if rest:
            corr = self.corr
            if u is not None:
                r_ra = corr[1:, 0]
                cond = corr[1:, 1:] - np.outer(r_ra, r_ra)
                chol = _cholesky(cond)
                other = np.outer(u, r_ra) + noise @ chol.T
            else:
                other = noise @ _cholesky(corr).T
            for j, m in enumerate(rest):
                z[m] = other[:, j]
        deploy_any = np.zeros(draws, dtype=bool)
        guard_all = np.ones(draws, dtype=bool)
        for part in self.parts:
            if part.untested:
                ok = np.zeros(draws, dtype=bool)
            elif part.metric == "accuracy":
                ok = self._accuracy_passes(part, n, diff, b, c)
            else:
                se = self.se[part.metric] * math.sqrt(self.n / n)
                est = gains.get(part.metric, 0.0) + se * z[part.metric]
                if part.metric == "auc":
                    df = max(int(part.df * n / self.n), 1)
                    crit = float(sps.t.isf(part.level, df))
                else:
                    crit = float(sps.norm.isf(part.level))
                if se > 0:
                    ok = est - crit * se > part.delta
                else:  # no variance: the gate passes exactly when the gain exceeds delta
                    ok = np.full(draws, gains.get(part.metric, 0.0) > part.delta)
            if part.primary:
                deploy_any |= ok
            else:
                guard_all &= ok
        rate = float(np.mean(deploy_any & guard_all))
        return rate, math.sqrt(max(rate * (1 - rate), 1.0 / draws) / draws)

    def _accuracy_passes(
        self,
        part: Part,
        n: int,
        diff: np.ndarray,
        b: np.ndarray | None,
        c: np.ndarray | None,
    ) -> np.ndarray:
        """The accuracy test of ``part`` on every draw: exact critical counts, or the
        normal law of c - b from NORMAL_FROM expected discordant rows on."""
        min_d = self.min_discordant if part.primary else 0
        rule = AccuracyRule(part.level, part.delta, part.method, min_d)
        if b is None or c is None:
            level = part.level * (1 - paired.GAMMA_SHARE) if part.delta else part.level
            m = part.delta
            crit = float(sps.norm.isf(level)) * math.sqrt(max(n * (self.psi - m * m), 0.0))
            return diff - n * m >= crit
        key = (part, n)
        if key not in self._critical:
            self._critical[key] = rule.critical(n, self.psi, exact=n == self.n)
        k, first = self._critical[key]
        d = b + c
        index = np.clip(d - first, 0, k.size - 1)
        return c >= k[index]

    def mde(self, target_power: float) -> float | None:
        """The smallest common primary gain found with ``target_power`` at the observed n."""
        top = self.psi if "accuracy" in self.metrics else 1.0
        at_top = self.power(top * (1 - 1e-9))
        if at_top is None or at_top[0] < target_power:
            return None
        lo, hi = max(min(p.delta for p in self.parts if p.primary), 0.0), top * (1 - 1e-9)
        while hi - lo > MDE_PRECISION * max(hi, 1e-9):
            mid = 0.5 * (lo + hi)
            got = self.power(mid)
            if got is not None and got[0] >= target_power:
                hi = mid
            else:
                lo = mid
        return hi

    def rows_needed(self, gain: float, target_power: float) -> int | None:
        """About how many rows reach ``target_power`` at ``gain`` (standard errors scaled
        as 1 / sqrt(rows), discordance and correlations as observed)."""

        def ok(n: int) -> bool:
            got = self.power(gain, n)
            return got is not None and got[0] >= target_power

        if self.power(gain) is None:
            return None
        hi = max(self.n, 10)
        return smallest_rows(ok, hi // 2, hi, share=100)  # to 1%: "about N rows"


def _cholesky(cov: np.ndarray) -> np.ndarray:
    """A square root of a correlation-like matrix that may be singular."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return v * np.sqrt(np.clip(w, 0.0, None))


def influence(
    metric: str,
    y: np.ndarray,
    proba_new: np.ndarray,
    proba_old: np.ndarray,
) -> np.ndarray:
    """Per-row influence values of the challenger-minus-champion gain in ``metric`` (its
    estimate is about their mean plus a constant): accuracy, the right-minus-right
    indicator; log loss, the champion's row loss minus the challenger's; macro F1, the
    linearised per-class F1 = 2 TP / (support + predicted); ROC AUC, DeLong's placement
    values scaled by rows per class. Only their covariance is used."""
    pred_new, pred_old = proba_new.argmax(1), proba_old.argmax(1)
    if metric == "accuracy":
        return (pred_new == y).astype(float) - (pred_old == y)
    if metric == "log_loss":
        eps = np.finfo(np.float64).eps
        rows = np.arange(y.size)
        q_new = np.clip(proba_new[rows, y], eps, 1 - eps)
        q_old = np.clip(proba_old[rows, y], eps, 1 - eps)
        return np.log(q_new) - np.log(q_old)
    if metric == "macro_f1":
        k = proba_new.shape[1]
        return _f1_influence(y, pred_new, k) - _f1_influence(y, pred_old, k)
    if metric == "auc":
        return _auc_influence(y, proba_new[:, 1]) - _auc_influence(y, proba_old[:, 1])
    raise ValueError(f"no influence values for {metric!r}")


def _f1_influence(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    n = y.size
    support = np.bincount(y, minlength=k) / n
    predicted = np.bincount(pred, minlength=k) / n
    hit = np.bincount(y[pred == y], minlength=k) / n
    denom = support + predicted
    present = denom > 0
    safe = np.where(present, denom, 1.0)
    d_hit = np.where(present, 2 / safe, 0.0)
    d_den = np.where(present, -2 * hit / safe**2, 0.0)
    right = (pred == y).astype(float)
    return (right * d_hit[y] + d_den[y] + d_den[pred]) / max(int(present.sum()), 1)


def _auc_influence(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    out = np.zeros(y.size)
    if n1 == 0 or n0 == 0:
        return out
    ranks = sps.rankdata(score)
    v10 = (ranks[pos] - sps.rankdata(score[pos])) / n0
    v01 = 1 - (ranks[~pos] - sps.rankdata(score[~pos])) / n1
    out[pos] = v10 * y.size / n1
    out[~pos] = v01 * y.size / n0
    return out


def correlation(
    metrics: tuple[str, ...],
    y: np.ndarray,
    proba_new: np.ndarray,
    proba_old: np.ndarray,
) -> tuple[np.ndarray, dict[str, float]]:
    """The correlation of the metrics' gain estimates and each one's standard error at the
    observed rows, from influence values on at most INFLUENCE_ROWS of them (an evenly spaced
    subsample: a property of the design, stable at that size)."""
    n = y.size
    idx = np.linspace(0, max(n - 1, 0), min(n, INFLUENCE_ROWS)).astype(np.int64)
    sub = y[idx], proba_new[idx], proba_old[idx]
    values = np.array([influence(m, *sub) for m in metrics])
    sd = values.std(axis=1, ddof=1) if idx.size > 1 else np.zeros(len(metrics))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(values) if len(metrics) > 1 else np.ones((1, 1))
    corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
    np.fill_diagonal(corr, 1.0)
    se = {m: float(s / math.sqrt(max(n, 1))) for m, s in zip(metrics, sd, strict=True)}
    return corr, se


__all__ = [
    "AccuracyRule",
    "AucRule",
    "Part",
    "RuleModel",
    "correlation",
    "influence",
    "accuracy_mde",
    "accuracy_power",
    "accuracy_rows_needed",
]
