"""The deploy gate: promote the challenger only when the evidence says it is better.

Both models are scored on the same raw test rows. One family-wise decision: per primary
metric the null hypothesis "the gain is at most the margin" (accuracy: McNemar's test on the
rows where exactly one model is right, or with a margin Tango's score test made exact by
Berger & Boos, evaluation/paired.py; ROC AUC, binary: DeLong's variance with Student t),
Holm's step-down across the primary metrics, and each guardrail a non-inferiority test at the
full level (intersection-union: all must pass). The challenger deploys when at least one
primary null is rejected and every other condition holds, so more evidence on any metric
can only help. A metric with too few rows of the kind its test needs (discordant rows, rows
of each class) is not tested and says so. On the first run (no champion) the challenger must
beat ``baseline`` (majority class by default) and must not be shown to be more than
``baseline_tolerance`` worse than ``first_run_guard`` (a logistic regression by default), both
fitted on the same train rows, so a useless model cannot deploy.

Every decision carries its reason in plain words, the one-sided bounds the rule uses, the
power of that whole rule at a pre-declared effect (``target_effect``; never at the observed
one; exact for accuracy alone, simulated where Holm or guardrails join: power.RuleModel),
and a Bayesian reading of the same counts (evaluation/bayes.py).
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

PRIMARY_METRICS = ("accuracy", "auc")
GUARDRAIL_METRICS = ("accuracy", "macro_f1", "log_loss", "auc")
# A regression target: the per-row error the primary test compares, its tests, and the
# guardrail names (mean squared / absolute error; tolerances in skill, see below)
REGRESSION_ERRORS = {"squared": "mse", "absolute": "mae"}  # the error -> its mean's name
REGRESSION_TESTS = ("ttest", "wilcoxon")
REGRESSION_GUARDRAILS = tuple(REGRESSION_ERRORS.values())
TARGET_POWER = 0.8
# The fewest rows of the kind a test needs. Accuracy: discordant rows (below 10 the exact
# test can barely reject and its bound says little). ROC AUC: rows of each class (DeLong's
# variance is liberal with few positives; with fewer than 2 it does not exist).
MIN_DISCORDANT_ROWS = 10
MIN_CLASS_ROWS = 10
# improvement_ci keys, in report order -> the metric compared
INTERVAL_METRICS = (
    ("accuracy", "accuracy"),
    ("macro_f1", "macro_f1"),
    ("log_loss", "log_loss"),
    ("roc_auc", "auc"),
)


@dataclass(frozen=True)
class GatePolicy:
    """When the challenger is deployed; fields are pipeline parameters."""

    alpha: float = 0.05  # if the challenger were no better, at most this share of runs deploy it
    primary_metrics: tuple[str, ...] = ("accuracy",)  # accuracy (McNemar) and/or auc (DeLong)
    margin: float = 0.0  # H0 per primary metric: the gain is at most this (0: no better)
    guardrails: tuple[tuple[str, float], ...] = ()  # metric:tolerance: non-inferior within it
    min_test_rows: int = 30  # below this many test rows the gate refuses to promote
    baseline: str = "majority"  # first run: the challenger must beat majority | logistic
    first_run_guard: str = "logistic"  # first run: and must not be shown much worse than this
    baseline_tolerance: float = 0.05  # ...by more than this (a useless model is): the guard
    accuracy_floor: float = 0.0  # first run: accuracy must be significantly above this (0 = off)
    mcnemar_method: str = "exact"  # exact | midp | chi2 | chi2-corrected (approximate)
    target_effect: float = 0.01  # the gain the power report is about (0.01 = 1 point)
    bootstrap_resamples: int = 10000  # bootstrap resamples for macro F1 / log loss bounds
    bootstrap_seed: int = 0  # seed of the bootstrap resampling
    alpha_accounting: str = DEFAULT_ACCOUNTING  # how alpha is spent over runs: per_champion
    # (the k-th try against one champion at alpha/(k(k+1)): a no-better model ever replaces
    # it with probability <= alpha) | stream (LORD++) | per_comparison (alpha every time)
    min_fresh_rows: int = 300  # decide on the test rows no earlier decision used, if this many
    regression_error: str = "squared"  # regression: the per-row error compared: squared
    # (MSE) | absolute (MAE); margin, target_effect, baseline_tolerance and guardrail
    # tolerances are then differences in skill: shares of the error of predicting the
    # training mean (for squared error, in R^2)
    regression_test: str = "ttest"  # regression: paired t-test on the per-row errors |
    # wilcoxon (signed-rank: is a typical row better; robust to a few huge errors)

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
            if m not in (*GUARDRAIL_METRICS, *REGRESSION_GUARDRAILS) or not 0 <= tol < 1:
                problems.append(
                    f"guardrail {m}:{tol}: metric must be one of {', '.join(GUARDRAIL_METRICS)} "
                    f"(regression: {', '.join(REGRESSION_GUARDRAILS)}) and tolerance in [0, 1)"
                )
        if self.regression_error not in REGRESSION_ERRORS:
            problems.append(
                f"regression_error={self.regression_error!r} must be one of "
                + ", ".join(REGRESSION_ERRORS)
            )
        if self.regression_test not in REGRESSION_TESTS:
            problems.append(
                f"regression_test={self.regression_test!r} must be one of "
                + ", ".join(REGRESSION_TESTS)
            )
        if self.margin < 0:
            problems.append(f"margin={self.margin} must be >= 0")
        elif self.margin >= 1:
            problems.append(f"margin={self.margin} must be < 1, e.g. 0.01")
        if self.min_test_rows < 1:
            problems.append(f"min_test_rows={self.min_test_rows} must be >= 1")
        if self.baseline not in BASELINES:
            problems.append(f"baseline={self.baseline!r} must be one of {', '.join(BASELINES)}")
        if self.first_run_guard not in (*BASELINES, "none"):
            problems.append(
                f"first_run_guard={self.first_run_guard!r} must be one of "
                + ", ".join((*BASELINES, "none"))
            )
        if not 0 <= self.baseline_tolerance < 1:
            problems.append(
                f"baseline_tolerance={self.baseline_tolerance} must be in [0, 1), e.g. 0.05"
            )
        if not 0 <= self.accuracy_floor < 1:
            problems.append(f"accuracy_floor={self.accuracy_floor} must be in [0, 1)")
        if not 0 < self.target_effect < 1:
            problems.append(f"target_effect={self.target_effect} must be in (0, 1), e.g. 0.01")
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

    def check_task(self, task: str, n_classes: int, label: str = "label") -> None:
        """What the label's task allows: classification takes accuracy / ROC AUC (which
        needs two classes) and their guardrails; a regression target is compared on
        per-row errors and takes the mse / mae guardrails, no accuracy floor."""
        if task != "regression":
            wrong = [m for m, _ in self.guardrails if m in REGRESSION_GUARDRAILS]
            if wrong:
                raise ConfigError(
                    f"gate policy: guardrail {wrong[0]} is for a regression target and "
                    f"'{label}' holds classes; use one of {', '.join(GUARDRAIL_METRICS)}"
                )
            self.check_classes(n_classes)
            return
        problems = []
        if "auc" in self.primary_metrics:
            problems.append("primary metric auc needs classes")
        wrong = [m for m, _ in self.guardrails if m not in REGRESSION_GUARDRAILS]
        if wrong:
            problems.append(f"guardrail {wrong[0]} needs classes (use mse or mae)")
        if self.accuracy_floor > 0:
            problems.append("accuracy_floor needs classes")
        if problems:
            raise ConfigError(
                f"gate policy: '{label}' is a regression target: {'; '.join(problems)}; a "
                "regressor is compared on its per-row errors (regression_error, "
                "regression_test)"
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
    # one-sided (1 - level) lower bound of the improvement from the test the rule applies:
    # of each primary metric, then of accuracy (whenever there are rows)
    lower_bounds: dict[str, float] = field(default_factory=dict)
    # a regression target (evaluation.regression_gate): both mean errors, the improvement in
    # the target's units and in skill; the accuracy fields are then NaN
    regression: dict[str, float] | None = None

    @property
    def accuracy_difference(self) -> float:
        return self.accuracy_challenger - self.accuracy_champion

    @property
    def accuracy_lower_bound(self) -> float | None:
        return self.lower_bounds.get("accuracy")

    def to_json(self) -> dict[str, float]:
        if self.regression is not None:
            bounds = {f"{m}_improvement_lower_bound": low for m, low in self.lower_bounds.items()}
            return dict(self.regression) | bounds
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
    """What the rule that decides could see, at a pre-declared effect (never the observed
    one); it explains, it never decides. Computed at the observed discordance (the share of
    rows where exactly one model is right), which describes the pair of models, not their
    difference."""

    rule: str  # the rule whose deploy probability this is, in words
    method: str  # how: exact (critical counts) | normal (DeLong) | simulated (whole rule)
    target_effect: float  # the pre-declared gain (pipeline parameter target_effect)
    power_at_target: float | None  # P(deploy) if the gain were target_effect; None: undefined
    minimum_detectable_effect: float | None  # smallest gain found with target_power
    rows_for_target: int | None  # test rows that reach target_power at target_effect
    target_power: float
    discordant_rate: float  # share of rows where exactly one model is right
    note: str = ""  # why a figure is missing, in words
    # simulated rules (several primary metrics, guardrails): Monte-Carlo s.e. of
    # power_at_target; None where it is exact (or DeLong's normal law)
    simulation_se: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Interval:
    """One-sided (1 - level) lower and upper bounds of one metric's improvement (together a
    two-sided 1 - 2 level interval; positive = challenger better; for log loss the champion's
    loss minus the challenger's). The lower end is the bound the rule compares with."""

    estimate: float
    low: float
    high: float
    method: str  # how: a key of stats.RESAMPLING_METHODS

    def to_json(self) -> dict[str, float | str]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """One condition of a deploy. Each kind of check fills only its own fields; the others
    stay None and are left out of its JSON."""

    name: str  # in words: "accuracy significantly better", "at least 30 test rows", ...
    passed: bool
    accuracy: float | None = None  # first-run floor: the challenger's accuracy
    p_value: float | None = None  # tests: the test's p-value
    p_adjusted: float | None = None  # primary metrics: Holm-adjusted over all of them
    estimate: float | None = None  # the observed improvement...
    lower_bound: float | None = None  # ...and its one-sided (1 - level) lower bound
    test_rows: int | None = None  # the size check
    untested: str | None = None  # why the metric was not tested: too few rows of a kind
    approximate: bool | None = None  # True where the test may exceed its level slightly
    # the p-value is the Berger-Boos floor (gamma): the evidence says "at most this"
    p_at_floor: bool = False

    def to_json(self) -> dict[str, Any]:
        skip = ("name", "passed", "p_at_floor")
        filled = {k: v for k, v in asdict(self).items() if k not in skip and v is not None}
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
    margin: float  # the margin tested (H0 per primary metric: gain <= margin)
    counts: Counts
    effect: Effect
    power: Power | None  # None when decide ran with explain=False
    checks: tuple[Check, ...] = ()
    champion: str = ""
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # one-sided (1 - level) bounds of each metric's improvement, keyed accuracy, macro_f1,
    # log_loss and (binary label) roc_auc; empty with explain=False or without rows
    improvement_ci: dict[str, Interval] = field(default_factory=dict)
    # how the level and the rows were chosen from the registry's ledger, and a deploy's
    # selection-adjusted gain; None for a decision made outside a registry
    accounting: Accounting | None = None
    # the posterior reading of the accuracy cells (evaluation/bayes.py); None: explain=False
    bayes: dict[str, Any] | None = None
    # p_value comes from a Berger-Boos p-value at its floor: it means "at most this"
    p_at_most: bool = False
    task: str = "classification"  # or regression (evaluation.regression_gate)

    @property
    def confidence(self) -> float:
        """The confidence of the one-sided bounds: 1 - the level tested at."""
        return 1 - self.level

    def to_json(self) -> dict[str, Any]:
        return {
            "deploy": self.deploy,
            "task": self.task,
            "p_value": self.p_value,
            "reason": self.reason,
            "test": self.test,
            "alpha": self.alpha,
            "alpha_means": alpha_meaning(self.alpha),
            "level": self.level,
            "accounting": self.accounting.to_json() if self.accounting else None,
            "margin": self.margin,
            "counts": self.counts.to_json(),
            "effect": self.effect.to_json(),
            "power": self.power.to_json() if self.power else {},
            "bayes": self.bayes or {},
            "checks": [c.to_json() for c in self.checks],
            "champion": self.champion,
            "metrics": {who: dict(values) for who, values in self.metrics.items()},
            "improvement_ci": {k: ci.to_json() for k, ci in self.improvement_ci.items()},
        }


