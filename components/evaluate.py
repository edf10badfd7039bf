"""evaluate: champion vs challenger on the SAME raw test rows; the significance gate."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from components.describe import documented
from components.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
@documented
def evaluate(
    model: Input[Model],
    train_data: Input[Dataset],
    test_data: Input[Dataset],
    registry: str,
    model_name: str,
    alpha: float,
    primary_metrics: str,
    margin: float,
    guardrails: str,
    min_test_rows: int,
    baseline: str,
    first_run_guard: str,
    baseline_tolerance: float,
    accuracy_floor: float,
    mcnemar_method: str,
    target_effect: float,
    bootstrap_resamples: int,
    bootstrap_seed: int,
    alpha_accounting: str,
    min_fresh_rows: int,
    regression_error: str,
    regression_test: str,
    metrics: Output[Metrics],
    challenger_metrics: Output[ClassificationMetrics],
    champion_metrics: Output[ClassificationMetrics],
    decision: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
) -> NamedTuple("Outputs", [("deploy", bool), ("p_value", float)]):
    """Score champion and challenger on the same raw test rows and apply the gate.

    Args:
        model: the challenger's model bundle from train.
        train_data: the raw training rows (the first run's baseline is fitted on them).
        test_data: the raw test rows both models are scored on.

    Returns:
        metrics: both models' metrics and the gate's figures, flat.
        challenger_metrics: the challenger's confusion matrix (and ROC curve for 2 classes;
            empty for a regressor).
        champion_metrics: the same for the champion (on the first run: the baseline).
        decision: the decision JSON: test, alpha, the level tested at and why, counts, effect,
            champion version, rows used, reason.
        report: the HTML report of the comparison.
        summary: the decision and its figures in Markdown.
        deploy: true when the challenger is significantly better and passes the guardrails.
        p_value: the p-value of the test the gate applied.
    """
    params = dict(locals())  # first line: only the task's inputs are bound yet
    from typing import NamedTuple

    from components.core import settings, steps
    from components.core.evaluation.gate import GatePolicy
    from components.core.progress import task_logging

    task_logging()
    ev = steps.evaluate(
        model.path,
        train_data.path,
        test_data.path,
        registry,
        model_name,
        settings.build(GatePolicy, params),
        decision.path,
        report.path,
        summary.path,
    )
    for key, value in ev.flat_metrics().items():
        metrics.log_metric(key, value)
    names = [str(c) for c in ev.classes]
    if names:  # a regressor has no classes: its metrics are in `metrics` (rmse, mae, r2)
        challenger_metrics.log_confusion_matrix(names, ev.confusion_challenger)
        champion_metrics.log_confusion_matrix(names, ev.confusion_champion)
    for artifact, roc in (
        (challenger_metrics, ev.roc_challenger),
        (champion_metrics, ev.roc_champion),
    ):
        if roc:
            artifact.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    d = ev.decision
    decision.metadata.update(
        {"deploy": d.deploy, "p_value": d.p_value, "level": d.level, "reason": d.reason}
    )
    return NamedTuple("Outputs", [("deploy", bool), ("p_value", float)])(
        ev.decision.deploy, ev.decision.p_value
    )
