"""Calibration of class probabilities: expected calibration error (ECE) and the reliability
diagram the report shows for both models.

A model is calibrated when, of the rows it gives confidence 0.9, 90% are right. Both are
computed on the top class (the predicted class and its probability), in ``BINS`` equal-width
confidence bins: ECE = sum over bins of (rows in bin / rows) x |accuracy - mean confidence|,
as Guo et al. (2017) define it. The challenger's probabilities are temperature-scaled on its
validation rows (``training.calibrate``); a champion from before that may not be.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

__all__ = ["BINS", "expected_calibration_error", "reliability", "reliability_html"]

BINS = 10
COLORS = {"challenger": "#1f5fbf", "champion": "#c0392b"}


def reliability(y: np.ndarray, proba: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Per confidence bin: rows, mean confidence and accuracy of the top class; and the ECE.

    ``y``: class indices; ``proba``: one row of class probabilities per row of ``y``."""
    y = np.asarray(y)
    proba = np.asarray(proba, np.float64)
    if len(y) == 0:
        return {"ece": float("nan"), "rows": 0, "bins": []}
    confidence = proba.max(axis=1)
    right = (proba.argmax(axis=1) == y).astype(np.float64)
    # bin b holds confidence in (b/bins, (b+1)/bins]; a confidence of exactly 0 goes in bin 0
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=bins)
    right_sum = np.bincount(index, weights=right, minlength=bins)
    out = []
    ece = 0.0
    for b in range(bins):
        if count[b]:
            conf, acc = conf_sum[b] / count[b], right_sum[b] / count[b]
            ece += count[b] / len(y) * abs(acc - conf)
            out.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "rows": int(count[b]),
                    "confidence": float(conf),
                    "accuracy": float(acc),
                }
            )
    return {"ece": float(ece), "rows": int(len(y)), "bins": out}


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = BINS) -> float:
    return float(reliability(y, proba, bins)["ece"])


def reliability_html(curves: dict[str, dict[str, Any]] | None) -> str:
    """The report's calibration section: ECE of each model and one reliability diagram
    (accuracy against confidence per bin, the diagonal is perfect calibration, dot area
    by rows); "" when there are no curves."""
    if not curves:
        return ""
    size, pad = 300, 40
    span = size - 2 * pad

    def xy(conf: float, acc: float) -> tuple[float, float]:
        return pad + conf * span, size - pad - acc * span

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 140}" height="{size}" '
        'role="img" aria-label="reliability diagram">',
        f'<rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="none" stroke="#999"/>',
        f'<line x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{pad}" stroke="#999" '
        'stroke-dasharray="4 3"/>',
        f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" font-size="12">'
        "confidence (top class)</text>",
        f'<text x="12" y="{size / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 12 {size / 2})">accuracy</text>',
    ]
    for tick in (0.0, 0.5, 1.0):
        x, y = xy(tick, tick)
        parts.append(
            f'<text x="{x:.1f}" y="{size - pad + 14}" font-size="10" text-anchor="middle">'
            f"{tick:g}</text>"
            f'<text x="{pad - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{tick:g}</text>'
        )
    rows_line = []
    for k, (name, curve) in enumerate(curves.items()):
        color = COLORS.get(name, "#555")
        total = max(int(curve.get("rows") or 0), 1)
        points = [xy(b["confidence"], b["accuracy"]) for b in curve.get("bins", [])]
        if points:
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
                + '"/>'
            )
        for (x, y), b in zip(points, curve.get("bins", []), strict=True):
            radius = 2 + 6 * (b["rows"] / total) ** 0.5
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{color}" '
                f'fill-opacity="0.6"><title>{html.escape(name)}: {b["rows"]} rows, confidence '
                f"{b['confidence']:.3f}, accuracy {b['accuracy']:.3f}</title></circle>"
            )
        ece = float(curve.get("ece", float("nan")))
        parts.append(
            f'<text x="{size - pad + 12}" y="{pad + 16 + 18 * k}" font-size="12" '
            f'fill="{color}">{html.escape(name)}: ECE {ece:.4f}</text>'
        )
        rows_line.append(
            f"<tr><td>{html.escape(name)}</td><td>{ece:.4f}</td>"
            f"<td>{sum(b['rows'] for b in curve.get('bins', []) if b['high'] == 1.0)}</td></tr>"
        )
    parts.append("</svg>")
    return (
        "<h2>Calibration (reliability of the probabilities)</h2>"
        '<table id="calibration"><tr><th>model</th><th>expected calibration error</th>'
        "<th>rows with confidence above 0.9</th></tr>"
        + "".join(rows_line)
        + "</table>"
        + "".join(parts)
        + f'<p class="muted">Rows binned by the probability of the predicted class ({BINS} '
        "equal-width bins); each dot is a bin's accuracy against its mean confidence (area: "
        "rows). On the dashed diagonal a model's probabilities mean what they say; below it, "
        "over-confident. ECE: the rows-weighted mean distance from the diagonal.</p>"
    )
