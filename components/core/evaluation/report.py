"""The evaluation report: a self-contained HTML page (plots as inline SVG, no scripts, no
network) and a short Markdown summary. Written by the evaluate step, shown in the Vertex
console as HTML / Markdown artifacts, and by ``sigdeploy run`` locally.

One sign convention throughout: an improvement is positive when the challenger is better
(for log loss, the champion's loss minus the challenger's), in the metric's own unit. Colour
marks only what its interval shows: green wholly above 0, red wholly below 0.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from statistics import median
from typing import TYPE_CHECKING, Any

from components.core.evaluation.calibration import reliability_html
from components.core.evaluation.gate import (
    alpha_meaning,
    approximate_words,
    confidence_text,
    p_text,
)
from components.core.io import write_text
from components.core.progress import duration

if TYPE_CHECKING:
    from components.core.evaluation.compare import Evaluation
    from components.core.evaluation.gate import Decision, Interval, Power

METRIC_ROWS = (
    ("accuracy", "Accuracy", True),
    ("macro_f1", "Macro F1", True),
    ("log_loss", "Log loss", False),
    ("roc_auc", "ROC AUC", True),
)

CHALLENGER_COLOR = "#1f5fbf"
CHAMPION_COLOR = "#c0392b"
TRAIN_COLOR = "#e67e22"
VALIDATION_COLOR = "#1f5fbf"
CHANCE_COLOR = "#999"

STOP_REASONS = {
    "early_stopping": "early stopping (validation loss stopped improving)",
    "max_epochs": "reached the maximum number of epochs",
    "on_epoch_end": "stopped by the epoch hook",
}

_SVG = 'xmlns="http://www.w3.org/2000/svg"'


# --------------------------------------------------------------------------------------
# Provenance: what the numbers were computed from
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# Number formatting
# --------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _f(x: Any, digits: int = 4) -> str:
    v = _num(x)
    return "–" if v is None else f"{v:.{digits}f}"


def _g(x: Any, signed: bool = False) -> str:
    """A value in the target's own unit, whatever its scale: 4 significant digits."""
    v = _num(x)
    if v is None:
        return "–"
    return f"{v:+.4g}" if signed else f"{v:.4g}"


def _signed(x: Any, digits: int = 4) -> str:
    """An improvement with its sign always shown; a rounded zero carries none."""
    v = _num(x)
    if v is None:
        return "–"
    s = f"{v:+.{digits}f}"
    return s[1:] if float(s) == 0 else s


def _count(x: Any) -> str:
    v = _num(x)
    return "–" if v is None else f"{int(v):,}"


def _seconds(x: Any) -> str:
    v = _num(x)
    if v is None:
        return "–"
    return f"{v:.1f} s" if v < 60 else duration(v)


def _power(d: Decision) -> Power:
    if d.power is None:
        raise ValueError("a report needs the decision's power figures: decide with explain=True")
    return d.power


def _mde(power: Power) -> str:
    mde = _num(power.minimum_detectable_effect)
    if mde is None:
        return power.note or "none at this test size"
    return f"{mde:.4f} ({mde * 100:+.1f} points)"


def _power_rows(power: Power) -> list[tuple[str, str]]:
    """(label, text) rows of the power of the rule that decides, at the target effect."""
    target = f"{power.target_effect * 100:+.1f} points"
    at = _num(power.power_at_target)
    rows = _num(power.rows_for_target)
    pct = f"{power.target_power:.0%}"
    return [
        ("rule the power is for", f"{power.rule}; {power.method}"),
        (
            f"chance this rule deploys a challenger {target} better (target_effect)",
            f"{at:.2f}" if at is not None else (power.note or "–"),
        ),
        (f"smallest gain found with {pct} power at this size", _mde(power)),
        (
            f"test rows needed to find {target} with {pct} power at the observed discordance",
            f"about {int(rows):,}" if rows is not None else (power.note or "–"),
        ),
        (
            "observed discordance (rows where exactly one model is right)",
            f"{power.discordant_rate:.2%}",
        ),
    ]


def _bayes_text(d: Decision) -> str:
    from components.core.evaluation.bayes import in_words

    return in_words(d.bayes) if d.bayes else ""


def _check_text(c: Any) -> str:
    text = c.name
    if c.p_value is not None:
        text += f" ({p_text(c.p_value, getattr(c, 'p_at_floor', False))})"
    if c.lower_bound is not None:
        text += f" (lower bound {_signed(c.lower_bound)})"
    if c.untested:
        text += f": not tested, {c.untested}"
    if c.approximate:
        text += f" [{approximate_words(c.name)}]"
    return text


def _improvement(new: Any, old: Any, higher_is_better: bool) -> float | None:
    """Positive = challenger better, in the metric's own unit."""
    a, b = _num(new), _num(old)
    if a is None or b is None:
        return None
    return a - b if higher_is_better else b - a


def _significance(ci: Interval | None) -> str:
    """'up' when the interval lies wholly above 0, 'down' wholly below, '' otherwise."""
    if not ci:
        return ""
    low, high = _num(ci.low), _num(ci.high)
    if low is not None and low > 0:
        return "up"
    if high is not None and high < 0:
        return "down"
    return ""


def _interval(ci: Interval | None) -> str:
    return f"[{_signed(ci.low)}, {_signed(ci.high)}]" if ci else "–"


# --------------------------------------------------------------------------------------
# Provenance as text
# --------------------------------------------------------------------------------------


def _source_text(inputs: dict[str, Any]) -> str:
    source = inputs.get("source")
    if not source:
        return "–"
    text = f"{source} ({inputs.get('source_kind') or 'unknown kind'})"
    if inputs.get("image_size"):
        size = inputs["image_size"]
        text += f"; images resized to {size}×{size}"
        extras = [str(inputs[k]) for k in ("image_mode", "image_resample") if inputs.get(k)]
        if extras:
            text += f" ({', '.join(extras)})"
    return text


def _rows_text(prov: dict[str, Any], test_rows: Any) -> str:
    training = prov.get("training") or {}
    return (
        f"{_count(training.get('rows'))} train / {_count(training.get('val_rows'))} validation "
        f"/ {_count(test_rows)} test"
    )


def _stop_text(training: dict[str, Any]) -> str:
    reason = training.get("stop_reason")
    return STOP_REASONS.get(reason, str(reason).replace("_", " ")) if reason else "–"


