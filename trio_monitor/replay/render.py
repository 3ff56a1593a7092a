"""The outcome of a replay: one JSON object (`to_json`; `--format json` prints it, its
shape is pinned by tests/test_simulate.py) and its text form (`render_text`, made from
that object, so both say the same).

Per notifier, the alerts the candidate would have sent next to those the recording
sent, matched by event, target and time (`_side_by_side`), with counts per event; per outage, the time from its first failed probe to its
first page, the candidate's and the recording's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from .._records import TS_MAX, TS_MIN, AlertEvent, rfc3339
from ..report.format import human_duration, plural
from .engine import Notifier, Outage, Replay
from .sources import Recording, Sent

SCHEMA = 1
MATCH_WINDOW = 60.0  # seconds: a due time's alert and its recorded twin (see _side_by_side)


def _time(ts: float | None) -> str | None:
    return None if ts is None or ts in (TS_MIN, TS_MAX) else rfc3339(ts)


def _match_key(a: AlertEvent) -> tuple[str, str, float]:
    return a.event, a.target, round(a.ts, 3)


def _entry(a: AlertEvent, would: bool, were: bool, status: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ts": rfc3339(a.ts),
        "event": a.event,
        "target": a.target,
        "detail": a.detail,
        "would": would,
        "were": were,
    }
    if a.members:
        entry["members"] = len(a.members)
    if status is not None:
        entry["status"] = status
    return entry


def _side_by_side(would: list[AlertEvent], were: list[Sent]) -> list[dict[str, Any]]:
    """Alerts a probe made match to the millisecond (both carry the probe's `ts`). One
    a due time made (a group's window end, a reminder) is stamped with the wall clock
    of the monitor's tick, the replay's with the due time (from the probe's start, not
    its end): the same event of the same target within MATCH_WINDOW is the same alert."""
    recorded = {_match_key(s.alert): s for s in were}
    matched = [(a, recorded.pop(_match_key(a), None)) for a in would]
    near: dict[tuple[str, str], list[Sent]] = {}
    for s in recorded.values():
        near.setdefault((s.alert.event, s.alert.target), []).append(s)

    def twin(a: AlertEvent) -> Sent | None:
        twins = near.get((a.event, a.target), [])
        found = next((c for c in twins if abs(c.alert.ts - a.ts) <= MATCH_WINDOW), None)
        if found is not None:
            twins.remove(found)
        return found

    out = []
    for a, exact in matched:
        got = exact or twin(a)
        out.append(_entry(a, True, got is not None, None if got is None else got.status))
    out += [_entry(s.alert, False, True, s.status) for ss in near.values() for s in ss]
    out.sort(key=lambda e: (e["ts"], e["target"], e["event"]))
    return out


def _by_event(would: Iterable[AlertEvent], were: Iterable[Sent]) -> dict[str, dict[str, int]]:
    w, r = Counter(a.event for a in would), Counter(s.alert.event for s in were)
    return {e: {"would": w[e], "were": r[e]} for e in sorted(w.keys() | r.keys())}


def _recorded_for(n: Notifier, sent: list[Sent]) -> list[Sent]:
    if sent and sent[0].notifier is None:  # JSON lines: routed as the candidate routes
        return [s for s in sent if n.accepts(s.alert)]
    return [s for s in sent if s.notifier == n.identity]


def _notifier(n: Notifier, were: list[Sent]) -> dict[str, Any]:
    return {
        "name": n.name,
        "identity": n.identity,
        "would_send": len(n.alerts),
        "were_sent": len(were),
        "by_event": _by_event(n.alerts, were),
        "alerts": _side_by_side(n.alerts, were),
    }


def _stats(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def rank(p: float) -> float | None:
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1] if ordered else None

    return {"median": rank(50), "p90": rank(90), "max": ordered[-1] if ordered else None}


def _outage(o: Outage) -> dict[str, Any]:
    return {
        "target": o.target,
        "start": rfc3339(o.start),
        "end": _time(o.end),
        "first_page": _time(o.page),
        "time_to_alert_s": o.time_to_alert,
        "recorded_first_page": _time(o.recorded_page),
        "recorded_time_to_alert_s": o.recorded_time_to_alert,
        "not_paged": o.quiet if o.page is None else None,
    }


def to_json(replay: Replay, recording: Recording, sent: list[Sent]) -> dict[str, Any]:
    identities = {n.identity for n in replay.notifiers}
    elsewhere: dict[str, list[Sent]] = {}
    for s in sent:
        if s.notifier is not None and s.notifier not in identities:
            elsewhere.setdefault(s.notifier, []).append(s)
    per_notifier = [_notifier(n, _recorded_for(n, sent)) for n in replay.notifiers]
    ttas = [t for o in replay.outages if (t := o.time_to_alert) is not None]
    recorded_ttas = [t for o in replay.outages if (t := o.recorded_time_to_alert) is not None]
    return {
        "schema": SCHEMA,
        "source": {
            "kind": recording.kind,
            "path": recording.label,
            "since": _time(recording.since),
            "until": _time(recording.until),
            "first": _time(replay.first),
            "last": _time(replay.last),
            "probes": replay.probes,
            "notes": recording.notes,
        },
        "targets": {
            "replayed": len(recording.names & replay.targets.keys()),
            "only_in_recording": sorted(recording.names - replay.targets.keys()),
            "only_in_candidate": sorted(replay.targets.keys() - recording.names),
        },
        "notifiers": per_notifier,
        "recorded_elsewhere": [
            {"identity": ident, "were_sent": len(were), "by_event": _by_event((), were)}
            for ident, were in sorted(elsewhere.items())
        ],
        "outages": [_outage(o) for o in replay.outages],
        "totals": {
            "would_send": sum(n["would_send"] for n in per_notifier),
            "were_sent": sum(n["were_sent"] for n in per_notifier),
            "alerts_made": dict(sorted(replay.made.items())),
            "outages": len(replay.outages),
            "paged": len(ttas),
            "recorded_paged": len(recorded_ttas),
            "time_to_alert_s": _stats(ttas),
            "recorded_time_to_alert_s": _stats(recorded_ttas),
        },
    }


def _names(names: list[str], shown: int = 8) -> str:
    return ", ".join(names[:shown]) + (
        f" and {len(names) - shown} more" if len(names) > shown else ""
    )


def _tta(stats: dict[str, float | None]) -> str:
    return " / ".join(human_duration(stats[k]) for k in ("median", "p90", "max"))


def render_text(doc: dict[str, Any], limit: int = 20) -> str:
    """`limit`: alert and outage lines shown per list (0: all)."""
    src, targets, totals = doc["source"], doc["targets"], doc["totals"]
    span = f"{src['first'] or '-'} .. {src['last'] or '-'}"
    lines = [
        f"Replayed {plural(src['probes'], 'probe result')} of "
        f"{plural(targets['replayed'], 'target')} from {src['path']} ({src['kind']}), {span}",
    ]
    if targets["only_in_recording"]:
        lines.append(f"  skipped, not in the candidate: {_names(targets['only_in_recording'])}")
    if targets["only_in_candidate"]:
        lines.append(f"  not in the recording: {_names(targets['only_in_candidate'])}")
    lines += ["", f"{'Alerts per notifier':<28}{'would send':>12}{'were sent':>12}"]
    if not doc["notifiers"]:
        lines.append("  (the candidate has no notifiers: nothing would be sent)")
    for n in doc["notifiers"]:
        lines.append(f"  {n['name']:<26}{n['would_send']:>12}{n['were_sent']:>12}")
        for event, c in n["by_event"].items():
            lines.append(f"    {event:<24}{c['would']:>12}{c['were']:>12}")
    for n in doc["recorded_elsewhere"]:
        lines.append(f"  {n['identity'] + ' (not in candidate)':<26}{'-':>12}{n['were_sent']:>12}")
    lines.append(f"  {'total':<26}{totals['would_send']:>12}{totals['were_sent']:>12}")
    outages = doc["outages"]
    lines += [
        "",
        f"Outages: {totals['outages']}; paged: {totals['paged']} (recorded: "
        f"{totals['recorded_paged']}); time to alert median / p90 / max: "
        f"{_tta(totals['time_to_alert_s'])} (recorded: {_tta(totals['recorded_time_to_alert_s'])})",
    ]
    shown = outages if limit == 0 else outages[:limit]
    for o in shown:
        lasted = "still down" if o["end"] is None else f"until {o['end']}"
        if o["time_to_alert_s"] is not None:
            paged = f"paged after {human_duration(o['time_to_alert_s'])}"
        else:
            paged = f"not paged: {o['not_paged'] or 'no page'}"
        was = o["recorded_time_to_alert_s"]
        lines.append(
            f"  {o['target']:<20} {o['start']} {lasted}: {paged} "
            f"(recorded: {'not paged' if was is None else human_duration(was)})"
        )
    if len(shown) < len(outages):
        lines.append(
            f"  ... {len(outages) - len(shown)} more (--limit 0 or --format json lists all)"
        )
    for n in doc["notifiers"]:
        alerts = n["alerts"]
        lines += ["", f"{n['name']}: would / were  time  event  target"]
        for e in alerts if limit == 0 else alerts[:limit]:
            members = f" ({e['members']} targets)" if "members" in e else ""
            lines.append(
                f"  {'x' if e['would'] else '-':>5} / {'x' if e['were'] else '-':<4} {e['ts']} "
                f"{e['event']:<12} {e['target']}{members}"
            )
        if limit and len(alerts) > limit:
            lines.append(f"  ... {len(alerts) - limit} more (--limit 0 or --format json lists all)")
    return "\n".join(lines) + "\n"