def alpha_meaning(alpha: float) -> str:
    """What alpha promises, and what it does not, in words."""
    return (
        f"if the challenger were no better, this check would deploy it in at most "
        f"{confidence_text(alpha)} of runs; it is not the chance that a deployed model is no "
        "better (that depends on how often challengers are better)"
    )


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
    guard: tuple[str, np.ndarray] | None = None,
) -> Decision:
    """Compare two models' predictions on the same rows and decide whether to deploy.

    ``y`` holds class indices; the probability matrices share the same class order.
    ``explain=False`` skips what explains a decision without changing it (the power, the
    Bayesian reading, the improvement bounds and, with a margin, the accuracy bound), which
    the null simulation uses to run thousands of decisions quickly. ``level``: test at this
    level instead of the policy's alpha (what the account of alpha across runs allows this
    comparison, evaluation/alpha.py); every test, bound and power figure then uses it, and
    the decision keeps both. ``guard`` (first run): a second baseline's name and
    probabilities; the challenger must not be shown to be more than ``baseline_tolerance``
    worse than it.
    """
    nominal = policy.alpha
    if level is not None:
        policy = replace(policy, alpha=level)
    margin = policy.margin
    rows = _Rows.of(y, proba_challenger, proba_champion)
    counts = _count_cells(rows)
    tests = [_primary_test(policy, rows, counts, m, margin) for m in _primary_metrics(policy)]
    adjusted = _holm([t.p for t in tests])
    bounds = _lower_bounds(policy, counts, tests, margin, explain)
    primary = [
        _primary_check(policy, t, adj, margin, bounds.get(t.metric))
        for t, adj in zip(tests, adjusted, strict=True)
    ]
    conditions = [
        *_guardrail_checks(policy, rows, counts, explain),
        *_guard_checks(policy, rows, guard if first_run else None),
        *_floor_checks(policy, counts, first_run),
        _size_check(policy, counts),
    ]
    auc = next((t.auc for t in tests if t.auc is not None), None)
    effect = _effect(counts, auc, bounds)
    decision = Decision(
        deploy=any(c.passed for c in primary) and all(c.passed for c in conditions),
        p_value=min(adjusted),
        reason="",  # written below, from the decision itself
        test=_test_in_words(policy, margin),
        alpha=nominal,
        level=policy.alpha,
        margin=margin,
        counts=counts,
        effect=effect,
        power=_power(policy, counts, tests, margin, rows) if explain else None,
        checks=(*primary, *conditions),
        champion=champion_name,
        metrics=metrics or {},
        improvement_ci=(
            _improvement_intervals(policy, rows, counts, tests, bounds, margin)
            if explain and counts.test_rows
            else {}
        ),
        bayes=_bayes(counts, margin) if explain and counts.test_rows else None,
        p_at_most=any(t.at_floor and t.p == min(x.p for x in tests) for t in tests),
    )
    return replace(decision, reason=_reason(decision, policy, tests, first_run))


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