def _rows_per_second(training: dict[str, Any], history: list[dict[str, Any]]) -> str:
    rates = [v for v in (_num(h.get("samples_per_second")) for h in history) if v]
    if rates:
        return f"{median(rates):,.0f} rows/s (median epoch, training passes)"
    rows, epochs, secs = (_num(training.get(k)) for k in ("rows", "epochs_run", "seconds"))
    if rows and epochs and secs:
        return f"{rows * epochs / secs:,.0f} rows/s (all epochs, with validation)"
    return "–"


def _training_text(
    training: dict[str, Any], config: dict[str, Any], regression: bool = False
) -> str:
    if not training:
        return "–"
    limit = config.get("max_epochs")
    run = _count(training.get("epochs_run"))
    text = f"{run} epochs" + (f" (at most {limit})" if limit else "")
    # a regressor has no accuracy; its losses are on the standardised target
    score = (
        "on the standardised target"
        if regression
        else f"validation accuracy {_f(training.get('val_accuracy'))}"
    )
    text += (
        f"; best epoch {_count(training.get('best_epoch'))} (validation loss "
        f"{_f(training.get('val_loss'))}, {score})"
        f"; stopped: {_stop_text(training)}"
    )
    resumed = _num(training.get("resumed_from_epoch"))
    if resumed:
        text += f"; resumed from a checkpoint at epoch {int(resumed)}"
    return text


def _target_text(training: dict[str, Any]) -> str:
    """A regressor's training target: its loss and the statistics it was standardised with."""
    target = training.get("target") or {}
    if not target:
        return "–"
    return (
        f"{target.get('loss') or '–'} loss on the target standardised with the train rows' "
        f"mean {_g(target.get('mean'))} and standard deviation {_g(target.get('scale'))}; "
        f"mean absolute deviation {_g(target.get('mad'))}"
    )


def _hardware_text(training: dict[str, Any]) -> str:
    if not training.get("device"):
        return "–"
    text = f"{training['device']}, {training.get('precision') or '–'} precision"
    world = _num(training.get("world_size"))
    if world and world > 1:
        text += f", {int(world)} processes (one per GPU)"
    if training.get("cuda_graph"):
        text += ", CUDA graph"
    if training.get("streamed"):
        text += ", data streamed from host memory"
    return text


def _settings_text(config: dict[str, Any]) -> str:
    if not config:
        return "–"
    parts = []
    hidden = config.get("hidden_sizes")
    if hidden:
        parts.append("hidden layers " + "-".join(str(h) for h in hidden))
    labels = (
        ("batch_size", "batch"),
        ("learning_rate", "learning rate"),
        ("schedule", "schedule"),
        ("weight_decay", "weight decay"),
        ("dropout", "dropout"),
        ("patience", "patience"),
        ("seed", "seed"),
    )
    parts += [f"{label} {config[key]}" for key, label in labels if key in config]
    return ", ".join(parts) or "–"


def _compared_text(ev: Evaluation) -> str:
    prov = ev.provenance
    champion = prov.get("champion") or ev.decision.champion or "–"
    version = prov.get("champion_version", ev.champion_version)
    if version is not None:
        return f"the champion, version {version}"
    if prov.get("first_run"):
        return f"{champion}, fitted on the train rows (first run: no champion yet)"
    return champion


def _excluded_text(prov: dict[str, Any]) -> str:
    """Which test rows were left out of the comparison, and why ("–" when not recorded)."""
    excluded = prov.get("excluded") or {}
    why = excluded.get("why")
    if not why:
        return "–"
    if excluded.get("guarantee") == "weaker":
        return f"none, with a weaker guarantee: {why}"
    return str(why)


def _provenance_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """(label, HTML) pairs of the provenance table; values escaped here."""
    prov = ev.provenance
    inputs = prov.get("inputs") or {}
    training = prov.get("training") or {}
    config = prov.get("train_config") or {}
    history = prov.get("training_history") or []
    test_rows = prov.get("test_rows", ev.decision.counts.test_rows)
    when = prov.get("evaluated_at")
    used = list(inputs.get("columns_used") or [])
    dropped = dict(inputs.get("columns_dropped") or {})
    if used:
        shown = ", ".join(html.escape(str(c)) for c in used[:12])
        more = f" … ({len(used) - 12} more)" if len(used) > 12 else ""
        used_html = f"{len(used):,}: {shown}{more}"
        if len(used) > 12:
            full = ", ".join(html.escape(str(c)) for c in used)
            used_html += f"<details><summary>all columns</summary>{full}</details>"
    else:
        used_html = "–"
    if dropped:
        dropped_html = "; ".join(
            f"{html.escape(str(c))} ({html.escape(str(why))})" for c, why in dropped.items()
        )
    else:
        dropped_html = "none" if "columns_dropped" in inputs else "–"
    e = html.escape
    regression = ev.task == "regression"
    target = [("target", e(_target_text(training)))] if regression else []
    return [
        ("data source", e(_source_text(inputs))),
        ("evaluated", f"{e(when)} (UTC)" if when else "–"),
        ("rows", e(_rows_text(prov, test_rows))),
        ("train rows sha256", e(str(training.get("data_sha256") or "–"))),
        ("columns used", used_html),
        ("columns left out", dropped_html),
        ("training", e(_training_text(training, config, regression))),
        *target,
        ("ran on", e(_hardware_text(training))),
        (
            "time",
            e(f"{_seconds(training.get('seconds'))}; {_rows_per_second(training, history)}")
            if training
            else "–",
        ),
        ("settings", e(_settings_text(config))),
        ("compared with", e(_compared_text(ev))),
        ("excluded", e(_excluded_text(prov))),
    ]


# --------------------------------------------------------------------------------------
# SVG plots
# --------------------------------------------------------------------------------------


def _nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5):
        if raw <= m * magnitude * (1 + 1e-9):
            return m * magnitude
    return 10 * magnitude


def _nice_range(
    lo: float, hi: float, count: int = 5, integer: bool = False
) -> tuple[float, float, list[float]]:
    """A range covering [lo, hi] on round tick values, and those ticks."""
    if hi - lo < 1e-12:
        pad = 1.0 if integer else (abs(hi) * 0.1 or 0.5)
        lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo, count)
    if integer:
        step = float(max(1, math.ceil(step)))
    first = round(math.floor(lo / step + 1e-9) * step, 10)
    last = round(math.ceil(hi / step - 1e-9) * step, 10)
    n = int(round((last - first) / step))
    return first, last, [round(first + i * step, 10) for i in range(n + 1)]


