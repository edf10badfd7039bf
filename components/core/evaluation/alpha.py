"""Error control across runs: the level each comparison is tested at, the test rows it is
decided on, and the gain of a deployed challenger once its selection is accounted for.

One comparison at ``alpha`` deploys a no-better challenger at most ``alpha`` of the time. A
pipeline makes many comparisons, mostly on the same test rows: retried against one champion
until one deploys, a gate at 5% has deployed a no-better challenger within 20 tries 28% of
the time (``benchmarks/gate_lifetime.py``). The registry therefore keeps a ledger, one
:class:`LedgerEntry` per decision (the champion it was made against, the level its test ran
at, whether it deployed, the keys of the test rows that decided it), and an
:class:`AlphaPolicy` says how ``alpha`` is accounted over that ledger:

- ``per_comparison``: every comparison at ``alpha`` on every test row, the gate as it was
  (its decisions are exactly the gate's without a ledger). The promise covers one comparison.
- ``per_champion`` (the default): the k-th comparison against one champion is tested at
  ``alpha / (k (k + 1))``. Those levels add up to ``alpha * K / (K + 1) < alpha`` over any
  number K of attempts, so the chance that a no-better challenger *ever* replaces a given
  champion is at most ``alpha``: the union bound needs each test valid on its own, nothing
  about how the attempts depend on each other (the same rows, near-identical retrains, any
  rule for when to stop). Summed over reigns, expected false deploys <= ``alpha`` x
  (1 + expected deploys): exactly where each reign is decided on fresh rows, and in the
  simulations on reused rows too, where a champion's own selection there biases later
  comparisons against the challenger, not for it.
- ``stream``: LORD++ (Ramdas, Yang, Wainwright & Jordan 2017) over every decision of the
  registry. It controls the false discovery rate among deploys: the expected share of
  deployed models that were no better than the champion they replaced is at most ``alpha``.
  Its proof needs the null p-values independent of each other and of the non-null ones,
  which fresh test rows give (rows are i.i.d. draws, so the counts on disjoint rows are
  independent given the models) and reused rows do not; on reused rows it is a heuristic.
  LORD++ earns ``alpha`` back with each deploy, so it tests at higher levels than
  ``per_champion`` after several deploys close together, and at lower ones before the first
  (its starting wealth is ``alpha / 2``).

Why ``per_champion`` is the default. "Deploys a no-better model at most alpha of the time"
should still be true after a year of weekly runs, not only of one run. ``per_champion`` keeps
it in the form a user can check, with no assumption on how runs depend on each other (and
most pipelines reuse their test split, which is exactly when they do): however often a
champion is challenged, a no-better model replaces it with probability at most ``alpha``,
and over the pipeline's life at most about an ``alpha`` share of champions end that way.
``stream`` promises less (a rate among deploys) on an assumption reused rows break, and has
less power here; ``per_comparison`` makes no promise over runs at all (41% chance of a false
deploy in a year of no-better challengers). The cost is power: the first comparison against
a champion runs at ``alpha / 2`` (a +3 point gain at 500 fresh rows, 10% discordance, is
found 52% of the time instead of 64%), later ones lower; over a simulated year of weekly
challengers one in five truly better, it deploys 58% as many real improvements as the
per-comparison gate on a test split growing by 100 rows a week, and 22% as many on a fixed
500-row split, where the per-comparison gate's own power is already ratcheted down.

Why ``alpha / (k (k + 1))``: half of ``alpha`` goes to the first attempt against a champion,
where power matters most; an improvement arriving after many failures still has a budget,
decaying like 1 / k^2 (attempt 20 runs at ``alpha / 420``); and the spent total telescopes,
so after K attempts exactly ``alpha / (K + 1)`` is left, a figure the ledger can state.
Other sequences summing to 1 (6 / (pi k)^2, k^-1.5, k^-1.2, geometric 0.8^k) moved the
simulated year's real improvements by less than 15% either way: the budget matters, not
its shape.

Fresh rows. A champion promoted on some test rows looked better than it is on them (it won
there), and one that survived challenges there looks good there too, so the next comparison
on those rows is biased against the challenger: a truly better challenger deploys far less
often (the ratchet: 13% instead of 64%). That bias never favours a no-better challenger
(while challengers are not tuned on these rows), so the choice of rows is about power and,
for ``stream``, independence: :func:`choose_rows` decides on the rows that no earlier
decision involving this champion used, when there are at least ``min_fresh_rows`` of them
and at least half as many as the reused ones (below that the reused rows add more power than
their bias removes), else on all rows, and says which.

Every policy assumes that challengers are not tuned on this test set's outcomes: a
challenger chosen because of how earlier ones did on these rows makes even one test invalid.
Fresh rows are the protection there too.

Selection-adjusted gain. Among deployed challengers the observed gain overstates the true
one, because a deploy selects the draws that came out high (+28% for a +3 point gain at 500
rows, 10% discordance, alpha 5%; +36% at alpha / 2). :func:`adjusted_accuracy_gain` reports
the hybrid estimator of Andrews, Kitagawa & McCloskey ("Inference on Winners", QJE 2024):
the median of the gain's normal law truncated to the deploy region and to the unconditional
99.5% interval. The plain conditional MLE and the conditional median-unbiased estimator
diverge to minus infinity when the count only just clears the critical value (one deploy in
six at that gain), which is why they are not used; the hybrid is bounded and about
median-unbiased given a deploy (checked by simulation in ``tests/core/test_alpha.py``).

Pure numpy/scipy (scipy imported where a gain is adjusted: the gate's settings import this
module); nothing here reads or writes files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.core.errors import ConfigError

ACCOUNTINGS = ("per_comparison", "per_champion", "stream")
DEFAULT_ACCOUNTING = "per_champion"
# LORD++'s wealth before the first deploy, as a share of alpha (W0 = alpha / 2, the usual).
STREAM_INITIAL_WEALTH = 0.5
# Fresh rows decide alone only when at least this share of the reused rows' count: below it,
# the reused rows (biased against the challenger, not for it) add more power than bias.
FRESH_SHARE = 0.5
# The hybrid estimator truncates to the unconditional (1 - beta) interval; AKM recommend
# beta = alpha / 10 for 5% intervals.
HYBRID_BETA = 0.005

PROMISES = {
    "per_comparison": "each comparison deploys a no-better challenger with probability "
    "at most {alpha}",
    "per_champion": "a no-better challenger ever replaces this champion with probability at "
    "most {alpha}, however many attempts (valid under any dependence between them)",
    "stream": "at most a {alpha} share of deploys are expected to be no better than the "
    "champion they replaced (LORD++; needs independent p-values: fresh rows)",
}


@dataclass(frozen=True)
class AlphaPolicy:
    """How alpha is accounted across runs; kept in the registry, fixed for its life."""

    accounting: str = DEFAULT_ACCOUNTING  # per_comparison | per_champion | stream
    alpha: float = 0.05  # the promise's error rate (see the module docstring per accounting)
    min_fresh_rows: int = 300  # fewer unused test rows than this: decide on all the rows

    def __post_init__(self) -> None:
        problems = []
        if self.accounting not in ACCOUNTINGS:
            problems.append(
                f"accounting={self.accounting!r} must be one of {', '.join(ACCOUNTINGS)}"
            )
        if not 0 < self.alpha < 1:
            problems.append(f"alpha={self.alpha} must be between 0 and 1, e.g. 0.05")
        if self.min_fresh_rows < 1:
            problems.append(f"min_fresh_rows={self.min_fresh_rows} must be >= 1, e.g. 300")
        if problems:
            raise ConfigError("alpha policy: " + "; ".join(problems))


@dataclass(frozen=True, eq=False)
class LedgerEntry:
    """One decision as the accounting reads it: what it was against, at what level, and on
    which test rows."""

    champion: str  # the version it was compared against ("" on a first run: no champion)
    challenger: str  # the version the challenger became if deployed, else its run's id
    accounting: str  # the accounting it was made under
    level: float  # the level its test ran at
    deployed: bool
    p_value: float = math.nan
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))  # test-row keys

    def to_json(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "challenger": self.challenger,
            "accounting": self.accounting,
            "level": self.level,
            "deployed": self.deployed,
            "p_value": None if math.isnan(self.p_value) else self.p_value,
            "rows": np.asarray(self.rows).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LedgerEntry:
        p = data.get("p_value")
        return cls(
            champion=str(data["champion"]),
            challenger=str(data["challenger"]),
            accounting=str(data["accounting"]),
            level=float(data["level"]),
            deployed=bool(data["deployed"]),
            p_value=math.nan if p is None else float(p),
            rows=np.asarray(data.get("rows", [])),
        )


@dataclass(frozen=True)
class Account:
    """The level this comparison must be tested at, and how it was arrived at."""

    accounting: str
    alpha: float
    champion: str  # the version this comparison is against ("" = none)
    level: float  # test at this level: the gate deploys only when p < level
    attempt: int  # this comparison's number: against this champion (per_comparison,
    # per_champion) or in the stream (stream); 1 = the first
    spent_before: float  # levels already spent: against this champion, or in the stream
    deploys_before: int  # deploys in the stream before this comparison

    @property
    def promise(self) -> str:
        return PROMISES[self.accounting].format(alpha=self.alpha)

    def entry(self, *, challenger: str, p_value: float, deployed: bool, rows: Any) -> LedgerEntry:
        """This comparison's ledger entry once it is decided."""
        return LedgerEntry(
            champion=self.champion,
            challenger=challenger,
            accounting=self.accounting,
            level=self.level,
            deployed=bool(deployed),
            p_value=float(p_value),
            rows=np.asarray(rows),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "accounting": self.accounting,
            "alpha": self.alpha,
            "champion": self.champion,
            "level": self.level,
            "attempt": self.attempt,
            "spent_before": self.spent_before,
            "deploys_before": self.deploys_before,
            "promise": self.promise,
        }


