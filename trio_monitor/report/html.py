"""The HTML report (`--format html`): one self-contained page, inline CSS and SVG, no
scripts, nothing fetched. Its CSS is `static/report.css` (package data), inlined; its
colours and availability levels are the shared palette's (`_palette`)."""

from __future__ import annotations

import functools
import html
import json
import math
from datetime import UTC, datetime
from importlib import resources

from .._config import format_duration
from .._palette import COLORS, OK_FROM, WARN_FROM, level
from .._records import PHASES, rfc3339
from ..store.records import ERROR_BOUND
from .aggregate import DEFAULT_SLOWEST, EXPIRING_WITHIN, SLOTS, Report, SlotView, TargetReport
from .format import fmt_ms, fmt_pct, fmt_phase, human_duration

SECONDS_AXIS_FROM_MS = 10_000.0  # a latency axis this high is labelled in seconds
SLOT_PX = 10  # uptime bar: one SLOT_PX-wide column per slot, a 1 px gap between

# Text colour of an availability figure, by palette level (darker than the fills, to read).
_TEXT_CLASS = {"ok": "good", "warn": "warn", "bad": "bad", "nodata": "muted"}


@functools.cache
def _css() -> str:
    """The stylesheet shipped next to this module, read once."""
    return resources.files("trio_monitor.report").joinpath("static/report.css").read_text("utf-8")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _short_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%m-%d %H:%M")


def _slot_color(slot: SlotView) -> str:
    a = slot.availability
    return COLORS[level(None if a is None else 100 * a)]


def _uptime_svg(t: TargetReport, report: Report) -> str:
    w = len(t.slots) * SLOT_PX
    rects = []
    for i, s in enumerate(t.slots):
        end = s.start + report.slot_seconds
        a = s.availability
        what = "no data" if a is None else f"{100 * a:.2f}% of {s.checks:.0f} checks"
        tip = f"{_short_time(s.start)} .. {_short_time(end)} UTC: {what}"
        rects.append(
            f'<rect x="{i * SLOT_PX}" y="0" width="{SLOT_PX - 1}" height="24" '
            f'fill="{_slot_color(s)}"><title>{_e(tip)}</title></rect>'
        )
    return (
        f'<svg class="uptime" width="{w}" height="40" viewBox="0 0 {w} 40" '
        f'shape-rendering="crispEdges" role="img" aria-label="uptime">{"".join(rects)}'
        f'<text class="axis" x="0" y="37">{_e(_short_time(report.since))}</text>'
        f'<text class="axis" x="{w}" y="37" text-anchor="end">'
        f"{_e(_short_time(report.until))} UTC</text></svg>"
    )


def _nice_ceiling(x: float) -> float:
    if x <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= x:
            return m * exp
    return 10 * exp


