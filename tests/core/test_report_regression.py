"""The report of a regression: RMSE, MSE, MAE and R² with the gate's intervals where it has
them, predicted-against-actual and residual plots with a dot per row and model, the paired
test's decision and power in in R², loss-only training curves, and nothing of
classification (accuracy, McNemar, confusion matrices)."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from components.core.data.features import FeatureConfig, fit_preprocessor
from components.core.evaluation.compare import Evaluation, compare
from components.core.evaluation.gate import GatePolicy, Interval
from components.core.evaluation.report import render_html, render_markdown
from components.core.model.bundle import load_bundle, save_bundle
from components.core.training.config import TrainConfig
from components.core.training.train import train_regressor
from tests.core.test_report import _Page, _self_contained

SVG = "{http://www.w3.org/2000/svg}"
CLASSIFICATION_WORDS = ("accuracy", "mcnemar", "confusion", "discordan", "bayes", "roc")


@pytest.fixture(scope="module")
def bundle_and_data(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(list("xyz"), n)}
    )
    df["y"] = 3 * df.a - 2 * df.b + (df.c == "x") * 1.5 + rng.normal(scale=0.3, size=n) + 100
    train, val, test = df[:400], df[400:500], df[500:].reset_index(drop=True)
    pre = fit_preprocessor(train, "y", FeatureConfig())
    r = train_regressor(
        pre.transform(train),
        train.y.to_numpy(),
        pre.transform(val),
        val.y.to_numpy(),
        TrainConfig(max_epochs=20),
    )
    # the training meta as the train step writes it for a regressor: no accuracy
    meta = {
        "training": {
            "rows": len(train),
            "val_rows": len(val),
            "best_epoch": r.best_epoch,
            "epochs_run": len(r.history),
            "val_loss": r.history[r.best_epoch - 1]["val_loss"],
            "val_accuracy": None,
            "device": r.device,
            "precision": r.precision,
            "seconds": r.seconds,
            "stop_reason": r.extra["stop_reason"],
            "target": r.extra["target"],
        },
        "training_history": r.history,
        "train_config": r.extra["train_config"],
    }
    path = tmp_path_factory.mktemp("regressor") / "model"
    save_bundle(str(path), r.network, pre, [], "y", extra=meta)
    return load_bundle(str(path)), train, test


@pytest.fixture(scope="module")
def ev(bundle_and_data) -> Evaluation:
    bundle, train, test = bundle_and_data
    return compare(bundle, test, GatePolicy(bootstrap_resamples=500), train_df=train)


@pytest.fixture(scope="module")
def page(ev) -> str:
    return render_html(ev, "house-prices")


def _svg(page: str, label: str) -> ET.Element:
    """The plot with this aria-label, parsed as XML (so it must be well formed)."""
    start = page.index(f'aria-label="{label}"')
    start = page.rindex("<svg", 0, start)
    return ET.fromstring(page[start : page.index("</svg>", start) + len("</svg>")])


def _scale(svg: ET.Element, axis: str) -> tuple[float, float]:
    """(pixels per unit, pixel of 0) of an axis, read back from its tick labels."""
    ticks = [
        (float(t.get(axis, "")), float(t.text or ""))
        for t in svg.iter(f"{SVG}text")
        if t.get("class") == f"tick-label {axis}"
    ]
    (p0, v0), (p1, v1) = ticks[0], ticks[-1]
    per = (p1 - p0) / (v1 - v0)
    # y labels sit 3.5 px below their tick
    return per, p0 - v0 * per - (3.5 if axis == "y" else 0.0)


def _dots(svg: ET.Element, who: str) -> list[tuple[float, float]]:
    """Data coordinates of one model's dots, mapped back through the axes."""
    (xs, x0), (ys, y0) = _scale(svg, "x"), _scale(svg, "y")
    group = next(g for g in svg.iter(f"{SVG}g") if g.get("class") == f"points {who}")
    return [
        ((float(c.get("cx", "")) - x0) / xs, (float(c.get("cy", "")) - y0) / ys)
        for c in group.iter(f"{SVG}circle")
    ]


def _close(got: list[tuple[float, float]], want: list[tuple[float, float]], tol: float) -> bool:
    return len(got) == len(want) and all(
        abs(a - c) <= tol and abs(b - d) <= tol for (a, b), (c, d) in zip(got, want, strict=True)
    )


def test_the_evaluation_is_a_regression(ev):
    assert ev.task == "regression" and ev.points and ev.decision.task == "regression"
    assert set(ev.improvement_ci) == {"mse", "mae"}


def test_the_page_parses_is_self_contained_and_plots_both_models(ev, page):
    parsed = _Page(page)
    assert "DEPLOYED" in parsed.all_text() and ev.decision.reason in parsed.all_text()
    assert _self_contained(page)
    labels = [a.get("aria-label") for tag, a in parsed.elements if tag == "svg"]
    # the two prediction plots and the loss curve: no matrices, ROC, reliability or accuracy
    assert labels == ["Predicted against actual", "Residuals against predicted", "Loss per epoch"]


