"""The gate report as Markdown or as one self-contained HTML page.

The HTML page has no script and loads nothing: its charts are inline SVG drawn here, and
every piece of text in it is escaped (kinds, reasons and owner names come from records).
"""

from __future__ import annotations

from html import escape
from typing import Any

from assistant.quality.gate import Criterion, Decision, GateReport, Verdict

_MARK = {Verdict.PASS: "pass", Verdict.FAIL: "FAIL", Verdict.NO_DATA: "no data"}
_COLOR = {Decision.GO: "#1a7f37", Decision.NO_GO: "#cf222e", Decision.REVISE: "#9a6700"}


def fmt(value: Any) -> str:
    """A value as people read it: rates and money to a few places, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    return str(value)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _threshold(criterion: Criterion) -> str:
    return f"{criterion.comparator} {fmt(criterion.threshold)}"


def to_markdown(report: GateReport) -> str:
    """The report as Markdown: decision, criteria table, quality and cost."""
    data = report.to_dict()
    lines = [
        f"# Decision gate: {report.decision.value}",
        "",
        f"Tenant `{report.tenant_id}`, period {report.period.label} "
        f"({report.period.start:%Y-%m-%d %H:%M} to {report.period.end:%Y-%m-%d %H:%M} UTC), "
        f"generated {report.generated_at:%Y-%m-%d %H:%M} UTC.",
        "",
        "NO-GO if a hard criterion fails; REVISE if a soft one fails or any has no data; "
        "GO if all pass.",
        "",
        "| criterion | hard | measured | threshold | verdict | detail |",
        "|---|---|---|---|---|---|",
    ]
    for c in report.criteria:
        lines.append(
            f"| {_md_cell(c.title)} | {'yes' if c.hard else 'no'} | {fmt(c.value)} "
            f"| {_md_cell(_threshold(c))} | {_MARK[c.verdict]} "
            f"| {_md_cell(c.detail)} |"
        )
    lines += [
        "",
        "## Quality by action kind",
        "",
        "| kind | reviewed | accepted unedited | edited | rejected | expired | "
        "cancelled | auto-approved | mean edit distance |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in data["quality"]["by_kind"]:
        lines.append(
            f"| {_md_cell(kind['kind'])} | {kind['reviewed']} | {fmt(kind['acceptance_rate'])} "
            f"| {fmt(kind['edit_rate'])} | {fmt(kind['rejection_rate'])} "
            f"| {fmt(kind['expiry_rate'])} | {fmt(kind['cancel_rate'])} "
            f"| {kind['counts']['auto_approved']} | {fmt(kind['edit_distance']['mean'])} |"
        )
    reasons = data["quality"]["rejection_reasons"]
    if reasons:
        lines += [
            "",
            "Rejection reasons: "
            + "; ".join(f"{_md_cell(r['reason'])} ({r['count']})" for r in reasons[:10]),
        ]
    triage = data["quality"]["triage"]
    lines += [
        "",
        "## Triage",
        "",
        f"{triage['results']} results, {triage['decided']} decided by the pipeline, "
        f"{triage['corrected']} corrected (accuracy {fmt(triage['accuracy'])}).",
    ]
    if triage["confusion"]:
        lines += ["", "| predicted | corrected to | count |", "|---|---|---|"]
        lines += [
            f"| {_md_cell(c['predicted'])} | {_md_cell(c['corrected_to'])} | {c['count']} |"
            for c in triage["confusion"]
        ]
    cost = data["cost"]
    lines += [
        "",
        "## Cost (USD)",
        "",
        "| figure | value |",
        "|---|---|",
        *(f"| {label} | {fmt(cost[key])} |" for key, label in _COST_ROWS),
    ]
    if report.spot_checks:
        spot = report.spot_checks
        lines += [
            "",
            f"Spot checks of auto-approved actions: {spot['open']} open, "
            f"{spot['checked']} checked, {spot['wrong']} found wrong.",
        ]
    if report.open_alerts:
        lines += ["", "## Open quality alerts", ""]
        lines += [
            f"- {_md_cell(a['metric'])} {_md_cell(a['kind'])}: {fmt(a['value'])} "
            f"> {fmt(a['threshold'])}"
            for a in report.open_alerts
        ]
    return "\n".join(lines) + "\n"


_COST_ROWS = (
    ("items", "items handled"),
    ("llm_cost", "LLM cost"),
    ("fixed_cost", "fixed cost (prorated)"),
    ("total_cost", "total cost"),
    ("cost_per_item", "cost per item"),
    ("monthly_run_rate", "monthly run-rate"),
    ("projected_monthly_cost", "projected monthly cost at target volume"),
    ("hours_saved", "hours saved"),
    ("value_saved", "value of time saved"),
    ("roi", "ROI over the period"),
    ("projected_roi", "ROI at target volume"),
)


# --------------------------------------------------------------------------- SVG charts

_PALETTE = ("#0969da", "#1a7f37", "#cf222e", "#8250df", "#9a6700")


def line_chart(
    title: str,
    labels: list[str],
    lines: dict[str, list[float | None]],
    *,
    y_max: float | None = None,
    width: int = 640,
    height: int = 220,
) -> str:
    """An inline SVG line chart; gaps (None) break a line."""
    left, right, top, bottom = 48, 12, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for series in lines.values() for v in series if v is not None]
    top_value = y_max if y_max is not None else max(values, default=0.0) or 1.0
    count = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * min(v, top_value) / top_value

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end">'
        f"{escape(fmt(round(top_value, 4)))}</text>",
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    step = max(1, count // 8)
    for i in range(0, len(labels), step):
        parts.append(
            f'<text x="{x(i):.1f}" y="{top + plot_h + 14}" font-size="10" '
            f'text-anchor="middle">{escape(labels[i])}</text>'
        )
    for n, (name, series) in enumerate(lines.items()):
        color = _PALETTE[n % len(_PALETTE)]
        run: list[str] = []
        for i, v in enumerate([*series, None]):
            if v is not None:
                run.append(f"{x(i):.1f},{y(v):.1f}")
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}"/>')
                continue
            if len(run) > 1:
                parts.append(
                    f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                    f'points="{" ".join(run)}"/>'
                )
            run = []
        legend_x = left + 10 + n * 150
        parts.append(
            f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" '
            f'fill="{color}"/><text x="{legend_x + 14}" y="{height - 5}" '
            f'font-size="11">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    title: str, labels: list[str], values: list[float], *, width: int = 640, height: int = 220
) -> str:
    """An inline SVG bar chart."""
    left, right, top, bottom = 56, 12, 28, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max(values, default=0.0) or 1.0
    slot = plot_w / max(len(values), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end">'
        f"{escape(fmt(round(top_value, 4)))}</text>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#888"/>',
    ]
    step = max(1, len(labels) // 8)
    for i, value in enumerate(values):
        bar_h = plot_h * value / top_value
        parts.append(
            f'<rect x="{left + i * slot + slot * 0.1:.1f}" '
            f'y="{top + plot_h - bar_h:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{bar_h:.1f}" fill="#0969da"><title>'
            f"{escape(labels[i])}: {escape(fmt(round(value, 4)))}</title></rect>"
        )
        if i % step == 0:
            parts.append(
                f'<text x="{left + i * slot + slot / 2:.1f}" y="{height - 8}" '
                f'font-size="10" text-anchor="middle">{escape(labels[i])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: GateReport) -> str:
    """One self-contained page: decision, criteria, charts, quality and cost tables."""
    data = report.to_dict()
    hourly = report.period.days < 2
    labels = [p.start.strftime("%H:%M" if hourly else "%m-%d") for p in report.series]
    points = data["series"]
    fixed_per_bucket = (report.cost.fixed_cost / len(points)) if points else 0.0
    rates = line_chart(
        "Review rates",
        labels,
        {
            "accepted unedited": [p["acceptance_rate"] for p in points],
            "edited": [p["edit_rate"] for p in points],
            "rejected": [p["rejection_rate"] for p in points],
        },
        y_max=1.0,
    )
    triage = line_chart(
        "Triage correction rate",
        labels,
        {"corrected": [p["triage_correction_rate"] for p in points]},
        y_max=1.0,
    )
    costs = bar_chart(
        "Cost per slice (LLM + prorated fixed, USD)",
        labels,
        [p["llm_cost"] + fixed_per_bucket for p in points],
    )
    checks = report.spot_checks or {"open": 0, "checked": 0, "wrong": 0}
    spot = f"{checks['open']} open, {checks['checked']} checked, {checks['wrong']} found wrong"
    color = _COLOR[report.decision]
    rows = "".join(
        f'<tr class="{c.verdict.value}"><td>{escape(c.title)}</td>'
        f"<td>{'hard' if c.hard else 'soft'}</td><td>{escape(fmt(c.value))}</td>"
        f"<td>{escape(_threshold(c))}</td><td>{escape(_MARK[c.verdict])}</td>"
        f"<td>{escape(c.detail)}</td></tr>"
        for c in report.criteria
    )
    kinds = "".join(
        f"<tr><td>{escape(k['kind'])}</td><td>{k['reviewed']}</td>"
        f"<td>{escape(fmt(k['acceptance_rate']))}</td><td>{escape(fmt(k['edit_rate']))}</td>"
        f"<td>{escape(fmt(k['rejection_rate']))}</td><td>{escape(fmt(k['expiry_rate']))}</td>"
        f"<td>{escape(fmt(k['cancel_rate']))}</td><td>{k['counts']['auto_approved']}</td>"
        f"<td>{escape(fmt(k['edit_distance']['mean']))}</td></tr>"
        for k in data["quality"]["by_kind"]
    )
    reasons = "".join(
        f"<li>{escape(r['reason'])} ({r['count']})</li>"
        for r in data["quality"]["rejection_reasons"][:20]
    )
    confusion = "".join(
        f"<tr><td>{escape(c['predicted'])}</td><td>{escape(c['corrected_to'])}</td>"
        f"<td>{c['count']}</td></tr>"
        for c in data["quality"]["triage"]["confusion"]
    )
    cost_rows = "".join(
        f"<tr><td>{escape(label)}</td><td>{escape(fmt(data['cost'][key]))}</td></tr>"
        for key, label in _COST_ROWS
    )
    alerts = "".join(
        f"<li>{escape(a['metric'])} {escape(a['kind'])}: "
        f"{escape(fmt(a['value']))} &gt; {escape(fmt(a['threshold']))}</li>"
        for a in report.open_alerts
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Decision gate: {escape(report.decision.value)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; }}
tr.fail td {{ background: #ffebe9; }} tr.no_data td {{ background: #fff8c5; }}
.decision {{ font-size: 2rem; font-weight: bold; color: {color}; }}
</style></head><body>
<h1>Decision gate <span class="decision">{escape(report.decision.value)}</span></h1>
<p>Tenant <code>{escape(report.tenant_id)}</code>, period {escape(report.period.label)}
({report.period.start:%Y-%m-%d %H:%M} to {report.period.end:%Y-%m-%d %H:%M} UTC),
generated {report.generated_at:%Y-%m-%d %H:%M} UTC. NO-GO if a hard criterion fails;
REVISE if a soft one fails or any has no data; GO if all pass.</p>
<table><thead><tr><th>criterion</th><th>kind</th><th>measured</th><th>threshold</th>
<th>verdict</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Over time</h2>
<figure>{rates}</figure><figure>{triage}</figure><figure>{costs}</figure>
<h2>Quality by action kind</h2>
<table><thead><tr><th>kind</th><th>reviewed</th><th>accepted unedited</th><th>edited</th>
<th>rejected</th><th>expired</th><th>cancelled</th><th>auto-approved</th>
<th>mean edit distance</th></tr></thead><tbody>{kinds}</tbody></table>
<h3>Rejection reasons</h3><ul>{reasons or "<li>none</li>"}</ul>
<h2>Triage corrections</h2>
<table><thead><tr><th>predicted</th><th>corrected to</th><th>count</th></tr></thead>
<tbody>{confusion}</tbody></table>
<h2>Cost (USD)</h2><table><tbody>{cost_rows}</tbody></table>
<h2>Spot checks</h2><p>{escape(spot)}</p>
<h2>Open quality alerts</h2><ul>{alerts or "<li>none</li>"}</ul>
</body></html>
"""
