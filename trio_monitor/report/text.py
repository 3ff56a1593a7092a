"""The plain-text report (`--format text`, the default): a table that fits 80 columns."""

from __future__ import annotations

from .._config import format_duration
from .._records import PHASES, rfc3339
from ..store.records import ERROR_BOUND
from .aggregate import DEFAULT_SLOWEST, EXPIRING_WITHIN, IncidentView, Report
from .format import fmt_ms, fmt_pct, fmt_phase, human_duration, plural


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


KIND_W = 5  # the probe kind, after the name: "http", "dns", "icmp", "push", ...
# (header, width) of the numeric columns; the name column gets what is left of 80
_COLUMNS = (
    ("CHECKS", 7),
    ("AVAIL%", 7),
    ("P50ms", 7),
    ("P95ms", 7),
    ("P99ms", 7),
    ("INC", 4),
    ("DOWN", 7),
)


def _without_data(incidents: list[IncidentView]) -> str:
    n = sum(i.unobserved for i in incidents)
    return f", {n} without data" if n else ""


def render_text(report: Report, slowest: int = DEFAULT_SLOWEST, width: int = 80) -> str:
    fixed = KIND_W + 1 + sum(w + 1 for _, w in _COLUMNS)
    name_w = max(6, min(width - fixed, max((len(t.target) for t in report.targets), default=6)))
    span = format_duration(report.until - report.since)
    out = [
        f"trio-monitor report: {rfc3339(report.since)} .. {rfc3339(report.until)} ({span})",
        "",
        "TARGET".ljust(name_w)
        + " "
        + "KIND".ljust(KIND_W)
        + "".join(" " + h.rjust(w) for h, w in _COLUMNS),
    ]
    for t in report.targets:
        cells = (
            str(t.checks),
            fmt_pct(t.availability_pct),
            fmt_ms(t.p50),
            fmt_ms(t.p95),
            fmt_ms(t.p99),
            f"{len(t.incidents)}{'!' if t.ongoing else '?' if t.unobserved else ''}",
            human_duration(t.downtime_s) if t.incidents else "-",
        )
        row = _fit(t.target, name_w).ljust(name_w) + " " + _fit(t.kind or "-", KIND_W).ljust(KIND_W)
        out.append(
            row + "".join(" " + c.rjust(w) for c, (_, w) in zip(cells, _COLUMNS, strict=True))
        )
    if not report.targets:
        out.append("(no targets)")
    incidents = report.incidents
    ongoing = [i for i in incidents if i.ongoing]
    out += [
        "",
        f"{plural(len(report.targets), 'target')}, {plural(report.checks, 'check')}, "
        f"availability {fmt_pct(report.availability_pct, 3)}"
        f"{'' if report.availability_pct is None else '%'}",
        f"{plural(len(incidents), 'incident')} ({len(ongoing)} ongoing"
        f"{_without_data(incidents)}), "
        f"downtime {human_duration(sum(t.downtime_s for t in report.targets))}",
    ]
    for i in ongoing:
        name = _fit(i.target, max(10, width - 58))
        out.append(f"ongoing: {name} down since {rfc3339(i.start)} ({i.error or '?'})")
    for i in incidents:
        if i.unobserved:
            name = _fit(i.target, max(10, width - 90))
            out.append(
                f"no data: {name} down since {rfc3339(i.start)} ({i.error or '?'}), "
                f"no probe after {rfc3339(i.last_seen or i.start)}"
            )
        elif i.removed:
            name = _fit(i.target, max(10, width - 90))
            out.append(
                f"removed: {name} down since {rfc3339(i.start)} ({i.error or '?'}), "
                f"not monitored after {rfc3339(i.end or i.start)}"
            )
    means = report.latency_means()
    if means:
        out += ["", "latency, by kind:"]
        out += [_fit(f"  {kind}: {what}", width) for kind, what in means.items()]
    failing = [t for t in report.targets if t.errors]
    if failing:
        out += ["", "failures by error (raw probes):"]
        for t in failing:
            errors = ", ".join(f"{error} {n}" for error, n in t.errors.items())
            out.append(_fit(f"  {_fit(t.target, max(10, width - 40))}: {errors}", width))
    warnings = report.warnings
    if warnings:
        out += ["", "early warnings (degrading), and whether an outage followed:"]
        for w in warnings:
            followed = (
                "no outage followed"
                if w.lead_s is None
                else f"outage {human_duration(w.lead_s)} later"
            )
            what = w.detail or w.signal
            out.append(_fit(f"  {w.target} at {rfc3339(w.ts)}: {followed}: {what}", width))
    expiring = report.expiring()
    if expiring:
        out += ["", f"certificates expiring within {format_duration(EXPIRING_WITHIN)}:"]
        for c in expiring:
            name = _fit(c.target, max(10, width - 50))
            out.append(f"  {name}: {c.subject} {report.expiry(c)}")
    timed = report.timed
    if timed:
        phase_w = 11
        label_w = max(6, min(width - (phase_w + 1) * len(PHASES), name_w))
        out += [
            "",
            f"phases, p50/p95 ms over ok probes (+/-{ERROR_BOUND:.1%}; - did not happen):",
            "TARGET".ljust(label_w) + "".join(" " + p.upper().rjust(phase_w) for p in PHASES),
        ]
        for t in timed:
            spreads = "".join(" " + fmt_phase(p).rjust(phase_w) for p in t.phases.values())
            out.append(_fit(t.target, label_w).ljust(label_w) + spreads)
    top = report.slowest(slowest)
    if top:
        out += ["", f"slowest by p95 (+/-{ERROR_BOUND:.1%}):"]
        for n, t in enumerate(top, 1):
            label = _fit(t.target, width - 40).ljust(min(width - 40, name_w))
            out.append(f"{n:>3}. {label}  p95 {fmt_ms(t.p95):>7} ms  p99 {fmt_ms(t.p99):>7} ms")
    return "\n".join(out) + "\n"