@dataclass(frozen=True)
class _Test:
    """One primary metric's test of H0: gain <= margin."""

    metric: str
    p: float  # 1 when untested
    estimate: float
    untested: str | None = None  # why it was not tested: too few rows of the kind it needs
    approximate: bool = False
    auc: tuple[float, float] | None = None  # (challenger, champion) ROC AUC
    se: float = 0.0  # AUC: standard error of the difference
    df: int = 0  # AUC: Student t degrees of freedom
    at_floor: bool = False  # accuracy with a margin: the Berger-Boos p-value at its floor


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


def _test_in_words(policy: GatePolicy, margin: float) -> str:
    if margin == 0:
        names = {
            "accuracy": f"one-sided {policy.mcnemar_method} McNemar test on accuracy"
            + _approximate_words(policy),
            "auc": "one-sided DeLong test on ROC AUC",
        }
    else:
        h0 = f"H0: gain <= {margin:g}"
        names = {
            "accuracy": f"one-sided exact unconditional score test on accuracy ({h0})",
            "auc": f"one-sided DeLong test on ROC AUC ({h0})",
        }
    tests = [names[m] for m in _primary_metrics(policy)]
    return " + ".join(tests) + (" (Holm-adjusted)" if len(tests) > 1 else "")


def _approximate_words(policy: GatePolicy) -> str:
    """For mid-p and chi-square: approximate, with the largest exact false-deploy rate over
    10-2,000 discordant rows at this level (paired.conditional_size)."""
    from components.core.evaluation import paired

    if policy.mcnemar_method == "exact":
        return ""
    d = np.arange(MIN_DISCORDANT_ROWS, 2001)
    size = float(paired.conditional_size(d, policy.alpha, policy.mcnemar_method).max())
    if size <= policy.alpha:
        return (
            f" (its exact false-deploy rate stays at most {size:.4f} over 10-2,000 discordant rows)"
        )
    return (
        f" (approximate: a no-better challenger is deployed up to {size:.4f} of the time at "
        f"some discordant counts, level {policy.alpha:.3g})"
    )


