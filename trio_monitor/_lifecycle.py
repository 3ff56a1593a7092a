"""One run of the monitor: the task tree, signals, reload and graceful shutdown.

Task tree (outermost first); each level outlives the one inside it:

    hard-stop cancel scope          a second SIGINT/SIGTERM cancels everything
    └── watchers nursery            signal handling, reloads
        └── http client             opened outside the nurseries that use it
            └── services nursery    JSON-lines writer, one task per notifier
                └── scheduler       one nursery per round, one task per probe

Shutdown order: stop() cancels the scheduler's loop (no new probes) and gives
in-flight probes `grace` seconds; then every channel is closed, so the writer
and notifiers drain what is queued and end; then the client closes; then the
signal watcher is cancelled. Nothing is left running when run_monitor returns.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import httpx
import trio

from ._config import Config, load_config
from ._errors import ConfigError
from ._records import AlertEvent, ProbeResult, Record
from ._systemd import Notifier, serve_watchdog
from .alerts.base import Notifiers
from .engine.dispatch import Fanout, Outlet, serve_jsonl
from .engine.schedule import ProbeFn, Scheduler
from .engine.state import StateStore
from .probes.http.transport import OriginRouter, open_http_client, origin_key
from .server.view import MonitorView, RecentStats
from .store.db import HistoryReader, StoreStats, open_store, serve_store
from .store.records import Incident

if TYPE_CHECKING:
    from .server.metrics import Metrics

log = logging.getLogger("trio_monitor")

OUTPUT_QUEUE = 10_000  # lines buffered for a slow reader before lines are dropped (counted)
HISTORY_QUEUE = 10_000  # results waiting for the store's writer before some are dropped
MIN_DRAIN = 5.0  # seconds notifiers get at least to deliver queued alerts on shutdown

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def _kept_in_history(record: Record) -> bool:
    return isinstance(record, ProbeResult) or (
        isinstance(record, AlertEvent) and record.event in ("down", "up")
    )


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


class Monitor:
    """Handle on a running monitor: stop(), abort() and reload() are safe from any task."""

    def __init__(
        self, config: Config, config_path: str | None, notifier: Notifier | None = None
    ) -> None:
        self.config = config
        self.notifier = notifier if notifier is not None else Notifier({})  # {}: a no-op
        self._config_path = config_path
        self._hard = trio.CancelScope()
        self._reload_lock = trio.Lock()
        self.stopping = False
        self.aborted = False
        self._scheduler: Scheduler | None = None
        self._state: StateStore | None = None
        self._notifiers: Notifiers | None = None
        self._router: OriginRouter | None = None
        self.store_stats: StoreStats | None = None
        self.recent = RecentStats()
        # Prometheus metrics, kept only when a server can expose them (see _serve)
        self.metrics: Metrics | None = None
        self.listening: tuple[str, int] | None = None  # the HTTP server's address
        self.view = MonitorView(self, self.recent, time.time)

    def stop(self) -> None:
        if not self.stopping:
            log.info("stopping: finishing probes in flight (up to %gs)", self.config.monitor.grace)
            self.notifier.stopping(status="stopping: finishing probes in flight")
        self.stopping = True
        if self._scheduler is not None:
            self._scheduler.stop()

    def abort(self) -> None:
        log.warning("stopping now")
        self.aborted = True
        self._hard.cancel()

    def status_line(self) -> str:
        return f"monitoring {len(self.config.targets)} targets"

    def watchdog_healthy(self) -> bool:
        """For serve_watchdog: rounds on schedule, loop not stalled (or stopping: systemd
        no longer enforces the watchdog then, and the scheduler has stopped on purpose)."""
        return self.stopping or self.view.health().ok

    async def reload(self) -> bool:
        """Load the config file again; a bad one keeps the running config. -> applied?"""
        async with self._reload_lock:
            self.notifier.reloading(status="reloading")
            applied = False
            try:
                applied = await self._reload()
                return applied
            finally:
                if not self.stopping:  # READY=1 ends the reload, whatever its outcome
                    self.notifier.ready(
                        status=self.status_line()
                        if applied
                        else f"{self.status_line()} (reload failed: config kept)"
                    )

    async def _reload(self) -> bool:
        if self._config_path is None or self._scheduler is None:
            log.warning("reload: nothing to reload from")
            return False
        try:
            new = await trio.to_thread.run_sync(load_config, self._config_path)
        except ConfigError as exc:
            for line in exc.problems:
                log.error("reload failed, keeping the running config: %s", line)
            return False
        old = self.config
        old_targets = {t.name: t for t in old.targets}
        unchanged = [t.name for t in new.targets if old_targets.get(t.name) == t]
        self._state.retain(unchanged)
        self.recent.retain(set(unchanged))
        if self.metrics is not None:
            self.metrics.retain({t.name for t in new.targets})
        self._state.configure(new.alerts)
        self._scheduler.reconfigure(new)
        self._notifiers.configure(new.alerts)
        await self._router.retain(
            {origin_key(httpx.URL(t.url), t.verify_tls) for t in new.targets},
            new.monitor.per_host,
        )
        for what, before, after in (
            ("output", old.monitor.output, new.monitor.output),
            ("[server]", old.server, new.server),
            ("[storage]", (old.store_path, old.storage), (new.store_path, new.storage)),
        ):
            if before != after:
                log.warning("reload: a new %s takes effect on restart", what)
        self.config = new
        log.info(
            "reloaded %s: %d targets, %d unchanged",
            self._config_path,
            len(new.targets),
            len(unchanged),
        )
        return True

    async def _start_history(
        self, services: trio.Nursery, history: Outlet, config: Config, outages: list[Incident]
    ) -> None:
        """Resume the outages still open in history, then start the store's writer."""
        names = {t.name for t in config.targets}
        now, wall_now = trio.current_time(), time.time()
        for incident in outages:
            if incident.target in names:
                self._state.restore_down(incident.target, incident.start, now, wall_now)
        self.store_stats = StoreStats()
        await services.start(
            serve_store, history.receive, config.store_path, config.storage, self.store_stats
        )

    async def _start_server(
        self, services: trio.Nursery, scope: trio.CancelScope, config: Config
    ) -> None:
        """The status page, API and metrics, until `scope` is cancelled (at shutdown)."""
        # Imported here: starlette and hypercorn cost start-up time a serverless run never needs.
        from .server import build_app, serve_http

        app = build_app(self.view, config.server, self.metrics)

        async def run(task_status=trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await serve_http(app, config.server, task_status=task_status)

        self.listening = await services.start(run)

    async def _serve(
        self,
        out: BinaryIO,
        once: bool,
        probe_fn: ProbeFn | None,
        outages: list[Incident],
        task_status,
    ) -> int:
        config = self.config
        async with open_http_client(config.monitor.per_host) as (client, router):
            self._router = router
            async with trio.open_nursery() as services:
                fanout = Fanout()
                output = fanout.add("output", OUTPUT_QUEUE)
                await services.start(serve_jsonl, output.receive, out, self.stop)
                notifiers = self._notifiers = Notifiers(services, client)
                notifiers.configure(config.alerts)
                self._state = StateStore(config.alerts)
                history = None
                if config.store_path is not None:
                    history = fanout.add("history", HISTORY_QUEUE, _kept_in_history)
                    await self._start_history(services, history, config, outages)

                def counters() -> dict[str, int]:
                    lost = 0 if history is None else history.dropped + self.store_stats.unstored
                    return {"dropped": output.dropped, "unstored": lost}

                def emit(record: Record) -> None:
                    fanout.publish(record)
                    if self.metrics is not None:
                        self.metrics.observe(record)
                    if isinstance(record, ProbeResult):
                        self.recent.observe(record)
                    elif isinstance(record, AlertEvent):
                        notifiers.publish(record)

                scheduler = self._scheduler = Scheduler(
                    config,
                    router,
                    self._state,
                    emit,
                    probe_fn=probe_fn,
                    counters=counters,
                )
                if self.stopping:
                    scheduler.stop()
                if config.server is not None and not once:
                    from .server.metrics import Metrics  # prometheus_client: only when served

                    self.metrics = Metrics()
                    self.metrics.retain(t.name for t in config.targets)
                    self.metrics.set_concurrency(int(scheduler.limiter.total_tokens))
                server_scope = trio.CancelScope()
                if config.server is not None and not once:
                    await self._start_server(services, server_scope, config)
                spread = (
                    ""
                    if once or not config.monitor.stagger
                    else (f" (first probes spread over up to {config.monitor.stagger:g}s)")
                )
                log.info(
                    "monitoring %d targets from %s%s", len(config.targets), config.path, spread
                )
                task_status.started(self)
                if not once:
                    self.notifier.ready(status=self.status_line())
                try:
                    summary = await scheduler.run(once=once)
                finally:
                    # Closing is synchronous, so it also happens on a hard stop.
                    server_scope.cancel()  # it shuts down gracefully, within its own bound
                    fanout.close()
                    notifiers.close()
                    drain = max(self.config.monitor.grace, MIN_DRAIN)
                    services.cancel_scope.deadline = trio.current_time() + drain
        if once and (summary is None or summary.failed or summary.targets < len(config.targets)):
            return EXIT_FAILED
        return EXIT_OK


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


@contextlib.contextmanager
def _open_output(config: Config):
    if config.monitor.output == "-":
        yield sys.stdout.buffer
        return
    path = Path(config.path).parent / config.monitor.output
    try:
        file = path.open("ab")
    except OSError as exc:
        raise ConfigError(
            [f"{config.path}: monitor.output: cannot open {path}: {exc.strerror or exc}"]
        ) from None
    with file:
        yield file


async def run_monitor(
    config: Config,
    *,
    once: bool = False,
    out: BinaryIO | None = None,
    config_path: str | None = None,
    handle_signals: bool = True,
    probe_fn: ProbeFn | None = None,
    notifier: Notifier | None = None,
    task_status: trio.TaskStatus[Monitor] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Run until stopped (or one round with once). -> exit code: 0 ok, 1 failures (once), 130 aborted.

    `out` overrides the config's output. With handle_signals, SIGINT/SIGTERM stop
    gracefully (a second one aborts) and SIGHUP reloads from config_path.
    """
    monitor = Monitor(config, config_path, notifier)
    outages = await _open_history(config)
    with contextlib.ExitStack() as stack:
        stream = out if out is not None else stack.enter_context(_open_output(config))
        with monitor._hard:
            async with trio.open_nursery() as watchers:
                if handle_signals:
                    await watchers.start(_watch_signals, monitor)
                if not once:
                    watchers.start_soon(serve_watchdog, monitor.notifier, monitor.watchdog_healthy)
                code = await monitor._serve(stream, once, probe_fn, outages, task_status)
                watchers.cancel_scope.cancel()
    return EXIT_INTERRUPTED if monitor.aborted else code