def test_predicted_against_actual_has_a_dot_per_row_and_model_and_the_diagonal(ev, page):
    svg = _svg(page, "Predicted against actual")
    actual = ev.points["actual"]
    xs, _ = _scale(svg, "x")
    tol = 0.15 / abs(xs)  # coordinates rounded to 0.1 px, in data units
    for who in ("challenger", "champion"):
        assert _close(_dots(svg, who), list(zip(actual, ev.points[who], strict=True)), tol), who
    # shared axes: the same ticks on both, so the diagonal is y = x corner to corner
    x_ticks = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "tick-label x"]
    y_ticks = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "tick-label y"]
    assert x_ticks == y_ticks
    panel = next(svg.iter(f"{SVG}rect"))
    left, top = float(panel.get("x")), float(panel.get("y"))
    right, bottom = left + float(panel.get("width")), top + float(panel.get("height"))
    (diagonal,) = [e for e in svg.iter(f"{SVG}line") if e.get("class") == "diagonal"]
    ends = [float(diagonal.get(k)) for k in ("x1", "y1", "x2", "y2")]
    assert ends == pytest.approx([left, bottom, right, top], abs=0.06)
    legend = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert legend[:2] == ["champion", "challenger"] and "y = x" in legend[2]


def test_residuals_against_predicted_have_a_dot_per_row_and_model_and_a_zero_line(ev, page):
    svg = _svg(page, "Residuals against predicted")
    (xs, _), (ys, y_zero) = _scale(svg, "x"), _scale(svg, "y")
    tol = 0.15 / min(abs(xs), abs(ys))
    for who in ("challenger", "champion"):
        want = [(p, p - a) for a, p in zip(ev.points["actual"], ev.points[who], strict=True)]
        assert _close(_dots(svg, who), want, tol), who
    # the challenger is close to the truth, the training-mean baseline is not
    spread = {who: max(abs(r) for _, r in _dots(svg, who)) for who in ("challenger", "champion")}
    assert spread["challenger"] < spread["champion"]
    (zero,) = [e for e in svg.iter(f"{SVG}line") if e.get("class") == "zero"]
    assert float(zero.get("y1")) == float(zero.get("y2")) == pytest.approx(y_zero, abs=0.15)


def test_the_metric_table_shows_the_evaluations_numbers_and_the_gates_intervals(ev, page):
    parsed = _Page(page)
    new, old, ci = ev.challenger, ev.champion, ev.improvement_ci
    rows = {name: [text for text, _ in parsed.metric_row(name)] for name in ("RMSE", "MAE", "R²")}
    assert rows["RMSE"][1:4] == [
        f"{new['rmse']:.4f}",
        f"{old['rmse']:.4f}",
        f"{old['rmse'] - new['rmse']:+.4f}",
    ]
    assert rows["MAE"][1:4] == [
        f"{new['mae']:.4f}",
        f"{old['mae']:.4f}",
        f"{old['mae'] - new['mae']:+.4f}",
    ]
    # R²: higher is better, so the challenger's minus the champion's
    assert rows["R²"][1:4] == [
        f"{new['r2']:.4f}",
        f"{old['r2']:.4f}",
        f"{new['r2'] - old['r2']:+.4f}",
    ]
    # the intervals are of MSE and MAE: RMSE and R² carry none
    assert rows["RMSE"][4] == rows["R²"][4] == "–"
    assert rows["MAE"][4] == f"[{ci['mae'].low:+.4f}, {ci['mae'].high:+.4f}]"
    mse = parsed.metric_row("MSE")
    assert mse[1][0] == f"{new['rmse'] ** 2:.4f}" and mse[2][0] == f"{old['rmse'] ** 2:.4f}"
    assert mse[4][0] == f"[{ci['mse'].low:+.4f}, {ci['mse'].high:+.4f}]"
    # the challenger is far better than the training mean: both intervals exclude 0
    assert ci["mse"].low > 0 and ci["mae"].low > 0
    assert mse[3][1] == mse[4][1] == "up" and parsed.metric_row("MAE")[4][1] == "up"
    assert parsed.metric_row("RMSE")[3][1] == ""


def test_only_intervals_that_exclude_zero_are_coloured(ev):
    ci = ev.improvement_ci
    worse = Interval(-ci["mse"].estimate, -ci["mse"].high, -ci["mse"].low, "percentile")
    unsure = Interval(0.1, -0.5, 0.7, "percentile")
    d = replace(ev.decision, improvement_ci={"mse": worse, "mae": unsure})
    parsed = _Page(render_html(replace(ev, decision=d), "m"))
    assert [c for _, c in parsed.metric_row("MSE")[3:]] == ["down", "down"]
    assert [c for _, c in parsed.metric_row("MAE")[3:]] == ["", ""]
    markdown = render_markdown(replace(ev, decision=d), "m")
    assert f"**{_signed_row(markdown, 'MSE')}**" in markdown
    assert "**" not in _row(markdown, "MAE")


