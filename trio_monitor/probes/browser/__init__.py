"""The `browser` probe kind: http(s) pages loaded in headless Chromium (`kind = "browser"`).

config.py    its target keys (wait_for, contains, allow_console_errors,
             max_failed_requests), their BrowserSpec, the Chromium check at load
cdp.py       the Chrome DevTools Protocol over trio-websocket: commands, events,
             flattened page sessions (PageSession: what a probe or a step drives)
chromium.py  one Chromium process: start, DevTools connection, watchdogs, kill
probe.py     plan; one probe: a fresh browser context, navigate, wait, steps, checks
steps.py     the `steps` key: parsed and checked at load, run through a PageSession
css.py       CSS selectors (wait_for's, the steps') checked at load with soupsieve
artifacts.py a failed probe's screenshot and console log, kept in the state directory

The prober owns one Chromium, started by the first probe that needs it, restarted after
any trouble, killed (its whole process group) when the prober closes. Every probe gets
a browser context of its own, so no cookie or storage is shared between probes.
`[monitor] browser_concurrency` pages load at once (a limiter taken before the probe's
deadline starts).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from ..._config import Config, MonitorSection, Target
from ..._records import ProbeResult
from ..base import ProbeKind, register
from .artifacts import ArtifactStore, state_dir
from .config import (
    PLACEHOLDERS,
    BrowserSpec,
    BrowserTargetSection,
    browser_resolver,
    chromium_path,
    selector_key_problem,
)

if TYPE_CHECKING:  # trio-websocket is loaded by a config with browser targets only
    from .chromium import Chromium
    from .probe import BrowserPlan

log = logging.getLogger("trio_monitor")
# chromium.py's causes (CRASH, HANG, MEMORY, RELOAD): that module loads trio-websocket
RESTART_REASONS = ("crash", "hang", "memory", "reload")

__all__ = ["KIND", "PLACEHOLDERS", "BrowserPlan", "BrowserProber", "BrowserSpec"]


class BrowserProber:
    """Loads browser targets' pages during one run, in one Chromium it starts on first use."""

    def __init__(self, config: Config, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._monitor = config.monitor
        self._warned_no_chrt = False
        self.limiter = trio.CapacityLimiter(config.monitor.browser_concurrency)
        self._chromium: Chromium | None = None
        self._starting = trio.Lock()
        self.artifacts = ArtifactStore(state_dir(config), config.monitor.browser_artifacts_keep)
        # Chromiums killed (then started again for the next probe), by cause: every
        # cause from the start, at 0 (chromium.CRASH, ...)
        self.restarts = dict.fromkeys(RESTART_REASONS, 0)

    def prepare(self, target: Target) -> BrowserPlan:
        from .probe import prepare

        return prepare(target)

    async def probe(
        self, plan: BrowserPlan, round_no: int, deadlines: set[trio.CancelScope]
    ) -> ProbeResult:
        from .probe import probe

        return await probe(self, plan, round_no, deadlines)

    async def chromium(self) -> Chromium:
        """The running Chromium; a new one when there is none or it failed.
        BrowserTrouble when it cannot be started."""
        from .cdp import BrowserTrouble
        from .chromium import Chromium

        async with self._starting:
            current = self._chromium
            if current is not None and current.trouble is not None:
                await current.ended.wait()  # never two at once: the old one is gone first
            if current is None or current.trouble is not None:
                executable = chromium_path(self._monitor)
                if executable is None:
                    raise BrowserTrouble("Chromium is not installed (apt-get install chromium)")
                current = Chromium(
                    executable,
                    self._monitor.browser_memory,
                    self.restarts,
                    idle=self._idle(),
                )
                try:
                    await self._nursery.start(current.run)
                except trio.TooSlowError:
                    raise BrowserTrouble("Chromium did not start within 30s") from None
                except Exception as exc:  # cannot run it, or it died starting: data
                    raise BrowserTrouble(f"Chromium did not start: {exc}") from None
                self._chromium = current
            return current

    def _idle(self) -> bool:
        """Chromium is to run under SCHED_IDLE (browser_cpu = "idle"); without chrt one
        warning says it cannot."""
        from .chromium import IDLE

        idle = _yields(self._monitor)
        if idle and not IDLE and not self._warned_no_chrt:
            self._warned_no_chrt = True
            log.warning(
                "browser: no chrt on PATH (util-linux): Chromium runs at the normal"
                " scheduling policy, and may delay the monitor's probes"
            )
        return idle

    @property
    def running(self) -> Chromium | None:
        """The Chromium in use, if one was started and is healthy."""
        current = self._chromium
        return current if current is not None and current.trouble is None else None

    async def reconfigure(self, old: Config, new: Config) -> None:
        """New limits apply now; a new executable, memory cap or browser_cpu with the
        next Chromium (the running one is stopped, its probes report why)."""
        self.limiter.total_tokens = new.monitor.browser_concurrency
        self.artifacts.root = state_dir(new)
        self.artifacts.keep = new.monitor.browser_artifacts_keep
        before, after = old.monitor, new.monitor
        self._monitor = after
        changed = (before.chromium, before.browser_memory, _yields(before)) != (
            after.chromium,
            after.browser_memory,
            _yields(after),
        )
        uses = any(t.kind == KIND.name for t in new.targets)
        if self._chromium is not None and (changed or not uses):
            # kept: the next probe waits for it to be gone before starting another
            self._chromium.fail("Chromium was restarted by a config reload", "reload")


def _yields(monitor: MonitorSection) -> bool:
    """Chromium yields the CPU to the monitor (SCHED_IDLE): set when it starts."""
    return monitor.browser_cpu == "idle"


@asynccontextmanager
async def open_browser_prober(config: Config) -> AsyncIterator[BrowserProber]:
    async with trio.open_nursery() as nursery:
        prober = BrowserProber(config, nursery)
        try:
            yield prober
        finally:
            nursery.cancel_scope.cancel()  # every Chromium is killed as its task ends


def _describe(result: ProbeResult) -> str:
    return f"page loaded in {result.latency_ms:g} ms"


KIND = ProbeKind(
    name="browser",
    schemes=frozenset(),
    shared_schemes=frozenset({"http", "https"}),
    section=BrowserTargetSection,
    resolver=browser_resolver,
    open=open_browser_prober,
    describe=_describe,
    placeholders=PLACEHOLDERS,
    key_problem=selector_key_problem,
)
register(KIND)
