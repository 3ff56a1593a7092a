"""A push target's keys and their resolution into a PushSpec.

    [[targets]]
    name = "nightly backup"
    kind = "push"
    schedule = "30 2 * * *"      # or: expect_every = "1h"
    tz = "Europe/Berlin"         # the schedule's time zone (IANA name); default UTC
    grace = "1h"                 # how late a ping may be before it is `missed`
    # token = "${BACKUP_PUSH_TOKEN}"   # else derived from the key file (tokens.py)

Exactly one of `expect_every` and `schedule`. The cron expression is checked with
cronsim (Healthchecks' own parser and evaluator, which also decides what a schedule
means across daylight-saving changes) and the time zone with zoneinfo, both at load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NewType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from attrs import field, frozen
from cronsim import CronSim, CronSimError

from ..._config import (
    MonitorSection,
    TargetSection,
    _duration_in,
    _Invalid,
    converter,
    expand_env,
    inherit,
)

# how often a job must ping, and how late it may be: 1 second to a year
PushPeriod = NewType("PushPeriod", float)
converter.register_structure_hook(PushPeriod, _duration_in(1.0, 365 * 86400.0))

DEFAULT_GRACE = 3600.0  # as Healthchecks: an hour's slack for a job that runs late
DEFAULT_TZ = "UTC"
# an explicit token: URL-safe, long enough not to be guessed
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


@frozen
class PushTargetSection(TargetSection):
    expect_every: PushPeriod | None = None
    schedule: str | None = None  # a cron expression (5 fields, as crontab)
    tz: str | None = None  # the schedule's IANA time zone; unset: UTC
    grace: PushPeriod | None = None  # unset: DEFAULT_GRACE
    token: str | None = None  # ${ENV} expanded; unset: derived from the key file


@frozen
class PushSpec:
    """When a push target's pings are due, resolved."""

    every: float | None  # seconds between pings, or None with a schedule
    schedule: str | None  # a cron expression cronsim accepted
    tz: str  # an IANA time zone zoneinfo knows
    grace: float
    # an explicit token; None: HMAC of the name with the key (tokens.py). Never shown.
    token: str | None = field(default=None, repr=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)  # cached by zoneinfo itself


def check_schedule(expression: str, zone: ZoneInfo) -> None:
    """_Invalid unless cronsim accepts `expression`."""
    try:
        CronSim(expression, datetime.now(UTC).astimezone(zone))
    except CronSimError as exc:
        raise _Invalid(f"invalid cron expression {expression!r}: {exc}") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _Invalid(
            f'unknown time zone {name!r} (use an IANA name like "Europe/Berlin" or "UTC")'
        ) from None


def push_resolver(m: MonitorSection, env: Mapping[str, str], problems: list[str]):
    tokens: set[str] = set()  # explicit ones so far: one token, one target

    def resolve(t: PushTargetSection, where: str, problems: list[str]) -> PushSpec:
        if t.expect_every is None and t.schedule is None:
            problems.append(f"{where}.expect_every: set expect_every or schedule")
        elif t.expect_every is not None and t.schedule is not None:
            problems.append(f"{where}.schedule: set expect_every or schedule, not both")
        if t.tz is not None and t.schedule is None:
            problems.append(f"{where}.tz: applies only with schedule (set it, or remove tz)")
        tz = inherit(t.tz, DEFAULT_TZ)
        schedule = None if t.schedule is None else " ".join(t.schedule.split())
        try:
            zone = _zone(tz)
        except _Invalid as exc:
            problems.append(f"{where}.tz: {exc}")
            zone = ZoneInfo(DEFAULT_TZ)  # the schedule is still checked: one pass finds both
        if schedule is not None:
            try:
                check_schedule(schedule, zone)
            except _Invalid as exc:
                problems.append(f"{where}.schedule: {exc}")
        token = None
        if t.token is not None:
            try:
                token = expand_env(t.token, env)
            except _Invalid as exc:
                problems.append(f"{where}.token: {exc}")
            else:
                if not _TOKEN.fullmatch(token):
                    problems.append(
                        f"{where}.token: use 16 to 128 letters, digits, '-' or '_'"
                        f" (got {len(token)} characters)"
                    )
                elif token in tokens:
                    problems.append(f"{where}.token: another push target has the same token")
                tokens.add(token)
        return PushSpec(
            every=t.expect_every,
            schedule=schedule,
            tz=tz,
            grace=inherit(t.grace, DEFAULT_GRACE),
            token=token,
        )

    return resolve
