"""Champion against challenger on the same raw test rows: both models' scores, the gate's
decision, and everything the report and the decision record state about it.

The evaluate step's logic without files or the registry: the step loads the bundles and the
test rows, leaves out the rows the champion trained or validated on (``keep_unseen``), scores
both models (``score``), takes its level and rows from the registry's ledger
(accounting.Reservation) and lets the gate decide on them (``judge``). ``compare`` is score
and judge at the policy's alpha on every row, without a ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from components.core import progress
from components.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from components.core.data.split import RowKey, SplitRecord
    from components.core.evaluation.alpha import Accounting
    from components.core.evaluation.gate import Decision, GatePolicy, Interval
    from components.core.model.bundle import Bundle

METRIC_NAMES = ("accuracy", "macro_f1", "log_loss", "roc_auc")
PLOT_POINTS = 2000  # a regression report plots at most this many test rows (a fixed sample)


@dataclass
class Evaluation:
    decision: Decision
    classes: list[Any]
    challenger: dict[str, float]
    champion: dict[str, float]
    confusion_challenger: list[list[int]]
    confusion_champion: list[list[int]]
    roc_challenger: dict[str, list[float]] | None = None
    roc_champion: dict[str, list[float]] | None = None
    champion_version: str | None = None
    # each model's ECE and reliability bins (evaluation.calibration.reliability), by name
    calibration: dict[str, dict[str, Any]] | None = None
    # where the numbers come from (report.collect_provenance): evaluated_at, test_rows,
    # champion, excluded, and the challenger's inputs, training, train_config, training_history
    provenance: dict[str, Any] = field(default_factory=dict)
    task: str = "classification"  # or regression: no classes, confusion, ROC or calibration
    # regression: the test rows' target and both models' predictions (at most PLOT_POINTS
    # rows, a fixed sample) for the predicted-against-actual and residual plots
    points: dict[str, list[float]] | None = None

    @property
    def excluded(self) -> dict[str, Any]:
        """The test rows left out of the comparison, how many and why (``exclude_seen``)."""
        return dict(self.provenance.get("excluded") or {})

    @property
    def improvement_ci(self) -> dict[str, Interval]:
        """The interval of each metric's improvement (positive = challenger better): the gate
        computes them with its alpha and bootstrap settings."""
        return self.decision.improvement_ci

    def flat_metrics(self) -> dict[str, float]:
        """Both models' metrics and the differences, for a KFP Metrics artifact."""
        out: dict[str, float] = {}
        for who, values in (("challenger", self.challenger), ("champion", self.champion)):
            for k, v in values.items():
                out[f"{who}_{k}"] = float(v)
        for k in self.challenger:
            out[f"difference_{k}"] = float(self.challenger[k] - self.champion[k])
        low = self.decision.effect.accuracy_lower_bound
        if low is not None:
            out["difference_accuracy_lower_bound"] = float(low)
        for k, ci in self.improvement_ci.items():
            out[f"improvement_{k}_ci_low"] = ci.low
            out[f"improvement_{k}_ci_high"] = ci.high
        out["p_value"] = float(self.decision.p_value)
        out["level"] = float(self.decision.level)
        accounting = self.decision.accounting
        if accounting is not None and accounting.adjusted is not None:
            out["adjusted_accuracy_gain"] = float(accounting.adjusted.estimate)
        out["deploy"] = float(self.decision.deploy)
        out["test_rows"] = float(self.decision.counts.test_rows)
        if "rows" in self.excluded:
            out["excluded_test_rows"] = float(self.excluded["rows"])
        return out


def ledger_key(test_df: pd.DataFrame, record: SplitRecord | None, footer: dict[str, Any]) -> RowKey:
    """What identifies a test row for the ledger: the champion's key (its split record), else
    this run's (the test split's footer), else the content of every column."""
    from components.core.data.split import RowKey, SplitDefinition

    if record is not None:
        return record.definition.key
    if footer:
        try:
            return SplitDefinition.from_json(footer).key
        except ValueError:
            pass  # an unreadable footer: the content still identifies a row
    return RowKey.content(test_df.columns)