# --------------------------------------------------------------------------------------
# Levels
# --------------------------------------------------------------------------------------


def spending(k: Any) -> Any:
    """gamma_k = 1 / (k (k + 1)), k = 1, 2, ...: the share of alpha attempt k may use.

    Non-increasing, and sum_{j <= K} gamma_j = K / (K + 1), so the shares never add up to
    more than 1. Takes an int or an array of them; k < 1 gives 0.
    """
    k = np.asarray(k, dtype=np.float64)
    out = np.where(k >= 1, 1.0 / np.maximum(k, 1.0) / (np.maximum(k, 1.0) + 1.0), 0.0)
    return float(out) if out.ndim == 0 else out


def per_champion_level(alpha: float, attempt: Any) -> Any:
    """The level of the ``attempt``-th comparison against one champion: alpha gamma_k."""
    return alpha * spending(attempt)


def lord_levels(alpha: float, deployed: np.ndarray) -> np.ndarray:
    """LORD++ levels of the next test of each stream, from its past deploys.

    ``deployed`` is (streams x past tests) booleans, or one stream's 1-D history. With t
    the next test's number and tau_1 < tau_2 < ... the numbers of the past deploys:

        alpha_t = gamma_t W0 + (alpha - W0) gamma_{t - tau_1} + alpha sum_{j >= 2} gamma_{t - tau_j}

    (Ramdas, Yang, Wainwright & Jordan 2017, LORD++), W0 = STREAM_INITIAL_WEALTH x alpha.
    It never exceeds alpha: gamma is non-increasing, so the W0 terms together are <= 0, and
    the gammas of distinct past deploys add up to less than 1.
    """
    past = np.atleast_2d(np.asarray(deployed, dtype=bool))
    streams, done = past.shape
    t = done + 1
    w0 = STREAM_INITIAL_WEALTH * alpha
    since = t - np.arange(1, t)  # t - s for past tests s = 1 .. t-1
    gammas = spending(since) if done else np.empty(0)
    first = np.argmax(past, axis=1) if done else np.zeros(streams, dtype=np.int64)
    any_deploy = past.any(axis=1) if done else np.zeros(streams, dtype=bool)
    earned = alpha * (past.astype(np.float64) @ gammas) if done else np.zeros(streams)
    # the first deploy earned alpha - W0, not alpha
    first_gamma = gammas[first] if done else np.zeros(streams)
    earned -= np.where(any_deploy, w0 * first_gamma, 0.0)
    level = spending(t) * w0 + earned
    return level if np.ndim(deployed) == 2 else level.reshape(-1)


