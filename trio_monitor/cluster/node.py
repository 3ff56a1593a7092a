"""One cluster node at run time: membership, ownership, results to Redis, alerts once.

    heartbeat (every BEAT s)     its lease in {tm}:members (Redis's clock + TTL), its
        │                        fencing token checked; the live members ──▶ ownership
        ▼
    ownership.owned              this node's share ──▶ Scheduler.select (the target-
                                 selection seam): a gained target is probed at once
    outlet "cluster"             every ProbeResult, bounded (drops counted like every
        │                        consumer's): the spool while Redis is away
        ▼
    sender                       ClusterClient.observe, in order, each result sent until
                                 Redis answers (same result id: a repeat is a no-op)
    policy                       the whole {tm}:outbox, in order, through this node's
                                 alert policy on the stream's clock (cluster/policy.py):
                                 every node makes the same alerts, `tm_alert` puts each
                                 into {tm}:alerts once
    alerts consumers             per notifier, its consumer group on {tm}:alerts:
                                 XAUTOCLAIM (a dead node's entries), XREADGROUP, deliver
                                 with Idempotency-Key = the alert id, mark it delivered,
                                 then XACK
    fold                         with history: every node's results ({tm}:results) and
                                 the cluster's alerts ({tm}:alerts) into this node's
                                 SQLite through its history outlet, each batch followed
                                 by a StreamMark (stored in the same transaction as the
                                 records before it): the page, API and reports show
                                 the whole cluster, and a restart goes on from the mark

A node whose member name a newer process has taken over (its token replaced in the
fence) stops itself: one error line, and `run` exits 3 (EXIT_TAKEN_OVER, _lifecycle.py).

Redis being away never blocks probing: the share last known stays, results wait in
the outlet (bounded), beats and consumers retry after a pause.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import attrs
import coredis
import httpx
import trio

from .._config import ChannelSection, ClusterSettings, Config, Target
from .._errors import StoreError
from .._records import AlertEvent, ProbeResult, Record, StreamMark
from ..alerts import base as alert_kinds
from ..alerts import routing
from ..engine.dispatch import Dispatcher, Outlet
from ..engine.state import DOWN, UP, TargetState
from ..policy import Silence
from ..store._sql import get_meta, stream_meta_key
from . import client as cc
from .ownership import owned
from .policy import ClusterPolicy, Output, silence_entry, stream_time
from .status import describe

log = logging.getLogger("trio_monitor")

BEAT, TTL = 1.0, 3.0  # seconds between heartbeats; a lease's length
CALL_TIMEOUT = 5.0  # one Redis call at most (then: sent again, or retried later)
RETRY = 1.0  # seconds before the next attempt while Redis is away
RESULTS_QUEUE = 100_000  # results waiting for Redis (the spool) before some are dropped
CLAIM_IDLE_MS = 30_000  # an outbox entry unacknowledged this long is another node's to take
READ_BLOCK_MS = 1_000
DELIVERED_TTL = 7 * 86400  # how long "delivered" marks are kept (s)
FOLD_BATCH = 1000  # stream entries read at once into history
SEED_TIMEOUT = 60.0  # re-seeding an empty Redis (one call per target this node probes)
# one `degrading` per target and signal between two verdict changes, across the cluster,
# for at most this long (s): a later episode without an outage between warns again
WARNING_TTL = 86400

_Answer = TypeVar("_Answer")


def _is_result(record: Record) -> bool:
    return isinstance(record, ProbeResult)


@attrs.define
class ClusterStatus:
    """What the node knows, for the API, the page and the CLI."""

    member: str
    redis: str  # the URL, redacted
    redis_ok: bool = False  # the last call answered
    redis_error: str | None = None
    cluster_id: str | None = None
    live: dict[str, float] = attrs.field(factory=dict)  # member -> lease expiry (Redis time)
    redis_now: float | None = None
    owned: int = 0
    sent: int = 0  # results Redis took
    late: int = 0  # of them, older than one already applied: history only
    config_hash: str = ""
    hashes: dict[str, str] = attrs.field(factory=dict)  # member -> its config hash
    delivered: int = 0  # alerts this node delivered from the outbox
    fold_lag_s: float | None = None  # how far history's fold is behind Redis's clock
    taken_over: bool = False

    @property
    def config_differs(self) -> list[str]:
        """Live members whose targets or alerting settings differ from this node's."""
        return sorted(m for m, h in self.hashes.items() if h != self.config_hash)


