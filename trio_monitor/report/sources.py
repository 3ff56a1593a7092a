"""Where a report's events come from: the history store (`feed_store`, through anything
shaped like a `HistoryReader`) or the monitor's own JSON lines (`feed_jsonl`).

JSON lines: probe lines are samples, whatever their probe `kind` (a kind without an
HTTP status has a null one; the target's kind is its last line's, "http" for lines
written before kinds existed); content_changed ones also count as a content change.
Alert `down` opens an incident at its `since`, the next `up` of the target closes it
at the up's `ts`; a `down` while one is open changes nothing (the monitor restarted
while the target was down); a `removed` line ends the target's open one at its `ts`
(end reason "removed"); one still open at the end of the file was last seen at the
target's last probe line, and the shortest gap between its probe lines is taken as its
interval (unobserved time is no downtime). Round, slow and content_changed alert lines
are not needed. Unparseable lines (and lines with impossible values: a time outside years 1 to
9999, a latency or downtime that is negative, NaN or beyond 1e12) and lines of unknown
types are skipped and counted, with a note on stderr; a first line that is not a
trio-monitor record is an error.
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from .._errors import UsageError
from .._records import PHASES, in_rfc3339_range, rfc3339
from ..policy import Silence
from ..store import HistoryReader
from ..store.records import (
    Certificate,
    ContentChange,
    HourRollup,
    Incident,
    Sample,
    StoredWarning,
    encode_phases,
)
from .aggregate import HOUR, Aggregator
from .format import plural

MAX_LINE = 1 << 20  # a JSON line longer than this is skipped as unparseable
MAX_AMOUNT = 1e12  # ms or s: a latency or downtime beyond this (decades) is not ours

Warn = Callable[[str], None]


def warn_stderr(message: str) -> None:
    print(f"trio-monitor: {message}", file=sys.stderr)


class HistorySource(Protocol):
    """What `store.HistoryReader` offers the report (a fake in tests)."""

    def targets(self) -> list[str]: ...
    def samples(self, target: str, since: float, until: float) -> Iterator[Sample]: ...
    def rollups(self, target: str, since: float, until: float) -> Iterator[HourRollup]: ...
    def incidents(
        self, since: float, until: float, target: str | None = None
    ) -> list[Incident]: ...
    def changes(
        self, since: float, until: float, target: str | None = None
    ) -> list[ContentChange]: ...
    def certificates(self, target: str | None = None) -> list[Certificate]: ...
    def warnings(
        self, since: float, until: float, target: str | None = None
    ) -> list[StoredWarning]: ...
    def unstored(self) -> int: ...
    def silences(self, since: float, until: float) -> list[Silence]: ...


def feed_store(
    a: Aggregator,
    reader: HistorySource,
    known: Iterable[str] = (),
    urls: dict[str, str] | None = None,
    kinds: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Feed every wanted target's rollups and samples, then incidents and changes.

    `known`: more target names to list even without history (the config's); `urls` and
    `kinds` what the config says of them (history keeps neither). The reader
    returns the rollups of hours that *start* in the range asked for, so it is asked
    from half an hour earlier: an hour whose middle is in the range counts (add_rollup
    drops the rest). Everything is read in one snapshot when the reader offers one, so
    samples and rollups combine exactly even while the monitor prunes."""
    urls, kinds = urls or {}, kinds or {}
    snapshot = getattr(reader, "snapshot", None)
    with snapshot() if snapshot is not None else nullcontext():
        for name in sorted({*reader.targets(), *known}):
            if not a.wants(name):
                continue
            a.target(name, urls.get(name), kinds.get(name))
            for r in reader.rollups(name, a.since - HOUR / 2, a.until):
                a.add_rollup(r)
            for s in reader.samples(name, a.since, a.until):
                a.add_sample(s)
        single = next(iter(a.only)) if a.only is not None and len(a.only) == 1 else None
        for inc in reader.incidents(a.since, a.until, target=single):
            a.add_incident(inc)
        for change in reader.changes(a.since, a.until, target=single):
            a.add_change(change)
        for cert in reader.certificates(target=single):
            a.add_certificate(cert)
        for warning in reader.warnings(a.since, a.until, target=single):
            a.add_warning(warning)
        unstored = reader.unstored()
    return {"kind": "store", "unstored": unstored}