def account(policy: AlphaPolicy, history: Sequence[LedgerEntry], champion: str) -> Account:
    """The level the next comparison against ``champion`` must be tested at.

    ``history`` is the registry's ledger, oldest first. Only entries made under the policy's
    own accounting count: a switch of accounting starts a new account (the promise of the
    new one holds from the switch on; the registry should keep the policy fixed).

    Run the gate with ``replace(gate_policy, alpha=account.level)``. The level is 0 only
    when this champion's budget is already spent (alpha lowered mid-reign): nothing may
    deploy against it then, and ``GatePolicy`` refuses alpha 0, so skip the test.
    """
    same = [e for e in history if e.accounting == policy.accounting]
    against = [e for e in same if e.champion == champion]
    deploys = sum(e.deployed for e in same)
    if policy.accounting == "per_comparison":
        level = policy.alpha
        attempt, spent = len(against) + 1, sum(e.level for e in against)
    elif policy.accounting == "per_champion":
        attempt, spent = len(against) + 1, sum(e.level for e in against)
        # what is left caps it: the ledger may hold more (alpha lowered mid-reign)
        level = min(per_champion_level(policy.alpha, attempt), max(policy.alpha - spent, 0.0))
    else:
        attempt, spent = len(same) + 1, sum(e.level for e in same)
        level = float(lord_levels(policy.alpha, np.array([e.deployed for e in same]))[0])
    return Account(
        accounting=policy.accounting,
        alpha=policy.alpha,
        champion=champion,
        level=float(level),
        attempt=attempt,
        spent_before=float(spent),
        deploys_before=int(deploys),
    )


