"""The deploy gate: promote the challenger only when the evidence says it is better.

Both models are scored on the same raw test rows. The primary test is the one-sided exact
McNemar test on the rows where exactly one model is right (accuracy), or DeLong's paired test
(ROC AUC, binary). With several primary metrics, Holm's correction keeps the false-deploy
risk at alpha. A practical margin, guardrail metrics, a minimum test size and, on the first
run, an absolute accuracy floor add further conditions. Every decision carries its reason in
plain words, its power, the smallest improvement the test could have detected and the interval
of each metric's improvement; alpha and the bootstrap settings come from the policy alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from components.core.errors import ConfigError
from components.core.evaluation.alpha import (
    ACCOUNTINGS,
    DEFAULT_ACCOUNTING,
    AlphaPolicy,
    level_text,
)
from components.core.evaluation.metrics import BASELINES

if TYPE_CHECKING:
    from components.core.evaluation.alpha import Accounting
    from components.core.evaluation.stats import BootstrapResult

PRIMARY_METRICS = ("accuracy", "auc")
GUARDRAIL_METRICS = ("accuracy", "macro_f1", "log_loss", "auc")
TARGET_POWER = 0.8
# improvement_ci key -> the bootstrap's metric
INTERVAL_METRICS = (
    ("accuracy", "accuracy"),
    ("macro_f1", "macro_f1"),
    ("log_loss", "log_loss"),
    ("roc_auc", "auc"),
)


@dataclass(frozen=True)
class GatePolicy:
    """When the challenger is deployed; fields are pipeline parameters."""

    alpha: float = 0.05  # accepted risk of deploying a model that is not better
    primary_metrics: tuple[str, ...] = ("accuracy",)  # accuracy (McNemar) and/or auc (DeLong)
    margin: float = 0.0  # the one-sided lower bound of the improvement must exceed this
    guardrails: tuple[tuple[str, float], ...] = ()  # metric:tolerance: non-inferior within it
    min_test_rows: int = 30  # below this many test rows the gate refuses to promote
    baseline: str = "majority"  # first run: the challenger must beat majority | logistic
    accuracy_floor: float = 0.0  # first run: accuracy must be significantly above this (0 = off)
    mcnemar_method: str = "exact"  # exact | midp | chi2 | chi2-corrected
    bootstrap_resamples: int = 10000  # bootstrap resamples for the confidence bounds
    bootstrap_seed: int = 0  # seed of the bootstrap resampling
    alpha_accounting: str = DEFAULT_ACCOUNTING  # how alpha is spent over runs: per_champion
    # (the k-th try against one champion at alpha/(k(k+1)): a no-better model ever replaces
    # it with probability <= alpha) | stream (LORD++) | per_comparison (alpha every time)
    min_fresh_rows: int = 300  # decide on the test rows no earlier decision used, if this many

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.alpha < 1:
            problems.append(f"alpha={self.alpha} must be between 0 and 1, e.g. 0.05")
        if self.alpha_accounting not in ACCOUNTINGS:
            problems.append(
                f"alpha_accounting={self.alpha_accounting!r} must be one of "
                + ", ".join(ACCOUNTINGS)
            )
        if self.min_fresh_rows < 1:
            problems.append(f"min_fresh_rows={self.min_fresh_rows} must be >= 1, e.g. 300")
        if not self.primary_metrics:
            problems.append("primary_metrics is empty: name accuracy and/or auc")
        for m in self.primary_metrics:
            if m not in PRIMARY_METRICS:
                problems.append(f"primary metric {m!r}: use one of {', '.join(PRIMARY_METRICS)}")
        for m, tol in self.guardrails:
            if m not in GUARDRAIL_METRICS or tol < 0:
                problems.append(
                    f"guardrail {m}:{tol}: metric must be one of {', '.join(GUARDRAIL_METRICS)} "
                    "and tolerance >= 0"
                )
        if self.margin < 0:
            problems.append(f"margin={self.margin} must be >= 0")
        if self.min_test_rows < 1:
            problems.append(f"min_test_rows={self.min_test_rows} must be >= 1")
        if self.baseline not in BASELINES:
            problems.append(f"baseline={self.baseline!r} must be one of {', '.join(BASELINES)}")
        if not 0 <= self.accuracy_floor < 1:
            problems.append(f"accuracy_floor={self.accuracy_floor} must be in [0, 1)")
        if self.mcnemar_method != "exact":  # stats imports scipy: only look when it matters
            from components.core.evaluation.stats import MCNEMAR_METHODS

            if self.mcnemar_method not in MCNEMAR_METHODS:
                problems.append(
                    f"mcnemar_method={self.mcnemar_method!r} must be one of "
                    + ", ".join(MCNEMAR_METHODS)
                )
        if self.bootstrap_resamples < 100:
            problems.append(f"bootstrap_resamples={self.bootstrap_resamples} must be >= 100")
        if problems:
            raise ConfigError("gate policy: " + "; ".join(problems))

    def check_classes(self, n_classes: int) -> None:
        """What needs the data: ROC AUC (as a primary metric or guardrail) needs two classes."""
        uses_auc = "auc" in self.primary_metrics or any(m == "auc" for m, _ in self.guardrails)
        if uses_auc and n_classes != 2:
            raise ConfigError(
                f"gate policy: ROC AUC needs a binary label and the data has {n_classes} "
                "classes; use primary_metrics=accuracy and no auc guardrail"
            )

    def alpha_policy(self) -> AlphaPolicy:
        """How alpha is accounted across runs (evaluation/alpha.py)."""
        return AlphaPolicy(self.alpha_accounting, self.alpha, self.min_fresh_rows)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "primary_metrics": list(self.primary_metrics),
            "guardrails": [list(g) for g in self.guardrails],
        }


# --------------------------------------------------------------------------------------
# The decision and its records: to_json() of each is its part of the decision record
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """The test rows in four cells by which model was right; the McNemar test reads the two
    cells where exactly one was."""

    test_rows: int
    both_right: int
    only_challenger_right: int
    only_champion_right: int
    both_wrong: int

    @property
    def discordant(self) -> int:
        return self.only_challenger_right + self.only_champion_right

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Effect:
    """How much better the challenger did on the test rows."""

    accuracy_challenger: float
    accuracy_champion: float
    auc_challenger: float | None = None  # only with ROC AUC as a primary metric
    auc_champion: float | None = None
    # one-sided (1 - level) lower bound of the improvement: of each significant primary
    # metric, then of accuracy (whenever there are rows), in that order
    lower_bounds: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy_difference(self) -> float:
        return self.accuracy_challenger - self.accuracy_champion

    @property
    def accuracy_lower_bound(self) -> float | None:
        return self.lower_bounds.get("accuracy")

    def to_json(self) -> dict[str, float]:
        out = {
            "accuracy_challenger": self.accuracy_challenger,
            "accuracy_champion": self.accuracy_champion,
            "accuracy_difference": self.accuracy_difference,
        }
        if self.auc_challenger is not None and self.auc_champion is not None:
            out |= {
                "auc_challenger": self.auc_challenger,
                "auc_champion": self.auc_champion,
                "auc_difference": self.auc_challenger - self.auc_champion,
            }
        return out | {f"{m}_lower_bound": low for m, low in self.lower_bounds.items()}


@dataclass(frozen=True)
class Power:
    """What the McNemar test could see at this test size; it explains, it never decides."""

    observed_power: float  # chance of a significant result if the observed effect is real
    minimum_detectable_improvement: float | None  # with target_power; None: none at this size
    target_power: float
    discordant_rate: float  # share of rows where exactly one model is right

    def to_json(self) -> dict[str, float | None]:
        return asdict(self)


@dataclass(frozen=True)
class Interval:
    """Two-sided paired-bootstrap interval of one metric's improvement (positive = challenger
    better; for log loss the champion's loss minus the challenger's)."""

    estimate: float
    low: float
    high: float
    method: str  # what was resampled: a key of stats.RESAMPLING_METHODS

    def to_json(self) -> dict[str, float | str]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """One condition of a deploy. Each kind of check fills only its own fields; the others
    stay None and are left out of its JSON."""

    name: str  # in words: "accuracy significantly better", "at least 30 test rows", ...
    passed: bool
    accuracy: float | None = None  # first-run floor: the challenger's accuracy
    p_value: float | None = None  # primary metrics and the floor: the test's p-value
    p_adjusted: float | None = None  # primary metrics: Holm-adjusted over all of them
    estimate: float | None = None  # margin and guardrails: the observed improvement...
    lower_bound: float | None = None  # ...and its one-sided (1 - alpha) lower bound
    test_rows: int | None = None  # the size check

    def to_json(self) -> dict[str, Any]:
        filled = {
            k: v for k, v in asdict(self).items() if k not in ("name", "passed") and v is not None
        }
        return {"check": self.name} | filled | {"passed": self.passed}


@dataclass(frozen=True)
class Decision:
    """The gate's verdict, its reason in words and the evidence behind both."""

    deploy: bool
    p_value: float  # the smallest (Holm-adjusted) p-value of the primary tests
    reason: str
    test: str  # the primary test(s) in words
    alpha: float  # the nominal alpha, the policy's
    level: float  # the level the test ran at: alpha, or less where alpha is spent over runs
    margin: float
    counts: Counts
    effect: Effect
    power: Power | None  # None when decide ran with explain=False
    checks: tuple[Check, ...] = ()
    champion: str = ""
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # two-sided (1 - level) interval of each metric's improvement, keyed accuracy, macro_f1,
    # log_loss and (binary label) roc_auc; empty with explain=False or without rows
    improvement_ci: dict[str, Interval] = field(default_factory=dict)
    # how the level and the rows were chosen from the registry's ledger, and a deploy's
    # selection-adjusted gain; None for a decision made outside a registry
    accounting: Accounting | None = None

    @property
    def confidence(self) -> float:
        """The confidence of the lower bounds and intervals: 1 - the level tested at."""
        return 1 - self.level

    def to_json(self) -> dict[str, Any]:
        return {
            "deploy": self.deploy,
            "p_value": self.p_value,
            "reason": self.reason,
            "test": self.test,
            "alpha": self.alpha,
            "level": self.level,
            "accounting": self.accounting.to_json() if self.accounting else None,
            "margin": self.margin,
            "counts": self.counts.to_json(),
            "effect": self.effect.to_json(),
            "power": self.power.to_json() if self.power else {},
            "checks": [c.to_json() for c in self.checks],
            "champion": self.champion,
            "metrics": {who: dict(values) for who, values in self.metrics.items()},
            "improvement_ci": {k: ci.to_json() for k, ci in self.improvement_ci.items()},
        }


