"""The report renders: well-formed, self-contained HTML with the verdict, provenance, training
curves, both matrices, a readable ROC plot and one sign convention; and a Markdown summary."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timezone
from html.parser import HTMLParser

import numpy as np

from components.core.evaluation.compare import Evaluation, collect_provenance
from components.core.evaluation.gate import GatePolicy, decide
from components.core.evaluation.metrics import classification_metrics, confusion_matrix, roc_points
from components.core.evaluation.report import render_html, render_markdown

HISTORY = [
    {
        "epoch": e,
        "train_loss": 1.2 / e,
        "train_accuracy": 0.6 + 0.1 * e,
        "val_loss": [1.0, 0.6, 0.5, 0.55][e - 1],
        "val_accuracy": [0.7, 0.8, 0.85, 0.84][e - 1],
        "learning_rate": 0.003,
        "seconds": 0.5,
        "train_seconds": 0.4,
        "samples_per_second": 2000.0 + e,
    }
    for e in (1, 2, 3, 4)
]
META = {
    "inputs": {
        "source": "data/customers.csv",
        "source_kind": "csv",
        "columns_used": ["age", "income", "plan"],
        "columns_dropped": {"customer_id": "ID-like: every value is unique"},
    },
    "training": {
        "rows": 700,
        "data_sha256": "ab12" * 16,
        "val_rows": 150,
        "best_epoch": 3,
        "epochs_run": 4,
        "val_loss": 0.5,
        "val_accuracy": 0.85,
        "device": "cpu",
        "precision": "fp32",
        "seconds": 2.25,
        "stop_reason": "early_stopping",
        "cuda_graph": False,
        "streamed": False,
        "world_size": 1,
        "resumed_from_epoch": 0,
    },
    "training_history": HISTORY,
    "train_config": {"max_epochs": 60, "batch_size": 128, "learning_rate": 0.003},
}
SVG_NS = "http://www.w3.org/2000/svg"
WHEN = datetime(2024, 5, 6, 7, 8, 9, 654321, tzinfo=timezone.utc)


class _Page(HTMLParser):
    """Tags with their attributes, text, and the cells (text, class) of each table row."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.tables: dict[str, list[list[tuple[str, str]]]] = {}
        self._table = ""
        self._cell: list[str] | None = None
        self._cell_class = ""
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.elements.append((tag, attrs))
        if tag == "table":
            self._table = attrs.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr":
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell, self._cell_class = [], attrs.get("class") or ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            self.tables[self._table][-1].append((text, self._cell_class))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def all_text(self) -> str:
        return " ".join(self.text)

    def with_class(self, cls: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if cls in (a.get("class") or "").split()]

    def metric_row(self, name: str) -> list[tuple[str, str]]:
        return next(r for r in self.tables["metrics"] if r and r[0][0] == name)


def _evaluation(binary: bool, provenance: bool = True, good=None, bad=None, y=None) -> Evaluation:
    rng = np.random.default_rng(0)
    k = 2 if binary else 4
    n = 200
    if y is None:
        y = rng.integers(0, k, n)
        good = np.eye(k)[y] * 0.7 + rng.dirichlet(np.ones(k), n) * 0.3
        bad = rng.dirichlet(np.ones(k), n)
    policy = GatePolicy(bootstrap_resamples=500)
    d = decide(policy, y, good, bad, champion_name="version 3", first_run=False)
    return Evaluation(
        decision=d,
        classes=["no", "yes"] if binary else list(range(k)),
        challenger=classification_metrics(y, good),
        champion=classification_metrics(y, bad),
        confusion_challenger=confusion_matrix(y, good.argmax(1), k),
        confusion_champion=confusion_matrix(y, bad.argmax(1), k),
        roc_challenger=roc_points(y, good[:, 1]) if binary else None,
        roc_champion=roc_points(y, bad[:, 1]) if binary else None,
        champion_version="3",
        provenance=collect_provenance(
            META, test_rows=len(y), champion="version 3", champion_version="3", now=WHEN
        )
        if provenance
        else {},
    )