# --------------------------------------------------------------------------------------
# Fresh rows
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RowChoice:
    """Which of this run's test rows decide the comparison, and why."""

    use: np.ndarray  # boolean mask over this run's test rows
    which: str  # "fresh" (only rows no earlier decision used) or "all"
    fresh: int  # this run's test rows no earlier decision used
    reused: int  # this run's test rows an earlier decision used
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.which,
            "rows_used": int(self.use.sum()),
            "fresh": self.fresh,
            "reused": self.reused,
            "reason": self.reason,
        }


def used_rows(history: Sequence[LedgerEntry], champion: str, accounting: str) -> np.ndarray:
    """Keys of the test rows that earlier decisions used, as far as this comparison cares.

    ``stream``: every earlier decision (its guarantee needs each decision independent of all
    the others). Otherwise the decisions this champion took part in: the one that promoted
    it (where it looked better than it is) and every earlier one against it.
    """
    if accounting == "stream":
        relevant = list(history)
    elif champion:
        relevant = [e for e in history if champion in (e.champion, e.challenger)]
    else:  # no champion yet: the earlier first-run decisions
        relevant = [e for e in history if e.champion == ""]
    arrays = [np.asarray(e.rows) for e in relevant if np.asarray(e.rows).size]
    if not arrays:
        return np.empty(0, dtype=object)
    return np.unique(np.concatenate([a.astype(object) for a in arrays]))