def _row(markdown: str, name: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| {name} |"))


def _signed_row(markdown: str, name: str) -> str:
    return _row(markdown, name).split(" | ")[3].strip("*")


def test_the_decision_block_states_the_test_power_in_points_of_r2_and_the_checks(ev, page):
    d, power = ev.decision, ev.decision.power
    parsed = _Page(page)
    test = {row[0][0]: row[1][0] for row in parsed.tables["table2"] if len(row) == 2}
    assert test["test"] == d.test and test["p-value"].startswith("p ")
    assert test["margin"] == "0 in R²"
    chance = "chance this rule deploys a challenger better by 0.01 in R² (target_effect)"
    assert test[chance] == f"{power.power_at_target:.2f}"
    assert test["smallest gain found with 80% power at this size"] == (
        f"{power.minimum_detectable_effect:.4g} in R²"
    )
    rows = "test rows needed to find 0.01 in R² with 80% power at the observed spread"
    assert test[rows] == f"about {power.rows_for_target:,}"
    assert parsed.tags.count("li") == len(d.checks)
    assert f"lower bound {d.checks[0].lower_bound:+.4f}" in parsed.all_text()


def test_the_provenance_shows_the_target_and_no_accuracy(ev, page):
    facts = {row[0][0]: row[1][0] for row in _Page(page).tables["provenance"]}
    target = ev.provenance["training"]["target"]
    assert f"mean {target['mean']:.4g}" in facts["target"]
    assert f"standard deviation {target['scale']:.4g}" in facts["target"]
    assert "standardised target" in facts["training"]


def test_nothing_of_classification_in_the_regression_report(ev, page):
    for text in (page.lower(), render_markdown(ev, "m").lower()):
        for word in CLASSIFICATION_WORDS:
            assert re.search(rf"\b{word}", text) is None, word


def test_the_markdown_table_has_the_regression_metrics(ev):
    markdown = render_markdown(ev, "house-prices")
    new, old, ci = ev.challenger, ev.champion, ev.improvement_ci
    assert _row(markdown, "RMSE") == (
        f"| RMSE | {new['rmse']:.4f} | {old['rmse']:.4f} | {old['rmse'] - new['rmse']:+.4f} | – |"
    )
    assert _row(markdown, "MAE") == (
        f"| MAE | {new['mae']:.4f} | {old['mae']:.4f} | **{old['mae'] - new['mae']:+.4f}** | "
        f"[{ci['mae'].low:+.4f}, {ci['mae'].high:+.4f}] |"
    )
    assert _row(markdown, "R²") == (
        f"| R² | {new['r2']:.4f} | {old['r2']:.4f} | {new['r2'] - old['r2']:+.4f} | – |"
    )
    assert ev.decision.reason in markdown and f"- test: {ev.decision.test};" in markdown
    assert "0.01 in R²" in markdown


def test_a_sample_of_the_rows_is_named_as_such(ev):
    few = {k: v[:40] for k, v in ev.points.items()}
    page = render_html(replace(ev, points=few), "m")
    assert f"a fixed sample of 40 of the {ev.decision.counts.test_rows:,} test rows" in page
    svg = _svg(page, "Predicted against actual")
    assert len(_dots(svg, "challenger")) == len(_dots(svg, "champion")) == 40


def test_without_points_the_plots_are_left_out(ev):
    page = render_html(replace(ev, points=None), "m")
    assert "Predicted against actual" not in page and "Loss per epoch" in page


def test_absolute_error_speaks_of_skill_points_not_r2(bundle_and_data):
    bundle, train, test = bundle_and_data
    policy = GatePolicy(bootstrap_resamples=200, regression_error="absolute")
    ev = compare(bundle, test, policy, train_df=train)
    page, markdown = render_html(ev, "m"), render_markdown(ev, "m")
    eff = ev.decision.effect.regression
    assert "mean absolute deviation" in page and "0.01 in skill" in markdown
    assert f"Mean absolute error {eff['mae_challenger']:.4g} for the challenger" in markdown
    assert not math.isnan(ev.challenger["rmse"])


def test_a_ledger_deploy_speaks_of_no_accuracy_gain(ev):
    # what compare attaches to a regression deploy under a ledger: no adjusted gain, and a
    # note about the classification test it is derived for
    account = SimpleNamespace(
        accounting="per_champion",
        promise="at most alpha per champion",
        alpha=0.05,
        spent_before=0.0,
        attempt=1,
        deploys_before=0,
    )
    rows = SimpleNamespace(which="all", use=np.ones(100, bool), fresh=100, reused=0, reason="x")
    accounting = SimpleNamespace(
        account=account,
        rows=rows,
        why="the first attempt against this champion.",
        ledger={},
        adjusted=None,
        adjusted_note="no selection-adjusted gain: it is derived for the exact McNemar test on "
        "accuracy alone without a margin, and this deploy was decided by " + ev.decision.test,
    )
    d = replace(ev.decision, accounting=accounting)
    page = render_html(replace(ev, decision=d), "m")
    markdown = render_markdown(replace(ev, decision=d), "m")
    facts = {row[0][0]: row[1][0] for row in _Page(page).tables["accounting"]}
    assert facts["selection-adjusted gain"].startswith("none: it is derived for classification")
    assert "- selection-adjusted gain: none" in markdown
    for text in (page.lower(), markdown.lower()):
        assert "mcnemar" not in text and "accuracy" not in text
