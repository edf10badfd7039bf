"""Expected calibration error and the report's reliability section."""

from __future__ import annotations

import numpy as np
import pytest

from components.core.evaluation.calibration import (
    expected_calibration_error,
    reliability,
    reliability_html,
)


def _loop_ece(y, proba, bins=10):
    """Guo et al.'s definition, row by row."""
    conf, pred = proba.max(1), proba.argmax(1)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [i for i in range(len(y)) if (lo < conf[i] <= hi) or (b == 0 and conf[i] == 0)]
        if inside:
            acc = np.mean([pred[i] == y[i] for i in inside])
            total += len(inside) / len(y) * abs(acc - np.mean(conf[inside]))
    return total


def _sample(seed, n, k, sharpen):
    rng = np.random.default_rng(seed)
    true_p = rng.dirichlet(np.ones(k) * 0.5, size=n)
    y = np.array([rng.choice(k, p=p) for p in true_p])
    claimed = true_p**sharpen
    return y, claimed / claimed.sum(1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_ece_matches_the_definition_row_by_row(seed):
    y, proba = _sample(seed, 500, 3, 2.0)
    assert expected_calibration_error(y, proba) == pytest.approx(_loop_ece(y, proba), abs=1e-12)


def test_calibrated_probabilities_have_small_ece_and_sharpened_ones_large():
    y, honest = _sample(2, 20_000, 4, 1.0)
    _, sharp = _sample(2, 20_000, 4, 3.0)
    assert expected_calibration_error(y, honest) < 0.02
    assert expected_calibration_error(y, sharp) > 0.05


def test_bins_count_every_row_and_the_html_shows_both_models():
    y, proba = _sample(3, 300, 2, 1.5)
    curve = reliability(y, proba)
    assert sum(b["rows"] for b in curve["bins"]) == 300
    page = reliability_html({"challenger": curve, "champion": reliability(y, proba**0)})
    assert page.count("ECE") >= 2 and "<svg" in page and "champion" in page
    assert reliability_html(None) == ""
    assert np.isnan(reliability(np.zeros(0), np.zeros((0, 2)))["ece"])


def test_the_report_shows_both_models_calibration_only_when_it_has_it():
    from dataclasses import replace

    from components.core.evaluation.report import render_html
    from tests.core.test_report import _evaluation

    ev = _evaluation(binary=True)
    assert "Calibration" not in render_html(ev, "m")
    y, proba = _sample(4, 200, 2, 1.0)
    honest, sharp = reliability(y, proba), reliability(y, proba**4 / (proba**4).sum(1)[:, None])
    page = render_html(replace(ev, calibration={"challenger": honest, "champion": sharp}), "m")
    assert "Calibration (reliability of the probabilities)" in page
    assert f"challenger: ECE {honest['ece']:.4f}" in page
    assert f"champion: ECE {sharp['ece']:.4f}" in page
