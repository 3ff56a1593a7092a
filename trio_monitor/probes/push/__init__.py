"""The `push` probe kind: heartbeat targets (cron jobs) that ping the monitor's server.

config.py     its keys (expect_every or schedule + tz, grace, token) -> PushSpec
tokens.py     the secret in each target's URL: HMAC of its name with a key file
heartbeat.py  what the pings said, the deadline and the verdict (missed, job_failed)

No URL, no network: a "probe" reads the target's heartbeat and says how it stands,
at its due times like any target (one line an interval: history samples evenly), and
as checks (engine/schedule.py) when the server hands a ping in (`receive`, then
`Scheduler.check`: its line comes at once) and at its deadline (`next_check`: a
missed ping is noticed within a fraction of a second, not an interval later).

After a restart a target's last ping is unknown: its clock starts at start-up (the
first ping is due by then + expect_every, or the schedule's next time, + grace), unless
its last stored result (history) was `missed` or `job_failed`: that one is held until
the next ping, so a restart neither forgets an outage nor ends it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager

import trio
from attrs import frozen

from ..._config import Config, Target
from ..._errors import ErrorKind, StoreError
from ..._records import ProbeResult, PushDetails
from ...conditions import Type, apply
from ...probes.base import ProbeKind, register
from ...store import HistoryReader
from .config import PushSpec, PushTargetSection, push_resolver
from .heartbeat import Heartbeat, deadline, verdict
from .tokens import Keyring, key_path

log = logging.getLogger("trio_monitor")

NAME = "push"
# a deadline's check comes this long after it: the wall clock, not trio's, decides
# whether it passed, and a check a hair early would find it has not
CHECK_SLACK = 0.05
# what a push target's `conditions` may read: the last exit code given, the last timed
# run's time, and RESPONSE_TIME (latency_ms: that run time, on the line its end made);
# no CONNECTED or IP: the monitor connects nowhere
PLACEHOLDERS: Mapping[str, Type] = {
    "EXIT_CODE": Type.NUMBER,
    "RUN_TIME": Type.DURATION,
    "RESPONSE_TIME": Type.DURATION,
}

__all__ = ["KIND", "PushPlan", "PushProber", "PushSpec", "PushTargetSection"]


@frozen
class PushPlan:
    target: Target
    limit_key: str


class PushProber:
    """The heartbeats of this run's push targets, by name, and their tokens' index."""

    def __init__(
        self,
        keys: Keyring,
        targets: Iterable[Target] = (),
        held: dict[str, ErrorKind] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._wall = wall
        self._held = dict(held or {})  # restored verdicts, for heartbeats not made yet
        self._beats: dict[str, Heartbeat] = {}
        self._index: dict[bytes, str] = {}
        self._retain([t for t in targets if t.kind == NAME])

    def _retain(self, targets: list[Target]) -> None:
        names = {t.name for t in targets}
        self._beats = {n: b for n, b in self._beats.items() if n in names}
        self._index = {self._keys.digest(self._keys.token(t)): t.name for t in targets}

    def _beat(self, name: str) -> Heartbeat:
        beat = self._beats.get(name)
        if beat is None:
            beat = self._beats[name] = Heartbeat(
                since=self._wall(), held=self._held.pop(name, None)
            )
        return beat

    def prepare(self, target: Target) -> PushPlan:
        # a key file that cannot be read fails here: before a reload applies
        self._keys.token(target)
        return PushPlan(target, f"push:{target.name}")

    def receive(self, token: str, event: str, exit_code: int | None = None) -> str | None:
        """A ping (`event` "ping", "start", "fail" or "exit" with `exit_code`) for the
        target whose token this is. -> its name; None for no such token."""
        name = self._index.get(self._keys.digest(token))
        if name is not None:
            self._beat(name).record(event, exit_code, self._wall())
        return name

    async def probe(
        self, plan: PushPlan, round_no: int, deadlines: set[trio.CancelScope]
    ) -> ProbeResult:
        target = plan.target
        spec: PushSpec = target.spec
        beat = self._beat(target.name)
        now = self._wall()
        beat.checked = beat.events
        error, detail = verdict(beat, spec, now)
        latency, beat.unreported_run_ms = beat.unreported_run_ms, None
        result = ProbeResult(
            ts=now,
            target=target.name,
            url=target.url,
            ok=error is None,
            status=None,
            latency_ms=latency,
            error=error,
            error_detail=detail,
            attempts=1,
            round=round_no,
            kind=NAME,
            push=PushDetails(
                last_ping=beat.last_ping,
                last_event=beat.last_event,
                exit_code=beat.exit_code,
                run_ms=beat.run_ms,
                next_due=None if beat.held is not None else deadline(beat, spec),
            ),
        )
        if not target.conditions:
            return result
        facts = {"EXIT_CODE": beat.exit_code, "RUN_TIME": beat.run_ms, "RESPONSE_TIME": latency}
        return apply(result, target.conditions, facts)

    def next_check(self, plan: PushPlan, now: float) -> float | None:
        """When the scheduler should check the target next (trio's clock, `now`): at
        once if a ping came that no check saw, else at its deadline; None once it is
        missed (its due times and confirmations go on; a ping brings a check)."""
        beat = self._beat(plan.target.name)
        if beat.events != beat.checked:
            return now
        if beat.held is not None:
            return None
        left = deadline(beat, plan.target.spec) - self._wall()
        return now + left + CHECK_SLACK if left > 0 else None

    async def reconfigure(self, old: Config, new: Config) -> None:
        self._retain([t for t in new.targets if t.kind == NAME])


def _held(path: str, names: list[str]) -> dict[str, ErrorKind]:
    """The push targets whose last stored result failed: their error kinds."""
    held = {}
    with HistoryReader(path) as reader:
        for name in names:
            last = reader.recent(name, 1)
            if last and last[0].error in (ErrorKind.MISSED, ErrorKind.JOB_FAILED):
                held[name] = ErrorKind(last[0].error)
    return held


@asynccontextmanager
async def open_push_prober(config: Config) -> AsyncIterator[PushProber]:
    targets = [t for t in config.targets if t.kind == NAME]
    held: dict[str, ErrorKind] = {}
    if targets and config.store_path is not None:
        names = [t.name for t in targets]
        try:
            held = await trio.to_thread.run_sync(_held, config.store_path, names)
        except (StoreError, sqlite3.Error, OSError) as exc:
            log.warning("push targets start afresh: history cannot be read now (%s)", exc)
    yield PushProber(Keyring(key_path(config)), targets, held)


def _describe(result: ProbeResult) -> str:
    run = "" if result.latency_ms is None else f" (run {result.latency_ms:g} ms)"
    return f"heartbeat ok{run}"


KIND = ProbeKind(
    name=NAME,
    schemes=frozenset(),
    section=PushTargetSection,
    resolver=push_resolver,
    open=open_push_prober,
    describe=_describe,
    placeholders=PLACEHOLDERS,
    needs_server="its pings arrive at /api/v1/push/{token}",
)
register(KIND)
