"""The deploy gate: promote the challenger only when the evidence says it is better.

Both models are scored on the same raw test rows. The primary test is the one-sided exact
McNemar test on the rows where exactly one model is right (accuracy), or DeLong's paired test
(ROC AUC, binary). With several primary metrics, Holm's correction keeps the false-deploy
risk at alpha. A practical margin, guardrail metrics, a minimum test size and, on the first
run, an absolute accuracy floor add further conditions. Every decision carries its reason in
plain words, its power and the smallest improvement the test could have detected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from components.core.errors import ConfigError
from components.core.evaluation.metrics import BASELINES

PRIMARY_METRICS = ("accuracy", "auc")
GUARDRAIL_METRICS = ("accuracy", "macro_f1", "log_loss", "auc")
TARGET_POWER = 0.8


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

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.alpha < 1:
            problems.append(f"alpha={self.alpha} must be between 0 and 1, e.g. 0.05")
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "primary_metrics": list(self.primary_metrics),
            "guardrails": [list(g) for g in self.guardrails],
        }


@dataclass
class Decision:
    deploy: bool
    p_value: float
    reason: str
    test: str
    alpha: float
    margin: float
    counts: dict[str, int]
    effect: dict[str, Any]
    power: dict[str, float | None]
    checks: list[dict[str, Any]] = field(default_factory=list)
    champion: str = ""
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _holm(pvalues: list[float]) -> list[float]:
    order = np.argsort(pvalues)
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _pts(x: float) -> str:
    """An accuracy difference in percentage points, signed."""
    return f"{x * 100:+.1f} points"


def format_p(p: float) -> str:
    """A p-value for people: three digits, scientific below 1e-4, and 1 for p ~ 1."""
    return "1" if p >= 0.9995 else (f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}")


def decide(
    policy: GatePolicy,
    y: np.ndarray,
    proba_challenger: np.ndarray,
    proba_champion: np.ndarray,
    *,
    champion_name: str,
    first_run: bool,
    metrics: dict[str, dict[str, float]] | None = None,
    report_power: bool = True,
) -> Decision:
    """Compare two models' predictions on the same rows and decide whether to deploy.

    ``y`` holds class indices; the probability matrices share the same class order.
    ``report_power=False`` skips the power figures (they explain a decision, they never
    change it), which the null simulation uses to run thousands of decisions quickly.
    """
    from components.core.evaluation import stats  # scipy is only needed once a decision is made

    n = int(y.shape[0])
    k = proba_challenger.shape[1]
    pred_new = proba_challenger.argmax(1)
    pred_old = proba_champion.argmax(1)
    right_new, right_old = pred_new == y, pred_old == y
    counts = {
        "test_rows": n,
        "both_right": int((right_new & right_old).sum()),
        "only_challenger_right": int((right_new & ~right_old).sum()),
        "only_champion_right": int((~right_new & right_old).sum()),
        "both_wrong": int((~right_new & ~right_old).sum()),
    }
    b, c = counts["only_champion_right"], counts["only_challenger_right"]
    acc_new, acc_old = float(right_new.mean()) if n else 0.0, float(right_old.mean()) if n else 0.0
    confidence = 1.0 - policy.alpha

    checks: list[dict[str, Any]] = []
    primary_p: dict[str, float] = {}
    effect: dict[str, Any] = {
        "accuracy_challenger": acc_new,
        "accuracy_champion": acc_old,
        "accuracy_difference": acc_new - acc_old,
    }
    tests = []
    for metric in policy.primary_metrics:
        if metric == "accuracy":
            res = stats.mcnemar(b, c, alternative="greater", method=policy.mcnemar_method)
            primary_p[metric] = float(res.pvalue)
            tests.append(f"one-sided {policy.mcnemar_method} McNemar test on accuracy")
        else:
            if k != 2:
                raise ConfigError(
                    f"primary metric 'auc' needs a binary label; use accuracy for {k} classes"
                )
            dl = stats.delong(
                y, proba_challenger[:, 1], proba_champion[:, 1], alternative="greater"
            )
            primary_p[metric] = float(dl.pvalue)
            effect["auc_challenger"] = float(dl.auc_challenger)
            effect["auc_champion"] = float(dl.auc_champion)
            effect["auc_difference"] = float(dl.auc_challenger - dl.auc_champion)
            tests.append("one-sided DeLong test on ROC AUC")
    metric_names = list(primary_p)
    adjusted = (
        _holm([primary_p[m] for m in metric_names])
        if len(metric_names) > 1
        else [primary_p[metric_names[0]]]
    )
    significant = [m for m, p in zip(metric_names, adjusted, strict=False) if p < policy.alpha]
    p_value = float(min(adjusted))
    raws = [primary_p[m] for m in metric_names]
    for m, raw, adj in zip(metric_names, raws, adjusted, strict=True):
        checks.append(
            {
                "check": f"{m} significantly better",
                "p_value": raw,
                "p_adjusted": adj,
                "passed": adj < policy.alpha,
            }
        )

    # One-sided lower confidence bounds of the improvement, for the margin and guardrails.
    def lower_bound(metric: str) -> tuple[float, float]:
        if metric in ("accuracy", "macro_f1"):
            a, bb = pred_new, pred_old
        elif metric == "auc" and k == 2:
            a, bb = proba_challenger[:, 1], proba_champion[:, 1]
        else:
            a, bb = proba_challenger, proba_champion
        if metric == "auc" and k != 2:
            raise ConfigError("guardrail 'auc' needs a binary label")
        res = stats.bootstrap_difference(
            metric,
            y,
            a,
            bb,
            confidence=confidence,
            n_resamples=policy.bootstrap_resamples,
            seed=policy.bootstrap_seed,
            sided="lower",
        )
        return float(res.estimate), float(res.low)

    margin_ok = True
    for m in significant:
        est, low = lower_bound(m)
        effect[f"{m}_lower_bound"] = low
        ok = low > policy.margin
        checks.append(
            {
                "check": f"{m} improvement above margin {policy.margin}",
                "estimate": est,
                "lower_bound": low,
                "passed": ok,
            }
        )
        margin_ok = margin_ok and ok
    if "accuracy" not in significant and n:
        est, low = lower_bound("accuracy")
        effect["accuracy_lower_bound"] = low

    rails_ok = True
    for metric, tol in policy.guardrails:
        est, low = lower_bound(metric)
        ok = low > -tol
        rails_ok = rails_ok and ok
        checks.append(
            {
                "check": f"{metric} non-inferior within {tol}",
                "estimate": est,
                "lower_bound": low,
                "passed": ok,
            }
        )

    floor_ok = True
    if first_run and policy.accuracy_floor > 0:
        correct = int(right_new.sum())
        p_floor = float(stats.binomial_test_greater(correct, n, policy.accuracy_floor))
        floor_ok = p_floor < policy.alpha
        checks.append(
            {
                "check": f"accuracy significantly above floor {policy.accuracy_floor}",
                "accuracy": acc_new,
                "p_value": p_floor,
                "passed": floor_ok,
            }
        )

    size_ok = n >= policy.min_test_rows
    checks.append(
        {"check": f"at least {policy.min_test_rows} test rows", "test_rows": n, "passed": size_ok}
    )

    power = _power_report(b, c, n, policy.alpha) if report_power else {}

    deploy = bool(significant) and margin_ok and rails_ok and floor_ok and size_ok
    reason = _reason(
        deploy=deploy,
        policy=policy,
        counts=counts,
        p_value=p_value,
        significant=significant,
        effect=effect,
        power=power,
        checks=checks,
        champion=champion_name,
        first_run=first_run,
        size_ok=size_ok,
        primary=metric_names,
    )
    return Decision(
        deploy=deploy,
        p_value=p_value,
        reason=reason,
        test=" + ".join(tests) + (" (Holm-adjusted)" if len(tests) > 1 else ""),
        alpha=policy.alpha,
        margin=policy.margin,
        counts=counts,
        effect=effect,
        power=power,
        checks=checks,
        champion=champion_name,
        metrics=metrics or {},
    )


def _power_report(b: int, c: int, n: int, alpha: float) -> dict[str, float | None]:
    """Power for the observed effect and the smallest improvement detectable at this size.

    The minimum detectable improvement is taken at the observed discordant rate (at least
    two rows' worth, so identical models still get a meaningful figure); None when no
    improvement at all is detectable with TARGET_POWER at this test size.
    """
    from components.core.evaluation import stats

    if n == 0:
        return {
            "observed_power": 0.0,
            "minimum_detectable_improvement": None,
            "target_power": TARGET_POWER,
            "discordant_rate": 0.0,
        }
    disc_rate = (b + c) / n
    mde = float(
        stats.mcnemar_minimum_detectable_effect(
            n, min(1.0, max(disc_rate, 2.0 / n)), alpha, TARGET_POWER
        )
    )
    return {
        "observed_power": float(stats.mcnemar_power(b / n, c / n, n, alpha)),
        "minimum_detectable_improvement": mde if np.isfinite(mde) else None,
        "target_power": TARGET_POWER,
        "discordant_rate": disc_rate,
    }


def _reason(
    *,
    deploy: bool,
    policy: GatePolicy,
    counts: dict[str, int],
    p_value: float,
    significant: list[str],
    effect: dict[str, Any],
    power: dict[str, float | None],
    checks: list[dict[str, Any]],
    champion: str,
    first_run: bool,
    size_ok: bool,
    primary: list[str],
) -> str:
    b, c, n = counts["only_champion_right"], counts["only_challenger_right"], counts["test_rows"]
    diff = effect["accuracy_difference"]
    against = f"the {champion}" if first_run else f"the champion ({champion})"
    disagreement = (
        f"On {n} test rows the challenger was right on {c} where {against} was "
        f"wrong, and wrong on {b} where it was right"
    )
    acc = (
        f"accuracy {effect['accuracy_challenger']:.3f} vs {effect['accuracy_champion']:.3f} "
        f"({_pts(diff)})"
    )
    if deploy:
        low = effect.get("accuracy_lower_bound")
        bound = (
            f", {int(round((1 - policy.alpha) * 100))}% lower bound {_pts(low)}"
            if low is not None and "accuracy" in significant
            else ""
        )
        on = ""
        if primary != ["accuracy"]:  # say which metric carried the decision
            names = {"accuracy": "accuracy", "auc": "ROC AUC"}
            on = " on " + " and ".join(names[m] for m in significant)
        auc = ""
        if "auc" in significant:
            auc = f"; ROC AUC {effect['auc_challenger']:.3f} vs {effect['auc_champion']:.3f}"
        return (
            f"Deployed: the challenger is significantly better than {against}{on}. "
            f"{disagreement}; {acc}{bound}{auc}; p = {format_p(p_value)} < alpha {policy.alpha}"
            + (" (Holm-adjusted)." if len(primary) > 1 else ".")
        )
    if not size_ok:
        return (
            f"Not deployed: only {n} test rows, fewer than the {policy.min_test_rows} the "
            "gate needs to judge; add data so the test split grows."
        )
    if b + c == 0 and primary == ["accuracy"]:
        return (
            f"Not deployed: the challenger and {against} gave the same answer on all {n} "
            "test rows, so there is no evidence that the challenger is better (p = 1)."
        )
    failed = [ch["check"] for ch in checks if not ch["passed"]]
    if significant:
        return (
            f"Not deployed: the challenger is significantly better (p = {format_p(p_value)}) "
            f"but failed: {'; '.join(failed)}. {disagreement}; {acc}."
        )
    mde = power.get("minimum_detectable_improvement")
    if diff <= 0:
        verdict = "the challenger is no better"
    elif mde is None:
        verdict = f"the test set is too small to tell: at {n} rows no improvement is detectable"
    elif diff >= mde:
        verdict = (
            "the observed gain would usually be detected at this size, so it is most likely chance"
        )
    else:
        verdict = (
            f"the test set is too small to tell: at {n} rows only an improvement of about "
            f"{_pts(mde)} or more is detected with {int(TARGET_POWER * 100)}% power"
        )
    return (
        f"Not deployed: not significantly better (p = {format_p(p_value)}, alpha "
        f"{policy.alpha}); {verdict}. {disagreement}; {acc}."
    )


__all__ = ["GatePolicy", "Decision", "decide", "format_p"]
