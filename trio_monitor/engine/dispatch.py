"""The one dispatch point: every record the engine makes reaches its consumers here.

    probe result ──▶ StateStore.observe ──▶ the result, then its alerts, in order
                     (then early warning's)
                                                 │
        observers: inline, synchronous, O(1)  ◀──┤  (recent stats, metrics)
        outlets: a bounded channel and a task  ◀─┘  (JSON lines, history,
                 each, fed without waiting            one per notifier)

`publish` never waits: when an outlet's channel is full the record is dropped for that
consumer alone and counted, the same way for every consumer; `drops()` reports the
counts (they reach the round lines and the metrics), so a stuck pipe, a slow disk or
a slow webhook never slows probing.

A downstream outlet (`add_downstream`) is fed by another consumer rather than by
`publish` (the notifiers' queues, fed by the alert outbox once it has committed an
alert): the dispatcher only counts its drops; its feeder closes it.

A probe's alerts go through the alert policy (policy/) before they are published;
`run_policy` publishes what the policy makes at its own due times (reminders, the end
of a maintenance window or of a group's window). Probes without alerts skip it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import trio

from .._config import Config, Target
from .._linger import close_channel
from .._records import AlertEvent, ProbeResult, Record
from ..policy import Policy
from .state import StateStore

log = logging.getLogger("trio_monitor")


def _everything(_: Record) -> bool:
    return True


def _nothing(_: Record) -> bool:
    return False


class Outlet:
    """A consumer's bounded channel: it reads `receive`; `dropped` counts its losses."""

    def __init__(
        self,
        name: str,
        capacity: int,
        accepts: Callable[[Record], bool],
        lost: Callable[[], int] = int,
    ) -> None:
        self.name = name
        self.accepts = accepts
        self.send, self.receive = trio.open_memory_channel[Record](capacity)
        self.dropped = 0
        self._lost = lost  # what the consumer itself lost after taking it (e.g. a full disk)

    @property
    def lost(self) -> int:
        """Records this consumer did not handle: dropped here, or lost by it later."""
        return self.dropped + self._lost()

    def offer(self, record: Record) -> None:
        try:
            self.send.send_nowait(record)
        except trio.WouldBlock:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "%s is not keeping up: %d records dropped so far", self.name, self.dropped
                )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # that consumer has finished (its output was closed) or we are closing

    def close(self) -> None:
        """No more records: the consumer drains what it has (at once), then ends."""
        close_channel(self.send, self.receive)


class Warnings(Protocol):
    """Early warning (trio_monitor/early/): `degrading` alerts after the state's."""

    def observe(self, target: Target, result: ProbeResult, now: float) -> list[AlertEvent]: ...


class Dispatcher:
    def __init__(
        self, state: StateStore, policy: Policy | None = None, early: Warnings | None = None
    ) -> None:
        self._state = state
        self._policy = policy
        self._early = early
        self._ticker: trio.CancelScope | None = None  # run_policy's wait for a due time
        self._closed = False
        self._outlets: list[Outlet] = []
        self._downstream: list[Outlet] = []  # fed (and closed) by another consumer
        self._observers: list[Callable[[Record], None]] = []

    def add_outlet(
        self,
        name: str,
        capacity: int,
        accepts: Callable[[Record], bool] = _everything,
        lost: Callable[[], int] = int,
    ) -> Outlet:
        outlet = Outlet(name, capacity, accepts, lost)
        self._outlets.append(outlet)
        return outlet

    def add_downstream(self, name: str, capacity: int) -> Outlet:
        """An outlet another consumer feeds (`offer`) and closes: `publish` and `close`
        leave it alone; its drops are counted with everyone's."""
        outlet = Outlet(name, capacity, _nothing)
        self._downstream.append(outlet)
        return outlet

    def remove_outlet(self, outlet: Outlet) -> None:
        """No more records for it: its consumer drains what it has, then ends."""
        if outlet in self._downstream:
            self._downstream.remove(outlet)
        else:
            self._outlets.remove(outlet)
        outlet.close()

    def add_observer(self, observe: Callable[[Record], None]) -> None:
        """Called inline with every record: must be synchronous and cheap."""
        self._observers.append(observe)

    def probed(
        self, target: Target, result: ProbeResult, now: float, *, current: bool
    ) -> str | None:
        """A probe's result: through the target's state (unless a reload replaced or
        removed the target while it ran: `current` False), then out with its alerts.
        -> how the target's next probes are paced (StateStore.pace; None if not current)."""
        alerts: list[AlertEvent] = []
        if current:
            result, alerts = self._state.observe(target, result, now)
            if self._early is not None:
                alerts += self._early.observe(target, result, now)
            if alerts and self._policy is not None:
                alerts = self._policy.process(alerts, now)
                self.reschedule()
        self.publish(result)
        for alert in alerts:
            self.publish(alert)
        return self._state.pace(target.name) if current else None

    def publish(self, record: Record) -> None:
        for observe in self._observers:
            observe(record)
        for outlet in self._outlets:
            if outlet.accepts(record):
                outlet.offer(record)

    def reschedule(self) -> None:
        """The policy's next due time may have changed (a silence added or expired)."""
        if self._ticker is not None and self._policy is not None:
            self._ticker.deadline = self._policy.next_tick()

    async def run_policy(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Publish what the policy makes at its due times, until `close`."""
        task_status.started()
        policy = self._policy
        while policy is not None and not self._closed:
            with trio.CancelScope(deadline=policy.next_tick()) as self._ticker:
                await trio.sleep_forever()
            if not self._closed:
                for alert in policy.tick(trio.current_time(), time.time()):
                    self.publish(alert)

    async def reconfigure(self, old: Config, new: Config) -> None:
        if self._policy is not None:
            await self._policy.reconfigure(old, new)
            self.reschedule()

    def drops(self) -> dict[str, int]:
        """Per consumer: records it did not handle since start."""
        return {outlet.name: outlet.lost for outlet in (*self._outlets, *self._downstream)}

    def close(self) -> None:
        """No more records: what the policy still holds back for a moment (a group's
        window) goes out, then each consumer drains what it has and ends (downstream
        outlets end when their feeder closes them). Synchronous, so it also happens on
        a hard stop."""
        if self._policy is not None and not self._closed:
            for alert in self._policy.flush(trio.current_time(), time.time()):
                self.publish(alert)
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
        for outlet in self._outlets:
            outlet.close()