def _in_range(ts: float) -> float:
    if not in_rfc3339_range(ts):
        raise ValueError("time out of range")
    return ts


def _parse_ts(value: object) -> float:
    if not isinstance(value, str):
        raise TypeError("ts is not a string")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _in_range(when.timestamp())  # OverflowError near years 1 and 9999


def _opt_str(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError("expected a string")


def _amount(value: object) -> float | None:
    """A latency or a duration: None, or a number from 0 to MAX_AMOUNT (not NaN)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("expected a number")
    if not 0 <= value <= MAX_AMOUNT:  # also false for NaN
        raise ValueError("number out of range")
    return float(value)


def _phases(value: object) -> bytes | None:
    """phases_ms -> its encode_phases code (a phase it lacks did not happen)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError("phases_ms is not an object")
    return encode_phases({phase: _amount(value.get(phase)) for phase in PHASES})


def _status(value: object) -> int | None:
    """An HTTP status, or None for anything that is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 100 <= value <= 999 else None


def _lines(stream: IO[bytes]) -> Iterator[bytes | None]:
    """Lines of a binary stream; None for a line longer than MAX_LINE (skipped unread)."""
    while raw := stream.readline(MAX_LINE):
        if len(raw) == MAX_LINE and not raw.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield raw


def feed_jsonl(
    a: Aggregator, stream: IO[bytes], name: str, *, warn: Warn = warn_stderr
) -> dict[str, Any]:
    """One pass over the monitor's JSON lines. Returns counts for the report's `source`."""
    counts = {
        "lines": 0,
        "probes": 0,
        "alerts": 0,
        "rounds": 0,
        "removed": 0,
        "other_types": 0,
        "bad": 0,
    }
    first_bad: int | None = None
    open_since: dict[str, tuple[float, str]] = {}  # target -> (start, error kind)
    probed: dict[str, tuple[float, float]] = {}  # target -> (last probe, shortest gap)
    seen_record = False
    for lineno, raw in enumerate(_lines(stream), 1):
        if raw is not None and not raw.strip():
            continue
        counts["lines"] += 1
        try:
            if raw is None:
                raise ValueError(f"longer than {MAX_LINE} bytes")
            rec = json.loads(raw)
            if not isinstance(rec, dict) or "schema" not in rec or "type" not in rec:
                raise ValueError("not a trio-monitor record (no schema and type)")
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            if not seen_record:
                why = str(exc).splitlines()[0][:80]
                raise UsageError(
                    f"{name}: line {lineno} is not a trio-monitor JSON line ({why}); "
                    "expected the output of `trio-monitor run`"
                ) from None
            counts["bad"] += 1
            first_bad = first_bad or lineno
            continue
        seen_record = True
        kind = rec["type"]
        try:
            if kind == "probe":
                counts["probes"] += 1
                _probe_line(a, rec, probed)
            elif kind == "alert":
                counts["alerts"] += 1
                _alert_line(a, rec, open_since)
            elif kind == "round":
                counts["rounds"] += 1
            elif kind == "removed":
                counts["removed"] += 1
                _removed_line(a, rec, open_since)
            else:
                counts["other_types"] += 1
        except (KeyError, TypeError, ValueError, OverflowError):
            counts["bad"] += 1
            first_bad = first_bad or lineno
    for target, (_, gap) in probed.items():
        if gap < math.inf and target not in a.intervals:
            a.intervals[target] = gap  # the file has no config: its cadence
    for target, (start, error) in open_since.items():
        last_seen = probed.get(target, (start, None))[0]
        a.add_incident(Incident(target, start, None, error, last_seen=max(start, last_seen)))
    if counts["bad"]:
        warn(
            f"{name}: skipped {plural(counts['bad'], 'unparseable line')} (first on line {first_bad})"
        )
    if counts["other_types"]:
        warn(f"{name}: skipped {plural(counts['other_types'], 'line')} of unknown types")
    if a.outside and a.first_ts is not None and a.last_ts is not None:
        warn(
            f"{name}: {a.outside} probe lines outside {rfc3339(a.since)} .. {rfc3339(a.until)} "
            f"were left out (the file spans {rfc3339(a.first_ts)} .. {rfc3339(a.last_ts)}; "
            "see --since/--until)"
        )
    return {"kind": "jsonl", "path": name, **counts, "outside_range": a.outside}


def _probe_line(a: Aggregator, rec: dict[str, Any], probed: dict[str, tuple[float, float]]) -> None:
    target = rec["target"]
    if not isinstance(target, str):
        raise TypeError("target is not a string")
    ts = _parse_ts(rec["ts"])
    a.seen.add(target)
    ok = rec["ok"]
    if not isinstance(ok, bool):
        raise TypeError("ok is not a boolean")
    latency = _amount(rec.get("latency_ms"))
    error = _opt_str(rec.get("error"))
    status = _status(rec.get("status"))
    phases = _phases(rec.get("phases_ms"))
    if not a.wants(target):
        return
    last, gap = probed.get(target, (None, math.inf))
    if last is None or ts > last:
        probed[target] = (ts, gap if last is None else min(gap, ts - last))
    # a line written before kinds existed is an HTTP probe's
    a.target(target, _opt_str(rec.get("url")), _opt_str(rec.get("kind", "http")))
    a.add_sample(Sample(target, ts, ok, latency, error, status, phases))
    if rec.get("content_changed") is True:
        a.add_change(ContentChange(target, ts, None, _opt_str(rec.get("content_hash"))))
    if isinstance(tls := rec.get("tls"), dict):
        a.add_certificate(
            Certificate(
                target,
                ts,
                str(tls["subject"]),
                str(tls["issuer"]),
                _parse_ts(tls["not_after"]),
                _parse_ts(tls["earliest_not_after"]),
                str(tls["earliest_subject"]),
            )
        )


def _alert_line(
    a: Aggregator, rec: dict[str, Any], open_since: dict[str, tuple[float, str]]
) -> None:
    target, event = rec["target"], rec["event"]
    if not isinstance(target, str):
        raise TypeError("target is not a string")
    ts = _parse_ts(rec["ts"])
    since = _parse_ts(rec["since"]) if rec.get("since") is not None else None
    a.seen.add(target)
    if not a.wants(target):
        return
    a.target(target, _opt_str(rec.get("url")))
    if event == "down":
        if target not in open_since:
            open_since[target] = (ts if since is None else since, _opt_str(rec.get("reason")) or "")
    elif event == "up":
        start, error = open_since.pop(target, (None, "unknown"))
        if start is None:  # the down came before this file began
            downtime = _amount(rec.get("downtime_s"))
            start = since if since is not None else _in_range(ts - (downtime or 0.0))
        a.add_incident(Incident(target, start, ts, error or "unknown", "up"))
    elif event == "degrading":
        a.add_warning(
            StoredWarning(
                target,
                ts,
                _opt_str(rec.get("signal")) or "?",
                _amount(rec.get("baseline")),
                _amount(rec.get("current")),
                _amount(rec.get("score")),
                _opt_str(rec.get("detail")),
            )
        )


def _removed_line(
    a: Aggregator, rec: dict[str, Any], open_since: dict[str, tuple[float, str]]
) -> None:
    target = rec["target"]
    if not isinstance(target, str):
        raise TypeError("target is not a string")
    ts = _parse_ts(rec["ts"])
    a.seen.add(target)
    if a.wants(target) and target in open_since:
        start, error = open_since.pop(target)
        a.add_incident(Incident(target, start, max(start, ts), error or "unknown", "removed"))


@contextmanager
def open_history(path: str) -> Iterator[HistorySource]:
    """The store's reader; its own one-line StoreErrors (not ours, too new) pass through."""
    if not Path(path).exists():
        raise UsageError(f"no history at {path} yet (`trio-monitor run` stores it)")
    try:
        reader = HistoryReader(path)
    except (OSError, sqlite3.Error) as exc:
        raise UsageError(f"cannot open history {path}: {exc}") from None
    try:
        yield reader
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()