def _self_contained(page: str) -> bool:
    outside = re.search(r"(https?:)?//|\bsrc=|\bhref=|url\(", page.replace(SVG_NS, ""))
    return "<script" not in page.lower() and outside is None


def test_binary_report_has_verdict_matrices_roc_and_intervals():
    ev = _evaluation(binary=True)
    page = render_html(ev, "m")
    parsed = _Page(page)
    # two confusion matrices, loss and accuracy per epoch, the ROC plot
    assert parsed.tags.count("svg") == 5
    assert "polyline" in parsed.tags
    text = parsed.all_text()
    assert "DEPLOYED" in text and ev.decision.reason in text
    low, high = ev.improvement_ci["accuracy"].low, ev.improvement_ci["accuracy"].high
    assert parsed.metric_row("Accuracy")[4][0] == f"[{low:+.4f}, {high:+.4f}]"
    assert _self_contained(page)


def test_multiclass_report_has_no_roc_and_markdown_summarises():
    ev = _evaluation(binary=False)
    page = render_html(ev, "m")
    assert _Page(page).tags.count("svg") == 4  # matrices and training curves, no ROC
    assert "positive class" not in page
    md = render_markdown(ev, "m")
    assert md.startswith("## sigdeploy: m — deployed")
    assert "| Accuracy |" in md and "p = " in md


def test_roc_plot_has_ticks_auc_legend_positive_class_and_chance_line():
    ev = _evaluation(binary=True)
    page = render_html(ev, "m")
    assert "ROC curves (positive class: yes)" in _Page(page).all_text()  # classes[1]
    start = page.index("<svg", page.index("ROC curves (positive"))
    roc = _Page(page[start : page.index("</svg>", start)])
    assert "positive class: yes" in roc.elements[0][1]["aria-label"]
    for axis in ("x", "y"):
        labels = [a for a in roc.with_class("tick-label") if axis in a["class"].split()]
        assert len(labels) == 6
    ticks = ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert [t for t in roc.text if t in ticks] == ticks * 2  # labelled on both axes
    assert len(roc.with_class("tick")) == 12
    legend = [t for t in roc.text if "AUC" in t]
    assert legend == [
        f"challenger (AUC {ev.challenger['roc_auc']:.3f})",
        f"champion (AUC {ev.champion['roc_auc']:.3f})",
        "chance (AUC 0.500)",
    ]
    assert roc.with_class("chance")
    assert "false positive rate" in roc.text and "true positive rate" in roc.text


def test_training_curves_have_one_point_per_epoch_and_mark_the_best_epoch():
    ev = _evaluation(binary=True)
    parsed = _Page(render_html(ev, "m"))
    curves = parsed.with_class("curve")
    names = {a["class"] for a in curves}
    assert names == {
        "curve train-loss",
        "curve validation-loss",
        "curve train-accuracy",
        "curve validation-accuracy",
    }
    for a in curves:
        assert len(a["points"].split()) == len(HISTORY)
    assert len(parsed.with_class("best-point")) == 2  # on validation loss and accuracy
    marks = [a for t, a in parsed.elements if t == "line" and a.get("class") == "best-epoch"]
    assert len(marks) == 2 and all(a["x1"] == a["x2"] for a in marks)  # a vertical line each
    assert [t for t in parsed.text if t.startswith("best epoch")] == ["best epoch 3"] * 2
    text = parsed.all_text()
    assert "Loss per epoch" in text and "Accuracy per epoch" in text
    assert "epoch" in parsed.text and "validation loss" in parsed.text  # axis label, legend


def test_training_curves_are_skipped_without_history():
    ev = _evaluation(binary=True)
    ev.provenance["training_history"] = []
    page = render_html(ev, "m")
    assert "Training curves" not in page and 'class="curve' not in page
    assert _Page(page).tags.count("svg") == 3


