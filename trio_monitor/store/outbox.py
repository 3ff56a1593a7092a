"""The alert outbox: alerts are durable, delivered at least once.

Every alert a notifier is to deliver is committed to the history file first (table
`outbox`: one row per alert and notifier, `pending`), and only then put in that
notifier's queue (alerts/base.py `Notifiers`). Each notifier reports what it did; the
rows are marked `delivered` or `given_up` in batches. On the way out, rows still
pending are counted in one log line and stay pending: the next start sends them again,
before any new alert, with the alert's own idempotency key so receivers can drop
repeats. Pending rows of a notifier no longer configured (its identity: channel key
and destination) are given up then, in one log line.

One task with its own connection (`Db`: every statement in a worker thread, so neither
probing nor the event loop waits for the disk). A file that cannot be written does not
hold alerts back: they are delivered anyway, not durable, and the error is logged at
most once a minute. Delivered and given-up rows are pruned with the rollups
(maintenance.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

import attrs
import trio

from .._records import AlertEvent, Record
from ..alerts.base import Report, Route
from ._db import Db, ErrorLog, Ts, environmental, log, reason
from ._sql import transaction
from .schema import BUSY_TIMEOUT, Connect

PENDING, DELIVERED, GIVEN_UP = "pending", "delivered", "given_up"
BATCH = 1000  # alerts or reports written in one transaction at most
FINAL = 2.0  # seconds the last writes may take on the way out (shielded)
SHOWN = 5  # alerts named in a summary log line

GAVE_UP = "the notifier gave up (its log line says why)"
REMOVED = "the notifier is no longer configured"
UNWANTED = "the notifier no longer wants this event"

# A pending row as the outbox reads it back: (notifier, alert JSON); the key is the alert's
Row = tuple[str, str]
# A row's new status: (status, done, reason, key, notifier)
Mark = tuple[str, float, str | None, str, str]


class Notifiers(Protocol):
    """What the outbox needs of the running notifiers (alerts/base.py)."""

    given_up: Counter[str]
    reports: trio.MemoryReceiveChannel[Report]

    def routes(self) -> list[Route]: ...

    def close(self) -> None: ...


def alert_json(alert: AlertEvent) -> str:
    """Its fields as they are: times as floats, so the key (a hash of the exact `ts`)
    is the same when the alert is read back."""
    return json.dumps(attrs.asdict(alert), separators=(",", ":"))


def alert_from_json(text: str) -> AlertEvent:
    return AlertEvent(**json.loads(text))


def _insert(conn: sqlite3.Connection, rows: list[tuple[str, str, str, float]]) -> None:
    with transaction(conn):
        conn.executemany(
            f"INSERT OR IGNORE INTO outbox VALUES (?, ?, ?, ?, '{PENDING}', NULL, NULL)", rows
        )


def _mark(conn: sqlite3.Connection, marks: list[Mark]) -> None:
    with transaction(conn):
        conn.executemany(
            "UPDATE outbox SET status = ?, done = ?, reason = ?"
            f" WHERE key = ? AND notifier = ? AND status = '{PENDING}'",
            marks,
        )


def _pending(conn: sqlite3.Connection) -> list[Row]:
    return conn.execute(
        f"SELECT notifier, alert FROM outbox WHERE status = '{PENDING}' ORDER BY created"
    ).fetchall()


def _count_pending(conn: sqlite3.Connection) -> tuple[int, list[str]]:
    """-> (pending rows, the alert JSON of the first SHOWN of them)."""
    count = conn.execute(f"SELECT count(*) FROM outbox WHERE status = '{PENDING}'").fetchone()[0]
    first = conn.execute(
        f"SELECT alert FROM outbox WHERE status = '{PENDING}' ORDER BY created LIMIT {SHOWN}"
    ).fetchall()
    return count, [text for (text,) in first]


def _named(alerts: Iterable[AlertEvent], total: int) -> str:
    shown = [f"{a.event} {a.target}" for a in alerts]
    return ", ".join(shown) + (f" and {total - len(shown)} more" if total > len(shown) else "")


class Outbox:
    """The outbox's state; `serve` drives it."""

    def __init__(
        self,
        store_path: str,
        notifiers: Notifiers,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        connect: Connect = sqlite3.connect,
    ) -> None:
        self.path = store_path
        self._notifiers = notifiers
        self._db = Db(store_path, busy_timeout, connect)
        self._lock = trio.Lock()  # one statement at a time on the one connection
        self._marks: list[Mark] = []  # reports not written yet (bounded by the queues)
        self._errors = ErrorLog(f"alert outbox {store_path}")

    async def _write(self, fn: Callable[[sqlite3.Connection, *Ts], None], *args: *Ts) -> bool:
        """fn(conn, *args) in a worker thread. -> done? Failures logged (throttled)."""
        try:
            async with self._lock:
                await self._db.run(fn, *args)
        except Exception as exc:
            self._errors.error(
                f"cannot write, alerts are delivered without durability: {reason(exc, self.path)}",
                None if environmental(exc) else exc,
            )
            await self._db.close()
            return False
        self._errors.recovered("writing again")
        return True

    async def resend(self) -> None:
        """At start-up: pending rows go to their notifiers again, before any new alert;
        those of notifiers no longer configured (or no longer wanting that event) are
        given up, in one log line."""
        try:
            async with self._lock:
                rows = await self._db.run(_pending)
        except Exception as exc:
            self._errors.error(
                f"cannot read the alerts not delivered before: {reason(exc, self.path)}", None
            )
            await self._db.close()
            return
        routes = {route.notifier: route for route in self._notifiers.routes()}
        now = time.time()
        resent = 0
        dropped: list[tuple[AlertEvent, str, str]] = []  # (alert, notifier, why)
        for notifier, text in rows:
            alert = alert_from_json(text)
            route = routes.get(notifier)
            if route is None:
                dropped.append((alert, notifier, REMOVED))
            elif not route.accepts(alert):
                dropped.append((alert, notifier, UNWANTED))
            else:
                route.queue.offer(alert)
                resent += 1
        if resent:
            log.warning("alert outbox: sending %d alerts again (not delivered before)", resent)
        if dropped:
            for _, notifier, _why in dropped:
                self._notifiers.given_up[notifier] += 1
            log.error(
                "alert outbox: giving up on %d undelivered alerts (%s): %s",
                len(dropped),
                "; ".join(sorted({f"{n}: {why}" for _, n, why in dropped})),
                _named((a for a, _, _ in dropped[:SHOWN]), len(dropped)),
            )
            marks: list[Mark] = [(GIVEN_UP, now, why, a.key, n) for a, n, why in dropped]
            await self._write(_mark, marks)

    async def forward(self, alerts: trio.MemoryReceiveChannel[Record]) -> None:
        """Commit each batch of alerts, then put them in the notifiers' queues; until
        `alerts` ends."""
        async for first in alerts:
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(alerts.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            routes = self._notifiers.routes()
            sends = [
                (alert, route)
                for alert in batch
                if isinstance(alert, AlertEvent)
                for route in routes
                if route.accepts(alert)
            ]
            if not sends:
                continue
            now = time.time()
            await self._write(_insert, [(a.key, r.notifier, alert_json(a), now) for a, r in sends])
            for alert, route in sends:
                route.queue.offer(alert)  # a full queue drops it (counted); it stays pending

    def _take(self, report: Report) -> None:
        status, why = (DELIVERED, None) if report.delivered else (GIVEN_UP, GAVE_UP)
        self._marks.append((status, time.time(), why, report.key, report.notifier))

    async def _flush_marks(self) -> None:
        marks, self._marks = self._marks, []
        if marks and not await self._write(_mark, marks):
            self._marks[:0] = marks  # tried again with the next ones

    async def mark(self) -> None:
        """Write what the notifiers report, in batches; until every notifier has ended."""
        reports = self._notifiers.reports
        async for first in reports:
            self._take(first)
            while len(self._marks) < BATCH:
                try:
                    self._take(reports.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await self._flush_marks()

    async def finish(self) -> None:
        """On the way out (shielded, bounded): write the last reports, then say how many
        alerts are still pending (they are sent again after a restart)."""
        while True:
            try:
                self._take(self._notifiers.reports.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        await self._flush_marks()
        try:
            async with self._lock:
                pending, first = await self._db.run(_count_pending)
        except Exception as exc:
            log.error(
                "alert outbox %s: cannot count undelivered alerts: %s",
                self.path,
                reason(exc, self.path),
            )
        else:
            if pending:
                log.warning(
                    "alert outbox: %d alerts not delivered yet: will retry after restart: %s",
                    pending,
                    _named(map(alert_from_json, first), pending),
                )
        await self._db.close()

    async def serve(
        self,
        alerts: trio.MemoryReceiveChannel[Record],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Until `alerts` is closed and every notifier has drained its queue (or the
        caller's deadline): then the notifiers are closed and the pending rows counted."""
        try:
            async with alerts, trio.open_nursery() as nursery:
                # started only after the resend: the monitor's first round (and its round
                # line's given_up) comes after the rows of the last run are settled
                await self.resend()
                task_status.started()
                nursery.start_soon(self.mark)
                await self.forward(alerts)
                self._notifiers.close()  # they drain their queues; mark() ends after them
        finally:
            self._notifiers.close()
            with trio.move_on_after(FINAL, shield=True):
                await self.finish()


async def serve_outbox(
    alerts: trio.MemoryReceiveChannel[Record],
    store_path: str,
    notifiers: Notifiers,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The outbox between the dispatcher's "outbox" outlet and the notifiers."""
    await Outbox(store_path, notifiers).serve(alerts, task_status=task_status)