def accuracy_p(policy: GatePolicy, counts: Counts, delta: float, method: str) -> float:
    """One-sided p-value of H0: accuracy gain <= ``delta``: McNemar's test (``method``) at
    delta 0, else Tango's score test with Berger & Boos's exact unconditional p-value."""
    from components.core.evaluation import paired

    b, c, n = counts.only_champion_right, counts.only_challenger_right, counts.test_rows
    if n == 0:
        return 1.0
    if delta == 0:
        return float(paired.conditional_pvalue(c, b + c, 0.5, method))
    return float(paired.margin_test(b, c, n, delta, policy.alpha).pvalue)


def _auc_test(rows: _Rows, metric: str, delta: float) -> _Test:
    """DeLong's variance, Student t with min(positives, negatives) - 1 degrees of freedom."""
    from scipy import stats as sps

    from components.core.evaluation import stats

    if rows.n_classes != 2:
        raise ConfigError(
            f"ROC AUC needs a binary label; use accuracy for {rows.n_classes} classes"
        )
    pos = int(np.count_nonzero(rows.y == 1))
    neg = int(rows.y.shape[0]) - pos
    if min(pos, neg) < MIN_CLASS_ROWS:
        why = (
            f"too few rows of each class to test ROC AUC: {pos} positive and {neg} negative; "
            f"it needs at least {MIN_CLASS_ROWS} of each"
        )
        return _Test(metric, 1.0, float("nan"), untested=why, approximate=True)
    dl = stats.delong(rows.y, *rows.compared("auc"), alternative="two-sided")
    diff = float(dl.auc_challenger - dl.auc_champion)
    se, df = float(np.sqrt(dl.variance)), min(pos, neg) - 1
    if se > 0:
        p = float(sps.t.sf((diff - delta) / se, df))
    else:  # no variance: identical or equally perfect scores
        p = 0.0 if diff > delta else 1.0
    auc = (float(dl.auc_challenger), float(dl.auc_champion))
    return _Test(metric, p, diff, approximate=True, auc=auc, se=se, df=df)


def _primary_test(
    policy: GatePolicy, rows: _Rows, counts: Counts, metric: str, margin: float
) -> _Test:
    if metric == "auc":
        return _auc_test(rows, metric, margin)
    gain = (counts.only_challenger_right - counts.only_champion_right) / max(counts.test_rows, 1)
    if margin >= 0 and counts.discordant < MIN_DISCORDANT_ROWS:
        why = (
            f"too few discordant rows to test accuracy: {counts.discordant} rows where exactly "
            f"one model is right; the test needs at least {MIN_DISCORDANT_ROWS}"
        )
        return _Test(metric, 1.0, gain, untested=why)
    p = accuracy_p(policy, counts, margin, policy.mcnemar_method)
    approximate = margin == 0 and policy.mcnemar_method != "exact"
    return _Test(metric, p, gain, approximate=approximate, at_floor=_at_floor(policy, p, margin))


def _at_floor(policy: GatePolicy, p: float, delta: float) -> bool:
    """Whether an accuracy p-value with a margin is Berger-Boos's floor gamma (the exact
    tail beneath it is smaller still: the p-value means "at most this")."""
    from components.core.evaluation import paired

    return delta != 0 and p <= paired.GAMMA_SHARE * policy.alpha * (1 + 1e-9)


def _guard_checks(
    policy: GatePolicy, rows: _Rows, guard: tuple[str, np.ndarray] | None
) -> list[Check]:
    """First run: the challenger must not be shown to be more than ``baseline_tolerance``
    worse in accuracy than the guard baseline (``first_run_guard``, logistic regression by
    default, fitted on the same train rows): H0 "the guard is ahead by at most the
    tolerance", rejected (the check fails) at the level by the exact unconditional score
    test. A useless model is shown worse at any usable test size; a filter, not a proof of
    non-inferiority (a few dozen rows cannot show that)."""
    from components.core.evaluation import paired

    if guard is None:
        return []
    name, proba = guard
    counts = _count_cells(_Rows.of(rows.y, rows.proba_new, proba))
    b, c, n = counts.only_champion_right, counts.only_challenger_right, counts.test_rows
    tol = policy.baseline_tolerance
    p_worse = float(paired.margin_test(c, b, n, tol, policy.alpha).pvalue) if n else 1.0
    return [
        Check(
            f"within {tol:g} of the {name} (not shown worse by more)",
            passed=p_worse >= policy.alpha,
            p_value=p_worse,
            estimate=(c - b) / n if n else 0.0,
        )
    ]


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


def _primary_name(metric: str, margin: float) -> str:
    if margin == 0:
        return f"{metric} significantly better"
    if margin > 0:
        return f"{metric} better by more than the margin {margin:g}"
    return f"{metric} non-inferior to the baseline within {-margin:g}"


