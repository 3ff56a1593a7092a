"""One run of the monitor: the components, the task tree, signals, reload and shutdown.

Task tree (outermost first); each level outlives the one inside it:

    hard-stop cancel scope          a second SIGINT/SIGTERM cancels everything
    └── probers                     one per kind in use (HTTP: the per-origin pools),
        │                           opened outside the nurseries that use them
        └── watchers nursery        signal handling, reloads, systemd watchdog
            └── services nursery    JSON-lines writer, history writer, alert outbox,
                │                   one task per notifier, the HTTP server
                └── scheduler       one nursery per round, one task per probe

Shutdown order: stop() cancels the scheduler's loop (no new probes) and gives
in-flight probes `grace` seconds; then the dispatcher closes every outlet, so the
writers drain what is queued and end (bounded), and the alert outbox commits what it
has, hands it on and closes the notifiers' queues: they drain (bounded by the same
deadline), and what is still undelivered stays pending for the next start; then the signal
watcher is cancelled; then the probers close. Nothing is left running when
run_monitor returns.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import trio

from ._config import Config, Target, load_config
from ._errors import ConfigError, StoreError
from ._records import AlertEvent, ProbeResult, Record, TargetRemoved
from ._systemd import SystemdNotifier, serve_watchdog
from .alerts.base import Notifiers, notifiers_client
from .early import EarlyWarning
from .early.store import load_models, serve_baselines
from .engine.dispatch import Dispatcher, Outlet
from .engine.schedule import Scheduler
from .engine.silences import SilenceDesk
from .engine.state import DOWN, MemoryStateStore
from .engine.view import MonitorView, RecentStats
from .policy import Holds, Policy, Silence
from .probes import base as probe_kinds
from .probes import push
from .probes.base import Prober
from .probes.browser import BrowserProber
from .probes.push import PushProber
from .sinks.jsonl import LineLabels, Output, serve_jsonl
from .store import HistoryReader, StoreStats, open_store, serve_store
from .store.lock import hold_history_lock
from .store.outbox import serve_outbox
from .store.records import Incident
from .store.silences import active_silences

if TYPE_CHECKING:
    from .cluster.node import ClusterNode
    from .server.metrics import Metrics

log = logging.getLogger("trio_monitor")

OUTPUT_QUEUE = 10_000  # lines buffered for a slow reader before lines are dropped (counted)
HISTORY_QUEUE = 10_000  # results waiting for the store's writer before some are dropped
OUTBOX_QUEUE = 10_000  # alerts waiting for the outbox's commit before some are dropped
MIN_DRAIN = 5.0  # seconds notifiers get at least to deliver queued alerts on shutdown
# ... counted from the stop, rounds included, so a stop ends within max(grace, MIN_DRAIN)
# plus this: what rounds that used all of the grace left in the queues gets this long
FINAL_DRAIN = 1.0

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
EXIT_TAKEN_OVER = 3  # cluster: a newer process took this node's name over


class Reconfigurable(Protocol):
    async def reconfigure(self, old: Config, new: Config) -> None:
        """Apply an already validated config; the old one is there to compare with."""
        ...


def _kept_in_history(record: Record) -> bool:
    return isinstance(record, ProbeResult | TargetRemoved) or (
        isinstance(record, AlertEvent) and record.event in ("down", "up", "flap_end", "degrading")
    )


def _is_alert(record: Record) -> bool:
    return isinstance(record, AlertEvent)


def _open_outages(path: str) -> list[Incident]:
    open_store(path).close()
    with HistoryReader(path) as reader:
        return [i for i in reader.incidents(0.0, math.inf) if i.end is None]


async def _open_history(config: Config) -> list[Incident]:
    """Open (create, migrate) the store before any task starts. -> its open outages.

    A file that is not ours or too new stops start-up here (StoreError, one line). One
    that cannot be written now (permissions, full disk) does not: probing goes on and
    the writer retries, counting what it cannot keep.
    """
    if config.store_path is None:
        return []
    try:
        return await trio.to_thread.run_sync(_open_outages, config.store_path)
    except (OSError, sqlite3.Error) as exc:
        log.warning("history %s cannot be opened now (%s); probing goes on", config.store_path, exc)
        return []


@contextlib.asynccontextmanager
async def open_probers(
    config: Config, overrides: Mapping[str, Prober[Any]] | None = None
) -> AsyncIterator[dict[str, Prober[Any]]]:
    """A prober for every registered kind: one costs nothing until it prepares a target
    (a kind that needs a heavy library defers it: probes/base.OnFirstPrepare).
    `overrides` replace kinds (tests)."""
    async with contextlib.AsyncExitStack() as stack:
        probers = dict(overrides or {})
        for kind in probe_kinds.kinds():
            if kind.name not in probers:
                probers[kind.name] = await stack.enter_async_context(kind.open(config))
        yield probers


def _removed(old: Config, new: Config) -> list[str]:
    kept = {t.name for t in new.targets}
    return [t.name for t in old.targets if t.name not in kept]


def _drastic(removed: int, running: int) -> bool:
    """More than half of the running targets go (all of them, for one or two): more
    likely a file caught half-written (empty, cut short) than an edit."""
    return 2 * removed > running


def _names(names: list[str], shown: int = 10) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _kept_in_cluster_history(record: Record) -> bool:
    """A cluster node's results and alerts reach its history from Redis's streams
    (every node's: cluster/node.py), not from its dispatcher."""
    return isinstance(record, TargetRemoved)


class _History:
    """The history store's outlets (the writer's, with its own losses; the alert
    outbox's)."""

    def __init__(self, dispatcher: Dispatcher, cluster: bool) -> None:
        self.stats = StoreStats()
        self.outlet = dispatcher.add_outlet(
            "history",
            HISTORY_QUEUE,
            _kept_in_cluster_history if cluster else _kept_in_history,
            lambda: self.stats.unstored,
        )
        self.outbox = dispatcher.add_outlet("outbox", OUTBOX_QUEUE, _is_alert)


class Monitor:
    """A running monitor's components. stop(), abort() and reload() are safe from any task."""

    def __init__(
        self,
        config: Config,
        config_path: str | None,
        systemd: SystemdNotifier,
        probers: Mapping[str, Prober[Any]],
        out: Output,
        *,
        once: bool,
    ) -> None:
        self.config = config
        self.out = out
        self.systemd = systemd
        self._config_path = config_path
        self._once = once
        self._hard = trio.CancelScope()
        self._reload_lock = trio.Lock()
        self.stopping = False
        self._stopped_at: float | None = None  # trio clock, at the first stop()
        self.aborted = False
        self.state = MemoryStateStore(config.alerts)
        self.policy = Policy(config, self.state)
        self.early = EarlyWarning.for_config(config, self.state)
        self.dispatcher = (
            Dispatcher(self.state, self.policy, self.early)
            if config.cluster is None
            else self._cluster_dispatcher()
        )
        (holds,) = (s for s in self.policy.stages if isinstance(s, Holds))
        self.silences = SilenceDesk(holds, self.dispatcher, lambda: self.config)
        self._holds = holds
        self.output: Outlet = self.dispatcher.add_outlet(
            "output", OUTPUT_QUEUE, lost=lambda: self.out.lost
        )
        self.line_labels = LineLabels(config)  # probe lines' labels
        self.history = (
            _History(self.dispatcher, config.cluster is not None)
            if config.store_path is not None
            else None
        )
        self.recent = RecentStats()
        self.given_up: collections.Counter[str] = collections.Counter()  # alerts, per notifier
        self.sent: collections.Counter[str] = collections.Counter()  # alerts, per notifier
        self.dispatcher.add_observer(self.recent.observe)
        self.scheduler = Scheduler(config, probers, self.dispatcher, counters=self._counters)
        self.cluster: ClusterNode | None = None  # a cluster node's Redis work ([cluster])
        if config.cluster is not None:
            from .cluster.node import ClusterNode  # coredis: an extra, imported only here

            self.cluster = ClusterNode(
                config,
                self.dispatcher,
                self.scheduler.select,
                self.stop,
                self.state.get,
                self._silenced_locally,
                self._peer_result,
            )
            # the cluster's alerts, holds and owed pages are its policy's (cluster/policy.py)
            self.silences = SilenceDesk(
                self.cluster.policy.holds,
                self.dispatcher,
                lambda: self.config,
                share=self.cluster.share_silence,
            )
        self.view = MonitorView(
            lambda: self.config,
            self.state,
            self.scheduler,
            self.recent,
            time.time,
            self.early,
            suppressed_by=(
                self.policy if self.cluster is None else self.cluster.policy.policy
            ).suppressed_by,
            cluster=lambda: None if self.cluster is None else self.cluster.describe(),
        )
        self._probers = probers
        self.listening: tuple[str, int] | None = None  # the HTTP server's address, once up
        # what a reload reconfigures, in this order; complete once _serving is set
        self._reconfigurables: list[Reconfigurable] = []
        self._serving = trio.Event()
        self.ready = False  # serving, and systemd told so: the watchdog may ping from now on

    def _peer_result(self, target: Target, result: ProbeResult) -> None:
        """A result another cluster node probed (its fold): this node's stats and its
        picture of the target follow it; the alerts this makes are dropped, a cluster's
        are Redis's."""
        self.recent.observe(result)
        self.state.observe(target, result, trio.current_time())

    def _silenced_locally(self, silence: Silence) -> None:
        """A cluster's silence holds this node's own alerts too (redis_down = "local")."""
        self._holds.silence(silence)
        self.dispatcher.reschedule()

    def _cluster_dispatcher(self) -> Dispatcher:
        """Redis decides a cluster's verdicts: the local store paces probes, and its
        alerts go out here only while Redis is away with redis_down = "local"; a
        result's own events and early warnings go to the outbox (the node's)."""
        from .cluster.state import ClusterStateStore, ClusterWarnings

        def locally() -> bool:
            return self.cluster is not None and self.cluster.alerts_locally

        def send(alert: AlertEvent) -> None:
            if self.cluster is not None:
                self.cluster.offer_event(alert)

        return Dispatcher(
            ClusterStateStore(self.state, locally, send),
            self.policy,
            ClusterWarnings(self.early, locally, send),
        )

    def receive_push(self, token: str, event: str, exit_code: int | None) -> bool:
        """A ping from the server's push URLs: the heartbeat notes it, and its target
        is checked at once (its line does not wait for a due time). -> a known token?"""
        prober = self._probers.get(push.NAME)
        name = prober.receive(token, event, exit_code) if isinstance(prober, PushProber) else None
        if name is None:
            return False
        self.scheduler.check(name)
        return True

    def _counters(self) -> dict[str, Any]:
        """Losses since start, for the round line."""
        drops = self.dispatcher.drops()
        return {
            "dropped": drops["output"],
            "unstored": drops.get("history", 0),
            "drops": drops,
            "given_up": dict(self.given_up),
            "sent": dict(self.sent),
        }

    def _components(self, notifiers: Notifiers, metrics: Metrics | None) -> list[Reconfigurable]:
        components: list[Reconfigurable] = [
            self.state,
            self.early,
            self.dispatcher,  # the alert policy
            self.recent,
            self.line_labels,
            self.scheduler,
            notifiers,
            *self._probers.values(),
        ]
        if metrics is not None:
            components.append(metrics)
        if self.cluster is not None:
            components.append(self.cluster)
        return components

    def stop(self) -> None:
        if not self.stopping:
            log.info("stopping: finishing probes in flight (up to %gs)", self.config.monitor.grace)
            self.systemd.stopping(status="stopping: finishing probes in flight")
            self._stopped_at = trio.current_time()
        self.stopping = True
        self.scheduler.stop()

    def _drain_deadline(self) -> float:
        """When writers and notifiers must have drained their queues: max(grace,
        MIN_DRAIN) after the stop (the rounds' grace is part of it), and FINAL_DRAIN
        after the rounds at least. A --once run has no stop: from its round's end."""
        now = trio.current_time()
        began = now if self._stopped_at is None else self._stopped_at
        return max(began + max(self.config.monitor.grace, MIN_DRAIN), now + FINAL_DRAIN)

    def abort(self) -> None:
        log.warning("stopping now")
        self.aborted = True
        self._hard.cancel()

    def status_line(self) -> str:
        return f"monitoring {len(self.config.targets)} targets"

    def watchdog_healthy(self) -> bool:
        """For serve_watchdog: rounds on schedule, loop not stalled (or stopping: systemd
        no longer enforces the watchdog then, and the scheduler has stopped on purpose)."""
        return self.stopping or (self.ready and self.view.health().ok)

    async def reload(self) -> bool:
        """Reopen the output file (log rotation), then load the config file again; a bad
        one keeps the running config. -> applied?"""
        self.out.reopen()  # logrotate's postrotate convention, whatever the config says
        async with self._reload_lock:
            self.systemd.reloading(status="reloading")
            applied = False
            try:
                applied = await self._reload()
                return applied
            finally:
                if not self.stopping:  # READY=1 ends the reload, whatever its outcome
                    self.systemd.ready(
                        status=self.status_line()
                        if applied
                        else f"{self.status_line()} (reload failed: config kept)"
                    )

    async def _reload(self) -> bool:
        if self._config_path is None:
            log.warning("reload: nothing to reload from")
            return False
        await self._serving.wait()  # a SIGHUP during start-up applies once all runs
        try:
            new = await trio.to_thread.run_sync(load_config, self._config_path)
        except ConfigError as exc:
            for line in exc.problems:
                log.error("reload failed, keeping the running config: %s", line)
            return False
        old = self.config
        removed = _removed(old, new)
        if _drastic(len(removed), len(old.targets)) and not new.monitor.allow_shrink:
            log.error(
                "reload failed, keeping the running config: %s: it would remove %d of %d"
                " targets; if that is meant, set [monitor] allow_shrink = true",
                self._config_path,
                len(removed),
                len(old.targets),
            )
            return False
        if removed:
            log.warning("reload removes %d targets: %s", len(removed), _names(removed))
        try:
            # Everything that can still fail is built before any component changes (the
            # probers' plans); applying then only swaps what was built: all or nothing.
            self.scheduler.stage(new, trio.current_time())
        except Exception as exc:
            log.error(
                "reload failed, keeping the running config: %s: %s: %s",
                self._config_path,
                type(exc).__name__,
                " ".join(str(exc).split()),  # one line, whatever the exception says
            )
            return False
        removals = self._removals(old, new)
        for component in self._reconfigurables:
            await component.reconfigure(old, new)
        for record in removals:
            self.dispatcher.publish(record)
        for what, before, after in (
            ("output", old.monitor.output, new.monitor.output),
            ("[server]", old.server, new.server),
            ("[storage]", (old.store_path, old.storage), (new.store_path, new.storage)),
        ):
            if before != after:
                log.warning("reload: a new %s takes effect on restart", what)
        self.config = new
        running = set(old.targets)
        log.info(
            "reloaded %s: %d targets, %d unchanged",
            self._config_path,
            len(new.targets),
            sum(t in running for t in new.targets),
        )
        return True

    async def _start_server(
        self, services: trio.Nursery, scope: trio.CancelScope, metrics: Metrics
    ) -> None:
        """The status page, API and metrics, until `scope` is cancelled (at shutdown)."""
        assert self.config.server is not None
        # Imported here: starlette and hypercorn cost start-up time a serverless run never needs.
        from .server import build_app, serve_http

        app = build_app(
            self.view, self.config.server, metrics, push=self.receive_push, silences=self.silences
        )
        server = self.config.server

        async def run(task_status: trio.TaskStatus[tuple[str, int]]) -> None:
            with scope:
                await serve_http(app, server, task_status=task_status)

        self.listening = await services.start(run)

    def _start_metrics(self) -> Metrics:
        from .server.metrics import Metrics  # prometheus_client: only when served

        browser = self._probers.get("browser")
        restarts = browser.restarts if isinstance(browser, BrowserProber) else None
        metrics = Metrics(self.early.scores, None if restarts is None else lambda: restarts)
        metrics.configure(self.config)
        metrics.set_concurrency(int(self.scheduler.limiter.total_tokens))
        self.dispatcher.add_observer(metrics.observe)
        return metrics

    async def _serve(self, outages: list[Incident], task_status: trio.TaskStatus[Monitor]) -> int:
        config = self.config
        served = config.server is not None and not self._once
        client = notifiers_client()  # the probers have their own transports
        baselines_done = trio.Event()
        async with client, trio.open_nursery() as services:
            await services.start(
                serve_jsonl, self.output.receive, self.out, self.stop, self.line_labels
            )
            notifiers = Notifiers(
                self.dispatcher,
                services,
                client,
                self.given_up,
                outbox=self.history is not None,
                sent=self.sent,
            )
            notifiers.configure(config)
            if self.history is not None:
                assert config.store_path is not None
                await self._restore_silences(config.store_path)
                self._resume(outages)
                await services.start(
                    serve_store,
                    self.history.outlet.receive,
                    config.store_path,
                    config.storage,
                    self.history.stats,
                )
                # after configure: undelivered alerts of the last run go to the notifiers
                await services.start(
                    serve_outbox, self.history.outbox.receive, config.store_path, notifiers
                )
                await self._warm_up(config.store_path)
                await services.start(serve_baselines, self.early, config.store_path, baselines_done)
            elif any(config.alerts.notifiers.values()):
                log.warning(
                    "alerts are not durable: history is disabled ([storage] enabled = false),"
                    " so alerts still queued when the monitor stops are lost"
                )
            # after _resume: the policy's first due time counts the outages it resumed
            await services.start(self.dispatcher.run_policy)
            if self.cluster is not None:  # its share known (or Redis away) before probing
                history = None
                if self.history is not None and config.store_path is not None:
                    history = (self.history.outlet, config.store_path)
                await services.start(self.cluster.run, client, history)
            metrics = self._start_metrics() if served else None
            self._reconfigurables = self._components(notifiers, metrics)
            self._serving.set()
            server_scope = trio.CancelScope()
            if metrics is not None:
                await self._start_server(services, server_scope, metrics)
            spread = "" if self._once else _spread_note(config.monitor.stagger)
            log.info("monitoring %d targets from %s%s", len(config.targets), config.path, spread)
            task_status.started(self)
            if not self._once:
                self.ready = True
                self.systemd.ready(status=self.status_line())
            try:
                summary = await self.scheduler.run(once=self._once)
            finally:
                # Closing is synchronous, so it also happens on a hard stop.
                server_scope.cancel()  # it shuts down gracefully, within its own bound
                self.dispatcher.close()
                baselines_done.set()  # their last save
                services.cancel_scope.deadline = self._drain_deadline()
        if self.cluster is not None and self.cluster.taken_over:
            return EXIT_TAKEN_OVER
        if self._once and (
            summary is None or summary.failed or summary.targets < len(config.targets)
        ):
            return EXIT_FAILED
        return EXIT_OK

    async def _warm_up(self, store_path: str) -> None:
        """Early warning's baselines from the last run (or from history's samples)."""
        names = [t.name for t in self.config.targets if t.early_warning]
        try:
            models = await trio.to_thread.run_sync(
                load_models, store_path, names, self.early.params
            )
        except (OSError, sqlite3.Error) as exc:
            log.warning(
                "early warning: cannot read baselines from %s (%s); learning anew", store_path, exc
            )
            return
        self.early.adopt(models)

    def _removals(self, old: Config, new: Config) -> list[TargetRemoved]:
        """One record per target the reload removes: its open incident ends now."""
        kept = {t.name for t in new.targets}
        wall_now = time.time()
        records = []
        for target in old.targets:
            if target.name not in kept:
                state = self.state.get(target.name)
                since = state.since if state is not None and state.state == DOWN else None
                labels = dict(target.labels) or None
                records.append(TargetRemoved(wall_now, target.name, target.url, since, labels))
        return records

    async def _restore_silences(self, path: str) -> None:
        """Silences added through the API before this start hold again."""
        try:
            silences = await trio.to_thread.run_sync(active_silences, path, time.time())
        except (OSError, sqlite3.Error, StoreError) as exc:
            log.warning("silences in %s cannot be read now (%s): none hold", path, exc)
            return
        self._holds.restore(silences)

    def _resume(self, outages: list[Incident]) -> None:
        """Outages still open in history go on: those targets start DOWN. Those of
        targets no longer configured end, at their last stored probe: nothing watched
        them after it (`removed`, through the history outlet). Storm groups that were
        open go on too, so their members' recovery sends one `group_up`."""
        names = {t.name for t in self.config.targets}
        now, wall_now = trio.current_time(), time.time()
        for incident in outages:
            if incident.target in names:
                self.state.restore_down(incident.target, incident.start, now, wall_now)
            else:
                end = incident.start if incident.last_seen is None else incident.last_seen
                self.dispatcher.publish(TargetRemoved(end, incident.target, since=incident.start))
        # held outages stay held, reminders go on from each page, owed pages
        # (dependencies) wait for their parents, open storm groups take their members back
        self.policy.resume([i for i in outages if i.target in names], now, wall_now)


async def _watch_signals(monitor: Monitor, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as reloads:
            task_status.started()
            async for signum in signals:
                if signum == signal.SIGHUP:
                    reloads.start_soon(monitor.reload)
                elif monitor.stopping:
                    monitor.abort()
                else:
                    monitor.stop()


def _spread_note(stagger: float | None) -> str:
    """How the first probes are spread, for the start-up log line."""
    if stagger is None:
        return " (probes spread over each target's interval)"
    if not stagger:
        return ""
    return f" (first probes spread over up to {stagger:g}s)"


def _open_output(config: Config) -> Output:
    if config.monitor.output == "-":
        return Output.stdout()
    path = Path(config.path).parent / config.monitor.output
    try:
        return Output.file(path)
    except OSError as exc:
        raise ConfigError(
            [f"{config.path}: monitor.output: cannot open {path}: {exc.strerror or exc}"]
        ) from None


def _callers_output(out: BinaryIO | Output) -> Output:
    return out if isinstance(out, Output) else Output(out, "output")


async def run_monitor(
    config: Config,
    *,
    once: bool = False,
    out: BinaryIO | Output | None = None,
    config_path: str | None = None,
    handle_signals: bool = True,
    probers: Mapping[str, Prober[Any]] | None = None,
    systemd: SystemdNotifier | None = None,
    task_status: trio.TaskStatus[Monitor] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Run until stopped (or one round with once). -> exit code: 0 ok, 1 failures (once), 130 aborted.

    `out` overrides the config's output: an `Output` or a binary stream, the caller's
    to close. With handle_signals, SIGINT/SIGTERM stop
    gracefully (a second one aborts) and SIGHUP reloads from config_path. `probers`
    replace the registered probers of their kinds (tests).
    """
    systemd = systemd if systemd is not None else SystemdNotifier({})  # {}: a no-op
    with contextlib.ExitStack() as stack:
        if config.store_path is not None:  # held until we exit: one monitor per history
            stack.enter_context(hold_history_lock(config.store_path))
        outages = await _open_history(config)
        output = (
            _callers_output(out)
            if out is not None
            else stack.enter_context(contextlib.closing(_open_output(config)))
        )
        async with open_probers(config, probers) as running:
            monitor = Monitor(config, config_path, systemd, running, output, once=once)
            with monitor._hard:
                async with trio.open_nursery() as watchers:
                    if handle_signals:
                        await watchers.start(_watch_signals, monitor)
                    if not once:
                        watchers.start_soon(serve_watchdog, systemd, monitor.watchdog_healthy)
                    code = await monitor._serve(outages, task_status)
                    watchers.cancel_scope.cancel()
    return EXIT_INTERRUPTED if monitor.aborted else code
