"""The report renders: well-formed HTML with the verdict, both matrices, ROC and CIs."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np

from components.core.gate import GatePolicy, decide
from components.core.metrics import classification_metrics, confusion_matrix, roc_points
from components.core.report import render_html, render_markdown
from components.core.steps import Evaluation, improvement_intervals


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _evaluation(binary: bool) -> Evaluation:
    rng = np.random.default_rng(0)
    k = 2 if binary else 4
    n = 200
    y = rng.integers(0, k, n)
    good = np.eye(k)[y] * 0.7 + rng.dirichlet(np.ones(k), n) * 0.3
    bad = rng.dirichlet(np.ones(k), n)
    d = decide(GatePolicy(), y, good, bad, champion_name="version 3", first_run=False)
    return Evaluation(
        decision=d,
        classes=list(range(k)),
        challenger=classification_metrics(y, good),
        champion=classification_metrics(y, bad),
        confusion_challenger=confusion_matrix(y, good.argmax(1), k),
        confusion_champion=confusion_matrix(y, bad.argmax(1), k),
        roc_challenger=roc_points(y, good[:, 1]) if binary else None,
        roc_champion=roc_points(y, bad[:, 1]) if binary else None,
        improvement_ci=improvement_intervals(y, good, bad, 0.95, 500, 0),
    )


def test_binary_report_has_verdict_matrices_roc_and_intervals():
    ev = _evaluation(binary=True)
    page = render_html(ev, "m")
    parser = _Tags()
    parser.feed(page)
    assert parser.tags.count("svg") == 3  # two confusion matrices and the ROC plot
    assert "polyline" in parser.tags
    text = " ".join(parser.text)
    assert "DEPLOYED" in text and ev.decision.reason in text
    low = ev.improvement_ci["accuracy"]["low"]
    assert f"{low:.4f}" in text
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_multiclass_report_has_no_roc_and_markdown_summarises():
    ev = _evaluation(binary=False)
    parser = _Tags()
    parser.feed(render_html(ev, "m"))
    assert parser.tags.count("svg") == 2
    md = render_markdown(ev, "m")
    assert md.startswith("## sigdeploy: m — deployed")
    assert "| Accuracy |" in md and "p = " in md


def test_report_says_what_each_interval_resampled(monkeypatch):
    from components.core import stats

    ev = _evaluation(binary=True)
    text = render_html(ev, "m")
    assert "Accuracy: multinomial draws of the four agreement cells" in text
    assert "Log loss: rows resampled with replacement" in text
    # The same test set counted as "many rows": the large-sample forms are named instead.
    monkeypatch.setattr(stats, "_ROWWISE_BOOTSTRAP_BUDGET", 0)
    monkeypatch.setattr(stats, "_MEAN_BINS", 8)
    monkeypatch.setattr(stats, "_MEAN_TAIL", 2)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    good = np.eye(2)[y] * 0.7 + rng.dirichlet(np.ones(2), 200) * 0.3
    bad = rng.dirichlet(np.ones(2), 200)
    ci = improvement_intervals(y, good, bad, 0.95, 500, 0)
    assert ci["log_loss"]["method"] == "quantile groups"
    assert ci["roc_auc"]["method"] == "delong normal"