# --------------------------------------------------------------------------------------
# Deciding
# --------------------------------------------------------------------------------------


def decide(
    policy: GatePolicy,
    y: np.ndarray,
    proba_challenger: np.ndarray,
    proba_champion: np.ndarray,
    *,
    champion_name: str,
    first_run: bool,
    metrics: dict[str, dict[str, float]] | None = None,
    explain: bool = True,
    level: float | None = None,
) -> Decision:
    """Compare two models' predictions on the same rows and decide whether to deploy.

    ``y`` holds class indices; the probability matrices share the same class order.
    ``explain=False`` skips the power figures and the improvement intervals (they explain a
    decision, they never change it), which the null simulation uses to run thousands of
    decisions quickly. ``level``: test at this level instead of the policy's alpha (what
    the account of alpha across runs allows this comparison, evaluation/alpha.py); every
    test, bound, interval and power figure then uses it, and the decision keeps both.
    """
    nominal = policy.alpha
    if level is not None:
        policy = replace(policy, alpha=level)
    rows = _Rows.of(y, proba_challenger, proba_champion)
    counts = _count_cells(rows)
    tests, auc = _primary_tests(policy, rows, counts)
    adjusted = _holm([p for _, p in tests])
    primary = [
        _primary_check(policy, m, p, adj) for (m, p), adj in zip(tests, adjusted, strict=True)
    ]
    significant = [m for (m, _), check in zip(tests, primary, strict=True) if check.passed]
    bounds = _lower_bounds(policy, rows, significant)
    effect = _effect(counts, auc, {m: low for m, (_, low) in bounds.items()})
    conditions = [
        *(_margin_check(policy, m, *bounds[m]) for m in significant),
        *_guardrail_checks(policy, rows),
        *_floor_checks(policy, counts, effect, first_run),
        _size_check(policy, counts),
    ]
    decision = Decision(
        deploy=bool(significant) and all(c.passed for c in conditions),
        p_value=min(adjusted),
        reason="",  # written below, from the decision itself
        test=_test_in_words(policy),
        alpha=nominal,
        level=policy.alpha,
        margin=policy.margin,
        counts=counts,
        effect=effect,
        power=_power(policy, counts) if explain else None,
        checks=(*primary, *conditions),
        champion=champion_name,
        metrics=metrics or {},
        improvement_ci=_improvement_intervals(policy, rows) if explain and counts.test_rows else {},
    )
    return replace(decision, reason=_reason(decision, policy, significant, first_run))


