"""Where `trio-monitor simulate` reads a recording: the history store's raw probe rows
and alert outbox (`HistoryRecording`), or the monitor's JSON lines (`JsonlRecording`).

Both stream: `probes` yields the recorded results of the candidate's targets in time
order without reading the recording into memory. History: one cursor per target over
its raw rows (already in time order by the table's key), merged. JSON lines are
written when a probe ends but carry the time it started, so lines of different targets
can be a probe's duration out of order: a buffer of REORDER seconds of lines puts them
back in order (a target's own lines are always in order).

What the recording keeps differs: history's raw rows have no error detail, remote
address, content hash or certificate (so a replay from history cannot group by address
or certificate, nor raise content or certificate alerts), and its `slow` flag is made
again from the candidate's `slow`; JSON lines carry every field. History's outbox says
which notifier (its identity) each alert went to; JSON lines do not, so their
deliverable alert lines are routed through the candidate's notifiers.
"""

from __future__ import annotations

import abc
import heapq
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from typing import IO, Any

import cattrs
from attrs import frozen

from .._config import Target
from .._errors import ErrorKind, StoreError, UsageError
from .._records import TS_MAX, TS_MIN, AlertEvent, ProbeResult, from_dict, rfc3339
from ..report.sources import MAX_LINE
from ..store.outbox import alert_from_json
from ..store.reader import HistoryReader
from ..store.records import Sample

REORDER = 300.0  # seconds: how far out of order JSON lines of different targets may be


@frozen
class Sent:
    """An alert the recording says was sent."""

    alert: AlertEvent
    # the notifier's identity (history's outbox); None: the JSON lines do not say
    notifier: str | None
    status: str  # "delivered" | "given_up" | "pending" (outbox); "recorded" (JSON lines)


class Recording(abc.ABC):
    """What every source has: its range, the targets it held, the alerts it sent and
    notes for the reader (stderr)."""

    kind = ""

    def __init__(self, label: str, since: float | None, until: float | None) -> None:
        self.label = label
        self.since = TS_MIN if since is None else since
        self.until = TS_MAX if until is None else until
        self.names: set[str] = set()  # every target the recording has (complete after probes)
        self.notes: list[str] = []

    @abc.abstractmethod
    def probes(self, targets: Mapping[str, Target]) -> Iterator[ProbeResult]:
        """The recorded results in time order, of the targets in `targets`."""

    @abc.abstractmethod
    def sent(self) -> list[Sent]:
        """The alerts the recording says were sent."""


def _sample_result(target: Target, s: Sample) -> ProbeResult:
    try:
        error = None if s.error is None else ErrorKind(s.error)
    except ValueError:  # a kind a newer trio-monitor wrote
        error = ErrorKind.INTERNAL
    slow = bool(s.ok and target.slow and s.latency_ms and s.latency_ms > target.slow * 1000)
    return ProbeResult(
        s.ts,
        target.name,
        target.url,
        s.ok,
        s.status,
        s.latency_ms,
        error,
        1,
        0,
        slow=slow,
        kind=target.kind,
    )