def choose_rows(keys: Any, used: Any, min_fresh_rows: int) -> RowChoice:
    """Decide on the fresh rows (in ``keys`` but not ``used``) when there are at least
    ``min_fresh_rows`` of them and at least FRESH_SHARE as many as reused ones, else on all.
    """
    keys = np.asarray(keys)
    used = np.asarray(used)
    seen = (
        np.isin(keys.astype(object), used.astype(object))
        if used.size
        else np.zeros(keys.shape[0], dtype=bool)
    )
    fresh, reused = int((~seen).sum()), int(seen.sum())
    if reused == 0:
        return RowChoice(
            np.ones(keys.shape[0], bool), "all", fresh, 0, "no earlier decision used these rows"
        )
    enough = max(min_fresh_rows, math.ceil(FRESH_SHARE * reused))
    if fresh >= enough:
        return RowChoice(
            ~seen,
            "fresh",
            fresh,
            reused,
            f"decided on the {fresh} test rows no earlier decision used ({reused} left out)",
        )
    reason = (
        f"only {fresh} test rows are fresh (fewer than {enough}), so all {keys.shape[0]} "
        f"decide, {reused} of them used before"
        if fresh
        else f"none of the {reused} test rows is fresh (an earlier decision used each), so "
        "all of them decide"
    )
    return RowChoice(np.ones(keys.shape[0], bool), "all", fresh, reused, reason)


def rows_for(
    policy: AlphaPolicy, history: Sequence[LedgerEntry], champion: str, keys: Any
) -> RowChoice:
    """The rows this comparison against ``champion`` decides on: :func:`choose_rows` over
    the :func:`used_rows` of the ledger; ``per_comparison`` keeps today's gate exactly and
    decides on every row (the counts still say how many were fresh)."""
    used = used_rows(history, champion, policy.accounting)
    choice = choose_rows(keys, used, policy.min_fresh_rows)
    if policy.accounting != "per_comparison" or choice.which == "all":
        return choice
    n = choice.fresh + choice.reused
    return RowChoice(
        np.ones(n, bool),
        "all",
        choice.fresh,
        choice.reused,
        f"all {n} test rows decide, {choice.reused} of them used by earlier decisions: "
        "per_comparison decides on every row, as the gate always has",
    )


# --------------------------------------------------------------------------------------
# Selection-adjusted gain
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdjustedGain:
    """A deployed challenger's gain, raw and adjusted for having been selected by the test."""

    raw: float  # the observed gain on the test rows
    estimate: float  # the selection-adjusted estimate (about median-unbiased given the deploy)
    standard_error: float
    threshold: float  # the smallest observed gain that deploys, continuity-corrected
    method: str = "hybrid conditional median (Andrews, Kitagawa & McCloskey 2024)"

    def to_json(self) -> dict[str, Any]:
        return {
            "raw": self.raw,
            "estimate": self.estimate,
            "standard_error": self.standard_error,
            "threshold": self.threshold,
            "method": self.method,
        }


def _between(a: float, b: float) -> float:
    """P(a < Z < b) for a standard normal Z, accurate in either tail (erfc, not 1 - cdf)."""
    if a > 0:
        return 0.5 * (math.erfc(a / _SQRT2) - math.erfc(b / _SQRT2))
    return 0.5 * (math.erfc(-b / _SQRT2) - math.erfc(-a / _SQRT2))


_SQRT2 = math.sqrt(2.0)


def adjusted_gain(
    estimate: float, standard_error: float, threshold: float, *, beta: float = HYBRID_BETA
) -> AdjustedGain:
    """Hybrid selection-adjusted estimate of a gain that was reported because it exceeded
    ``threshold``: X ~ N(delta, se^2), observed ``estimate`` > ``threshold``.

    The estimate is the delta at which x is the median of X given X > threshold and
    |X - delta| <= z_{1 - beta / 2} se, searched within x -+ z_{1 - beta / 2} se (the hybrid
    estimator of AKM 2024). Monotone in delta, so one root.
    """
    from scipy import optimize
    from scipy import stats as sps

    x, s, t = float(estimate), float(standard_error), float(threshold)
    if not (s > 0 and math.isfinite(s)):
        raise ValueError(f"standard_error={standard_error!r} must be a positive number")
    if not x > t:
        raise ValueError(
            f"estimate={x} does not exceed threshold={t}: only a selected (deployed) gain "
            "has a selection adjustment; report the raw gain"
        )
    cv = float(sps.norm.isf(beta / 2))

    def excess(delta: float) -> float:  # P(X <= x | selected, hybrid) - 1/2, decreasing
        low = max(t, delta - cv * s)
        high = delta + cv * s
        inside = _between((low - delta) / s, (high - delta) / s)
        below = _between((low - delta) / s, (min(x, high) - delta) / s)
        return below / inside - 0.5

    lo, hi = x - cv * s, x + cv * s
    if excess(lo) <= 0:
        root = lo
    elif excess(hi) >= 0:
        root = hi
    else:
        root = float(optimize.brentq(excess, lo, hi, xtol=1e-12 * max(1.0, abs(x))))
    return AdjustedGain(raw=x, estimate=root, standard_error=s, threshold=t)