def _primary_check(
    policy: GatePolicy, t: _Test, p_adjusted: float, margin: float, bound: float | None
) -> Check:
    tested = t.untested is None
    return Check(
        _primary_name(t.metric, margin),
        passed=tested and p_adjusted < policy.alpha,
        p_value=t.p if tested else None,
        p_adjusted=p_adjusted if tested else None,
        estimate=t.estimate if np.isfinite(t.estimate) else None,
        lower_bound=bound,
        untested=t.untested,
        approximate=True if t.approximate else None,
        p_at_floor=tested and t.at_floor,
    )


def _accuracy_bound(
    policy: GatePolicy, counts: Counts, delta: float, method: str, upper: bool = False
) -> float:
    """The one-sided (1 - level) bound of the accuracy gain from the test that decides:
    McNemar's inverted at the observed discordance (delta 0), else the exact unconditional
    score test inverted. ``upper``: the upper bound instead (the roles swapped)."""
    from components.core.evaluation import paired

    b, c, n = counts.only_champion_right, counts.only_challenger_right, counts.test_rows
    if upper:
        b, c = c, b
    if delta == 0:
        low = paired.conditional_bound(b, c, n, policy.alpha, method)
    else:
        low = paired.margin_bound(b, c, n, policy.alpha)
    return -low if upper else low


def _auc_bound(policy: GatePolicy, t: _Test, upper: bool = False) -> float | None:
    from scipy import stats as sps

    if t.untested is not None:
        return None
    half = float(sps.t.isf(policy.alpha, t.df)) * t.se
    return t.estimate + half if upper else t.estimate - half


def _lower_bounds(
    policy: GatePolicy, counts: Counts, tests: list[_Test], margin: float, explain: bool
) -> dict[str, float]:
    """The lower bound of each primary metric's gain from its test, then of accuracy's
    (McNemar's at the observed discordance where accuracy is not primary). With a margin the
    accuracy bound costs a search and is left out when not explaining."""
    out: dict[str, float] = {}
    for t in tests:
        if t.metric == "auc":
            low = _auc_bound(policy, t)
            if low is not None:
                out["auc"] = low
        elif counts.test_rows and (margin == 0 or explain):
            out["accuracy"] = _accuracy_bound(policy, counts, margin, policy.mcnemar_method)
    if (
        "accuracy" not in out
        and counts.test_rows
        and not any(t.metric == "accuracy" for t in tests)
    ):
        out["accuracy"] = _accuracy_bound(policy, counts, 0.0, "exact")
    return out


def _effect(counts: Counts, auc: tuple[float, float] | None, bounds: dict[str, float]) -> Effect:
    n = counts.test_rows
    return Effect(
        accuracy_challenger=(counts.both_right + counts.only_challenger_right) / n if n else 0.0,
        accuracy_champion=(counts.both_right + counts.only_champion_right) / n if n else 0.0,
        auc_challenger=auc[0] if auc else None,
        auc_champion=auc[1] if auc else None,
        lower_bounds=bounds,
    )


def _bootstrap_bounds(
    policy: GatePolicy, rows: _Rows, metric: str, sided: str
) -> tuple[float, float, float, str]:
    """(estimate, lower, upper, method) of the paired BCa bootstrap (macro F1, log loss:
    the percentile bound is liberal at few rows): one-sided (1 - level) bounds (sided
    "two-sided": both, at confidence 1 - 2 level; "lower": the lower one)."""
    from components.core.evaluation import stats

    confidence = 1 - 2 * policy.alpha if sided == "two-sided" else 1 - policy.alpha
    res = stats.bootstrap_difference(
        metric,
        rows.y,
        *rows.compared(metric),
        confidence=max(confidence, 0.01),
        n_resamples=policy.bootstrap_resamples,
        seed=policy.bootstrap_seed,
        sided=sided,
        interval="bca",
    )
    return float(res.estimate), float(res.low), float(res.high), res.method


def _guardrail_checks(
    policy: GatePolicy, rows: _Rows, counts: Counts, explain: bool
) -> list[Check]:
    """Each guardrail metric may be worse by at most its tolerance: a non-inferiority test of
    H0 gain <= -tolerance at the full level (intersection-union: each must pass). Accuracy:
    the exact unconditional score test; ROC AUC: DeLong (t); macro F1 and log loss: the
    paired BCa bootstrap's lower bound (approximate: its false-pass rate at the tolerance is
    measured in benchmarks/gate_null.py)."""
    checks = []
    for metric, tol in policy.guardrails:
        name = f"{metric} non-inferior within {tol}"
        if metric == "accuracy":
            p = accuracy_p(policy, counts, -tol, "exact")
            gain = counts.only_challenger_right - counts.only_champion_right
            low = (
                _accuracy_bound(policy, counts, -tol, "exact")
                if explain and counts.test_rows
                else None
            )
            checks.append(
                Check(
                    name,
                    passed=p < policy.alpha,
                    p_value=p,
                    estimate=gain / max(counts.test_rows, 1),
                    lower_bound=low,
                    p_at_floor=_at_floor(policy, p, -tol),
                )
            )
        elif metric == "auc":
            t = _auc_test(rows, metric, -tol)
            checks.append(
                Check(
                    name,
                    passed=t.untested is None and t.p < policy.alpha,
                    p_value=t.p if t.untested is None else None,
                    estimate=t.estimate if t.untested is None else None,
                    lower_bound=_auc_bound(policy, t),
                    untested=t.untested,
                    approximate=True,
                )
            )
        else:
            estimate, low, _, _ = _bootstrap_bounds(policy, rows, metric, "lower")
            checks.append(
                Check(name, passed=low > -tol, estimate=estimate, lower_bound=low, approximate=True)
            )
    return checks


