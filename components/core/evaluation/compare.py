"""Champion against challenger on the same raw test rows: both models' scores, the gate's
decision, and everything the report and the decision record state about it.

The evaluate step's logic without files or the registry: the step loads the bundles and the
test rows, calls ``compare`` and writes what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from components.core import progress
from components.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from components.core.evaluation.gate import Decision, GatePolicy, Interval
    from components.core.model.bundle import Bundle


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
    # where the numbers come from (report.collect_provenance): evaluated_at, test_rows,
    # champion, and the challenger's inputs, training, train_config, training_history
    provenance: dict[str, Any] = field(default_factory=dict)

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
        out["deploy"] = float(self.decision.deploy)
        out["test_rows"] = float(self.decision.counts.test_rows)
        return out


def collect_provenance(
    meta: dict[str, Any],
    *,
    test_rows: int,
    champion: str,
    champion_version: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Where an evaluation's numbers come from, for the report and the decision record.

    ``meta`` is the challenger bundle's bundle.json; an older bundle may lack any of its
    ``inputs`` / ``training`` / ``train_config`` / ``training_history``, which then stay
    empty and the report shows "–".
    """
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {
        "evaluated_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "test_rows": int(test_rows),
        "champion": champion,
        "champion_version": champion_version,
        "first_run": champion_version is None,
        "inputs": dict(meta.get("inputs") or {}),
        "training": dict(meta.get("training") or {}),
        "train_config": dict(meta.get("train_config") or {}),
        "training_history": list(meta.get("training_history") or []),
    }


def compare(
    challenger: Bundle,
    test_df: pd.DataFrame,
    policy: GatePolicy,
    *,
    champion: Bundle | None = None,
    champion_version: str | None = None,
    train_df: pd.DataFrame | None = None,
) -> Evaluation:
    """Score both models on ``test_df`` and decide.

    Without a champion (the first run) the challenger faces ``policy.baseline`` fitted on
    ``train_df``. Each model goes through its own preprocessor, so they see the same raw rows.
    """
    from components.core.evaluation.gate import decide
    from components.core.evaluation.metrics import (
        Baseline,
        align_proba,
        classification_metrics,
        confusion_matrix,
        encode_labels,
        roc_points,
    )

    label, classes = challenger.label, challenger.classes
    y = encode_labels(test_df[label], classes)
    if (y < 0).any():
        raise DataError(
            f"test split: {int((y < 0).sum())} row(s) have a label the challenger "
            "never saw in training; add such rows to the training data"
        )
    x_test = challenger.transform(test_df)
    proba_new = challenger.predict_proba_matrix(x_test)
    if champion is None:
        if train_df is None:
            raise ValueError("the first run needs the train rows to fit the baseline")
        baseline = Baseline(policy.baseline).fit(
            challenger.transform(train_df), encode_labels(train_df[label], classes), classes
        )
        proba_old = baseline.predict_proba_matrix(x_test)
        champion_name = baseline.describe()
    else:
        proba_old = align_proba(champion.predict_proba(test_df), champion.classes, classes)
        champion_name = f"version {champion_version}"
    progress.report("evaluate", f"challenger against {champion_name} on {len(y):,} test rows")
    m_new, m_old = classification_metrics(y, proba_new), classification_metrics(y, proba_old)
    decision = decide(
        policy,
        y,
        proba_new,
        proba_old,
        champion_name=champion_name,
        first_run=champion is None,
        metrics={"challenger": m_new, "champion": m_old},
    )
    k = len(classes)
    return Evaluation(
        decision=decision,
        classes=classes,
        challenger=m_new,
        champion=m_old,
        confusion_challenger=confusion_matrix(y, proba_new.argmax(1), k),
        confusion_champion=confusion_matrix(y, proba_old.argmax(1), k),
        roc_challenger=roc_points(y, proba_new[:, 1]) if k == 2 else None,
        roc_champion=roc_points(y, proba_old[:, 1]) if k == 2 else None,
        champion_version=champion_version,
        provenance=collect_provenance(
            challenger.meta,
            test_rows=len(y),
            champion=champion_name,
            champion_version=champion_version,
        ),
    )