class HistoryRecording(Recording):
    """A history file, read-only (the monitor may be running on it)."""

    kind = "history"

    def __init__(self, path: str, since: float | None, until: float | None) -> None:
        super().__init__(path, since, until)
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such history file")
        try:
            self._reader = HistoryReader(path)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"{path}: cannot open history: {exc}") from None
        except StoreError as exc:
            raise UsageError(str(exc)) from None

    def close(self) -> None:
        self._reader.close()

    def probes(self, targets: Mapping[str, Target]) -> Iterator[ProbeResult]:
        try:
            with self._reader.snapshot():
                self.names = set(self._reader.targets())
                wanted = sorted(self.names & targets.keys())
                self._note_floor(wanted)
                streams = [
                    (
                        _sample_result(targets[name], s)
                        for s in self._reader.samples(name, self.since, self.until)
                    )
                    for name in wanted
                ]
                yield from heapq.merge(*streams, key=lambda r: r.ts)
        except sqlite3.Error as exc:
            raise UsageError(f"{self.label}: cannot read history: {exc}") from None

    def _note_floor(self, names: list[str]) -> None:
        """--since before the oldest raw row: say why there is nothing older."""
        firsts = [f for name in names if (f := self._reader.raw_floor(name)) is not None]
        if not firsts or not TS_MIN < self.since < min(firsts):
            return
        asked, first = rfc3339(self.since), rfc3339(min(firsts))
        if self._reader.pruned_before() is None:
            why = f"{self.label}'s raw probe rows begin at {first} (nothing older was recorded)"
        else:
            why = (
                f"{self.label} keeps raw probe rows only from {first} (older ones were pruned: "
                "[storage] raw_retention, 7d by default; hourly rollups cannot be replayed)"
            )
        self.notes.append(f"--since asks for {asked}, but {why}: replaying from there")

    def sent(self) -> list[Sent]:
        try:
            rows = list(self._reader.outbox(self.since, self.until))
        except sqlite3.Error as exc:
            raise UsageError(f"{self.label}: cannot read history: {exc}") from None
        out = []
        for notifier, text, status in rows:
            alert = alert_from_json(text)
            if self.since <= alert.ts < self.until:
                out.append(Sent(alert, notifier, status))
        return out


def _why(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc))[:120]
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]


class JsonlRecording(Recording):
    """The monitor's JSON lines. A line that is not a well-formed record is an error
    (a replay without it would be wrong), but for a last line without its newline:
    the monitor was still writing it, so it is left out with a note."""

    kind = "jsonl"

    def __init__(
        self, stream: IO[bytes], label: str, since: float | None, until: float | None
    ) -> None:
        super().__init__(label, since, until)
        self._stream = stream
        self._sent: list[Sent] = []
        self.outside = 0  # probe lines outside [since, until)

    def _records(self) -> Iterator[ProbeResult | AlertEvent]:
        seen_record = False
        for lineno, raw in enumerate(iter(lambda: self._stream.readline(MAX_LINE), b""), 1):
            if not raw.strip():
                continue
            try:
                if len(raw) == MAX_LINE and not raw.endswith(b"\n"):
                    raise ValueError(f"longer than {MAX_LINE} bytes")
                rec: Any = json.loads(raw)
                if not isinstance(rec, dict) or "schema" not in rec or "type" not in rec:
                    raise ValueError("not a trio-monitor record (no schema and type)")
                if rec["type"] not in ("probe", "alert"):
                    seen_record = True
                    continue  # round and removed lines say nothing a replay needs
                record = from_dict(rec)
            except (
                ValueError,
                TypeError,
                KeyError,
                OverflowError,
                RecursionError,
                cattrs.BaseValidationError,
            ) as exc:
                if seen_record and not raw.endswith(b"\n") and not self._stream.read(1):
                    self.notes.append(
                        f"{self.label}: line {lineno} is incomplete (still being written?): left out"
                    )
                    return
                raise UsageError(
                    f"{self.label}: line {lineno} is not a well-formed trio-monitor JSON line "
                    f"({_why(exc)}); expected the output of `trio-monitor run`"
                ) from None
            seen_record = True
            yield record

    def probes(self, targets: Mapping[str, Target]) -> Iterator[ProbeResult]:
        buffer: list[tuple[float, int, ProbeResult]] = []
        for seq, record in enumerate(self._records()):
            if isinstance(record, AlertEvent):
                if record.deliverable and self.since <= record.ts < self.until:
                    self._sent.append(Sent(record, None, "recorded"))
                continue
            self.names.add(record.target)
            if not self.since <= record.ts < self.until:
                self.outside += 1
            elif record.target in targets:
                heapq.heappush(buffer, (record.ts, seq, record))
                while buffer[0][0] < record.ts - REORDER:
                    yield heapq.heappop(buffer)[2]
        while buffer:
            yield heapq.heappop(buffer)[2]

    def sent(self) -> list[Sent]:
        return self._sent