# The bootstrap guardrails' false-pass rate at their tolerance, measured by
# benchmarks/gate_null.py (bootstrap_guardrails, 4,000 comparisons, alpha 0.05; s.e. about
# 0.004): BCa still exceeds alpha for log loss at few rows, so those checks stay approximate.
MEASURED_BOOTSTRAP_RATES = {
    "log_loss": "BCa bound; measured false-pass rate at the tolerance 0.085 at 30 rows, "
    "0.071 at 60, 0.059 at 200 for alpha 0.05 (percentile: 0.122, 0.105, 0.071)",
    "macro_f1": "BCa bound; measured false-pass rate at the tolerance 0.055 at 30 rows, "
    "0.050 at 60, 0.054 at 200 for alpha 0.05",
}


def approximate_words(check_name: str) -> str:
    """Why a check is approximate, with the measured rate where there is one."""
    metric = check_name.split(" ", 1)[0]
    measured = MEASURED_BOOTSTRAP_RATES.get(metric)
    if measured and "non-inferior" in check_name:
        return f"approximate: {measured}"
    return "approximate: may exceed its level slightly at small samples"


def _floor_checks(policy: GatePolicy, counts: Counts, first_run: bool) -> list[Check]:
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
            accuracy=correct / counts.test_rows if counts.test_rows else 0.0,
            p_value=p,
        )
    ]


def _size_check(policy: GatePolicy, counts: Counts) -> Check:
    return Check(
        f"at least {policy.min_test_rows} test rows",
        passed=counts.test_rows >= policy.min_test_rows,
        test_rows=counts.test_rows,
    )


def _power(
    policy: GatePolicy,
    counts: Counts,
    tests: list[_Test],
    margin: float,
    rows: _Rows | None = None,
) -> Power:
    """The deploy probability of the whole rule that decides at ``target_effect``, the
    smallest gain it finds with TARGET_POWER, and the rows it would need for the target.
    Accuracy alone: exact (binomial sums over the critical counts); ROC AUC alone: DeLong's
    normal law at the observed variance. Several primary metrics (Holm) or guardrails:
    simulated from a parametric model of all the statistics (power.RuleModel: exact
    multinomial accuracy cells, normal law of the other metrics, correlated as the observed
    rows' influence values are), each primary metric gaining target_effect and each
    guardrail-only metric unchanged. First-run checks (baseline, guard, floor) are not
    included: power is about a champion's successor."""
    from components.core.evaluation import power as pw

    n, target = counts.test_rows, policy.target_effect
    psi = counts.discordant / n if n else 0.0
    m = len(tests)
    if (m > 1 or policy.guardrails) and rows is not None and n:
        return _simulated_power(policy, counts, tests, margin, rows)
    level = policy.alpha / m
    holm = f" at the Holm level alpha / {m} (at least this)" if m > 1 else ""
    first = tests[0]
    if first.metric == "auc" and m == 1:
        if first.untested is not None:
            return Power(
                "DeLong", "normal", target, None, None, None, TARGET_POWER, psi, note=first.untested
            )
        auc_rule = pw.AucRule(level, margin, first.se, first.df, n)
        note = "" if first.se > 0 else "the two models' scores do not differ: no variance"
        return Power(
            f"one-sided DeLong test on ROC AUC (H0: gain <= {margin:g})",
            "normal law at the observed DeLong variance",
            target,
            auc_rule.power(target),
            auc_rule.mde(TARGET_POWER),
            auc_rule.rows_needed(target, TARGET_POWER),
            TARGET_POWER,
            psi,
            note=note,
        )
    method = policy.mcnemar_method if margin == 0 else "exact"
    rule_words = _test_in_words(replace(policy, primary_metrics=("accuracy",)), margin) + holm
    if n == 0 or psi == 0:
        note = (
            f"the two models gave the same answer on all {n} test rows: they are identical on "
            "this data, and no test size tells identical predictions apart"
        )
        return Power(rule_words, "exact", target, None, None, None, TARGET_POWER, psi, note=note)
    rule = pw.AccuracyRule(level, margin, method, MIN_DISCORDANT_ROWS)
    at_target = pw.accuracy_power(rule, n, psi, target)
    mde = pw.accuracy_mde(rule, n, psi, TARGET_POWER)
    needed = pw.accuracy_rows_needed(rule, psi, target, TARGET_POWER)
    note = ""
    if at_target is None:
        note = (
            f"a gain of {_pts(target)} needs at least {target:.1%} of rows where exactly one "
            f"model is right; here {psi:.2%} are"
        )
    elif needed is None:
        note = f"a gain of {_pts(target)} is not above the margin {margin:g}"
    return Power(
        rule_words,
        pw.method_words(n, psi),
        target,
        at_target,
        mde,
        needed,
        TARGET_POWER,
        psi,
        note=note,
    )