class ClusterNode:
    """A cluster node's Redis work; `run` in the services nursery, before the scheduler."""

    def __init__(
        self,
        config: Config,
        dispatcher: Dispatcher,
        select: Callable[[Callable[[str], bool], list[str]], None],
        stop: Callable[[], None],
        states: Callable[[str], TargetState | None] = lambda _: None,
        silenced: Callable[[Silence], None] = lambda _: None,
        peer: Callable[[Target, ProbeResult], None] = lambda *_: None,
    ) -> None:
        assert config.cluster is not None
        self.settings: ClusterSettings = config.cluster
        self.config = config
        self.token = secrets.token_hex(16)  # this process incarnation's fencing token
        self._seq = 0
        self._select = select
        self._stop = stop
        self.outlet = dispatcher.add_outlet("cluster", RESULTS_QUEUE, _is_result)
        self.status = ClusterStatus(
            member=self.settings.member,
            redis=self.settings.redis_shown,
            config_hash=self.settings.config_hash,
        )
        self._states = states  # this node's own view of its targets (the local store)
        # a result another node probed, as the fold reads it: this node's page, API and
        # stats show the target as that node sees it (alerts stay the cluster's)
        self._peer = peer
        self._targets = {t.name: t for t in config.targets}  # routing's view of them
        self._owned: frozenset[str] = frozenset()
        self._differs_logged: list[str] = []  # the members last logged as differing
        # joining (functions, name, groups, re-seeding) and results exclude each other:
        # nothing reaches a Redis that came back empty before it is seeded again
        self._lock = trio.Lock()
        self._versions: dict[str, int] = {}  # target -> its last alert version seen
        # after Redis was away: the members from before, kept for one lease, so the
        # first node back does not take every target
        self._held: frozenset[str] = frozenset()
        self._held_until = -math.inf
        self._beat_failed = False  # since the last beat Redis answered
        self._away = False  # an outage was logged (its end will be)
        self._members: frozenset[str] = frozenset()  # what ownership was last computed on
        self._groups = [group for *_, group in alert_kinds.configured(config.alerts)]
        # the cluster's alerts through the policy; `silenced`: the cluster's silences,
        # for the alerts this node sends itself (Redis away, redis_down = "local")
        self.policy = ClusterPolicy(config, silenced)
        self._redis: coredis.Redis[str] | None = None  # while running: silences are sent
        # alone until the first beat answers: every target its own (on its schedule)
        self._owned = owned(self.settings.member, config.targets, [])
        self.status.owned = len(self._owned)
        select(self.owns, [])

    @property
    def taken_over(self) -> bool:
        return self.status.taken_over

    @property
    def alerts_locally(self) -> bool:
        """Redis is away and `redis_down = "local"`: this node sends its own alerts."""
        return self.settings.redis_down == "local" and not self.status.redis_ok

    async def reconfigure(self, old: Config, new: Config) -> None:
        """A reload's targets (`[cluster]` itself needs a restart)."""
        self.config = new
        self._targets = {t.name: t for t in new.targets}
        await self.policy.reconfigure(old, new)
        self._reselect(list(self.status.live))

    def offer_event(self, alert: AlertEvent) -> None:
        """An alert of one result (`slow`, `content_changed`, certificates) or an early
        warning, for the outbox: queued with the results, in order (the same spool)."""
        self.outlet.offer(alert)

    async def share_silence(self, silence: Silence) -> None:
        """A silence added or expired through this node's API, into the outbox: every
        node's policy holds with it from that point of the stream on (and a restarted
        node reads it there again). Raises StoreError while Redis cannot take it."""
        try:
            if self._redis is None:
                raise OSError("not connected yet")
            with trio.fail_after(CALL_TIMEOUT):
                await self._redis.xadd(
                    cc.OUTBOX,
                    {"silence": silence_entry(silence)},
                    trim_strategy=coredis.PureToken.MAXLEN,
                    threshold=cc.ALERTS_MAXLEN,
                    trim_operator=coredis.PureToken.APPROXIMATELY,
                )
        except Exception as exc:
            if not (isinstance(exc, OSError) or cc.is_trouble(exc)):
                raise
            raise StoreError(f"Redis {self.settings.redis_shown}: {exc}") from None

    def owns(self, name: str) -> bool:
        return name in self._owned

    def describe(self) -> dict[str, Any]:
        """The cluster as this node sees it (cluster/status.py's shape)."""
        st = self.status
        return describe(
            redis_url=st.redis,
            redis_ok=st.redis_ok,
            redis_error=st.redis_error,
            cluster_id=st.cluster_id,
            redis_now=st.redis_now,
            live=st.live,
            hashes=st.hashes,
            targets=self.config.targets,
            config_hash=st.config_hash,
            node=st.member,
            owned=self._owned,
            lag={
                "queue": self.outlet.send.statistics().current_buffer_used,
                "fold_s": st.fold_lag_s,
                "sent": st.sent,
                "late": st.late,
                "delivered": st.delivered,
            },
        )

    def _reselect(self, members: Iterable[str]) -> None:
        self._members = frozenset(members)
        new = owned(self.settings.member, self.config.targets, self._members)
        gained = sorted(new - self._owned)
        self._owned = new
        self.status.owned = len(new)
        self._select(self.owns, gained)

    def _fenced(self) -> None:
        if not self.status.taken_over:
            self.status.taken_over = True
            log.error(
                "cluster: node %s was taken over by a newer process (another monitor runs "
                "with node = %r in location %r); stopping",
                self.settings.member,
                self.settings.node,
                self.settings.location,
            )
            self._stop()

    def _redis_down(self, exc: BaseException) -> None:
        """A call failed: Redis away (an outage: logged once, alerts wait or go local)
        or an answer that is an error (Redis is there: logged once per distinct error,
        shown as `redis.error` while `ok` stays true)."""
        text = cc.trouble_text(exc)
        if cc.trouble_kind(exc) not in cc.OUTAGES:
            if text != self.status.redis_error:
                log.error("cluster: Redis %s answered %s", self.settings.redis_shown, text)
            self.status.redis_error = text
            return
        if not self._away:
            log.warning("cluster: Redis %s %s", self.settings.redis_shown, text)
        self._away = True
        self.status.redis_ok, self.status.redis_error = False, text

    def _redis_up(self) -> None:
        """A call answered: an outage is over (an error answer stays shown until
        another trouble replaces it)."""
        if self._away:
            log.info("cluster: Redis %s reachable again", self.settings.redis_shown)
            self.status.redis_error = None
        self._away = False
        self.status.redis_ok = True

    async def run(
        self,
        client: httpx.AsyncClient,
        history: tuple[Outlet, str] | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Until the dispatcher closes the outlet (and it is drained): then leave.
        `history`: the history outlet and its file, to fold the cluster's streams into."""
        redis = cc.connect(self.settings.redis)
        async with redis, trio.open_nursery() as nursery:
            self._redis = redis
            node = cc.ClusterClient(redis, self.settings.member, self.token)
            with trio.move_on_after(CALL_TIMEOUT):
                await self._join(node)  # a Redis away at start: the beats try again
            task_status.started()
            nursery.start_soon(self._beat, node)
            nursery.start_soon(self._police, node)
            if history is not None:
                nursery.start_soon(self._fold, redis, *history)
            for key, name, table, group in alert_kinds.configured(self.config.alerts):
                # its consumer group: made by _join
                notifier = alert_kinds.get(key).create(table, client)
                nursery.start_soon(self._consume, node, group, self._router(table, name), notifier)
            await self._send(node)
            self._redis = None
            nursery.cancel_scope.cancel()
            if not self.status.taken_over:
                with trio.move_on_after(CALL_TIMEOUT) as leaving:
                    leaving.shield = True
                    try:
                        await node.leave()
                    except Exception as exc:
                        if not cc.is_trouble(exc):
                            raise
                        log.info("cluster: could not take the lease back: %s", exc)

    async def _join(self, node: cc.ClusterClient) -> bool:
        """Load the functions, claim the name, make the notifiers' consumer groups,
        learn the cluster's id (a new one where we knew another: Redis came back empty,
        so seed it with what this node knows), beat once."""
        try:
            async with self._lock:
                with trio.fail_after(CALL_TIMEOUT):
                    await node.load_functions()
                    previous = await node.claim()
                    for group in self._groups:
                        await _create_group(node.redis, group)
                    known = self.status.cluster_id
                    self.status.cluster_id, created = await node.cluster_id(secrets.token_hex(8))
                if previous is not None and known is None:
                    log.info(
                        "cluster: %s was held by an earlier process; taking it over", node.member
                    )
                # another id than the one known: Redis came back empty, whichever node
                # set the new id (tm_seed leaves what another node seeded alone)
                if known is not None and known != self.status.cluster_id:
                    log.warning(
                        "cluster: Redis came back empty (cluster %s is now %s): seeding it with "
                        "this node's view of its targets, so nothing is paged twice",
                        known,
                        self.status.cluster_id,
                    )
                    with trio.fail_after(SEED_TIMEOUT):
                        await self._seed(node)
                elif created:
                    log.info("cluster: new cluster %s", self.status.cluster_id)
        except Exception as exc:
            if not cc.is_trouble(exc):
                raise
            self._redis_down(exc)
            return False
        return await self._beat_once(node)

    async def _seed(self, node: cc.ClusterClient) -> None:
        """Each target this node probes, as it sees it (UP or DOWN, its failures, since
        when) and its last alert version, into an empty Redis."""
        seeded = 0
        for target in self.config.targets:
            st = self._states(target.name)
            known = st is not None and st.state in (UP, DOWN)
            if target.name not in self._owned or not (known or target.name in self._versions):
                continue
            state = st.state if st is not None and known else UP
            since = (st.since if st is not None else None) or time.time()
            failures = st.failures if st is not None else 0
            version = self._versions.get(target.name, 0)
            seeded += await node.seed(target, state, failures, since, version) == "seeded"
        log.info("cluster: seeded %d targets", seeded)

    async def _beat_once(self, node: cc.ClusterClient) -> bool:
        try:
            with trio.fail_after(CALL_TIMEOUT):
                beat = await node.heartbeat(TTL, self.status.config_hash)
        except Exception as exc:
            if not cc.is_trouble(exc):
                raise
            self._redis_down(exc)
            self._beat_failed = True
            if cc.functions_missing(exc):  # a Redis that came back empty
                return await self._join(node)
            return False
        if beat.fenced:
            self._fenced()
            return False
        if beat.empty:  # flushed, or a new Redis that has our functions already
            self._beat_failed = True
            return await self._join(node)
        now = trio.current_time()
        if self._beat_failed:  # back after Redis was away: the old members for one lease
            self._held, self._held_until = frozenset(self.status.live), now + TTL
            self._beat_failed = False
        self._redis_up()
        self.status.live, self.status.redis_now, self.status.hashes = (
            beat.live,
            beat.now,
            beat.hashes,
        )
        differs = self.status.config_differs
        if differs and differs != self._differs_logged:  # once per change, not per beat
            log.error(
                "cluster: targets or alerting settings differ from this node's on %s: "
                "every node must read the same [[targets]] and [alerts]",
                ", ".join(differs),
            )
        self._differs_logged = differs
        members = frozenset(beat.live) | (self._held if now < self._held_until else frozenset())
        if members != self._members:
            self._reselect(members)
        return True

    async def _beat(self, node: cc.ClusterClient) -> None:
        while not self.status.taken_over:
            await trio.sleep(BEAT)
            await self._beat_once(node)

    async def _send(self, node: cc.ClusterClient) -> None:
        """Every result to Redis, in order; one that fails is sent again (the same id)
        until Redis takes it: the outlet holds the rest meanwhile."""
        async with self.outlet.receive:
            async for record in self.outlet.receive:
                if self.status.taken_over:
                    continue  # drained, not sent: another process is this node now
                if isinstance(record, AlertEvent):
                    await self._event(node, record)
                    continue
                assert isinstance(record, ProbeResult)
                self._seq += 1
                await self._observe(node, record, f"{self.token}:{self._seq}")

    async def _event(self, node: cc.ClusterClient, alert: AlertEvent) -> None:
        """One alert of a result, or a warning, into the outbox once across the cluster.
        Its id is the same from whichever node and however often it is sent: a result's
        event is named by the result (target, event, location, its time to the ms), a
        `degrading` by target and signal, to which Redis adds the verdict version."""
        warning = alert.event == "degrading"
        if warning:
            alert_id = f"{alert.target}:degrading/{alert.signal}"
        else:
            alert_id = (
                f"{alert.target}:{alert.event}@{self.settings.location}/{alert.ts * 1000:.0f}"
            )
        ttl = WARNING_TTL if warning else DELIVERED_TTL
        status, _ = await self._until_taken(
            node,
            lambda: node.event(alert, alert_id, ttl=ttl, versioned=warning),
            lambda answer: answer[0],
        )
        if status == cc.FENCED:
            self._fenced()

    async def _observe(self, node: cc.ClusterClient, result: ProbeResult, result_id: str) -> None:
        target = next((t for t in self.config.targets if t.name == result.target), None)
        if target is None:
            return  # removed by a reload meanwhile
        observed = await self._until_taken(
            node,
            lambda: node.observe(target, result, age=time.time() - result.ts, result_id=result_id),
            lambda observed: observed.status,
        )
        if observed.alert is not None:
            self._saw(str(observed.alert.get("id", "")))
        if observed.status == cc.FENCED:
            self._fenced()
        elif observed.status != cc.DUPLICATE:
            self.status.sent += 1
            self.status.late += observed.status == cc.LATE

    async def _until_taken(
        self,
        node: cc.ClusterClient,
        call: Callable[[], Awaitable[_Answer]],
        status: Callable[[_Answer], str],
    ) -> _Answer:
        """`call` (idempotent) until Redis takes it: sent again after trouble, and after
        joining again when Redis came back empty (then first seeded: never before)."""
        while True:
            try:
                async with self._lock:
                    with trio.fail_after(CALL_TIMEOUT):
                        answer = await call()
            except Exception as exc:
                if not cc.is_trouble(exc):
                    raise
                self._redis_down(exc)
                if not (cc.functions_missing(exc) and await self._join(node)):
                    await trio.sleep(RETRY)
                continue
            self._redis_up()
            if status(answer) == cc.EMPTY:  # flushed: join and seed, then send it again
                await self._join(node)
                continue
            return answer

    async def _police(self, node: cc.ClusterClient) -> None:
        """The outbox through the policy (cluster/policy.py), from its start: up to the
        cluster's mark (`tm_policed`) only to learn the policy's state (those alerts
        were sent), then sending each alert it makes (`tm_alert`: once across the
        cluster) and moving the mark on."""
        position, sent_through = "0-0", -math.inf
        # the mark at start: the alerts up to it are made again, not sent
        mark = await self._until_taken(node, functools.partial(node.redis.get, cc.POLICED), str)
        quiet = int(mark or 0) / 1000
        while not self.status.taken_over:
            read = await self._read(node.redis, {cc.OUTBOX: position})
            if read is None:
                continue
            start, answer = read
            entries = [e for stream_entries in answer.values() for e in stream_entries]
            made: list[Output] = []
            for entry in entries:
                position = str(entry.identifier)
                fields = {str(k): str(v) for k, v in entry.field_values.items()}
                self._saw(fields.get("id", ""))
                alert = _alert(fields) if "alert" in fields else None
                made += self.policy.entry(position, fields, alert)
            # read through the ms before `start` (a stream id is never below Redis's
            # clock when it was added: later entries come after), or before the last
            # entry's when a full batch says there is more (more may share its ms)
            last = stream_time(position) if len(entries) == FOLD_BATCH else start
            frontier = (math.floor(last * 1000) - 1) / 1000
            made += self.policy.until(frontier)
            for at, _, alert in made:
                if at > quiet:
                    await self._until_taken(
                        node, functools.partial(node.alert, alert, ttl=DELIVERED_TTL), str
                    )
            if frontier > max(quiet, sent_through):
                sent_through = await self._until_taken(
                    node, functools.partial(node.policed, frontier), str
                )

    def _router(self, table: ChannelSection, name: str) -> Callable[[AlertEvent], bool]:
        """Notifier `name`'s routing (alerts/routing.py: `events`, `match`, `match_re`,
        the target's `notify`) over the config of the moment (a reload's targets)."""
        return lambda alert: routing.accepts(table, name, self._targets)(alert)

    async def _consume(
        self,
        node: cc.ClusterClient,
        group: str,
        accepts: Callable[[AlertEvent], bool],
        notifier: alert_kinds.Notifier,
    ) -> None:
        """This notifier's share of the outbox: its own pending entries first (a
        restart), then a dead consumer's (XAUTOCLAIM), then new ones."""
        redis = node.redis
        while not self.status.taken_over:
            try:
                entries = await _take(redis, group, node.member)
            except Exception as exc:
                if not cc.is_trouble(exc):
                    raise
                self._redis_down(exc)  # (no group: an empty Redis; _join makes it again)
                await trio.sleep(RETRY)
                continue
            for entry_id, fields in entries:
                await self._deliver(redis, group, accepts, notifier, entry_id, fields)

    async def _deliver(
        self,
        redis: coredis.Redis[str],
        group: str,
        accepts: Callable[[AlertEvent], bool],
        notifier: alert_kinds.Notifier,
        entry_id: str,
        fields: dict[str, str],
    ) -> None:
        mark = f"{cc.PREFIX}delivered:{group}:{fields.get('id', entry_id)}"
        self._saw(fields.get("id", ""))
        while True:
            try:
                if not await redis.exists([mark]):
                    alert = _alert(fields)
                    if alert is not None and accepts(alert):
                        if not await notifier.deliver(alert):
                            log.warning("cluster: %s: gave up on alert %s", group, alert.id)
                        self.status.delivered += 1
                    await redis.set(mark, "1", ex=DELIVERED_TTL)  # before the ack
                await redis.xack(cc.ALERTS, group, [entry_id])
                return
            except Exception as exc:
                if not cc.is_trouble(exc):
                    raise
                self._redis_down(exc)
                await trio.sleep(RETRY)

    def _saw(self, alert_id: str) -> None:
        """Note a target's alert version (ids must go on after Redis came back empty)."""
        version = cc.alert_version(alert_id)
        if version is not None:
            target = alert_id.rpartition(":")[0]
            self._versions[target] = max(version, self._versions.get(target, 0))

    async def _read(
        self, redis: coredis.Redis[str], streams: dict[str, str]
    ) -> tuple[float, dict[Any, Any]] | None:
        """Redis's clock, then the entries after `streams`' ids (waiting a while for
        some). -> (that time, the entries by stream); None after trouble (a pause)."""
        try:
            with trio.fail_after(2 * CALL_TIMEOUT + READ_BLOCK_MS / 1000):
                start = await cc.redis_time(redis)
                answer = await redis.xread(streams, count=FOLD_BATCH, block=READ_BLOCK_MS)
        except Exception as exc:
            if not cc.is_trouble(exc):
                raise
            self._redis_down(exc)
            await trio.sleep(RETRY)
            return None
        return start, dict(answer or {})

    async def _fold(self, redis: coredis.Redis[str], history: Outlet, store_path: str) -> None:
        """The cluster's results and alerts into this node's history, from where its
        last StreamMark says, on."""
        marks = await trio.to_thread.run_sync(_stream_marks, store_path)
        while True:
            read = await self._read(redis, marks)
            if read is None:
                continue
            for stream, entries in read[1].items():
                for entry in entries:
                    fields = {str(k): str(v) for k, v in entry.field_values.items()}
                    self._saw(fields.get("id", ""))
                    record = _folded(str(stream), fields)
                    if record is not None:
                        history.offer(record)
                        if isinstance(record, ProbeResult) and self._of_a_peer(record, fields):
                            self._peer(self._targets[record.target], record)
                if entries:
                    marks[str(stream)] = str(entries[-1].identifier)
                    history.offer(StreamMark(str(stream), marks[str(stream)]))
                    if stream == cc.RESULTS and self.status.redis_now is not None:
                        folded = int(marks[cc.RESULTS].partition("-")[0]) / 1000
                        self.status.fold_lag_s = round(max(0.0, self.status.redis_now - folded), 3)

    def _of_a_peer(self, result: ProbeResult, fields: dict[str, str]) -> bool:
        """A current result another node probed, of a target this config has and this
        node does not probe itself (one it probes too, from another location, keeps its
        own picture and pacing: the verdict across locations is Redis's)."""
        return (
            fields.get("node") != self.settings.member
            and fields.get("late") == "0"
            and result.target in self._targets
            and not self.owns(result.target)
        )


def _stream_marks(store_path: str) -> dict[str, str]:
    """How far this node's history has folded in each stream ("0-0": from the start)."""
    with contextlib.closing(sqlite3.connect(store_path)) as conn:
        return {
            stream: str(get_meta(conn, stream_meta_key(stream)) or "0-0")
            for stream in (cc.RESULTS, cc.ALERTS)
        }


def _folded(stream: str, fields: dict[str, str]) -> Record | None:
    """A stream entry as the record history keeps: a result, or an alert."""
    if stream == cc.ALERTS:
        return _alert(fields)
    try:
        return cc.from_history_entry(fields["r"])
    except (KeyError, ValueError, TypeError) as exc:
        log.error("cluster: a results entry that is no result: %s", exc)
        return None


def _alert(fields: dict[str, str]) -> AlertEvent | None:
    try:
        data: dict[str, Any] = json.loads(fields["alert"])
        data.setdefault("id", fields.get("id"))  # `event` keeps it beside the alert
        known = {a.name for a in attrs.fields(AlertEvent)}
        return AlertEvent(**{k: v for k, v in data.items() if k in known})
    except (KeyError, ValueError, TypeError) as exc:
        log.error("cluster: an outbox entry that is no alert: %s", exc)
        return None


async def _create_group(redis: coredis.Redis[str], group: str) -> None:
    """The notifier's consumer group, from the stream's end (MKSTREAM): created once."""
    # another node (or an earlier run) may have made it
    with contextlib.suppress(coredis.exceptions.StreamDuplicateConsumerGroupError):
        await redis.xgroup_create(cc.ALERTS, group, "$", mkstream=True)


async def _take(
    redis: coredis.Redis[str], group: str, consumer: str
) -> list[tuple[str, dict[str, str]]]:
    """The next entries for this consumer: its own pending ones (after a restart), then
    those idle past CLAIM_IDLE_MS (a dead consumer's), then new ones (waiting a while)."""
    with trio.fail_after(CALL_TIMEOUT + READ_BLOCK_MS / 1000):
        mine = await redis.xreadgroup(group, consumer, streams={cc.ALERTS: "0"}, count=10)
        entries = _entries(mine)
        if entries:
            return entries
        claimed = await redis.xautoclaim(cc.ALERTS, group, consumer, CLAIM_IDLE_MS, "0-0", count=10)
        entries = [(e.identifier, dict(e.field_values)) for e in claimed[1] if e.field_values]
        if entries:
            return entries
        new = await redis.xreadgroup(
            group, consumer, streams={cc.ALERTS: ">"}, count=10, block=READ_BLOCK_MS
        )
        return _entries(new)


def _entries(answer: Any) -> list[tuple[str, dict[str, str]]]:
    if not answer:
        return []
    return [
        (e.identifier, dict(e.field_values))
        for stream_entries in answer.values()
        for e in stream_entries
        if e.field_values
    ]