def critical_count(discordant: Any, level: float) -> Any:
    """Smallest c with exact one-sided McNemar p = P(Bin(d, 1/2) >= c) < level, per d
    (d + 1 where none): the gate deploys iff the challenger's wins reach it."""
    from scipy import stats as sps

    d = np.asarray(discordant, dtype=np.int64)
    k = np.asarray(sps.binom.isf(level, d, 0.5), dtype=np.float64)
    k = np.where(np.isfinite(k), k + 1, d + 1).astype(np.int64)
    k = np.clip(k, 0, d + 1)
    for _ in range(3):  # isf is exact up to floating-point ties: settle them on the test
        lower_passes = (k >= 1) & (sps.binom.sf(k - 2, d, 0.5) < level)
        k = np.where(lower_passes, k - 1, k)
        fails = (k <= d) & (sps.binom.sf(k - 1, d, 0.5) >= level)
        k = np.where(fails, k + 1, k)
    k = np.where(d == 0, 1, k)  # no discordant rows never deploys (p = 1)
    return int(k) if k.ndim == 0 else k


def adjusted_accuracy_gain(
    only_champion_right: int, only_challenger_right: int, test_rows: int, level: float
) -> AdjustedGain:
    """Selection-adjusted accuracy gain of a challenger the exact McNemar test passed at
    ``level`` (b = ``only_champion_right``, c = ``only_challenger_right``).

    Given the d = b + c discordant rows, the gain (c - b) / n is about normal with standard
    error 2 sqrt(d p (1 - p)) / n, p = (c + 1/2) / (d + 1) (the 1/2 keeps it positive when
    every discordant row went one way), and the test passed because c reached the critical
    count k: the threshold is halfway between the gains at c = k - 1 and c = k.
    """
    b, c, n = int(only_champion_right), int(only_challenger_right), int(test_rows)
    d = b + c
    if n < 1 or b < 0 or c < 0 or d > n:
        raise ValueError(f"counts b={b}, c={c} and test_rows={n} are not a paired test")
    k = critical_count(d, level)
    if c < k or d == 0:
        raise ValueError(
            f"c={c} of {d} discordant rows does not pass the exact McNemar test at level "
            f"{level} (needs {k}): only a deployed gain has a selection adjustment"
        )
    p = (c + 0.5) / (d + 1.0)
    se = 2.0 * math.sqrt(d * p * (1.0 - p)) / n
    return adjusted_gain((c - b) / n, se, (2 * k - 1 - d) / n)


# --------------------------------------------------------------------------------------
# The account of one comparison, in words and in the decision record
# --------------------------------------------------------------------------------------


def level_text(level: float) -> str:
    """A level for people: three significant digits (0.025, 0.00833)."""
    return f"{level:.3g}"