def test_provenance_names_data_time_rows_columns_training_and_champion():
    ev = _evaluation(binary=True)
    rows = {r[0][0]: r[1][0] for r in _Page(render_html(ev, "m")).tables["provenance"]}
    assert rows["data source"] == "data/customers.csv (csv)"
    assert rows["evaluated"] == "2024-05-06T07:08:09Z (UTC)"
    assert rows["rows"] == "700 train / 150 validation / 200 test"
    assert rows["train rows sha256"] == "ab12" * 16
    assert rows["columns used"] == "3: age, income, plan"
    assert rows["columns left out"] == "customer_id (ID-like: every value is unique)"
    assert "4 epochs (at most 60)" in rows["training"]
    assert "best epoch 3" in rows["training"] and "early stopping" in rows["training"]
    assert rows["ran on"].startswith("cpu, fp32 precision")
    assert rows["time"] == "2.2 s; 2,002 rows/s (median epoch, training passes)"
    assert rows["compared with"] == "the champion, version 3"


def test_provenance_of_an_image_folder_and_a_first_run():
    meta = {
        "inputs": {
            "source": "/data/img",
            "source_kind": "image_folder",
            "image_size": 28,
            "image_mode": "L",
            "image_resample": "bilinear",
        }
    }
    prov = collect_provenance(meta, test_rows=50, champion="majority-class baseline")
    assert prov["first_run"] and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov["evaluated_at"]
    )
    ev = _evaluation(binary=True)
    ev.provenance, ev.champion_version = prov, None
    rows = {r[0][0]: r[1][0] for r in _Page(render_html(ev, "m")).tables["provenance"]}
    assert rows["data source"] == "/data/img (image_folder); images resized to 28×28 (L, bilinear)"
    assert rows["compared with"].startswith("majority-class baseline")
    assert "first run" in rows["compared with"]
    assert rows["training"] == "–" and rows["rows"] == "– train / – validation / 50 test"


def test_report_without_provenance_still_renders():
    ev = _evaluation(binary=True, provenance=False)
    page = render_html(ev, "m")
    parsed = _Page(page)
    rows = {r[0][0]: r[1][0] for r in parsed.tables["provenance"]}
    assert rows["data source"] == "–" and rows["evaluated"] == "–"
    assert rows["rows"] == "– train / – validation / 200 test"
    assert rows["compared with"] == "the champion, version 3"
    assert parsed.tags.count("svg") == 3 and _self_contained(page)
    md = render_markdown(ev, "m")
    assert "- data: –; rows: – train / – validation / 200 test; trained: –" in md


def test_log_loss_improvement_is_positive_when_the_challenger_is_better():
    ev = _evaluation(binary=True)
    new, old = ev.challenger["log_loss"], ev.champion["log_loss"]
    assert new < old  # the challenger is better
    row = _Page(render_html(ev, "m")).metric_row("Log loss")
    assert [c for c, _ in row[:4]] == ["Log loss", f"{new:.4f}", f"{old:.4f}", f"{old - new:+.4f}"]
    assert row[3][1] == "up"  # its interval lies above 0
    ci = ev.improvement_ci["log_loss"]
    assert ci.low > 0 and row[4][0] == f"[{ci.low:+.4f}, {ci.high:+.4f}]"
    header = _Page(render_html(ev, "m")).tables["metrics"][0]
    assert [c for c, _ in header][3] == "improvement"
    assert "difference" not in [c for c, _ in header]


def _close_models(seed: int = 1):
    """Two models that differ by noise only: every interval straddles 0."""
    rng = np.random.default_rng(seed)
    n = 200
    y = rng.integers(0, 2, n)
    base = np.eye(2)[y] * 0.4 + rng.dirichlet(np.ones(2), n) * 0.6
    other = np.clip(base + rng.normal(0, 0.08, base.shape), 0.01, None)
    return y, base, other / other.sum(1, keepdims=True)