@dataclass(frozen=True, eq=False)
class _Rows:
    """Both models on the same test rows: class indices, probabilities and predictions."""

    y: np.ndarray
    proba_new: np.ndarray
    proba_old: np.ndarray
    pred_new: np.ndarray
    pred_old: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, proba_new: np.ndarray, proba_old: np.ndarray) -> _Rows:
        return cls(y, proba_new, proba_old, proba_new.argmax(1), proba_old.argmax(1))

    @property
    def n_classes(self) -> int:
        return int(self.proba_new.shape[1])

    def compared(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """What the bootstrap compares for ``metric``: labels, positive scores or matrices."""
        if metric in ("accuracy", "macro_f1"):
            return self.pred_new, self.pred_old
        if metric == "auc":
            return self.proba_new[:, 1], self.proba_old[:, 1]
        return self.proba_new, self.proba_old


def _count_cells(rows: _Rows) -> Counts:
    right_new, right_old = rows.pred_new == rows.y, rows.pred_old == rows.y
    return Counts(
        test_rows=int(rows.y.shape[0]),
        both_right=int((right_new & right_old).sum()),
        only_challenger_right=int((right_new & ~right_old).sum()),
        only_champion_right=int((~right_new & right_old).sum()),
        both_wrong=int((~right_new & ~right_old).sum()),
    )


def _primary_metrics(policy: GatePolicy) -> list[str]:
    """The policy's primary metrics, each once, in its order."""
    return list(dict.fromkeys(policy.primary_metrics))


def _test_in_words(policy: GatePolicy) -> str:
    names = {
        "accuracy": f"one-sided {policy.mcnemar_method} McNemar test on accuracy",
        "auc": "one-sided DeLong test on ROC AUC",
    }
    tests = [names[m] for m in policy.primary_metrics]
    return " + ".join(tests) + (" (Holm-adjusted)" if len(tests) > 1 else "")


def _primary_tests(
    policy: GatePolicy, rows: _Rows, counts: Counts
) -> tuple[list[tuple[str, float]], tuple[float, float] | None]:
    """(metric, one-sided p-value) per primary metric, and both ROC AUCs where one is tested."""
    from components.core.evaluation import stats  # scipy is only needed once a decision is made

    tests: list[tuple[str, float]] = []
    auc: tuple[float, float] | None = None
    for metric in _primary_metrics(policy):
        if metric == "accuracy":
            res = stats.mcnemar(
                counts.only_champion_right,
                counts.only_challenger_right,
                alternative="greater",
                method=policy.mcnemar_method,
            )
            tests.append((metric, float(res.pvalue)))
            continue
        if rows.n_classes != 2:
            raise ConfigError(
                f"primary metric 'auc' needs a binary label; use accuracy for "
                f"{rows.n_classes} classes"
            )
        dl = stats.delong(rows.y, *rows.compared("auc"), alternative="greater")
        tests.append((metric, float(dl.pvalue)))
        auc = (float(dl.auc_challenger), float(dl.auc_champion))
    return tests, auc


def _holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment; a single test needs none."""
    if len(pvalues) == 1:
        return list(pvalues)
    order = np.argsort(pvalues)
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _primary_check(policy: GatePolicy, metric: str, p: float, p_adjusted: float) -> Check:
    return Check(
        f"{metric} significantly better",
        passed=p_adjusted < policy.alpha,
        p_value=p,
        p_adjusted=p_adjusted,
    )


def _bootstrap(policy: GatePolicy, rows: _Rows, metric: str, sided: str) -> BootstrapResult:
    """The paired bootstrap of ``metric``'s improvement at the policy's confidence."""
    from components.core.evaluation import stats

    return stats.bootstrap_difference(
        metric,
        rows.y,
        *rows.compared(metric),
        confidence=1 - policy.alpha,
        n_resamples=policy.bootstrap_resamples,
        seed=policy.bootstrap_seed,
        sided=sided,
    )


def _lower_bound(policy: GatePolicy, rows: _Rows, metric: str) -> tuple[float, float]:
    """(estimate, one-sided lower confidence bound) of ``metric``'s improvement."""
    res = _bootstrap(policy, rows, metric, "lower")
    return float(res.estimate), float(res.low)


def _lower_bounds(
    policy: GatePolicy, rows: _Rows, significant: list[str]
) -> dict[str, tuple[float, float]]:
    """Of each significant metric (for the margin), and of accuracy (for the reason)."""
    metrics = list(significant)
    if "accuracy" not in metrics and rows.y.shape[0]:
        metrics.append("accuracy")
    return {m: _lower_bound(policy, rows, m) for m in metrics}


def _effect(counts: Counts, auc: tuple[float, float] | None, bounds: dict[str, float]) -> Effect:
    n = counts.test_rows
    return Effect(
        accuracy_challenger=(counts.both_right + counts.only_challenger_right) / n if n else 0.0,
        accuracy_champion=(counts.both_right + counts.only_champion_right) / n if n else 0.0,
        auc_challenger=auc[0] if auc else None,
        auc_champion=auc[1] if auc else None,
        lower_bounds=bounds,
    )


def _margin_check(policy: GatePolicy, metric: str, estimate: float, low: float) -> Check:
    return Check(
        f"{metric} improvement above margin {policy.margin}",
        passed=low > policy.margin,
        estimate=estimate,
        lower_bound=low,
    )


def _guardrail_checks(policy: GatePolicy, rows: _Rows) -> list[Check]:
    """Each guardrail metric may be worse by at most its tolerance (its lower bound says)."""
    checks = []
    for metric, tol in policy.guardrails:
        if metric == "auc" and rows.n_classes != 2:
            raise ConfigError("guardrail 'auc' needs a binary label")
        estimate, low = _lower_bound(policy, rows, metric)
        checks.append(
            Check(
                f"{metric} non-inferior within {tol}",
                passed=low > -tol,
                estimate=estimate,
                lower_bound=low,
            )
        )
    return checks


def _floor_checks(
    policy: GatePolicy, counts: Counts, effect: Effect, first_run: bool
) -> list[Check]:
    """On the first run, accuracy significantly above the policy's floor (when it has one)."""
    from components.core.evaluation import stats

    if not (first_run and policy.accuracy_floor > 0):
        return []
    correct = counts.both_right + counts.only_challenger_right
    p = float(stats.binomial_test_greater(correct, counts.test_rows, policy.accuracy_floor))
    return [
        Check(
            f"accuracy significantly above floor {policy.accuracy_floor}",
            passed=p < policy.alpha,
            accuracy=effect.accuracy_challenger,
            p_value=p,
        )
    ]


def _size_check(policy: GatePolicy, counts: Counts) -> Check:
    return Check(
        f"at least {policy.min_test_rows} test rows",
        passed=counts.test_rows >= policy.min_test_rows,
        test_rows=counts.test_rows,
    )


def _power(policy: GatePolicy, counts: Counts) -> Power:
    """Power for the observed effect and the smallest improvement detectable at this size.

    The minimum detectable improvement is taken at the observed discordant rate (at least
    two rows' worth, so identical models still get a meaningful figure); None when no
    improvement at all is detectable with TARGET_POWER at this test size.
    """
    from components.core.evaluation import stats

    n = counts.test_rows
    if n == 0:
        return Power(0.0, None, TARGET_POWER, 0.0)
    b, c = counts.only_champion_right, counts.only_challenger_right
    disc_rate = counts.discordant / n
    mde = float(
        stats.mcnemar_minimum_detectable_effect(
            n, min(1.0, max(disc_rate, 2.0 / n)), policy.alpha, TARGET_POWER
        )
    )
    return Power(
        observed_power=float(stats.mcnemar_power(b / n, c / n, n, policy.alpha)),
        minimum_detectable_improvement=mde if np.isfinite(mde) else None,
        target_power=TARGET_POWER,
        discordant_rate=disc_rate,
    )


def _improvement_intervals(policy: GatePolicy, rows: _Rows) -> dict[str, Interval]:
    """Two-sided paired-bootstrap intervals of each metric's improvement, for the report.

    ROC AUC gets an interval only for a binary label.
    """
    out = {}
    for key, metric in INTERVAL_METRICS:
        if metric == "auc" and rows.n_classes != 2:
            continue
        r = _bootstrap(policy, rows, metric, "two-sided")
        out[key] = Interval(float(r.estimate), float(r.low), float(r.high), r.method)
    return out


# --------------------------------------------------------------------------------------
# The reason in words
# --------------------------------------------------------------------------------------


def _pts(x: float) -> str:
    """An accuracy difference in percentage points, signed."""
    return f"{x * 100:+.1f} points"


def format_p(p: float) -> str:
    """A p-value for people: three digits, scientific below 1e-4, and 1 for p ~ 1."""
    return "1" if p >= 0.9995 else (f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}")


def _reason(d: Decision, policy: GatePolicy, significant: list[str], first_run: bool) -> str:
    """The verdict, why, and what the rows showed, in plain words."""
    counts, effect = d.counts, d.effect
    against = f"the {d.champion}" if first_run else f"the champion ({d.champion})"
    observed = (
        f"On {counts.test_rows} test rows the challenger was right on "
        f"{counts.only_challenger_right} where {against} was wrong, and wrong on "
        f"{counts.only_champion_right} where it was right; accuracy "
        f"{effect.accuracy_challenger:.3f} vs {effect.accuracy_champion:.3f} "
        f"({_pts(effect.accuracy_difference)})"
    )
    if d.deploy:
        return _why_deployed(d, policy, significant, against, observed)
    if counts.test_rows < policy.min_test_rows:
        return (
            f"Not deployed: only {counts.test_rows} test rows, fewer than the "
            f"{policy.min_test_rows} the gate needs to judge; add data so the test split grows."
        )
    if counts.discordant == 0 and _primary_metrics(policy) == ["accuracy"]:
        return (
            f"Not deployed: the challenger and {against} gave the same answer on all "
            f"{counts.test_rows} test rows, so there is no evidence that the challenger is "
            "better (p = 1)."
        )
    if significant:
        failed = "; ".join(c.name for c in d.checks if not c.passed)
        return (
            f"Not deployed: the challenger is significantly better (p = {format_p(d.p_value)}) "
            f"but failed: {failed}. {observed}."
        )
    return (
        f"Not deployed: not significantly better (p = {format_p(d.p_value)}, "
        f"{_threshold(d)}); {_why_not_significant(d)}. {observed}."
    )


def _threshold(d: Decision) -> str:
    """What p was compared with: "alpha 0.05", or "level 0.025" where alpha is spent over
    runs (the reason's accounting sentence says why)."""
    return f"alpha {d.alpha}" if d.level == d.alpha else f"level {level_text(d.level)}"


def confidence_text(confidence: float) -> str:
    """A confidence as a percentage: 95%, 97.5%, 99.17%."""
    return f"{confidence * 100:.4g}%"


def _why_deployed(
    d: Decision, policy: GatePolicy, significant: list[str], against: str, observed: str
) -> str:
    primary = _primary_metrics(policy)
    low = d.effect.accuracy_lower_bound
    bound = ""
    if low is not None and "accuracy" in significant:
        bound = f", {confidence_text(d.confidence)} lower bound {_pts(low)}"
    on = ""
    if primary != ["accuracy"]:  # say which metric carried the decision
        names = {"accuracy": "accuracy", "auc": "ROC AUC"}
        on = " on " + " and ".join(names[m] for m in significant)
    auc = ""
    if "auc" in significant:
        auc = f"; ROC AUC {d.effect.auc_challenger:.3f} vs {d.effect.auc_champion:.3f}"
    holm = " (Holm-adjusted)" if len(primary) > 1 else ""
    return (
        f"Deployed: the challenger is significantly better than {against}{on}. "
        f"{observed}{bound}{auc}; p = {format_p(d.p_value)} < {_threshold(d)}{holm}."
    )


def _why_not_significant(d: Decision) -> str:
    n, diff = d.counts.test_rows, d.effect.accuracy_difference
    mde = d.power.minimum_detectable_improvement if d.power else None
    if diff <= 0:
        return "the challenger is no better"
    if mde is None:
        return f"the test set is too small to tell: at {n} rows no improvement is detectable"
    if diff >= mde:
        return (
            "the observed gain would usually be detected at this size, so it is most likely chance"
        )
    return (
        f"the test set is too small to tell: at {n} rows only an improvement of about "
        f"{_pts(mde)} or more is detected with {int(TARGET_POWER * 100)}% power"
    )


__all__ = [
    "Check",
    "Counts",
    "Decision",
    "Effect",
    "GatePolicy",
    "Interval",
    "Power",
    "confidence_text",
    "decide",
    "format_p",
]