def _simulated_power(
    policy: GatePolicy, counts: Counts, tests: list[_Test], margin: float, rows: _Rows
) -> Power:
    """The power of a rule with several parts, simulated (power.RuleModel)."""
    from components.core.evaluation import power as pw

    n, target = counts.test_rows, policy.target_effect
    psi = counts.discordant / n
    model = rule_model(policy, counts, tests, margin, rows)
    metrics = model.metrics
    guard_words = ", ".join(f"{g} within {tol:g}" for g, tol in policy.guardrails)
    rule_words = _test_in_words(policy, margin) + (
        f"; guardrails (all must pass): {guard_words}" if guard_words else ""
    )
    simulated = [x for x in metrics if x != "accuracy"]
    how = (
        f"simulated ({pw.SIM_DRAWS:,} draws): "
        + ("accuracy cells exact (multinomial, the tests' exact critical counts); " if
           "accuracy" in metrics else "")
        + (f"{', '.join(simulated)} from their normal law at the observed standard errors, "
           "correlated as the rows' influence values are; " if simulated else "")
        + "each primary metric gaining target_effect, guardrail-only metrics unchanged"
    )  # fmt: skip
    got = model.power(target)
    mde = model.mde(TARGET_POWER)
    note = ""
    blocked = [p.metric for p in model.parts if p.untested and not p.primary]
    if "accuracy" in metrics and counts.discordant == 0:
        note = (
            f"the two models gave the same answer on all {n} test rows: they are identical on "
            "this data, and no test size tells identical predictions apart"
        )
    elif got is None:
        note = (
            f"a gain of {_pts(target)} needs at least {target:.1%} of rows where exactly one "
            f"model is right; here {psi:.2%} are"
        )
    elif blocked or all(p.untested for p in model.parts if p.primary):
        note = "ROC AUC cannot be tested on these rows (too few of each class), so " + (
            "its guardrail blocks every deploy" if blocked else "no primary test can pass"
        )
    elif mde is None and policy.guardrails:
        note = (
            f"with unchanged guardrail metrics the guardrails pass less than "
            f"{TARGET_POWER:.0%} of the time at this size, whatever the primary gain"
        )
    return Power(
        rule_words,
        how,
        target,
        got[0] if got else None,
        mde,
        model.rows_needed(target, TARGET_POWER) if target > margin else None,
        TARGET_POWER,
        psi,
        note=note,
        simulation_se=got[1] if got else None,
    )


def rule_model(
    policy: GatePolicy, counts: Counts, tests: list[_Test], margin: float, rows: _Rows
) -> Any:
    """The parametric model of every statistic the rule reads (a power.RuleModel)."""
    from components.core.evaluation import power as pw

    n, m = counts.test_rows, len(tests)
    psi = counts.discordant / n if n else 0.0
    pos = int(np.count_nonzero(rows.y == 1)) if rows.n_classes == 2 else 0
    few = min(pos, n - pos) < MIN_CLASS_ROWS
    method = policy.mcnemar_method if margin == 0 else "exact"
    parts = [
        pw.Part(
            t.metric,
            True,
            margin,
            policy.alpha / m,
            method=method,
            df=t.df,
            untested=t.metric == "auc" and t.untested is not None,
        )
        for t in tests
    ]
    parts += [
        pw.Part(
            metric,
            False,
            -tol,
            policy.alpha,
            df=max(min(pos, n - pos) - 1, 1),
            untested=metric == "auc" and few,
        )
        for metric, tol in policy.guardrails
    ]
    used = list(dict.fromkeys(p.metric for p in parts))
    metrics = tuple(sorted(used, key=lambda x: x != "accuracy"))
    corr, se = pw.correlation(metrics, rows.y, rows.proba_new, rows.proba_old)
    auc_test = next((t for t in tests if t.metric == "auc" and t.untested is None), None)
    if auc_test is not None:
        se["auc"] = auc_test.se  # DeLong's, on every row
    return pw.RuleModel(n, psi, tuple(parts), metrics, se, corr, MIN_DISCORDANT_ROWS)


def _improvement_intervals(
    policy: GatePolicy,
    rows: _Rows,
    counts: Counts,
    tests: list[_Test],
    bounds: dict[str, float],
    margin: float,
) -> dict[str, Interval]:
    """One-sided (1 - level) lower and upper bounds of each metric's improvement, for the
    report: accuracy's from the test that decides, ROC AUC's from DeLong (binary label, enough
    rows of each class), macro F1's and log loss's from the paired bootstrap."""
    out = {}
    primary_accuracy = any(t.metric == "accuracy" for t in tests)
    for key, metric in INTERVAL_METRICS:
        if metric == "accuracy":
            delta = margin if primary_accuracy else 0.0
            method = policy.mcnemar_method if primary_accuracy and delta == 0 else "exact"
            known = bounds.get("accuracy")
            low = _accuracy_bound(policy, counts, delta, method) if known is None else known
            high = _accuracy_bound(policy, counts, delta, method, upper=True)
            gain = counts.only_challenger_right - counts.only_champion_right
            how = "mcnemar inversion" if delta == 0 else "score inversion"
            out[key] = Interval(gain / counts.test_rows, low, high, how)
        elif metric == "auc":
            if rows.n_classes != 2:
                continue
            t = next((t for t in tests if t.metric == "auc"), None) or _auc_test(rows, "auc", 0)
            auc_low, auc_high = _auc_bound(policy, t), _auc_bound(policy, t, upper=True)
            if auc_low is None or auc_high is None:
                continue
            out[key] = Interval(t.estimate, auc_low, auc_high, "delong t")
        else:
            estimate, low, high, how = _bootstrap_bounds(policy, rows, metric, "two-sided")
            out[key] = Interval(estimate, low, high, how)
    return out


def _bayes(counts: Counts, margin: float) -> dict[str, Any]:
    from components.core.evaluation import bayes

    return bayes.posterior(
        counts.only_champion_right, counts.only_challenger_right, counts.test_rows, margin
    )


# --------------------------------------------------------------------------------------
# The reason in words
# --------------------------------------------------------------------------------------


def _pts(x: float) -> str:
    """An accuracy difference in percentage points, signed."""
    return f"{x * 100:+.1f} points"


# Below this a p-value is printed as a bound: doubles lose their digits near 1e-308, and
# a test that underflows to 0 has not shown p = 0.
P_FLOOR = 1e-300


def format_p(p: float) -> str:
    """A p-value for people: three digits, scientific below 1e-4, 1 for p ~ 1, and
    "< 1e-300" for what is smaller (never 0)."""
    if p < P_FLOOR:
        return "< 1e-300"
    return "1" if p >= 0.9995 else (f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}")