def _tick_label(v: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    digits = next((d for d in range(7) if abs(round(step, d) - step) < 1e-9), 6)
    return f"{v:.{digits}f}"


@dataclass(frozen=True)
class _Panel:
    """A plot area in pixels and the data ranges it shows."""

    left: float
    top: float
    width: float
    height: float
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    def x(self, v: float) -> float:
        lo, hi = self.xlim
        return self.left + (v - lo) / (hi - lo) * self.width

    def y(self, v: float) -> float:
        lo, hi = self.ylim
        return self.top + self.height - (v - lo) / (hi - lo) * self.height


def _axes(
    p: _Panel, xticks: list[float], yticks: list[float], xlabel: str, ylabel: str
) -> list[str]:
    bottom, right = p.top + p.height, p.left + p.width
    parts = []
    for t in xticks:
        x = p.x(t)
        parts.append(
            f'<line x1="{x:.1f}" y1="{p.top}" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>'
            f'<line class="tick" x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" '
            'stroke="#666"/>'
            f'<text class="tick-label x" x="{x:.1f}" y="{bottom + 17}" text-anchor="middle" '
            f'font-size="10">{_tick_label(t, xticks)}</text>'
        )
    for t in yticks:
        y = p.y(t)
        parts.append(
            f'<line x1="{p.left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>'
            f'<line class="tick" x1="{p.left - 5}" y1="{y:.1f}" x2="{p.left}" y2="{y:.1f}" '
            'stroke="#666"/>'
            f'<text class="tick-label y" x="{p.left - 8}" y="{y + 3.5:.1f}" text-anchor="end" '
            f'font-size="10">{_tick_label(t, yticks)}</text>'
        )
    parts.append(
        f'<rect x="{p.left}" y="{p.top}" width="{p.width}" height="{p.height}" fill="none" '
        'stroke="#999"/>'
        f'<text x="{p.left + p.width / 2}" y="{bottom + 34}" text-anchor="middle" '
        f'font-size="11">{html.escape(xlabel)}</text>'
        f'<text x="{p.left - 44}" y="{p.top + p.height / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 {p.left - 44} {p.top + p.height / 2})">{html.escape(ylabel)}</text>'
    )
    return parts


def _legend_size(items: list[tuple[str, str, str]]) -> tuple[float, float]:
    return 34 + 6.2 * max(len(label) for label, _, _ in items), 8 + 16 * len(items)


def _legend(x: float, y: float, items: list[tuple[str, str, str]], boxed: bool) -> list[str]:
    """Rows of a line sample and its label, from (x, y) at the top left."""
    width, height = _legend_size(items)
    parts = []
    if boxed:
        parts.append(
            f'<rect x="{x}" y="{y}" width="{width:.0f}" height="{height}" '
            'fill="#fff" fill-opacity="0.9" stroke="#ddd"/>'
        )
    for i, (label, color, dash) in enumerate(items):
        ly = y + 12 + 16 * i
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{x + 6}" y1="{ly}" x2="{x + 26}" y2="{ly}" stroke="{color}" '
            f'stroke-width="2"{dash_attr}/>'
            f'<text class="legend" x="{x + 30}" y="{ly + 4}" font-size="11">'
            f"{html.escape(label)}</text>"
        )
    return parts


def _polyline(points: list[tuple[float, float]], color: str, cls: str, dash: str = "") -> str:
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<polyline class="{cls}" points="{pts}" fill="none" stroke="{color}" '
        f'stroke-width="2"{dash_attr}/>'
    )


