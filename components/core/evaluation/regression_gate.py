"""The deploy gate for a regression target: the challenger's per-row errors against the
champion's on the same test rows (statistics in ``evaluation.regression``).

Row i's improvement is ``d_i = error(champion_i) - error(challenger_i)`` (squared error by
default, ``regression_error=absolute`` for absolute error); positive = challenger closer to
the truth. One primary null, "the mean improvement is at most the margin", tested one-sided
at the level by the paired t-test (``regression_test=ttest``, scipy's ``ttest_rel``) or the
Wilcoxon signed-rank test; each guardrail (``mse:TOL``, ``mae:TOL``) is a non-inferiority
test at the full level (intersection-union, as for classification); on the first run the
challenger must beat ``baseline`` (``majority`` reads as the training mean, ``logistic`` as
least squares on the same features) and must not be shown to be more than
``baseline_tolerance`` worse than ``first_run_guard`` (least squares by default).

Units. The margin, ``target_effect``, ``baseline_tolerance`` and guardrail tolerances are
differences in skill, 1 - mean error / the error of predicting the training mean, i.e.
shares of that error (the training target's variance for squared error, so skill is R^2 and
a margin of 0.01 is an R^2 gain of 0.01; its mean absolute deviation for absolute error).
They come from the challenger's training rows, never from the test rows. Power is the
paired t-test's at ``target_effect`` (never at the observed gain), by the normal
approximation at the observed spread of the per-row improvements.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats as sps

from components.core.evaluation import regression as reg
from components.core.evaluation.gate import (
    REGRESSION_ERRORS,
    TARGET_POWER,
    Check,
    Counts,
    Decision,
    Effect,
    Interval,
    Power,
    confidence_text,
    p_text,
)

if TYPE_CHECKING:
    from components.core.evaluation.gate import GatePolicy

__all__ = ["ERROR_KEYS", "baseline_name", "decide_regression", "skill_unit"]

# per-row error -> the metric key it is reported under
ERROR_KEYS = REGRESSION_ERRORS
GUARDRAIL_ERRORS = {key: error for error, key in ERROR_KEYS.items()}
UNIT_WORDS = {
    "squared": "of the target's variance",
    "absolute": "of the target's mean absolute deviation",
}
TEST_WORDS = {"ttest": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}


def baseline_name(name: str) -> str:
    """The regression baseline a classification baseline name stands for."""
    return {"majority": "mean", "logistic": "linear"}.get(name, name)


def skill_unit(error: str, target: dict[str, float]) -> float:
    """The error of predicting the training mean: the unit of margins and effects."""
    if error == "squared":
        return float(target["scale"]) ** 2
    return float(target.get("mad") or target["scale"] * math.sqrt(2 / math.pi))


def _error_mean(y: np.ndarray, pred: np.ndarray, error: str) -> float:
    e = np.asarray(pred, np.float64) - y
    return float(np.mean(e**2 if error == "squared" else np.abs(e))) if len(y) else math.nan


def _lower_bound(d: np.ndarray, sd: float, level: float) -> float | None:
    """The one-sided (1 - level) t lower bound of mean(d) (the t-test's own bound); ``sd``:
    the spread of d."""
    if len(d) < 2:
        return None
    return float(np.mean(d) - sps.t.isf(level, len(d) - 1) * sd / math.sqrt(len(d)))


def decide_regression(
    policy: GatePolicy,
    y: np.ndarray,
    pred_challenger: np.ndarray,
    pred_champion: np.ndarray,
    *,
    target: dict[str, float],
    champion_name: str,
    first_run: bool,
    metrics: dict[str, dict[str, float]] | None = None,
    explain: bool = True,
    level: float | None = None,
    guard: tuple[str, np.ndarray] | None = None,
) -> Decision:
    """Compare two regressors' predictions on the same rows and decide whether to deploy.

    ``target``: the challenger's training target (mean, scale, mad: ``Bundle.target``),
    which sets the unit of the policy's margins and effects. ``level``, ``guard`` and
    ``explain`` as in ``gate.decide``."""
    alpha = level if level is not None else policy.alpha
    error, method = policy.regression_error, policy.regression_test
    y = np.asarray(y, np.float64)
    n = len(y)
    unit = skill_unit(error, target)
    d = reg.paired_improvement(y, pred_challenger, pred_champion, error)
    margin = policy.margin * unit
    test = reg.paired_test(d, method, margin, error)
    key = ERROR_KEYS[error]
    sd = float(np.std(d, ddof=1)) if n > 1 else 0.0  # the spread the bound and power use
    low = _lower_bound(d, sd, alpha) if method == "ttest" else None
    name = (
        f"{key} significantly lower"
        if policy.margin == 0
        else f"{key} lower by more than a skill gain of {policy.margin:g}"
    )
    primary = Check(
        name,
        passed=test.deploy(alpha),
        p_value=test.p_value,
        estimate=test.mean_improvement / unit if n else None,
        lower_bound=None if low is None else low / unit,
    )
    conditions = [
        *_guardrails(policy, y, pred_challenger, pred_champion, target, alpha),
        *_first_run_guard(policy, y, pred_challenger, guard if first_run else None, unit, alpha),
        Check(
            f"at least {policy.min_test_rows} test rows",
            passed=n >= policy.min_test_rows,
            test_rows=n,
        ),
    ]
    mean_new = _error_mean(y, pred_challenger, error)
    mean_old = _error_mean(y, pred_champion, error)
    effect = Effect(
        accuracy_challenger=math.nan,
        accuracy_champion=math.nan,
        lower_bounds={} if low is None else {key: low},
        regression={
            f"{key}_challenger": mean_new,
            f"{key}_champion": mean_old,
            "improvement": test.mean_improvement,
            "improvement_skill": test.mean_improvement / unit if n else math.nan,
            "skill_unit": unit,
        },
    )
    decision = Decision(
        deploy=primary.passed and all(c.passed for c in conditions),
        p_value=test.p_value,
        reason="",
        test=f"{TEST_WORDS[method]} on per-row {error} errors (one-sided)",
        alpha=policy.alpha,
        level=alpha,
        margin=policy.margin,
        counts=Counts(n, 0, 0, 0, 0),
        effect=effect,
        power=_power(policy, n, sd, unit, alpha) if explain else None,
        checks=(primary, *conditions),
        champion=champion_name,
        metrics=metrics or {},
        improvement_ci=_intervals(policy, y, pred_challenger, pred_champion, alpha)
        if explain and n
        else {},
        task="regression",
    )
    return replace(decision, reason=_reason(decision, policy, first_run, mean_new, mean_old))


def _guardrails(
    policy: GatePolicy,
    y: np.ndarray,
    new: np.ndarray,
    old: np.ndarray,
    target: dict[str, float],
    alpha: float,
) -> list[Check]:
    """``mse:TOL`` / ``mae:TOL``: that mean error may be worse by at most TOL in skill,
    a one-sided non-inferiority test (H0: worse by TOL or more) at the full level."""
    checks = []
    for metric, tol in policy.guardrails:
        error = GUARDRAIL_ERRORS[metric]
        unit = skill_unit(error, target)
        d = reg.paired_improvement(y, new, old, error)
        r = reg.paired_test(d, policy.regression_test, -tol * unit, error)
        checks.append(
            Check(
                f"{metric} non-inferior within {tol}",
                passed=r.deploy(alpha),
                p_value=r.p_value,
                estimate=r.mean_improvement / unit if len(d) else None,
            )
        )
    return checks


def _first_run_guard(
    policy: GatePolicy,
    y: np.ndarray,
    new: np.ndarray,
    guard: tuple[str, np.ndarray] | None,
    unit: float,
    alpha: float,
) -> list[Check]:
    """First run: the challenger must not be shown to be more than ``baseline_tolerance``
    worse in skill than the guard baseline (least squares): H0 "the guard is ahead by
    at most the tolerance", rejected (the check fails) at the level. A filter, as for
    classification, not a proof of non-inferiority."""
    if guard is None:
        return []
    name, pred = guard
    tol = policy.baseline_tolerance
    d = reg.paired_improvement(y, new, pred, policy.regression_error)
    worse = reg.paired_test(-d, policy.regression_test, tol * unit, policy.regression_error)
    return [
        Check(
            f"within {tol:g} of the {name} (not shown worse by more)",
            passed=not worse.deploy(alpha),
            p_value=worse.p_value,
            estimate=float(np.mean(d)) / unit if len(d) else 0.0,
        )
    ]


def _power(policy: GatePolicy, n: int, sd: float, unit: float, alpha: float) -> Power:
    """The paired t-test's power at a skill gain of ``target_effect`` (normal approximation at
    the observed spread of the per-row improvements), the smallest gain it detects with 80%
    power and the rows that would reach 80% at the target; the Wilcoxon test's power is
    close to it for errors near normal (its efficiency is 0.955) and higher with heavy
    tails."""
    gain = (policy.target_effect - policy.margin) * unit
    rule = f"{TEST_WORDS[policy.regression_test]} at level {alpha:.4g}"
    if n < 2 or sd <= 0:
        return Power(
            rule=rule,
            method="normal",
            target_effect=policy.target_effect,
            power_at_target=None,
            minimum_detectable_effect=None,
            rows_for_target=None,
            target_power=TARGET_POWER,
            discordant_rate=math.nan,
            note="no spread in the per-row improvements: power is undefined",
        )
    z = sps.norm.isf(alpha) + sps.norm.ppf(TARGET_POWER)
    rows = math.ceil((z * sd / gain) ** 2) if gain > 0 else None
    return Power(
        rule=rule,
        method="normal",
        target_effect=policy.target_effect,
        power_at_target=reg.power(gain, sd, n, alpha) if gain > 0 else None,
        minimum_detectable_effect=reg.minimum_detectable_effect(sd, n, alpha, TARGET_POWER) / unit
        + policy.margin,
        rows_for_target=rows,
        target_power=TARGET_POWER,
        discordant_rate=math.nan,
        note="" if gain > 0 else "target_effect is not above the margin: power is undefined",
    )


def _intervals(
    policy: GatePolicy, y: np.ndarray, new: np.ndarray, old: np.ndarray, alpha: float
) -> dict[str, Interval]:
    """Paired bootstrap percentile bounds (two-sided 1 - 2 level) of the improvement in mean
    squared and mean absolute error (positive = challenger better), in the target's units."""
    out = {}
    for error, key in ERROR_KEYS.items():
        d = reg.paired_improvement(y, new, old, error)
        low, high = reg.paired_bootstrap(
            d, policy.bootstrap_resamples, policy.bootstrap_seed, 1 - 2 * alpha
        )
        out[key] = Interval(float(np.mean(d)), low, high, "percentile")
    return out