def test_only_significant_improvements_are_coloured():
    y, a, b = _close_models()
    ev = _evaluation(binary=True, y=y, good=a, bad=b)
    assert all(ci.low < 0 < ci.high for ci in ev.improvement_ci.values())
    parsed = _Page(render_html(ev, "m"))
    for row in parsed.tables["metrics"][1:]:
        assert row[3][1] == "" and row[4][1] == "", row  # neutral, whatever the sign
    # significant either way: green for the better challenger, red for the worse one
    better = _Page(render_html(_evaluation(binary=True), "m"))
    assert better.metric_row("Accuracy")[3][1] == "up"
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    good = np.eye(2)[y] * 0.7 + rng.dirichlet(np.ones(2), 200) * 0.3
    bad = rng.dirichlet(np.ones(2), 200)
    worse = _Page(render_html(_evaluation(binary=True, y=y, good=bad, bad=good), "m"))
    assert worse.metric_row("Accuracy")[3][1] == "down"
    loss_good, loss_bad = (classification_metrics(y, p)["log_loss"] for p in (good, bad))
    assert worse.metric_row("Log loss")[3] == (f"{loss_good - loss_bad:+.4f}", "down")


def test_an_improvement_without_interval_is_neutral():
    ev = _evaluation(binary=False)  # ROC AUC has no interval for several classes
    row = _Page(render_html(ev, "m")).metric_row("ROC AUC")
    assert row[4][0] == "–" and row[3][1] == ""


def test_markdown_carries_the_same_numbers_and_convention():
    ev = _evaluation(binary=True)
    md = render_markdown(ev, "m")
    parsed = _Page(render_html(ev, "m"))
    assert ev.decision.reason in md
    header = "| metric | challenger | champion (version 3) | improvement | one-sided 95% bounds |"
    assert header in md
    for row in parsed.tables["metrics"][1:]:
        cells = [c for c, _ in row]
        gain = f"**{cells[3]}**" if row[3][1] else cells[3]
        assert f"| {cells[0]} | {cells[1]} | {cells[2]} | {gain} | {cells[4]} |" in md
    assert "positive = challenger better" in md
    assert (
        "- data: data/customers.csv (csv); rows: 700 train / 150 validation / 200 test; "
        "trained: 4 epochs (best 3, early stopping) on cpu in 2.2 s" in md
    )
    assert "- test: " in md and "p = " in md
    y, a, b = _close_models()
    assert "**" not in render_markdown(_evaluation(binary=True, y=y, good=a, bad=b), "m")


def test_report_says_what_each_interval_resampled(monkeypatch):
    from components.core.evaluation import stats

    ev = _evaluation(binary=True)
    text = render_html(ev, "m")
    assert "Accuracy: McNemar&#x27;s test inverted at the observed discordance" in text
    assert "Log loss: rows resampled with replacement, BCa (bias-corrected and accelerated)" in text
    assert "ROC AUC: DeLong&#x27;s variance with Student t" in text
    # The same test set counted as "many rows": the large-sample forms are named instead.
    monkeypatch.setattr(stats, "_ROWWISE_BOOTSTRAP_BUDGET", 0)
    monkeypatch.setattr(stats, "_MEAN_BINS", 8)
    monkeypatch.setattr(stats, "_MEAN_TAIL", 2)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    good = np.eye(2)[y] * 0.7 + rng.dirichlet(np.ones(2), 200) * 0.3
    bad = rng.dirichlet(np.ones(2), 200)
    policy = GatePolicy(bootstrap_resamples=500)
    ci = decide(policy, y, good, bad, champion_name="v", first_run=False).improvement_ci
    assert ci["log_loss"].method == "quantile groups bca"
    assert ci["roc_auc"].method == "delong t"  # the test's own bounds, at any size


# ------------------------------------------------------------------ excluded test rows
# (issue 12: the rows the champion trained or validated on are left out of the comparison)