def _confusion_svg(matrix: list[list[int]], classes: list[Any], title: str) -> str:
    k = len(classes)
    cell = max(18, min(40, 360 // max(k, 1)))
    pad = 60
    size = pad + cell * k + 10
    peak = max((max(r) for r in matrix), default=1) or 1
    parts = [
        f'<svg {_SVG} width="{size}" height="{size + 20}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{size / 2}" y="14" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
    ]
    for i, row in enumerate(matrix):
        y = 20 + pad - 30 + i * cell
        parts.append(
            f'<text x="{pad - 6}" y="{y + cell * 0.65}" text-anchor="end" '
            f'font-size="11">{html.escape(str(classes[i]))}</text>'
        )
        for j, v in enumerate(row):
            x = pad + j * cell
            shade = int(245 - 190 * (v / peak))
            fill = f"rgb({shade},{shade + 5 if shade < 250 else 250},255)"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" '
                'stroke="#fff"/>'
            )
            color = "#fff" if v / peak > 0.6 else "#222"
            parts.append(
                f'<text x="{x + cell / 2}" y="{y + cell * 0.65}" text-anchor="middle" '
                f'font-size="{10 if cell < 28 else 12}" fill="{color}">{v}</text>'
            )
    for j in range(k):
        parts.append(
            f'<text x="{pad + j * cell + cell / 2}" y="{20 + pad - 36}" '
            f'text-anchor="middle" font-size="11">{html.escape(str(classes[j]))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _auc_label(name: str, auc: Any) -> str:
    v = _num(auc)
    return f"{name} (AUC {'–' if v is None else f'{v:.3f}'})"


def _roc_svg(curves: list[tuple[str, dict[str, list[float]], str, Any]], positive: Any) -> str:
    """ROC curves of (name, curve, colour, AUC) on one set of axes, with the chance line."""
    p = _Panel(left=56, top=30, width=300, height=300, xlim=(0.0, 1.0), ylim=(0.0, 1.0))
    ticks = [i / 5 for i in range(6)]
    title = f"ROC curves, positive class: {positive}"
    parts = [
        f'<svg {_SVG} width="{p.left + p.width + 16}" height="{p.top + p.height + 44}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{p.left + p.width / 2}" y="16" text-anchor="middle" font-size="13">'
        f"{html.escape(title)}</text>",
        *_axes(p, ticks, ticks, "false positive rate", "true positive rate"),
        f'<line class="chance" x1="{p.x(0)}" y1="{p.y(0)}" x2="{p.x(1)}" y2="{p.y(1)}" '
        f'stroke="{CHANCE_COLOR}" stroke-dasharray="4 3"/>',
    ]
    legend = []
    for name, curve, color, auc in curves:
        points = [(p.x(fx), p.y(ty)) for fx, ty in zip(curve["fpr"], curve["tpr"], strict=False)]
        parts.append(_polyline(points, color, f"roc {name}"))
        legend.append((_auc_label(name, auc), color, ""))
    legend.append(("chance (AUC 0.500)", CHANCE_COLOR, "4 3"))
    width, height = _legend_size(legend)
    parts += _legend(p.left + p.width - width - 6, p.top + p.height - height - 6, legend, True)
    parts.append("</svg>")
    return "".join(parts)


def _history_values(history: list[dict[str, Any]], key: str) -> list[float | None]:
    return [_num(row.get(key)) for row in history]


def _curve_svg(
    title: str,
    ylabel: str,
    epochs: list[float],
    series: list[tuple[str, list[float | None], str, str]],
    best_epoch: float | None,
    marked: str,
    bounded: bool,
) -> str:
    """One per-epoch line chart: ``series`` are (label, values, colour, dash); the best
    epoch gets a dashed vertical line and a dot on the series labelled ``marked``."""
    values = [v for _, ys, _, _ in series for v in ys if v is not None]
    if not values:
        return ""
    x0, x1, xticks = _nice_range(min(epochs), max(epochs), min(6, max(len(epochs) - 1, 2)), True)
    if bounded:  # accuracy: keep the axis inside [0, 1]
        y0, y1, yticks = _nice_range(min(values), max(values), 4)
        y0, y1 = max(0.0, y0), min(1.0, y1)
        yticks = [t for t in yticks if y0 - 1e-9 <= t <= y1 + 1e-9]
    else:  # loss: from 0, so curves compare by height
        y0, y1, yticks = _nice_range(0.0, max(max(values), 1e-6), 4)
    p = _Panel(left=60, top=30, width=320, height=190, xlim=(x0, x1), ylim=(y0, y1))
    height = p.top + p.height + 48 + 16 * len(series)
    parts = [
        f'<svg {_SVG} width="{p.left + p.width + 20}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{p.left + p.width / 2}" y="16" text-anchor="middle" font-size="13">'
        f"{html.escape(title)}</text>",
        *_axes(p, xticks, yticks, "epoch", ylabel),
    ]
    if best_epoch is not None and x0 <= best_epoch <= x1:
        bx = p.x(best_epoch)
        anchor, dx = ("end", -4) if bx > p.left + p.width * 0.7 else ("start", 4)
        parts.append(
            f'<line class="best-epoch" x1="{bx:.1f}" y1="{p.top}" x2="{bx:.1f}" '
            f'y2="{p.top + p.height}" stroke="#555" stroke-dasharray="3 3"/>'
            f'<text class="best-epoch" x="{bx + dx:.1f}" y="{p.top + 12}" text-anchor="{anchor}" '
            f'font-size="10" fill="#555">best epoch {best_epoch:g}</text>'
        )
    for label, ys, color, dash in series:
        points = [(p.x(e), p.y(v)) for e, v in zip(epochs, ys, strict=False) if v is not None]
        parts.append(_polyline(points, color, "curve " + label.replace(" ", "-"), dash))
        if label == marked and best_epoch is not None and best_epoch in epochs:
            v = ys[epochs.index(best_epoch)]
            if v is not None:
                parts.append(
                    f'<circle class="best-point" cx="{p.x(best_epoch):.1f}" cy="{p.y(v):.1f}" '
                    f'r="4" fill="{color}" stroke="#fff"/>'
                )
    items = [(label, color, dash) for label, _, color, dash in series]
    parts += _legend(p.left, p.top + p.height + 40, items, False)
    parts.append("</svg>")
    return "".join(parts)


def _training_svgs(prov: dict[str, Any], regression: bool = False) -> str:
    """Loss and accuracy per epoch, side by side; empty without a training history. A
    regressor has no accuracy (its history's accuracies are 0): its loss only."""
    history = [row for row in prov.get("training_history") or [] if isinstance(row, dict)]
    if not history:
        return ""
    epochs = [_num(row.get("epoch")) or float(i + 1) for i, row in enumerate(history)]
    best = _num((prov.get("training") or {}).get("best_epoch"))
    if best is None:  # an older bundle: the epoch early stopping would have kept
        losses = _history_values(history, "val_loss")
        finite = [(v, e) for v, e in zip(losses, epochs, strict=False) if v is not None]
        best = min(finite)[1] if finite else None

    def present(key: str) -> list[float | None] | None:
        ys = _history_values(history, key)
        return ys if any(v is not None for v in ys) else None

    def chart(title: str, ylabel: str, stem: str, bounded: bool) -> str:
        series = []
        for who, prefix, color, dash in (
            ("train", "train", TRAIN_COLOR, "5 3"),
            ("validation", "val", VALIDATION_COLOR, ""),
        ):
            ys = present(f"{prefix}_{stem}")
            if ys is not None:
                series.append((f"{who} {stem}", ys, color, dash))
        return _curve_svg(title, ylabel, epochs, series, best, f"validation {stem}", bounded)

    if regression:
        loss = ((prov.get("training") or {}).get("target") or {}).get("loss") or "mse"
        return chart("Loss per epoch", f"{loss} (standardised target)", "loss", False)
    return chart("Loss per epoch", "log loss", "loss", False) + chart(
        "Accuracy per epoch", "accuracy", "accuracy", True
    )


# --------------------------------------------------------------------------------------
# The page and the summary
# --------------------------------------------------------------------------------------


def resampling_note(ev: Evaluation) -> str:
    """What each improvement interval resampled, e.g. 'accuracy: multinomial draws of ...'."""
    from components.core.evaluation.stats import RESAMPLING_METHODS

    names = {key: name for key, name, _ in METRIC_ROWS}
    return "; ".join(
        f"{names.get(key, key)}: {RESAMPLING_METHODS.get(ci.method, 'rows')}"
        for key, ci in ev.improvement_ci.items()
    )


def _metric_rows(ev: Evaluation) -> list[tuple[str, Any, Any, float | None, Interval | None]]:
    """(name, challenger, champion, improvement, interval) per metric the models have."""
    out = []
    for key, name, higher in METRIC_ROWS:
        new, old = ev.challenger.get(key), ev.champion.get(key)
        if new is None and old is None:
            continue
        out.append((name, new, old, _improvement(new, old, higher), ev.improvement_ci.get(key)))
    return out


def _page_head(ev: Evaluation, model_name: str) -> str:
    """The page from its head to the provenance table: the same for every task."""
    d = ev.decision
    verdict = "DEPLOYED" if d.deploy else "NOT DEPLOYED"
    color = "#0a7d32" if d.deploy else "#9a5b00"
    facts = "".join(
        f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in _provenance_rows(ev)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sigdeploy: {html.escape(model_name)}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:24px auto;color:#222;padding:0 16px}}
h1{{font-size:22px}} h2{{font-size:17px;margin-top:28px}}
.verdict{{font-size:20px;font-weight:700;color:{color}}}
.reason{{background:#f6f7f9;border-left:4px solid {color};padding:10px 14px;line-height:1.45}}
table{{border-collapse:collapse;margin:8px 0}} td,th{{border:1px solid #ddd;padding:5px 10px;text-align:right}}
th{{background:#f0f2f5}} td:first-child,th:first-child{{text-align:left}}
td.up{{color:#0a7d32;font-weight:600}} td.down{{color:#b03a2e;font-weight:600}}
table.facts td{{text-align:left}} table.facts th{{font-weight:600;white-space:nowrap;vertical-align:top}}
.grid{{display:flex;flex-wrap:wrap;gap:24px}} .muted{{color:#666;font-size:13px}}
</style></head><body>
<h1>sigdeploy evaluation: {html.escape(model_name)}</h1>
<p class="verdict">{verdict}</p>
<p class="reason">{html.escape(d.reason)}</p>
<h2>Provenance</h2>
<table class="facts" id="provenance">
{facts}
</table>
"""


def _metrics_table(
    ev: Evaluation, rows: list[tuple[str, Any, Any, float | None, Interval | None]]
) -> str:
    """The heading and the metric table (a colour where the interval excludes 0): the same
    for every task."""
    d = ev.decision
    body = []
    for name, new, old, gain, ci in rows:
        cls = _significance(ci)
        body.append(
            f"<tr><td>{name}</td><td>{_f(new)}</td><td>{_f(old)}</td>"
            f"<td class='{cls}'>{_signed(gain)}</td><td class='{cls}'>{_interval(ci)}</td></tr>"
        )
    return f"""<h2>Metrics on the same {d.counts.test_rows} test rows</h2>
<table id="metrics"><tr><th>metric</th><th>challenger</th><th>champion ({html.escape(d.champion)})</th><th>improvement</th><th>one-sided {confidence_text(d.confidence)} lower and upper bounds</th></tr>
{"".join(body)}</table>"""


def _curves_html(ev: Evaluation) -> str:
    """The training curves section; empty without a training history."""
    curves = _training_svgs(ev.provenance, regression=ev.task == "regression")
    if not curves:
        return ""
    return (
        "<h2>Training curves (challenger)</h2>"
        f'<div class="grid">{curves}</div>'
        '<p class="muted">Best epoch: the lowest validation loss; the model keeps its '
        "weights. Dashed: training passes (with dropout); solid: validation.</p>"
    )


def render_html(ev: Evaluation, model_name: str) -> str:
    if ev.task == "regression":
        return _render_regression_html(ev, model_name)
    d = ev.decision
    ci_pct = confidence_text(d.confidence)
    low = d.effect.accuracy_lower_bound
    power = _power(d)
    checks = "".join(
        f"<li>{'✔' if c.passed else '✘'} {html.escape(_check_text(c))}</li>" for c in d.checks
    )
    counts = d.counts
    curves = _curves_html(ev)
    roc = ""
    if ev.roc_challenger and ev.roc_champion:
        positive = ev.classes[1] if len(ev.classes) > 1 else "–"
        roc = (
            f"<h2>ROC curves (positive class: {html.escape(str(positive))})</h2>"
            + _roc_svg(
                [
                    (
                        "challenger",
                        ev.roc_challenger,
                        CHALLENGER_COLOR,
                        ev.challenger.get("roc_auc"),
                    ),
                    ("champion", ev.roc_champion, CHAMPION_COLOR, ev.champion.get("roc_auc")),
                ],
                positive,
            )
            + '<p class="muted">Scores: each model\'s probability of the positive class; '
            "the dashed diagonal is a model that guesses.</p>"
        )
    return f"""{_page_head(ev, model_name)}{_metrics_table(ev, _metric_rows(ev))}
<p class="muted">Improvement: positive = challenger better, in the metric's own unit (fractions for
accuracy, macro F1 and ROC AUC; nats for log loss, where it is the champion's loss minus the
challenger's). Bounds: each a one-sided {ci_pct} bound, the kind the one-sided rule uses (the
lower one is what a margin is compared with), each metric on its own (no correction for several
metrics); how: {html.escape(resampling_note(ev))}. Green: the lower bound is above 0; red: the
upper bound is below 0; uncoloured: neither, or there is none. The deploy decision rests on the
tests below, not on these colours.</p>
<p>Accuracy improvement {_signed(d.effect.accuracy_difference)}; one-sided {ci_pct} lower
bound {_signed(low)} (from the test that decides), compared with the margin {d.margin}.</p>
<h2>Test</h2>
<table>
{_test_rows(d)}
<tr><th>margin</th><td>{d.margin}</td></tr>
<tr><th>both right / only challenger / only champion / both wrong</th><td>{counts.both_right} / {counts.only_challenger_right} / {counts.only_champion_right} / {counts.both_wrong}</td></tr>
{"".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _power_rows(power))}
</table>
<p class="muted">Power is the chance the rule above deploys a challenger that really is
better by the target effect; it is computed for that pre-declared effect, never for the
observed one (which would only restate the p-value).</p>
<h2>A Bayesian reading</h2>
<p id="bayes">{html.escape(_bayes_text(d))}</p>
{_accounting_html(d)}
<h2>Checks</h2><ul>{checks}</ul>
<h2>Confusion matrices (rows: true class, columns: predicted)</h2>
<div class="grid">{_confusion_svg(ev.confusion_challenger, ev.classes, "challenger")}
{_confusion_svg(ev.confusion_champion, ev.classes, "champion")}</div>
{roc}
{reliability_html(ev.calibration)}
{curves}
{_page_end(d)}"""


def _test_rows(d: Decision) -> str:
    """The test table's first rows: the test, p, alpha and the level, for every task."""
    return f"""<tr><th>test</th><td>{html.escape(d.test)}</td></tr>
<tr><th>p-value</th><td>{html.escape(p_text(d.p_value, d.p_at_most))}</td></tr>
<tr><th>alpha</th><td>{d.alpha}: {html.escape(alpha_meaning(d.alpha))}</td></tr>
<tr><th>level tested at</th><td>{_level_cell(d)}</td></tr>"""


def _page_end(d: Decision) -> str:
    return f"""<p class="muted">{html.escape(_promise(d))} "Not deployed" means the evidence did not reach
the rule; the power table says how large a gain this test size could find.</p>
</body></html>
"""


def _level_cell(d: Decision) -> str:
    if d.accounting is None:
        return f"{d.level:g} (alpha: no ledger)"
    return f"{d.level:.3g} ({html.escape(d.accounting.account.accounting)})"


def _promise(d: Decision) -> str:
    """What a deploy promises, for the rule actually applied."""
    if d.accounting is None:
        return f"A deploy happens only when the test says so: {alpha_meaning(d.alpha)}."
    return (
        f"A deploy happens only when the test at level {d.level:.3g} says the challenger is "
        f"better; accounted {d.accounting.account.accounting}, "
        f"{d.accounting.account.promise}."
    )


def _accounting_rows(d: Decision) -> list[tuple[str, str]]:
    """(label, text) rows of the account: level and why, rows, ledger, gain."""
    a = d.accounting
    if a is None:
        return []
    acct, rows = a.account, a.rows
    out = [
        ("accounting", f"{acct.accounting}: {acct.promise}"),
        ("nominal alpha", f"{acct.alpha}"),
        ("level and why", a.why),
        (
            "spent before",
            f"{acct.spent_before:.4g} on {acct.attempt - 1} earlier attempt(s)"
            if acct.accounting != "stream"
            else f"{acct.spent_before:.4g} over {acct.attempt - 1} earlier decision(s), "
            f"{acct.deploys_before} deploy(s)",
        ),
        (
            "rows decided on",
            f"{rows.which}: {int(rows.use.sum()):,} of {rows.fresh + rows.reused:,} "
            f"({rows.fresh:,} fresh, {rows.reused:,} used by earlier decisions); {rows.reason}",
        ),
    ]
    ledger = a.ledger
    if ledger.get("id"):
        out.append(
            (
                "ledger",
                f"decision {ledger['id']}, record {ledger.get('record')} of {ledger['where']}",
            )
        )
    for note in ledger.get("notes") or []:
        out.append(("note", str(note)))
    if a.adjusted is not None:
        g = a.adjusted
        out.append(
            (
                "accuracy gain",
                f"raw {_signed(g.raw)}, selection-adjusted {_signed(g.estimate)} "
                f"(standard error {g.standard_error:.4f}; {g.method})",
            )
        )
    if a.adjusted_note:
        out.append(("gain note", a.adjusted_note))
    return out


def _accounting_html(d: Decision, rows: list[tuple[str, str]] | None = None) -> str:
    rows = _accounting_rows(d) if rows is None else rows
    if not rows:
        return ""
    body = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>"
        for label, text in rows
    )
    return (
        f'<h2>Error control across runs</h2>\n<table class="facts" id="accounting">{body}</table>'
    )


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _provenance_line(ev: Evaluation) -> str:
    prov = ev.provenance
    training = prov.get("training") or {}
    test_rows = prov.get("test_rows", ev.decision.counts.test_rows)
    trained = "–"
    if training:
        trained = (
            f"{_count(training.get('epochs_run'))} epochs (best {_count(training.get('best_epoch'))}"
            f", {str(training.get('stop_reason') or '–').replace('_', ' ')}) on "
            f"{training.get('device') or '–'} "
            f"in {_seconds(training.get('seconds'))}"
        )
    when = prov.get("evaluated_at") or "–"
    return (
        f"- data: {_source_text(prov.get('inputs') or {})}; rows: {_rows_text(prov, test_rows)}; "
        f"trained: {trained}; compared with {_compared_text(ev)}; evaluated {when} UTC"
    )


def _markdown_top(
    ev: Evaluation,
    model_name: str,
    rows: list[tuple[str, Any, Any, float | None, Interval | None]],
) -> list[str]:
    """The summary from its title to the metric table: the same for every task."""
    d = ev.decision
    lines = [
        f"## sigdeploy: {model_name} — {'deployed' if d.deploy else 'not deployed'}",
        "",
        d.reason,
        "",
        _md(_provenance_line(ev)),
        _md(f"- excluded test rows: {_excluded_text(ev.provenance)}"),
        "",
        f"| metric | challenger | champion ({_md(d.champion)}) | improvement | one-sided "
        f"{confidence_text(d.confidence)} bounds |",
        "|---|---:|---:|---:|---|",
    ]
    for name, new, old, gain, ci in rows:
        text = _signed(gain)
        if _significance(ci):
            text = f"**{text}**"
        lines.append(f"| {name} | {_f(new)} | {_f(old)} | {text} | {_interval(ci)} |")
    return lines


def render_markdown(ev: Evaluation, model_name: str) -> str:
    if ev.task == "regression":
        return _render_regression_markdown(ev, model_name)
    d = ev.decision
    power = _power(d)
    ci_pct = confidence_text(d.confidence)
    lines = _markdown_top(ev, model_name, _metric_rows(ev))
    lines += [
        "",
        "Improvement: positive = challenger better, in the metric's own unit (log loss: the "
        f"champion's loss minus the challenger's); bold: a one-sided {ci_pct} bound excludes 0.",
        "",
        f"- test: {d.test}; {p_text(d.p_value, d.p_at_most)}; alpha = {d.alpha}; {_level_md(d)}; "
        f"margin = {d.margin}",
        f"- alpha means: {alpha_meaning(d.alpha)}",
        *(_md(f"- {label}: {text}") for label, text in _power_rows(power)),
        *([_md(f"- Bayesian reading: {_bayes_text(d)}")] if d.bayes else []),
        *(_md(f"- {label}: {text}") for label, text in _accounting_rows(d)),
        "",
    ]
    return "\n".join(lines)


def _level_md(d: Decision) -> str:
    accounted = f" ({d.accounting.account.accounting})" if d.accounting else ""
    return f"level = {d.level:.3g}{accounted}"


# --------------------------------------------------------------------------------------
# Regression: errors against the target instead of classes
# --------------------------------------------------------------------------------------

REGRESSION_ROWS = (  # key, name, higher is better
    ("rmse", "RMSE", False),
    ("mse", "MSE", False),
    ("mae", "MAE", False),
    ("r2", "R²", True),
)

# the unit of margins, effects and the test's bound, from the challenger's training rows
SKILL_WORDS = {
    "squared": "Points of R² are shares of the training target's variance (R² against the "
    "training mean): a gain of 0.01 cuts the mean squared error by 1% of that variance",
    "absolute": "Skill points are shares of the training target's mean absolute deviation: "
    "a gain of 0.01 cuts the mean absolute error by 1% of it",
}

REGRESSION_INTERVALS = (
    "the MSE and MAE rows only: a paired bootstrap (percentile) of the improvement in mean "
    "squared and mean absolute error over the same test rows (each row keeps both models' "
    "errors)"
)


def _regression_error(d: Decision) -> str:
    """The per-row error the gate tested: 'squared' or 'absolute'."""
    return "absolute" if "mae_challenger" in (d.effect.regression or {}) else "squared"


def _skill(x: Any, error: str, signed: bool = False) -> str:
    """A difference in skill, named for the error: '0.01 in R²'."""
    v = _num(x)
    if v is None:
        return "–"
    unit = "in R²" if error == "squared" else "in skill"
    return f"{v:+.4g} {unit}" if signed else f"{v:.4g} {unit}"


def _regression_value(metrics: dict[str, Any], key: str) -> Any:
    """A model's metric; its MSE is its RMSE squared."""
    if key == "mse" and "mse" not in metrics:
        rmse = _num(metrics.get("rmse"))
        return None if rmse is None else rmse**2
    return metrics.get(key)


def _regression_metric_rows(
    ev: Evaluation,
) -> list[tuple[str, Any, Any, float | None, Interval | None]]:
    """(name, challenger, champion, improvement, interval) of RMSE, MSE, MAE and R². The
    gate's intervals are of the improvement in mean squared and mean absolute error, so only
    the MSE and MAE rows carry one: none is passed off as an RMSE or R² interval."""
    out = []
    for key, name, higher in REGRESSION_ROWS:
        new, old = _regression_value(ev.challenger, key), _regression_value(ev.champion, key)
        if new is None and old is None:
            continue
        ci = ev.improvement_ci.get(key) if key in ("mse", "mae") else None
        out.append((name, new, old, _improvement(new, old, higher), ci))
    return out


def _regression_effect_text(d: Decision) -> str:
    """The tested error of both models, the improvement and the test's own lower bound."""
    error = _regression_error(d)
    key = "mse" if error == "squared" else "mae"
    eff = d.effect.regression or {}
    low = d.checks[0].lower_bound if d.checks else None
    bound = ""
    if low is not None:
        bound = (
            f"; one-sided {confidence_text(d.confidence)} lower bound "
            f"{_skill(low, error, True)} (from the test that decides)"
        )
    return (
        f"Mean {error} error {_g(eff.get(f'{key}_challenger'))} for the challenger and "
        f"{_g(eff.get(f'{key}_champion'))} for the champion: an improvement of "
        f"{_g(eff.get('improvement'), True)} in the target's unit"
        f"{'' if error == 'absolute' else ' squared'} "
        f"({_skill(eff.get('improvement_skill'), error, True)}){bound}, compared with the "
        f"margin {_skill(d.margin, error)}."
    )


def _regression_power_rows(power: Power, error: str) -> list[tuple[str, str]]:
    """(label, text) rows of the paired test's power at the target effect, in skill.
    No discordance: every row of a regression counts."""
    target = _skill(power.target_effect, error)
    at = _num(power.power_at_target)
    rows = _num(power.rows_for_target)
    pct = f"{power.target_power:.0%}"
    note = power.note or "–"
    return [
        (
            "rule the power is for",
            f"{power.rule}; {power.method} approximation at the observed spread of the "
            "per-row improvements",
        ),
        (
            f"chance this rule deploys a challenger better by {target} (target_effect)",
            f"{at:.2f}" if at is not None else note,
        ),
        (
            f"smallest gain found with {pct} power at this size",
            _skill(power.minimum_detectable_effect, error)
            if _num(power.minimum_detectable_effect) is not None
            else note,
        ),
        (
            f"test rows needed to find {target} with {pct} power at the observed spread",
            f"about {int(rows):,}" if rows is not None else note,
        ),
    ]


def _plot_series(ev: Evaluation) -> dict[str, list[tuple[float, float]]]:
    """Each model's (actual, predicted) pairs of the plotted rows; non-finite ones left out."""
    points = ev.points or {}
    actual = points.get("actual") or []
    out = {}
    for who in ("challenger", "champion"):
        pairs = [(_num(a), _num(p)) for a, p in zip(actual, points.get(who) or [], strict=False)]
        out[who] = [(a, p) for a, p in pairs if a is not None and p is not None]
    return out


def _points_svg(
    title: str,
    labels: tuple[str, str],
    series: list[tuple[str, list[tuple[float, float]], str]],
    ranges: tuple[tuple[float, float, list[float]], tuple[float, float, list[float]]],
    guide: tuple[str, str, tuple[float, float, float, float]],
) -> str:
    """A scatter of each (label, points, colour) series on one set of axes, one dot per
    point, and a dashed guide line (class, label, (x0, y0, x1, y1) in data units)."""
    (x0, x1, xticks), (y0, y1, yticks) = ranges
    p = _Panel(left=60, top=30, width=300, height=300, xlim=(x0, x1), ylim=(y0, y1))
    cls, label, (gx0, gy0, gx1, gy1) = guide
    items = [(name, color, "") for name, _, color in series] + [(label, CHANCE_COLOR, "4 3")]
    height = p.top + p.height + 48 + 16 * len(items)
    parts = [
        f'<svg {_SVG} width="{p.left + p.width + 20}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{p.left + p.width / 2}" y="16" text-anchor="middle" font-size="13">'
        f"{html.escape(title)}</text>",
        *_axes(p, xticks, yticks, *labels),
    ]
    for name, points, color in series:
        parts.append(f'<g class="points {name}" fill="{color}" fill-opacity="0.45">')
        parts += [f'<circle cx="{p.x(x):.1f}" cy="{p.y(y):.1f}" r="2"/>' for x, y in points]
        parts.append("</g>")
    parts.append(
        f'<line class="{cls}" x1="{p.x(gx0):.1f}" y1="{p.y(gy0):.1f}" x2="{p.x(gx1):.1f}" '
        f'y2="{p.y(gy1):.1f}" stroke="{CHANCE_COLOR}" stroke-dasharray="4 3"/>'
    )
    parts += _legend(p.left, p.top + p.height + 40, items, False)
    parts.append("</svg>")
    return "".join(parts)


def _regression_plots(ev: Evaluation) -> str:
    """Predicted against actual (shared axes, the y = x diagonal) and the residuals against
    the predictions (a zero line), both models in each; empty without plotted rows."""
    by_model = _plot_series(ev)
    if not any(by_model.values()):
        return ""
    colors = {"challenger": CHALLENGER_COLOR, "champion": CHAMPION_COLOR}
    # the champion first: the challenger's dots are drawn over it
    order = ("champion", "challenger")
    values = [v for pts in by_model.values() for pair in pts for v in pair]
    shared = _nice_range(min(values), max(values), 5)
    lo, hi = shared[0], shared[1]
    scatter = _points_svg(
        "Predicted against actual",
        ("actual", "predicted"),
        [(who, by_model[who], colors[who]) for who in order],
        (shared, shared),
        ("diagonal", "y = x (a perfect prediction)", (lo, lo, hi, hi)),
    )
    residuals = {who: [(p, p - a) for a, p in by_model[who]] for who in order}
    predicted = [p for pts in residuals.values() for p, _ in pts]
    reach = max(abs(r) for pts in residuals.values() for _, r in pts)
    xr = _nice_range(min(predicted), max(predicted), 5)
    yr = _nice_range(-reach, reach, 4)
    residual = _points_svg(
        "Residuals against predicted",
        ("predicted", "residual (predicted − actual)"),
        [(who, residuals[who], colors[who]) for who in order],
        (xr, yr),
        ("zero", "zero residual", (xr[0], 0.0, xr[1], 0.0)),
    )
    n = len(ev.points.get("actual") or []) if ev.points else 0
    test_rows = ev.decision.counts.test_rows
    which = (
        f"a fixed sample of {n:,} of the {test_rows:,} test rows"
        if n < test_rows
        else f"the {n:,} test rows"
    )
    return (
        f"<h2>Predictions on {which}</h2>"
        f'<div class="grid">{scatter}{residual}</div>'
        '<p class="muted">One dot per row and model, in the target\'s unit. Left: dots on the '
        "dashed diagonal are perfect predictions, above it too high. Right: the residual is "
        "predicted minus actual; above the dashed zero line the model predicted too high.</p>"
    )


def _regression_accounting_rows(d: Decision) -> list[tuple[str, str]]:
    """The account's rows, less the selection-adjusted accuracy gain and the note on why it
    is missing, which speak of classification's test: one row says so in regression terms."""
    rows = _accounting_rows(d)
    kept = [(label, text) for label, text in rows if label not in ("accuracy gain", "gain note")]
    if len(kept) < len(rows):
        kept.append(
            (
                "selection-adjusted gain",
                "none: it is derived for classification only, so this deploy's observed gain "
                "may overstate the true one",
            )
        )
    return kept


def _render_regression_html(ev: Evaluation, model_name: str) -> str:
    d = ev.decision
    error = _regression_error(d)
    ci_pct = confidence_text(d.confidence)
    power_rows = _regression_power_rows(_power(d), error)
    checks = "".join(
        f"<li>{'✔' if c.passed else '✘'} {html.escape(_check_text(c))}</li>" for c in d.checks
    )
    head = _page_head(ev, model_name)
    return f"""{head}{_metrics_table(ev, _regression_metric_rows(ev))}
<p class="muted">Improvement: positive = challenger better, in the metric's own unit (the
target's for RMSE and MAE, its square for MSE, where it is the champion's error minus the
challenger's; a fraction for R², the challenger's minus the champion's). Bounds:
{REGRESSION_INTERVALS}; each a one-sided {ci_pct} bound, each metric on its own; RMSE and R²
have none of their own. Green: the lower bound is above 0; red: the upper bound is below 0;
uncoloured: neither, or there is none. The deploy decision rests on the test below, not on
these colours.</p>
<p id="effect">{html.escape(_regression_effect_text(d))}</p>
<h2>Test</h2>
<table>
{_test_rows(d)}
<tr><th>margin</th><td>{html.escape(_skill(d.margin, error))}</td></tr>
{"".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in power_rows)}
</table>
<p class="muted">{html.escape(SKILL_WORDS[error])}; they come from the
challenger's training rows, not the test rows. Power is the chance the rule above deploys a
challenger that really is better by the target effect; it is computed for that pre-declared
effect, never for the observed one (which would only restate the p-value).</p>
{_accounting_html(d, _regression_accounting_rows(d))}
<h2>Checks</h2><ul>{checks}</ul>
{_regression_plots(ev)}
{_curves_html(ev)}
{_page_end(d)}"""


def _render_regression_markdown(ev: Evaluation, model_name: str) -> str:
    d = ev.decision
    error = _regression_error(d)
    ci_pct = confidence_text(d.confidence)
    lines = _markdown_top(ev, model_name, _regression_metric_rows(ev))
    lines += [
        "",
        "Improvement: positive = challenger better (RMSE, MSE, MAE: the champion's error minus "
        "the challenger's; R²: the challenger's minus the champion's). Bounds: "
        f"{REGRESSION_INTERVALS}; bold: a one-sided {ci_pct} bound excludes 0.",
        "",
        f"- test: {d.test}; {p_text(d.p_value, d.p_at_most)}; alpha = {d.alpha}; {_level_md(d)}; "
        f"margin = {_skill(d.margin, error)}",
        f"- alpha means: {alpha_meaning(d.alpha)}",
        _md(f"- {_regression_effect_text(d)}"),
        _md(f"- {SKILL_WORDS[error]} (from the challenger's training rows)"),
        *(_md(f"- {label}: {text}") for label, text in _regression_power_rows(_power(d), error)),
        *(_md(f"- {label}: {text}") for label, text in _regression_accounting_rows(d)),
        "",
    ]
    return "\n".join(lines)


def write_html(path: str, ev: Evaluation, model_name: str) -> None:
    write_text(path, render_html(ev, model_name))


def write_markdown(path: str, ev: Evaluation, model_name: str) -> None:
    write_text(path, render_markdown(ev, model_name))