def p_text(p: float, at_most: bool = False) -> str:
    """ "p = 0.0012", "p < 1e-300" where it underflowed, and "p <= 5.0e-05" where ``at_most``
    (a Berger-Boos p-value at its floor gamma: the evidence is at least that strong)."""
    shown = format_p(p)
    if shown.startswith("<"):
        return f"p {shown}"
    return f"p <= {shown}" if at_most else f"p = {shown}"


def _reason(d: Decision, policy: GatePolicy, tests: list[_Test], first_run: bool) -> str:
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
    primary = [c for c in d.checks[: len(tests)]]
    passed = [t.metric for t, c in zip(tests, primary, strict=True) if c.passed]
    if d.deploy:
        return _why_deployed(d, policy, passed, against, observed)
    if counts.test_rows < policy.min_test_rows:
        return (
            f"Not deployed: only {counts.test_rows} test rows, fewer than the "
            f"{policy.min_test_rows} the gate needs to judge; add data so the test split grows."
        )
    if counts.discordant == 0 and [t.metric for t in tests] == ["accuracy"] and d.margin >= 0:
        return (
            f"Not deployed: the challenger and {against} gave the same answer on all "
            f"{counts.test_rows} test rows, so there is no evidence that the challenger is "
            "better (p = 1)."
        )
    untested = [t.untested for t in tests if t.untested]
    if len(untested) == len(tests):
        return f"Not deployed: {'; '.join(untested)}. {observed}."  # type: ignore[arg-type]
    if passed:
        failed = "; ".join(
            c.name + (f" ({c.untested})" if c.untested else "")
            for c in d.checks[len(tests) :]
            if not c.passed
        )
        shown = p_text(d.p_value, d.p_at_most)
        return (
            f"Not deployed: the challenger passed the primary test ({shown}) "
            f"but failed: {failed}. {observed}."
        )
    what, shown = _claim(d.margin), p_text(d.p_value, d.p_at_most)
    return (
        f"Not deployed: not shown to be {what} ({shown}, {_threshold(d)}); "
        f"{_why_not_shown(d, tests)}. {observed}."
    )


def _claim(margin: float) -> str:
    if margin == 0:
        return "significantly better"
    if margin > 0:
        return f"better by more than the margin {margin:g}"
    return f"within {-margin:g} of the baseline"


def _threshold(d: Decision) -> str:
    """What p was compared with: "alpha 0.05", or "level 0.025" where alpha is spent over
    runs (the reason's accounting sentence says why)."""
    return f"alpha {d.alpha}" if d.level == d.alpha else f"level {level_text(d.level)}"


def confidence_text(confidence: float) -> str:
    """A confidence as a percentage: 95%, 97.5%, 99.17%."""
    return f"{confidence * 100:.4g}%"


def _why_deployed(
    d: Decision, policy: GatePolicy, passed: list[str], against: str, observed: str
) -> str:
    primary = _primary_metrics(policy)
    low = d.effect.accuracy_lower_bound
    bound = ""
    if low is not None and "accuracy" in passed:
        bound = f", {confidence_text(d.confidence)} lower bound {_pts(low)}"
    on = ""
    if primary != ["accuracy"]:  # say which metric carried the decision
        names = {"accuracy": "accuracy", "auc": "ROC AUC"}
        on = " on " + " and ".join(names[m] for m in passed)
    auc = ""
    if "auc" in passed and d.effect.auc_challenger is not None:
        auc = f"; ROC AUC {d.effect.auc_challenger:.3f} vs {d.effect.auc_champion:.3f}"
    holm = " (Holm-adjusted)" if len(primary) > 1 else ""
    if d.margin == 0:
        verdict = f"the challenger is significantly better than {against}{on}"
    elif d.margin > 0:
        verdict = f"the challenger is better than {against} by more than {d.margin:g}{on}"
    else:
        verdict = (
            f"the challenger is at most {-d.margin * 100:.1f} points worse than {against}, or "
            f"better (non-inferiority on a first run){on}"
        )
    p = p_text(d.p_value, d.p_at_most)
    return f"Deployed: {verdict}. {observed}{bound}{auc}; {p} < {_threshold(d)}{holm}."


def _why_not_shown(d: Decision, tests: list[_Test]) -> str:
    """No observed power: what the rule could find, at the pre-declared target effect."""
    auc = [t.metric for t in tests] == ["auc"]
    diff = tests[0].estimate if auc else d.effect.accuracy_difference
    margin_words = " over the margin" if d.margin else ""
    if not diff > d.margin:
        head = "the challenger is no better" if not diff > 0 else "its gain is within the margin"
    else:
        head = f"the observed gain{margin_words} may be chance"
    pw = d.power
    if pw is None:
        return head
    if pw.power_at_target is None or pw.note:
        return f"{head}; {pw.note}" if pw.note else head
    target = f"{pw.target_effect:+.3f} in ROC AUC" if auc else _pts(pw.target_effect)
    where = "at this size" if auc else "at this size and discordance"
    text = f"{head}; {where} the rule finds a gain of {target} {pw.power_at_target:.0%} of the time"
    if pw.rows_for_target is not None:
        at = "at this class balance" if auc else "at the observed discordance"
        text += (
            f"; to detect {target} with {pw.target_power:.0%} power {at} you need about "
            f"{_about(pw.rows_for_target)} test rows"
        )
    return text


def _about(rows: int) -> str:
    """A row count to two significant digits: 4,700."""
    if rows < 100:
        return f"{rows:,}"
    digits = len(str(rows)) - 2
    return f"{round(rows, -digits):,}"


__all__ = [
    "Check",
    "Counts",
    "Decision",
    "Effect",
    "GatePolicy",
    "Interval",
    "Power",
    "accuracy_p",
    "alpha_meaning",
    "confidence_text",
    "decide",
    "format_p",
    "p_text",
]