def keys_of(test_df: pd.DataFrame, key: RowKey) -> np.ndarray:
    """Each test row's uint64 key under ``key``."""
    from components.core.data.split import check_key_function

    check_key_function()
    return key.keys(test_df)


def exclude_seen(
    test_df: pd.DataFrame, record: SplitRecord | None, champion_version: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The test rows the champion neither trained nor validated on, and what was left out.

    ``record``: the champion's split record, whose key definition computes each test row's
    key (whatever this run's salt, fractions or columns); None for a bundle written before
    sigdeploy kept one: then every row is compared and the guarantee is weaker.
    """
    keys = keys_of(test_df, record.definition.key) if record is not None else None
    kept, _, excluded = keep_unseen(test_df, keys, record, champion_version)
    return kept, excluded


def keep_unseen(
    test_df: pd.DataFrame,
    keys: np.ndarray | None,
    record: SplitRecord | None,
    champion_version: str,
) -> tuple[pd.DataFrame, np.ndarray | None, dict[str, Any]]:
    """``exclude_seen`` on rows whose keys (under the champion's key) are already known:
    the kept rows, their keys, and what was left out."""
    total = int(len(test_df))
    who = f"the champion (version {champion_version})"
    if record is None:
        return (
            test_df,
            keys,
            {
                "rows": 0,
                "test_rows": total,
                "compared": total,
                "guarantee": "weaker",
                "champion_split": None,
                "why": f"{who} has no split record (its bundle predates them), so no row could "
                f"be checked: all {total:,} test rows are compared, and that it never trained on "
                "them holds only if it was split with this run's salt, fractions and columns",
            },
        )
    if keys is None:
        keys = keys_of(test_df, record.definition.key)
    seen = np.isin(keys, record.seen_keys)
    n = int(seen.sum())
    split = record.definition.describe()
    why = (
        f"{n:,} of {total:,} test rows were among the {len(record.seen_keys):,} rows {who} "
        f"trained or validated on ({split}), so they are left out"
        if n
        else f"none of the {total:,} test rows is among the rows {who} trained or validated "
        f"on ({split})"
    )
    kept = test_df.loc[~seen].reset_index(drop=True) if n else test_df
    return (
        kept,
        keys[~seen],
        {
            "rows": n,
            "test_rows": total,
            "compared": total - n,
            "guarantee": "full",
            "champion_split": split,
            "why": why,
        },
    )


def _first_run_exclusion(total: int) -> dict[str, Any]:
    return {
        "rows": 0,
        "test_rows": total,
        "compared": total,
        "guarantee": "first run",
        "champion_split": None,
        "why": "first run: no champion; the baseline is fitted on this run's train rows",
    }


def _exclusion_note(excluded: dict[str, Any]) -> str:
    """The sentence the decision's reason gains when the comparison lost rows or the
    guarantee is weaker; empty otherwise."""
    if excluded.get("guarantee") == "weaker":
        return (
            "The champion has no split record, so these test rows could not be checked "
            "against the rows it trained on (a weaker guarantee)."
        )
    if excluded.get("rows"):
        return (
            f"{excluded['rows']:,} of {excluded['test_rows']:,} test rows were left out "
            "because the champion trained or validated on them."
        )
    return ""


def _class_key(value: Any) -> str:
    """A class label as text, numbers canonical: 3, 3.0 and np.int64(3) are one class."""
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, str):
        return str(value)
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _matching_classes(model_classes: list[Any], classes: list[Any]) -> list[Any]:
    """``model_classes`` renamed to the equal labels of ``classes`` (a label column read as
    float by one model and as int by the other still names the same classes)."""
    ours = {_class_key(c): c for c in classes}
    return [ours.get(_class_key(c), c) for c in model_classes]


def _metrics(y: Any, proba: Any) -> dict[str, float]:
    from components.core.evaluation.metrics import classification_metrics

    if not len(y):  # every test row was excluded: the gate refuses on size
        return {k: float("nan") for k in METRIC_NAMES}
    return classification_metrics(y, proba)


def collect_provenance(
    meta: dict[str, Any],
    *,
    test_rows: int,
    champion: str,
    champion_version: Any = None,
    now: datetime | None = None,
    excluded: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Where an evaluation's numbers come from, for the report and the decision record.

    ``meta`` is the challenger bundle's bundle.json; an older bundle may lack any of its
    ``inputs`` / ``training`` / ``train_config`` / ``training_history``, which then stay
    empty and the report shows "–". ``excluded``: the test rows left out and why
    (``exclude_seen``).
    """
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {
        "evaluated_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "test_rows": int(test_rows),
        "champion": champion,
        "champion_version": champion_version,
        "first_run": champion_version is None,
        "excluded": dict(excluded or {}),
        "inputs": dict(meta.get("inputs") or {}),
        "training": dict(meta.get("training") or {}),
        "train_config": dict(meta.get("train_config") or {}),
        "training_history": list(meta.get("training_history") or []),
    }


@dataclass(frozen=True, eq=False)
class Scored:
    """Both models' class probabilities on the same test rows, before the gate decides."""

    y: np.ndarray  # class indices in the challenger's class order (regression: the target)
    proba_new: np.ndarray  # regression: the predicted values
    proba_old: np.ndarray
    classes: list[Any]
    champion_name: str  # "version 3", or the baseline's name on a first run
    first_run: bool
    # first run: the guard baseline's name and probabilities (policy.first_run_guard)
    guard: tuple[str, np.ndarray] | None = None
    # regression: the challenger's training target (Bundle.target), the unit of the margin
    target: dict[str, float] | None = None

    def subset(self, use: np.ndarray) -> Scored:
        """The rows ``use`` marks (the ones the account chose to decide on)."""
        if bool(np.all(use)):
            return self
        guard = (self.guard[0], self.guard[1][use]) if self.guard is not None else None
        return replace(
            self,
            y=self.y[use],
            proba_new=self.proba_new[use],
            proba_old=self.proba_old[use],
            guard=guard,
        )


def score(
    challenger: Bundle,
    test_df: pd.DataFrame,
    policy: GatePolicy,
    *,
    champion: Bundle | None = None,
    train_df: pd.DataFrame | None = None,
    champion_version: str | None = None,
) -> Scored:
    """Both models' probabilities on ``test_df``.

    Without a champion (the first run) the challenger faces ``policy.baseline`` fitted on
    ``train_df``. Each model goes through its own preprocessor, so they see the same raw rows.
    """
    from components.core.evaluation.metrics import Baseline, align_proba, encode_labels

    if challenger.regression:
        return _score_values(challenger, test_df, policy, champion, train_df, champion_version)
    label, classes = challenger.label, challenger.classes
    y = encode_labels(test_df[label], classes)
    if (y < 0).any():
        raise DataError(
            f"test split: {int((y < 0).sum())} row(s) have a label the challenger "
            "never saw in training; add such rows to the training data"
        )
    x_test = challenger.transform(test_df)
    proba_new = challenger.predict_proba_matrix(x_test)
    guard = None
    if champion is None:
        if train_df is None:
            raise ValueError("the first run needs the train rows to fit the baseline")
        x_train = challenger.transform(train_df)
        y_train = encode_labels(train_df[label], classes)
        baseline = Baseline(policy.baseline).fit(x_train, y_train, classes)
        proba_old = baseline.predict_proba_matrix(x_test)
        champion_name = baseline.describe()
        if policy.first_run_guard != "none":
            fence = (
                baseline
                if policy.first_run_guard == policy.baseline
                else Baseline(policy.first_run_guard).fit(x_train, y_train, classes)
            )
            guard = (fence.describe(), fence.predict_proba_matrix(x_test))
    else:
        proba_old = align_proba(
            champion.predict_proba(test_df), _matching_classes(champion.classes, classes), classes
        )
        champion_name = f"version {champion_version}"
    return Scored(y, proba_new, proba_old, list(classes), champion_name, champion is None, guard)


def _score_values(
    challenger: Bundle,
    test_df: pd.DataFrame,
    policy: GatePolicy,
    champion: Bundle | None,
    train_df: pd.DataFrame | None,
    champion_version: str | None,
) -> Scored:
    """``score`` for a regressor: both models' predicted values. The first run's champion
    is ``policy.baseline`` read for a numeric target (majority: the training mean;
    logistic: least squares on the challenger's features), and its guard likewise."""
    from components.core.evaluation import regression as reg
    from components.core.evaluation.regression_gate import baseline_name

    y = test_df[challenger.label].to_numpy(np.float64)
    x_test = challenger.transform(test_df)
    new = challenger.predict_values_matrix(x_test)
    guard = None
    if champion is None:
        if train_df is None:
            raise ValueError("the first run needs the train rows to fit the baseline")
        x_train = challenger.transform(train_df)
        y_train = train_df[challenger.label].to_numpy(np.float64)
        names = {"mean": "training-mean baseline", "linear": "linear-regression baseline"}

        def fit(kind: str) -> np.ndarray:
            if kind == "mean":
                return reg.mean_baseline(y_train, len(y))
            return reg.linear_baseline(x_train, y_train, x_test)

        kind = baseline_name(policy.baseline)
        old, champion_name = fit(kind), names[kind]
        if policy.first_run_guard != "none":
            fence = baseline_name(policy.first_run_guard)
            guard = (names[fence], old if fence == kind else fit(fence))
    else:
        old = champion.predict_values(test_df)
        champion_name = f"version {champion_version}"
    return Scored(y, new, old, [], champion_name, champion is None, guard, target=challenger.target)


def _judge_values(scored: Scored, policy: GatePolicy, level: float | None) -> Any:
    """The regression gate's decision and both models' metrics (RMSE, MAE, R^2)."""
    from components.core.evaluation.regression import regression_metrics
    from components.core.evaluation.regression_gate import decide_regression

    # every test row excluded: NaN metrics, and the gate refuses on size
    m_new = regression_metrics(scored.y, scored.proba_new)
    m_old = regression_metrics(scored.y, scored.proba_old)
    decision = decide_regression(
        policy,
        scored.y,
        scored.proba_new,
        scored.proba_old,
        target=scored.target or {"mean": 0.0, "scale": 1.0},
        champion_name=scored.champion_name,
        first_run=scored.first_run,
        metrics={"challenger": m_new, "champion": m_old},
        guard=scored.guard,
        level=level,
    )
    return decision, m_new, m_old


def _plot_points(scored: Scored) -> dict[str, list[float]]:
    n = len(scored.y)
    pick = np.arange(n)
    if n > PLOT_POINTS:
        pick = np.sort(np.random.default_rng(0).choice(n, PLOT_POINTS, replace=False))
    return {
        "actual": scored.y[pick].tolist(),
        "challenger": np.asarray(scored.proba_new)[pick].tolist(),
        "champion": np.asarray(scored.proba_old)[pick].tolist(),
    }


def judge(
    challenger: Bundle,
    scored: Scored,
    policy: GatePolicy,
    *,
    champion_version: str | None = None,
    excluded: dict[str, Any] | None = None,
    accounting: Accounting | None = None,
) -> Evaluation:
    """The gate's decision on ``scored`` and everything stated about it.

    ``accounting``: the level and rows the ledger gave this comparison (the gate tests at
    that level; its sentences join the reason, and a deploy gets its selection-adjusted
    gain); None decides at the policy's alpha. ``excluded``: what ``exclude_seen`` left out.
    """
    from components.core.evaluation.calibration import reliability
    from components.core.evaluation.gate import decide
    from components.core.evaluation.metrics import confusion_matrix, roc_points

    y, proba_new, proba_old = scored.y, scored.proba_new, scored.proba_old
    champion_name, classes = scored.champion_name, scored.classes
    progress.report("evaluate", f"challenger against {champion_name} on {len(y):,} test rows")
    level = accounting.account.level if accounting else None
    regression = scored.target is not None
    if regression:
        decision, m_new, m_old = _judge_values(scored, policy, level)
    else:
        m_new, m_old = _metrics(y, proba_new), _metrics(y, proba_old)
        decision = decide(
            policy,
            y,
            proba_new,
            proba_old,
            champion_name=champion_name,
            first_run=scored.first_run,
            metrics={"challenger": m_new, "champion": m_old},
            guard=scored.guard,
            level=level,
        )
    if excluded is None:
        excluded = _first_run_exclusion(len(y)) if scored.first_run else {}
    notes = [_exclusion_note(excluded)]
    if accounting is not None:
        accounting = _with_gain(accounting, decision, policy)
        notes += [accounting.why, accounting.rows_sentence(), accounting.gain_sentence()]
        decision = replace(decision, accounting=accounting)
    if notes := [n for n in notes if n]:
        decision = replace(decision, reason=" ".join([decision.reason, *notes]))
    provenance = collect_provenance(
        challenger.meta,
        test_rows=len(y),
        champion=champion_name,
        champion_version=champion_version,
        excluded=excluded,
    )
    if regression:
        return Evaluation(
            decision=decision,
            classes=[],
            challenger=m_new,
            champion=m_old,
            confusion_challenger=[],
            confusion_champion=[],
            champion_version=champion_version,
            provenance=provenance,
            task="regression",
            points=_plot_points(scored),
        )
    k = len(classes)
    binary = k == 2 and len(y) > 0
    return Evaluation(
        decision=decision,
        classes=classes,
        challenger=m_new,
        champion=m_old,
        confusion_challenger=confusion_matrix(y, proba_new.argmax(1), k),
        confusion_champion=confusion_matrix(y, proba_old.argmax(1), k),
        roc_challenger=roc_points(y, proba_new[:, 1]) if binary else None,
        roc_champion=roc_points(y, proba_old[:, 1]) if binary else None,
        calibration={
            "challenger": reliability(y, proba_new),
            "champion": reliability(y, proba_old),
        },
        champion_version=champion_version,
        provenance=provenance,
    )


def _with_gain(accounting: Accounting, decision: Decision, policy: GatePolicy) -> Accounting:
    """A deploy's selection-adjusted accuracy gain (alpha.adjusted_accuracy_gain), where the
    test that selected it is the one that estimator models: exact McNemar on accuracy alone."""
    from components.core.evaluation.alpha import adjusted_accuracy_gain

    if not decision.deploy:
        return accounting
    if decision.task == "regression":
        return replace(
            accounting,
            adjusted_note="no selection-adjusted gain: it is derived for the exact McNemar test "
            "on accuracy; a regression deploy states its improvement as observed, with the "
            "t-test's lower bound",
        )
    if (
        list(dict.fromkeys(policy.primary_metrics)) != ["accuracy"]
        or policy.mcnemar_method != "exact"
        or decision.margin != 0
    ):
        return replace(
            accounting,
            adjusted_note="no selection-adjusted gain: it is derived for the exact McNemar "
            "test on accuracy alone without a margin, and this deploy was decided by "
            + decision.test,
        )
    c = decision.counts
    try:
        gain = adjusted_accuracy_gain(
            c.only_champion_right, c.only_challenger_right, c.test_rows, decision.level
        )
    except ValueError as exc:  # cannot happen for a deploy the exact test passed
        return replace(accounting, adjusted_note=f"no selection-adjusted gain: {exc}")
    note = ""
    if policy.guardrails:
        note = (
            "the adjustment models the McNemar test alone; the guardrails select further, so "
            "the adjusted gain may still overstate the true one"
        )
    return replace(accounting, adjusted=gain, adjusted_note=note)


def compare(
    challenger: Bundle,
    test_df: pd.DataFrame,
    policy: GatePolicy,
    *,
    champion: Bundle | None = None,
    champion_version: str | None = None,
    train_df: pd.DataFrame | None = None,
    excluded: dict[str, Any] | None = None,
) -> Evaluation:
    """Score both models on ``test_df`` and decide at the policy's alpha on every row (no
    ledger: ``score`` then ``judge``).

    Without a champion (the first run) the challenger faces ``policy.baseline`` fitted on
    ``train_df``. ``excluded``: what ``exclude_seen`` left out of ``test_df`` (the decision
    and the report state it).
    """
    scored = score(
        challenger,
        test_df,
        policy,
        champion=champion,
        train_df=train_df,
        champion_version=champion_version,
    )
    return judge(challenger, scored, policy, champion_version=champion_version, excluded=excluded)
