"""The JSON report (`--format json`). Its shape is a public contract: fields are only
added within REPORT_SCHEMA, never renamed or removed."""

from __future__ import annotations

import json
from typing import Any

from .._records import rfc3339
from ..store.records import ERROR_BOUND
from .aggregate import DEFAULT_SLOWEST, EXPIRING_WITHIN, OUTAGE_WITHIN, Report

REPORT_SCHEMA = 1  # the JSON report's own version: fields are only added within it


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def report_dict(report: Report, slowest: int = DEFAULT_SLOWEST) -> dict[str, Any]:
    """The JSON report. Its shape is a contract: fields are added, never renamed."""
    targets = []
    for t in report.targets:
        targets.append(
            {
                "target": t.target,
                "url": t.url,
                "kind": t.kind,  # null when the source does not say (history without config)
                "checks": t.checks,
                "ok": t.ok,
                "failures": t.failures,
                "availability_pct": _r(t.availability_pct, 4),
                # probes left out of checks and availability: in maintenance (only with
                # --exclude-maintenance, else 0)
                "held_checks": t.held_checks,
                "latency_ms": {
                    "p50": t.p50,
                    "p95": t.p95,
                    "p99": t.p99,
                    "mean": _r(t.mean_ms),
                    "min": _r(t.min_ms),
                    "max": _r(t.max_ms),
                    "error_bound": round(ERROR_BOUND, 4),
                },
                "incidents": [
                    {
                        "start": rfc3339(i.start),
                        "end": None if i.end is None else rfc3339(i.end),
                        "duration_s": _r(i.duration_s),
                        "in_range_s": _r(i.in_range_s),
                        "error": i.error,
                        "ongoing": i.ongoing,
                        "end_reason": i.end_reason,
                        "last_seen": None if i.last_seen is None else rfc3339(i.last_seen),
                        "unobserved": i.unobserved,
                    }
                    for i in t.incidents
                ],
                "downtime_s": _r(t.downtime_s),
                "longest_outage_s": _r(t.longest_outage_s),
                "mttr_s": _r(t.mttr_s),
                "content_changes": t.content_changes,
                # failed probes by error kind (raw probes only: hourly rollups keep none)
                "errors": t.errors,
                "phases_ms": {
                    phase: None if p is None else {"p50": p.p50, "p95": p.p95, "count": p.count}
                    for phase, p in t.phases.items()
                },
                "slots": {
                    "checks": [_r(s.checks, 2) for s in t.slots],
                    "failures": [_r(s.failures, 2) for s in t.slots],
                    "mean_latency_ms": [_r(s.mean_latency_ms) for s in t.slots],
                },
            }
        )
    incidents = report.incidents
    return {
        "report_schema": REPORT_SCHEMA,
        "since": rfc3339(report.since),
        "until": rfc3339(report.until),
        "slot_seconds": _r(report.slot_seconds),
        "source": report.source,
        "summary": {
            "targets": len(report.targets),
            "checks": report.checks,
            "ok": report.ok,
            "availability_pct": _r(report.availability_pct, 4),
            "incidents": len(incidents),
            "ongoing": sum(i.ongoing for i in incidents),
            "unobserved": sum(i.unobserved for i in incidents),
            "downtime_s": _r(sum(t.downtime_s for t in report.targets)),
            "content_changes": sum(t.content_changes for t in report.targets),
        },
        "slowest": [
            {"target": t.target, "p50": t.p50, "p95": t.p95, "p99": t.p99}
            for t in report.slowest(slowest)
        ],
        "targets": targets,
        # the targets' latest certificates that expire within 30 days of `until`
        "certificates_expiring": [
            {
                "target": c.target,
                "subject": c.subject,
                "issuer": c.issuer,
                "not_after": rfc3339(c.not_after),
                "earliest_not_after": rfc3339(c.earliest_not_after),
                "earliest_subject": c.earliest_subject,
                "seen": rfc3339(c.seen),
                "days_left": round((c.expires - report.until) / 86400, 2),
            }
            for c in report.expiring()
        ],
        "certificates_within_days": EXPIRING_WITHIN / 86400,
        # early warnings (`degrading`) in range, and the outage that followed (if one
        # of the target's incidents began within OUTAGE_WITHIN after it)
        "warnings": [
            {
                "target": w.target,
                "ts": rfc3339(w.ts),
                "signal": w.signal,
                "detail": w.detail,
                "outage_start": None if w.outage_start is None else rfc3339(w.outage_start),
                "lead_s": _r(w.lead_s),
            }
            for w in report.warnings
        ],
        "warnings_outage_within_s": OUTAGE_WITHIN,
        # what latency_ms measures for the kinds in the report, where it differs
        "latency_means": report.latency_means(),
    }


def render_json(report: Report, slowest: int = DEFAULT_SLOWEST) -> str:
    return json.dumps(report_dict(report, slowest), ensure_ascii=False, indent=2) + "\n"