def test_the_report_says_which_test_rows_were_excluded_and_why():
    from components.core.evaluation.compare import exclude_seen

    ev = _evaluation(binary=True)
    _, weaker = exclude_seen(_frame(5), None, "3")
    cases = {
        "full": {
            "rows": 480,
            "test_rows": 597,
            "compared": 117,
            "guarantee": "full",
            "why": "480 of 597 test rows were among the 1,200 rows the champion (version 3) "
            "trained or validated on (salt 'x'), so they are left out",
        },
        "weaker": weaker,
    }
    for name, excluded in cases.items():
        ev.provenance = collect_provenance(
            META, test_rows=117, champion="version 3", champion_version="3", excluded=excluded
        )
        rows = {r[0][0]: r[1][0] for r in _Page(render_html(ev, "m")).tables["provenance"]}
        md = render_markdown(ev, "m")
        if name == "full":
            assert rows["excluded"] == excluded["why"]
            assert f"- excluded test rows: {excluded['why']}" in md
        else:
            assert rows["excluded"].startswith("none, with a weaker guarantee: the champion")
            assert "all 5 test rows are compared" in rows["excluded"]
    ev.provenance = {}
    rows = {r[0][0]: r[1][0] for r in _Page(render_html(ev, "m")).tables["provenance"]}
    assert rows["excluded"] == "–"  # an evaluation recorded before sigdeploy kept it


def _frame(n: int):
    import pandas as pd

    return pd.DataFrame({"a": range(n), "label": [0, 1] * (n // 2) + [0] * (n % 2)})


# ------------------------------------------------------------------ issue 13: honest numbers


def test_the_bounds_shown_are_the_one_sided_ones_the_rule_uses():
    ev = _evaluation(binary=True)
    d = ev.decision
    page = _Page(render_html(ev, "m"))
    header = [c for c, _ in page.tables["metrics"][0]]
    assert header[4] == "one-sided 95% lower and upper bounds"
    row = page.metric_row("Accuracy")
    ci = ev.improvement_ci["accuracy"]
    # the accuracy lower bound is the test's own, and it is above 0 exactly when it deployed
    assert ci.low == d.effect.accuracy_lower_bound
    assert (ci.low > 0) == d.deploy and row[4][0] == f"[{ci.low:+.4f}, {ci.high:+.4f}]"


def test_an_underflowed_p_value_prints_as_a_bound_and_alpha_in_words():
    from dataclasses import replace

    ev = _evaluation(binary=True)
    ev = replace(ev, decision=replace(ev.decision, p_value=0.0))
    text = render_html(ev, "m")
    md = render_markdown(ev, "m")
    assert "p &lt; 1e-300" in text and "p < 1e-300" in md
    assert "p = 0" not in md and "p = 0<" not in text
    words = "if the challenger were no better, this check would deploy it in at most 5% of runs"
    assert words in text and words in md
    assert "risk of deploying" not in text


def test_the_report_states_power_at_the_target_effect_and_a_bayesian_reading():
    ev = _evaluation(binary=True)
    page = render_html(ev, "m")
    md = render_markdown(ev, "m")
    assert "power for the observed effect" not in page
    assert "chance this rule deploys a challenger +1.0 points better (target_effect)" in page
    assert "test rows needed to find +1.0 points with 80% power" in md
    assert "the probability that the challenger is better than the champion is" in page
    assert "by deploying" in md and "by keeping the champion" in md


def test_approximate_checks_carry_their_measured_rate_and_floors_read_as_at_most():
    """Issue 13: the bootstrap guardrail says how often it was measured to pass falsely,
    and a Berger-Boos p-value at its floor prints as "p <= ..."."""
    from components.core.evaluation.gate import Check
    from components.core.evaluation.report import _check_text

    check = Check("log_loss non-inferior within 0.05", True, lower_bound=0.01, approximate=True)
    assert "measured false-pass rate" in _check_text(check)
    floor = Check("accuracy better by more than the margin 0.01", True, p_value=5e-5,
                  p_at_floor=True)  # fmt: skip
    assert "(p <= 5.0e-05)" in _check_text(floor)
    assert "(p = 5.0e-05)" in _check_text(replace(floor, p_at_floor=False))
