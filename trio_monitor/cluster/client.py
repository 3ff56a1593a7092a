"""The cluster's Redis side: its keys, the Functions library and one method per function.

Everything the cluster shares lives under the hash tag `{tm}` (one slot): targets'
state `{tm}:t:NAME`, the member set `{tm}:members` (sorted by lease expiry on Redis's
clock), the fencing tokens `{tm}:fence`, each member's config hash `{tm}:config`, the
streams `{tm}:results` (every result, for every node's history), `{tm}:outbox` (the
verdicts' alerts, result events, warnings and silences, read by every node's policy)
and `{tm}:alerts` (the policy's alerts: read by one consumer group per notifier, and
into every node's history), and the cluster's id `{tm}:id`.

functions.lua (package data) is loaded with FUNCTION LOAD REPLACE when Redis has no
copy or an older one (`tm_version`): the newest node's library wins, never an older.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import attrs
import coredis
import trio
from attrs import frozen

from .._config import Target
from .._errors import ErrorKind
from .._records import AlertEvent, ProbeResult
from .._secrets import redact_url

LIBRARY = resources.files(__package__).joinpath("functions.lua").read_text(encoding="utf-8")
VERSION = 7  # functions.lua's VERSION
RESULTS_MAXLEN = 1_000_000  # the results stream is trimmed to about this many entries
ALERTS_MAXLEN = 100_000  # the outbox and alerts streams too (functions.lua's)

PREFIX = "{tm}:"
MEMBERS = PREFIX + "members"
FENCE = PREFIX + "fence"
CONFIG_HASHES = PREFIX + "config"
RESULTS = PREFIX + "results"
OUTBOX = PREFIX + "outbox"  # verdicts' alerts, result events, warnings, silences
ALERTS = PREFIX + "alerts"  # what the policy made of them (cluster/policy.py): delivered
ALERT_IDS = PREFIX + "alert:"  # the policy's alerts sent: their ids, for a while
POLICED = PREFIX + "policed"  # the outbox's time (ms) through which they are all sent
CLUSTER_ID = PREFIX + "id"
LATE_IDS = PREFIX + "late:"
EVENT_IDS = PREFIX + "event:"  # result events and warnings sent: their ids, for a while

APPLIED, LATE, DUPLICATE, FENCED = "applied", "late", "duplicate", "fenced"
# alerts of one result (not verdict changes): into the outbox by `event`, once
RESULT_EVENTS = frozenset({"slow", "content_changed", "cert_expiring", "cert_renewed"})
EMPTY = "empty"  # not the cluster (id) the node joined: Redis lost its data


# Redis's trouble: connection loss, timeouts (ours: trio.TooSlowError), error answers
_TROUBLE = (coredis.exceptions.RedisError, OSError, trio.TooSlowError)

# what kind of trouble, for the log line and /api/v1/cluster's `redis.error`: only the
# first three are Redis being away; the others are answers (Redis is there, and said no)
UNREACHABLE, TIMEOUT, LOADING = "unreachable", "timeout", "loading"
REFUSED, ERROR_REPLY = "refused", "error reply"
OUTAGES = frozenset({UNREACHABLE, TIMEOUT, LOADING})

# most specific first: coredis's BusyLoadingError is a ConnectionError, its stream group
# errors (StreamConsumerError) and FunctionError are no ResponseError
_KINDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (coredis.exceptions.BusyLoadingError, LOADING),
    ((coredis.exceptions.ConnectionError, OSError), UNREACHABLE),
    (trio.TooSlowError, TIMEOUT),
    ((coredis.exceptions.AuthenticationError, coredis.exceptions.AuthorizationError), REFUSED),
    (coredis.exceptions.RedisError, ERROR_REPLY),
)


def is_trouble(exc: Exception) -> bool:
    """Is `exc` Redis being away or refusing: alone, or (coredis runs its connections
    in anyio task groups) an exception group of nothing else?"""
    if isinstance(exc, ExceptionGroup):
        return exc.split(_TROUBLE)[1] is None
    return isinstance(exc, _TROUBLE)


def trouble_kind(exc: BaseException) -> str:
    """Which trouble `is_trouble` saw: UNREACHABLE, TIMEOUT, LOADING (Redis is away),
    REFUSED (authentication) or ERROR_REPLY (WRONGTYPE, a script's error, NOSCRIPT,
    a stream group's error: Redis answered). A group's first exception decides."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return next((kind for classes, kind in _KINDS if isinstance(exc, classes)), UNREACHABLE)


def trouble_text(exc: BaseException) -> str:
    """`redis.error`: the kind, then what was said; an error reply also names its class
    (coredis drops Redis's code: "error reply: WrongTypeError: Operation against ...")."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    kind, said = trouble_kind(exc), str(exc)
    if kind == ERROR_REPLY or not said:
        said = f"{type(exc).__name__}: {said}" if said else type(exc).__name__
    return f"{kind}: {said}"


def functions_missing(exc: Exception) -> bool:
    """Redis answered that our functions are not there: it came back empty."""
    return "function not found" in str(exc).lower()


def alert_version(alert_id: str) -> int | None:
    """ "api:7" -> 7 (a target name may hold ":" itself)."""
    _, _, version = alert_id.rpartition(":")
    return int(version) if version.isdigit() else None


def target_key(name: str) -> str:
    return f"{PREFIX}t:{name}"


# what of a result every node's history keeps (store/writer.py): the results stream
# carries these fields, not the whole line
_HISTORY_FIELDS = (
    "ts", "target", "url", "ok", "status", "latency_ms", "error", "attempts", "round",
    "content_hash", "content_changed", "phases_ms", "kind", "confirm",
)  # fmt: skip


def history_entry(result: ProbeResult) -> str:
    """A result as the results stream carries it (JSON)."""
    return json.dumps(
        {name: getattr(result, name) for name in _HISTORY_FIELDS}, separators=(",", ":")
    )


def from_history_entry(text: str) -> ProbeResult:
    """history_entry's inverse (raises ValueError, KeyError or TypeError if it is none)."""
    data = json.loads(text)
    fields = {name: data[name] for name in _HISTORY_FIELDS}
    if fields["error"] is not None:
        fields["error"] = ErrorKind(fields["error"])
    return ProbeResult(**fields)


def alert_body(alert: AlertEvent) -> str:
    """An alert as the streams carry it (JSON without its id: the entry has it)."""
    body = {k: v for k, v in attrs.asdict(alert).items() if v is not None and k != "id"}
    return json.dumps(body, separators=(",", ":"))


@frozen
class Observed:
    """What `observe` did with one result: its `status`, the target's verdict after it,
    the alert it raised (the AlertEvent's fields plus `id`, or None) and the result's
    entry in the results stream ("" when none was written)."""

    status: str
    state: str
    alert: dict[str, Any] | None
    stream_id: str


@frozen
class Heartbeat:
    """A beat's answer: Redis's time, the live members (`location/node` -> lease expiry)
    and each member's config hash. `fenced`: a newer process holds this member's name;
    `empty`: Redis has no cluster id (its data is gone: join again, and seed it)."""

    fenced: bool
    empty: bool = False
    now: float = 0.0
    live: dict[str, float] = attrs.field(factory=dict)
    hashes: dict[str, str] = attrs.field(factory=dict)


def connect(url: str) -> coredis.Redis[str]:
    """A client for the `[cluster] redis` URL (not connected yet: coredis connects, and
    reconnects after a restart, on use)."""
    return coredis.Redis.from_url(url, decode_responses=True)


def shown(url: str) -> str:
    return redact_url(url)


async def redis_time(redis: coredis.Redis[str]) -> float:
    """Redis's clock in unix seconds, to the microsecond. Not coredis's `time()`: its
    callback divides the microseconds by 1000, so it is up to a second behind (a
    member's lease then looked longer than it was granted)."""
    answer: Any = await redis.eval("return redis.call('TIME')", [], [])
    seconds, micros = answer
    return int(seconds) + int(micros) / 1e6


class ClusterClient:
    """One node's calls into the Functions library as `member` (location/node) holding
    `token` (its process incarnation's fencing token), in the cluster whose id it
    joined (`cluster`, set by `cluster_id`): beats and results are refused (EMPTY) by
    a Redis whose id is another, or none."""

    def __init__(
        self, redis: coredis.Redis[str], member: str, token: str, cluster: str = ""
    ) -> None:
        self.redis = redis
        self.member = member
        self.location = member.partition("/")[0]
        self.token = token
        self.cluster = cluster

    async def load_functions(self) -> int:
        """Load functions.lua unless Redis has this version or a newer one. -> the
        version Redis runs."""
        try:
            running = int(await self.redis.fcall("tm_version", [], []))
        except coredis.exceptions.ResponseError:  # no library yet (or an empty Redis)
            running = 0
        if running < VERSION:
            await self.redis.function_load(LIBRARY, replace=True)
            running = VERSION
        return running

    async def claim(self) -> str | None:
        """Take this member's name over (a newer incarnation fences an older one). ->
        the token it replaced, None if there was none."""
        previous = await self.redis.fcall("tm_claim", [FENCE], [self.member, self.token])
        return None if previous is None else str(previous)

    async def heartbeat(self, ttl: float, config_hash: str) -> Heartbeat:
        answer: Any = await self.redis.fcall(
            "tm_heartbeat",
            [MEMBERS, FENCE, CONFIG_HASHES, CLUSTER_ID],
            [self.member, self.token, repr(ttl), config_hash, self.cluster],
        )
        if answer[0] == FENCED:
            return Heartbeat(fenced=True)
        if answer[0] == EMPTY:
            return Heartbeat(fenced=False, empty=True)
        live, hashes = answer[2], answer[3]
        return Heartbeat(
            fenced=False,
            now=float(answer[1]),
            live={live[i]: float(live[i + 1]) for i in range(0, len(live), 2)},
            hashes={hashes[i]: hashes[i + 1] for i in range(0, len(hashes), 2)},
        )

    async def leave(self) -> None:
        await self.redis.fcall(
            "tm_leave", [MEMBERS, CONFIG_HASHES, FENCE], [self.member, self.token]
        )

    async def cluster_id(self, proposed: str) -> tuple[str, bool]:
        """The cluster's id, joined; `proposed` becomes it when Redis has none.
        -> (id, created)."""
        answer: Any = await self.redis.fcall("tm_cluster_id", [CLUSTER_ID], [proposed])
        self.cluster = str(answer[0])
        return self.cluster, bool(answer[1])

    async def seed(
        self, target: Target, state: str, failures: int, since: float, version: int
    ) -> str:
        """Tell a Redis that came back empty what this node knew of `target` (functions.lua
        `seed`). -> "seeded", "exists" (already written: left alone) or "fenced"."""
        answer: Any = await self.redis.fcall(
            "tm_seed",
            [target_key(target.name), FENCE],
            [
                self.member,
                self.token,
                self.location,
                state,
                str(failures),
                repr(since),
                str(version),
            ],
        )
        return str(answer)

    async def event(
        self, alert: AlertEvent, alert_id: str, *, ttl: float, versioned: bool = False
    ) -> tuple[str, str]:
        """One alert that is no verdict change into the outbox, unless an alert with its
        id (`versioned`: plus the target's verdict version) went in within `ttl` seconds
        (functions.lua `event`). -> (status, the id it went in with)."""
        answer: Any = await self.redis.fcall(
            "tm_event",
            [target_key(alert.target), FENCE, OUTBOX, EVENT_IDS, CLUSTER_ID],
            [
                self.member,
                self.token,
                alert_id,
                alert_body(alert),
                str(math.ceil(ttl)),
                "1" if versioned else "0",
                self.cluster,
            ],
        )
        return str(answer[0]), str(answer[1])

    async def alert(self, alert: AlertEvent, *, ttl: float) -> str:
        """One alert of the policy into {tm}:alerts unless its id went in within `ttl`
        seconds (functions.lua `alert`). -> "applied", "duplicate" or "empty"."""
        assert alert.id is not None
        answer: Any = await self.redis.fcall(
            "tm_alert",
            [ALERTS, ALERT_IDS, CLUSTER_ID],
            [alert.id, alert_body(alert), str(math.ceil(ttl)), self.cluster],
        )
        return str(answer)

    async def policed(self, through: float) -> float:
        """The policy's alerts up to `through` (the outbox's clock) are all sent.
        -> the mark (it never goes back)."""
        answer: Any = await self.redis.fcall("tm_policed", [POLICED], [f"{through * 1000:.0f}"])
        return int(answer) / 1000

    async def observe(
        self,
        target: Target,
        result: ProbeResult,
        *,
        age: float,
        result_id: str,
    ) -> Observed:
        """Fold one result into the target's state in one atomic call (functions.lua
        `observe`). `age`: seconds since the probe started, on this node's monotonic
        clock (its start on Redis's clock is Redis's now minus that); `result_id`
        unique per result, the same when the call is sent again."""
        answer: Any = await self.redis.fcall(
            "tm_observe",
            [target_key(target.name), FENCE, OUTBOX, RESULTS, LATE_IDS, CLUSTER_ID],
            [
                self.member,
                self.token,
                self.location,
                target.name,
                repr(target.interval),
                repr(max(age, 0.0)),
                "1" if result.ok else "0",
                str(target.failure_threshold),
                str(target.success_threshold),
                str(target.locations),
                str(target.quorum),
                history_entry(result),
                repr(result.ts),
                "" if result.error is None else str(result.error),
                result.error_detail or "",
                target.url,
                str(RESULTS_MAXLEN),
                result_id,
                self.cluster,
            ],
        )
        status, state, alert, stream_id = answer
        return Observed(
            status=status,
            state=state,
            alert=json.loads(alert) if alert else None,
            stream_id=stream_id,
        )