def _reason(
    d: Decision, policy: GatePolicy, first_run: bool, mean_new: float, mean_old: float
) -> str:
    error = policy.regression_error
    words = UNIT_WORDS[error]
    n = d.counts.test_rows
    against = f"the {d.champion}" if first_run else f"the champion ({d.champion})"
    eff = d.effect.regression or {}
    metrics = d.metrics
    rmse = ""
    if {"challenger", "champion"} <= set(metrics):
        rmse = (
            f"; RMSE {metrics['challenger'].get('rmse', math.nan):.4g} vs "
            f"{metrics['champion'].get('rmse', math.nan):.4g}"
        )
    primary, conditions = d.checks[0], d.checks[1:]
    bound = ""
    if primary.lower_bound is not None and n:
        bound = f", {confidence_text(1 - d.level)} lower bound {primary.lower_bound:+.3f}"
    observed = (
        f"On {n:,} test rows the mean {error} error was {mean_new:.4g} for the challenger and "
        f"{mean_old:.4g} for {against}: an improvement of {eff.get('improvement', math.nan):+.4g}"
        f", {eff.get('improvement_skill', math.nan):+.3f} {words}{bound}{rmse}"
    )
    threshold = f"alpha {d.alpha}" if d.level == d.alpha else f"level {d.level:.4g}"
    p = p_text(d.p_value)
    if d.deploy:
        verdict = (
            "significantly lower"
            if policy.margin == 0
            else f"lower by more than a skill gain of {policy.margin:g}"
        )
        claim = f"mean {error} error is {verdict} than {against}'s"
        if policy.regression_test == "wilcoxon":  # it tests a typical row, not the mean
            smaller = "significantly smaller" if policy.margin == 0 else "smaller beyond the margin"
            claim = f"{error} errors are {smaller} than {against}'s on a typical row"
        return (
            f"Deployed: the challenger's {claim}. "
            f"{observed}; {TEST_WORDS[policy.regression_test]} {p} < {threshold}."
        )
    if n < policy.min_test_rows:
        return (
            f"Not deployed: only {n} test rows, fewer than the {policy.min_test_rows} the gate "
            "needs to judge; add data so the test split grows."
        )
    if primary.passed:
        failed = "; ".join(c.name for c in conditions if not c.passed)
        return (
            f"Not deployed: the challenger passed the primary test ({p}) but failed: {failed}. "
            f"{observed}."
        )
    gain = eff.get("improvement_skill", math.nan)
    head = (
        "the challenger is no better"
        if not gain > 0
        else "its gain is within the margin"
        if not gain > policy.margin
        else "the observed gain may be chance"
    )
    pw = d.power
    if pw is not None and pw.power_at_target is not None:
        head += (
            f"; at this size and spread the rule finds a skill gain of {pw.target_effect:g} "
            f"{pw.power_at_target:.0%} of the time"
        )
        if pw.rows_for_target is not None:
            head += (
                f"; to detect it with {pw.target_power:.0%} power you need about "
                f"{pw.rows_for_target:,} test rows"
            )
    what = "significantly better" if policy.margin == 0 else "better by more than the margin"
    return f"Not deployed: not shown to be {what} ({p}, {threshold}); {head}. {observed}."
