"""The evaluation report: a self-contained HTML page (plots as inline SVG, no scripts, no
network) and a short Markdown summary. Written by the evaluate step, shown in the Vertex
console as HTML / Markdown artifacts, and by ``sigdeploy run`` locally."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from components.core.gate import format_p
from components.core.io import write_text

if TYPE_CHECKING:
    from components.core.steps import Evaluation

METRIC_ROWS = (
    ("accuracy", "Accuracy", True),
    ("macro_f1", "Macro F1", True),
    ("log_loss", "Log loss", False),
    ("roc_auc", "ROC AUC", True),
)


def _f(x: Any, digits: int = 4) -> str:
    try:
        return f"{float(x):.{digits}f}"
    except (TypeError, ValueError):
        return "–"


def _mde(power: dict[str, Any]) -> str:
    mde = power.get("minimum_detectable_improvement")
    return "none at this test size" if mde is None else f"{mde * 100:.1f} points"


def _confusion_svg(matrix: list[list[int]], classes: list[Any], title: str) -> str:
    k = len(classes)
    cell = max(18, min(40, 360 // max(k, 1)))
    pad = 60
    size = pad + cell * k + 10
    peak = max((max(r) for r in matrix), default=1) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + 20}" '
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


def _roc_svg(curves: list[tuple[str, dict[str, list[float]], str]]) -> str:
    w = h = 300
    m = 36
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + m + 10}" height="{h + m + 10}" '
        'role="img" aria-label="ROC curves">',
        f'<rect x="{m}" y="10" width="{w}" height="{h}" fill="none" stroke="#999"/>',
        f'<line x1="{m}" y1="{10 + h}" x2="{m + w}" y2="10" stroke="#ccc" stroke-dasharray="4"/>',
        f'<text x="{m + w / 2}" y="{h + m + 4}" text-anchor="middle" font-size="11">'
        "false positive rate</text>",
        f'<text x="12" y="{10 + h / 2}" font-size="11" transform="rotate(-90 12 {10 + h / 2})" '
        'text-anchor="middle">true positive rate</text>',
    ]
    for idx, (name, curve, color) in enumerate(curves):
        pts = " ".join(
            f"{m + fx * w:.1f},{10 + h - ty * h:.1f}"
            for fx, ty in zip(curve["fpr"], curve["tpr"], strict=False)
        )
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(
            f'<text x="{m + w - 8}" y="{h - 10 - 16 * idx}" text-anchor="end" '
            f'font-size="12" fill="{color}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def resampling_note(ev: Evaluation) -> str:
    """What each improvement interval resampled, e.g. 'accuracy: multinomial draws of ...'."""
    from components.core.stats import RESAMPLING_METHODS

    names = {key: name for key, name, _ in METRIC_ROWS}
    return "; ".join(
        f"{names.get(key, key)}: {RESAMPLING_METHODS.get(ci.get('method', ''), 'rows')}"
        for key, ci in ev.improvement_ci.items()
    )


def render_html(ev: Evaluation, model_name: str) -> str:
    d = ev.decision
    verdict = "DEPLOYED" if d.deploy else "NOT DEPLOYED"
    color = "#0a7d32" if d.deploy else "#9a5b00"
    ci_pct = int(round((1 - d.alpha) * 100))
    rows = []
    for key, name, higher in METRIC_ROWS:
        new, old = ev.challenger.get(key), ev.champion.get(key)
        diff = (new - old) if new is not None and old is not None else None
        better = diff is not None and ((diff > 0) if higher else (diff < 0))
        ci = ev.improvement_ci.get(key)
        ci_text = f"{_f(ci['estimate'])} [{_f(ci['low'])}, {_f(ci['high'])}]" if ci else "–"
        cls = "up" if better else ""
        rows.append(
            f"<tr><td>{name}</td><td>{_f(new)}</td><td>{_f(old)}</td>"
            f"<td class='{cls}'>{_f(diff) if diff is not None else '–'}</td><td>{ci_text}</td></tr>"
        )
    low = d.effect.get("accuracy_lower_bound")
    checks = "".join(
        f"<li>{'✔' if c['passed'] else '✘'} {html.escape(c['check'])}"
        + (f" (p = {format_p(c['p_value'])})" if "p_value" in c else "")
        + (f" (lower bound {_f(c['lower_bound'], 4)})" if "lower_bound" in c else "")
        + "</li>"
        for c in d.checks
    )
    counts = d.counts
    roc = ""
    if ev.roc_challenger and ev.roc_champion:
        roc = "<h2>ROC curves</h2>" + _roc_svg(
            [("challenger", ev.roc_challenger, "#1f5fbf"), ("champion", ev.roc_champion, "#c0392b")]
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sigdeploy: {html.escape(model_name)}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:24px auto;color:#222;padding:0 16px}}
h1{{font-size:22px}} h2{{font-size:17px;margin-top:28px}}
.verdict{{font-size:20px;font-weight:700;color:{color}}}
.reason{{background:#f6f7f9;border-left:4px solid {color};padding:10px 14px;line-height:1.45}}
table{{border-collapse:collapse;margin:8px 0}} td,th{{border:1px solid #ddd;padding:5px 10px;text-align:right}}
th{{background:#f0f2f5}} td:first-child,th:first-child{{text-align:left}} td.up{{color:#0a7d32;font-weight:600}}
.grid{{display:flex;flex-wrap:wrap;gap:24px}} .muted{{color:#666;font-size:13px}}
</style></head><body>
<h1>sigdeploy evaluation: {html.escape(model_name)}</h1>
<p class="verdict">{verdict}</p>
<p class="reason">{html.escape(d.reason)}</p>
<h2>Metrics on the same {counts["test_rows"]} test rows</h2>
<table><tr><th>metric</th><th>challenger</th><th>champion ({html.escape(d.champion)})</th><th>difference</th><th>improvement, {ci_pct}% CI</th></tr>
{"".join(rows)}</table>
<p class="muted">Improvement: positive favours the challenger (for log loss, the champion's loss minus the challenger's); paired bootstrap, {ci_pct}% percentile interval; resampled: {html.escape(resampling_note(ev))}.</p>
<p>Accuracy difference {_f(d.effect["accuracy_difference"])}; one-sided {ci_pct}% lower bound
{_f(low) if low is not None else "–"} (paired bootstrap).</p>
<h2>Test</h2>
<table>
<tr><th>test</th><td>{html.escape(d.test)}</td></tr>
<tr><th>p-value</th><td>{d.p_value:.4g}</td></tr>
<tr><th>alpha (false-deploy risk)</th><td>{d.alpha}</td></tr>
<tr><th>margin</th><td>{d.margin}</td></tr>
<tr><th>both right / only challenger / only champion / both wrong</th><td>{counts["both_right"]} / {counts["only_challenger_right"]} / {counts["only_champion_right"]} / {counts["both_wrong"]}</td></tr>
<tr><th>power for the observed effect</th><td>{d.power["observed_power"]:.2f}</td></tr>
<tr><th>smallest improvement detectable with {int(float(d.power["target_power"] or 0.8) * 100)}% power</th><td>{_mde(d.power)}</td></tr>
</table>
<h2>Checks</h2><ul>{checks}</ul>
<h2>Confusion matrices (rows: true class, columns: predicted)</h2>
<div class="grid">{_confusion_svg(ev.confusion_challenger, ev.classes, "challenger")}
{_confusion_svg(ev.confusion_champion, ev.classes, "champion")}</div>
{roc}
<p class="muted">A deploy happens only when the test says the challenger is better with at most
{d.alpha:.0%} risk of deploying a model that is not. "Not deployed" with low power means the test
set is too small to tell, not that the challenger is worse.</p>
</body></html>
"""


def render_markdown(ev: Evaluation, model_name: str) -> str:
    d = ev.decision
    lines = [
        f"## sigdeploy: {model_name} — {'deployed' if d.deploy else 'not deployed'}",
        "",
        d.reason,
        "",
        "| metric | challenger | champion | difference |",
        "|---|---|---|---|",
    ]
    for key, name, _ in METRIC_ROWS:
        new, old = ev.challenger.get(key, float("nan")), ev.champion.get(key, float("nan"))
        lines.append(f"| {name} | {_f(new)} | {_f(old)} | {_f(new - old)} |")
    lines += [
        "",
        f"- test: {d.test}; p = {d.p_value:.4g}; alpha = {d.alpha}; margin = {d.margin}",
        f"- power for the observed effect: {d.power['observed_power']:.2f}; smallest detectable "
        f"improvement: {_mde(d.power)}",
        "",
    ]
    return "\n".join(lines)


def write_html(path: str, ev: Evaluation, model_name: str) -> None:
    write_text(path, render_html(ev, model_name))


def write_markdown(path: str, ev: Evaluation, model_name: str) -> None:
    write_text(path, render_markdown(ev, model_name))