def explain_level(account: Account, against: str) -> str:
    """Why this comparison is tested at its level, and what that keeps, in one sentence.
    ``against``: the champion in words ("version 2", "the baseline")."""
    a, k, level = account.alpha, account.attempt, account.level
    pct = f"{a * 100:g}%"
    if account.accounting == "per_comparison":
        return (
            f"Level {level_text(level)} = alpha, attempt {k} against {against} "
            f"(per_comparison): each comparison on its own deploys a no-better challenger with "
            f"probability at most {pct}; repeated attempts are not accounted, so over many of "
            "them that chance grows"
        )
    if account.accounting == "per_champion":
        full = per_champion_level(a, k)
        how = f"= alpha {a} / ({k} x {k + 1})"
        if level < full * (1 - 1e-9):  # the budget caps it: alpha changed during this reign
            how = (
                f"= what is left of alpha {a} after {level_text(account.spent_before)} spent "
                f"on {k - 1} earlier attempts (alpha changed during this reign; alpha / "
                f"({k} x {k + 1}) would be {level_text(full)})"
            )
        replaces = (
            "is ever deployed over the baseline"
            if against == "the baseline"
            else f"ever replaces {against}"
        )
        return (
            f"Level {level_text(level)} {how}, attempt {k} against {against} (per_champion): "
            f"this keeps the chance that a no-better challenger {replaces} at most {pct}, "
            "however many attempts"
        )
    deploys = account.deploys_before
    return (
        f"Level {level_text(level)}: the LORD++ level of decision {k} of this registry, after "
        f"{deploys} deploy{'s' if deploys != 1 else ''} (stream): at most a {pct} share of "
        "deploys are expected to be no better than the champion they replaced, where every "
        "decision is made on fresh rows"
    )


@dataclass(frozen=True)
class Accounting:
    """How one comparison's level and rows were chosen from the ledger and, for a deploy,
    its gain adjusted for the selection: what the decision record and the report state."""

    account: Account
    rows: RowChoice
    against: str  # the champion in words: "version 2", "the baseline"
    ledger: dict[str, Any] = field(default_factory=dict)  # id, record, where, notes
    adjusted: AdjustedGain | None = None  # a deploy's selection-adjusted accuracy gain
    adjusted_note: str = ""  # why a deploy has none, or what it does not model

    @property
    def why(self) -> str:
        text = explain_level(self.account, self.against)
        if self.account.accounting == "stream" and self.rows.which == "all" and self.rows.reused:
            text += "; this decision reuses rows, so for it that holds only approximately"
        return text + "."

    def rows_sentence(self) -> str:
        """What the decision's reason says of the rows: only when earlier decisions used
        some of them (otherwise every row decided and none had been used)."""
        if not self.rows.reused:
            return ""
        return self.rows.reason[0].upper() + self.rows.reason[1:] + "."

    def gain_sentence(self) -> str:
        g = self.adjusted
        if g is None:
            return ""
        return (
            f"Selection-adjusted accuracy gain {g.estimate * 100:+.1f} points (raw "
            f"{g.raw * 100:+.1f}): a deploy selects gains that came out high, and this "
            "estimate corrects for it."
        )

    def to_json(self) -> dict[str, Any]:
        gain: dict[str, Any] | None = None
        if self.adjusted is not None:
            gain = {"raw": self.adjusted.raw, "adjusted": self.adjusted.estimate}
            gain |= {k: v for k, v in self.adjusted.to_json().items() if k not in ("raw",)}
            gain.pop("estimate", None)
        return {
            "accounting": self.account.accounting,
            "alpha": self.account.alpha,
            "level": self.account.level,
            "attempt": self.account.attempt,
            "against": self.account.champion,
            "spent_before": self.account.spent_before,
            "deploys_before": self.account.deploys_before,
            "why": self.why,
            "promise": self.account.promise,
            "rows": self.rows.to_json(),
            "gain": gain,
            "gain_note": self.adjusted_note,
        }


__all__ = [
    "ACCOUNTINGS",
    "Accounting",
    "DEFAULT_ACCOUNTING",
    "Account",
    "AdjustedGain",
    "AlphaPolicy",
    "LedgerEntry",
    "RowChoice",
    "account",
    "adjusted_accuracy_gain",
    "adjusted_gain",
    "choose_rows",
    "critical_count",
    "explain_level",
    "level_text",
    "lord_levels",
    "per_champion_level",
    "rows_for",
    "spending",
    "used_rows",
]