def _latency_svg(t: TargetReport, report: Report) -> str:
    width, height = 560, 170
    left, right, top, bottom = 56, 548, 10, 140
    values = [s.mean_latency_ms for s in t.slots]
    peak = max((v for v in values if v is not None), default=None)
    ymax = _nice_ceiling((peak or 1.0) * 1.1)
    n = len(values)

    def x(i: float) -> float:
        return left + (i + 0.5) * (right - left) / n

    def y(v: float) -> float:
        return bottom - v / ymax * (bottom - top)

    # a push job's run time is minutes: in seconds, the axis labels fit their margin
    scale, unit = (1000.0, "s") if ymax >= SECONDS_AXIS_FROM_MS else (1.0, "ms")
    parts = []
    for frac in (0, 0.5, 1):
        gy = bottom - frac * (bottom - top)
        parts.append(
            f'<line x1="{left}" x2="{right}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="#eaeef2"/>'
            f'<text class="axis" x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{ymax * frac / scale:g}{' ' + unit if frac == 1 else ''}</text>"
        )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="#8c959f"/>'
        f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#8c959f"/>'
    )
    mid = (report.since + report.until) / 2
    for px, ts, anchor in (
        (left, report.since, "start"),
        ((left + right) / 2, mid, "middle"),
        (right, report.until, "end"),
    ):
        parts.append(
            f'<text class="axis" x="{px:.1f}" y="{bottom + 16}" text-anchor="{anchor}">'
            f"{_e(_short_time(ts))}</text>"
        )
    run: list[str] = []
    runs = []
    for i, v in enumerate([*values, None]):
        if v is not None:
            run.append(f"{x(i):.1f},{y(v):.1f}")
        elif run:
            runs.append(run)
            run = []
    for pts in runs:
        if len(pts) == 1:
            cx, cy = pts[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{COLORS["line"]}"/>')
        else:
            parts.append(
                f'<polyline class="latency" fill="none" stroke="{COLORS["line"]}" stroke-width="2" '
                f'stroke-linejoin="round" points="{" ".join(pts)}"/>'
            )
    if not runs:
        parts.append(
            f'<text class="axis" x="{(left + right) / 2}" y="{(top + bottom) / 2}" '
            'text-anchor="middle">no latency data</text>'
        )
    return (
        f'<svg class="latency-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="mean latency per slot">'
        f"{''.join(parts)}</svg>"
    )


def _kind_badge(t: TargetReport) -> str:
    return "" if t.kind is None else f' <span class="kind mono">{_e(t.kind)}</span>'


def _content_changes(t: TargetReport) -> str:
    """Only HTTP probes hash content: other kinds show a dash, not a misleading 0."""
    return str(t.content_changes) if t.kind in (None, "http") or t.content_changes else "-"


def _avail_class(pct: float | None) -> str:
    return _TEXT_CLASS[level(pct)]


def render_html(report: Report, slowest: int = DEFAULT_SLOWEST) -> str:
    """One self-contained page: inline CSS and SVG, no scripts, nothing fetched."""
    incidents = report.incidents
    ongoing = sum(i.ongoing for i in incidents)
    unobserved = sum(i.unobserved for i in incidents)
    downtime = sum(t.downtime_s for t in report.targets)
    span = format_duration(report.until - report.since)
    o = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>trio-monitor report {_e(rfc3339(report.since))} .. "
        f"{_e(rfc3339(report.until))}</title>",
        f"<style>\n{_css()}</style></head><body>",
        "<h1>trio-monitor report</h1>",
        f'<div class="muted">{_e(rfc3339(report.since))} .. {_e(rfc3339(report.until))} '
        f"({_e(span)}, {len(report.targets[0].slots) if report.targets else SLOTS} slots of "
        f"{_e(human_duration(report.slot_seconds))})</div>",
        '<div class="cards">',
        f'<div class="card">targets<b>{len(report.targets)}</b></div>',
        f'<div class="card">checks<b>{report.checks}</b></div>',
        f'<div class="card">availability<b class="{_avail_class(report.availability_pct)}">'
        f"{fmt_pct(report.availability_pct, 3)}%</b></div>",
        f'<div class="card">incidents<b>{len(incidents)}'
        + (f' <span class="badge">{ongoing} ongoing</span>' if ongoing else "")
        + (f' <span class="badge">{unobserved} no data</span>' if unobserved else "")
        + "</b></div>",
        f'<div class="card">downtime<b>{_e(human_duration(downtime))}</b></div>',
        "</div>",
        "<h2>Targets</h2>",
        '<table><tr><th class="name">target</th><th class="name">kind</th><th>checks</th>'
        "<th>availability</th>"
        "<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>incidents</th><th>downtime</th>"
        "<th>MTTR</th><th>content changes</th></tr>",
    ]
    for t in report.targets:
        o.append(
            f'<tr><td class="name" title="{_e(t.target)}">{_e(t.target)}</td>'
            f'<td class="name mono">{_e(t.kind or "-")}</td><td>{t.checks}</td>'
            f'<td class="{_avail_class(t.availability_pct)}">{fmt_pct(t.availability_pct)}%</td>'
            f"<td>{fmt_ms(t.p50)}</td><td>{fmt_ms(t.p95)}</td><td>{fmt_ms(t.p99)}</td>"
            f"<td>{len(t.incidents)}"
            + (' <span class="badge">ongoing</span>' if t.ongoing else "")
            + (' <span class="badge">no data</span>' if t.unobserved else "")
            + f"</td><td>{human_duration(t.downtime_s) if t.incidents else '-'}</td>"
            f"<td>{human_duration(t.mttr_s)}</td><td>{_content_changes(t)}</td></tr>"
        )
    o.append("</table>")
    means = report.latency_means()
    if means:
        o.append(
            '<p class="muted">latency, by kind: '
            + "; ".join(f"<b>{_e(kind)}</b> {_e(what)}" for kind, what in means.items())
            + "</p>"
        )
    failing = [t for t in report.targets if t.errors]
    if failing:
        o.append(
            '<h2>Failures by error <span class="muted">(raw probes)</span></h2>'
            '<table><tr><th class="name">target</th><th class="name">kind</th>'
            '<th class="name">errors</th></tr>'
        )
        for t in failing:
            errors = ", ".join(f"{_e(error)} {n}" for error, n in t.errors.items())
            o.append(
                f'<tr><td class="name">{_e(t.target)}</td><td class="name mono">'
                f'{_e(t.kind or "-")}</td><td class="name">{errors}</td></tr>'
            )
        o.append("</table>")
    o.append(
        '<h2>Over time <span class="legend muted">'
        f'<span style="background:{COLORS["ok"]}"></span>&ge; {OK_FROM:g}%'
        f'<span style="background:{COLORS["warn"]}"></span>&ge; {WARN_FROM:g}%'
        f'<span style="background:{COLORS["bad"]}"></span>&lt; {WARN_FROM:g}%'
        f'<span style="background:{COLORS["nodata"]}"></span>no data</span></h2>'
    )
    for t in report.targets:
        url = f'<div class="url muted mono">{_e(t.url)}</div>' if t.url else ""
        o.append(
            f'<div class="target"><div><h3 title="{_e(t.target)}">{_e(t.target)}'
            f"{_kind_badge(t)}</h3>{url}"
            f'<div class="stats"><span class="{_avail_class(t.availability_pct)}">'
            f"{fmt_pct(t.availability_pct)}%</span> of {t.checks} checks &middot; "
            f"p50 {fmt_ms(t.p50)} &middot; p95 {fmt_ms(t.p95)} &middot; p99 {fmt_ms(t.p99)} ms</div>"
            f"{_uptime_svg(t, report)}</div>"
            f"<div>{_latency_svg(t, report)}</div></div>"
        )
    o.append("<h2>Incidents</h2>")
    if incidents:
        o.append(
            '<table><tr><th class="name">target</th><th class="name">start</th>'
            '<th class="name">end</th><th>duration</th><th class="name">error</th></tr>'
        )
        for i in reversed(incidents):
            if i.ongoing:
                end = '<span class="badge">ongoing</span>'
            elif i.unobserved:
                end = f'<span class="badge">no data since {_e(rfc3339(i.last_seen or i.start))}</span>'
            else:
                end = _e(rfc3339(i.end or 0))
            if i.removed:
                end += ' <span class="badge">removed</span>'
            o.append(
                f'<tr><td class="name">{_e(i.target)}</td><td class="name mono">'
                f'{_e(rfc3339(i.start))}</td><td class="name mono">{end}</td>'
                f"<td>{_e(human_duration(i.duration_s))}</td>"
                f'<td class="name">{_e(i.error or "?")}</td></tr>'
            )
        o.append("</table>")
    else:
        o.append('<p class="muted">No incidents in this range.</p>')
    warnings = report.warnings
    if warnings:
        o.append(
            '<h2>Early warnings <span class="muted">(degrading; did an outage follow?)</span>'
            '</h2><table><tr><th class="name">when</th><th class="name">target</th>'
            '<th class="name">signal</th><th class="name">evidence</th>'
            '<th class="name">outage</th></tr>'
        )
        for w in warnings:
            followed = "no" if w.lead_s is None else f"{human_duration(w.lead_s)} later"
            o.append(
                f'<tr><td class="name">{_e(_short_time(w.ts))}</td>'
                f'<td class="name">{_e(w.target)}</td><td class="name">{_e(w.signal)}</td>'
                f'<td class="name">{_e(w.detail or "")}</td>'
                f'<td class="name">{_e(followed)}</td></tr>'
            )
        o.append("</table>")
    expiring = report.expiring()
    if expiring:
        o.append(
            f"<h2>Certificates expiring within {format_duration(EXPIRING_WITHIN)}</h2>"
            '<table><tr><th class="name">target</th><th class="name">subject</th>'
            '<th class="name">expiry</th></tr>'
        )
        for c in expiring:
            o.append(
                f'<tr><td class="name">{_e(c.target)}</td><td class="name">{_e(c.subject)}</td>'
                f'<td class="name">{_e(report.expiry(c))}</td></tr>'
            )
    timed = report.timed
    if timed:
        o.append(
            f'<h2>Phases <span class="muted">(p50 / p95 ms over ok probes, &plusmn;{ERROR_BOUND:.1%};'
            ' &ndash; where a phase did not happen)</span></h2><table><tr><th class="name">target</th>'
            + "".join(f"<th>{_e(phase)}</th>" for phase in PHASES)
            + "</tr>"
        )
        for t in timed:
            cells = "".join(f"<td>{_e(fmt_phase(p))}</td>" for p in t.phases.values())
            o.append(f'<tr><td class="name">{_e(t.target)}</td>{cells}</tr>')
        o.append("</table>")
    top = report.slowest(slowest)
    if top:
        o.append(
            f'<h2>Slowest by p95 <span class="muted">(percentiles &plusmn;{ERROR_BOUND:.1%})'
            '</span></h2><table><tr><th class="name">target</th><th>p50 ms</th>'
            "<th>p95 ms</th><th>p99 ms</th></tr>"
        )
        for t in top:
            o.append(
                f'<tr><td class="name">{_e(t.target)}</td><td>{fmt_ms(t.p50)}</td>'
                f"<td>{fmt_ms(t.p95)}</td><td>{fmt_ms(t.p99)}</td></tr>"
            )
        o.append("</table>")
    o.append(f'<p class="muted">source: {_e(json.dumps(report.source))}</p></body></html>')
    return "\n".join(o) + "\n"
