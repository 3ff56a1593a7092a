"""A push target's heartbeat: what its pings said, and its verdict at a given time.

Wall-clock time throughout (a cron schedule is wall-clock time in a time zone); the
scheduler's clock only where the prober asks for a check (__init__.py).

    deadline  = (last end signal, or when the clock started) -> next expected ping
                (+ expect_every, or the schedule's next time after it) + grace;
                after /start: the start + grace
    verdict   = missed       once the deadline has passed
                job_failed   the last end signal said failure (/fail, exit code 1-255)
                ok           else
"""

from __future__ import annotations

from datetime import datetime

import attrs
from cronsim import CronSim

from ..._config import format_duration
from ..._errors import ErrorKind
from ..._records import rfc3339
from .config import PushSpec

PING, START, FAIL, EXIT = "ping", "start", "fail", "exit"


@attrs.define
class Heartbeat:
    since: float  # when its clock started: start-up, or when a reload added it
    last_ping: float | None = None  # the last end signal: ping, fail or exit code
    last_event: str | None = None
    exit_code: int | None = None
    failed: bool = False  # the last end signal reported a failure
    started: float | None = None  # a /start that no end signal followed yet
    run_ms: float | None = None  # the last timed run's (start to end signal)
    unreported_run_ms: float | None = None  # the next line's latency_ms
    # restored from history: the last stored line's error (missed, job_failed), held
    # until the next end signal, so a restart neither forgets nor "recovers" an outage
    held: ErrorKind | None = None
    events: int = 0  # signals received
    checked: int = 0  # of them, seen by a check

    def record(self, event: str, exit_code: int | None, now: float) -> None:
        self.events += 1
        self.last_event = event
        if event == START:  # Healthchecks' rule: a new start restarts the timer
            self.started = now
            return
        if self.started is not None:
            self.run_ms = self.unreported_run_ms = round((now - self.started) * 1000, 3)
            self.started = None
        self.last_ping = now
        self.exit_code = exit_code
        self.failed = event == FAIL or bool(exit_code)
        self.held = None


def expected_after(spec: PushSpec, ref: float) -> float:
    """When the next ping is expected after one at `ref`: the schedule's next time
    strictly after it (cronsim: in its zone, across daylight-saving changes as
    Healthchecks decides), or `ref` + expect_every."""
    if spec.schedule is None:
        assert spec.every is not None
        return ref + spec.every
    zone = spec.zone
    return next(CronSim(spec.schedule, datetime.fromtimestamp(ref, zone))).timestamp()


def deadline(beat: Heartbeat, spec: PushSpec) -> float:
    """When a missing ping becomes `missed`."""
    if beat.started is not None:
        return beat.started + spec.grace
    ref = beat.since if beat.last_ping is None else beat.last_ping
    return expected_after(spec, ref) + spec.grace


def verdict(beat: Heartbeat, spec: PushSpec, now: float) -> tuple[ErrorKind | None, str | None]:
    """(error, detail) at wall time `now`: (None, None) when all is well."""
    if beat.held is not None:
        return beat.held, f"no ping since start-up; the last stored result was {beat.held}"
    due = deadline(beat, spec)
    if now >= due:
        if beat.started is not None:
            grace = format_duration(spec.grace)
            return ErrorKind.MISSED, f"started at {rfc3339(beat.started)}, no ping within {grace}"
        if beat.last_ping is None:
            return ErrorKind.MISSED, f"no ping since start-up; one was due by {rfc3339(due)}"
        return (
            ErrorKind.MISSED,
            f"last ping at {rfc3339(beat.last_ping)}; the next was due by {rfc3339(due)}",
        )
    if beat.failed:
        assert beat.last_ping is not None
        code = "" if beat.exit_code is None else f" with exit code {beat.exit_code}"
        return ErrorKind.JOB_FAILED, f"the job reported failure{code} at {rfc3339(beat.last_ping)}"
    return None, None
