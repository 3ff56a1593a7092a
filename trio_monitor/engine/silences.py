"""`SilenceDesk`: what the API does with runtime silences and maintenance windows.

A silence added or expired is written to the history file first (a worker thread,
store/silences.py), then handed to the policy's maintenance stage (policy/_maintenance.py
`Holds`), and the dispatcher is told, so a hold that ends (an expired silence) releases
its `down` at once. A store error leaves everything as it was (the API says 503).
Without history, silences live in memory only, until the monitor stops.

A cluster node (`share`: cluster/node.py) neither stores nor applies them itself: it
puts them into the cluster's outbox, and every node's policy (its `holds`) takes them
from there, at the same point of the stream.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import attrs
import trio
from attrs import frozen

from .._config import Config, Maintenance
from ..policy import Holds, Silence, next_occurrence
from ..store.silences import save_silence

if TYPE_CHECKING:
    from .dispatch import Dispatcher

UPCOMING = 7 * 86400.0  # windows that start within this long are shown


@frozen
class WindowStatus:
    """A window holding now or starting within UPCOMING, and the targets it matches."""

    name: str
    start: float
    end: float
    active: bool
    targets: tuple[str, ...]


class SilenceDesk:
    def __init__(
        self,
        holds: Holds,
        dispatcher: Dispatcher,
        config: Callable[[], Config],
        wall: Callable[[], float] = time.time,
        share: Callable[[Silence], Awaitable[None]] | None = None,
    ) -> None:
        self._holds, self._dispatcher, self._config, self._wall = holds, dispatcher, config, wall
        self._share = share

    def target_names(self) -> set[str]:
        return {t.name for t in self._config().targets}

    def silences(self) -> list[Silence]:
        return self._holds.silences(self._wall())

    async def add(
        self,
        *,
        until: float,
        match: Mapping[str, str] | None,
        targets: tuple[str, ...],
        comment: str,
        author: str,
    ) -> Silence:
        silence = Silence(
            id=secrets.token_hex(6),
            start=self._wall(),
            until=until,
            match=None if match is None else dict(match),
            targets=targets,
            comment=comment,
            author=author,
        )
        if self._share is not None:
            await self._share(silence)
            return silence
        await self._save(silence)
        self._holds.silence(silence)
        self._dispatcher.reschedule()
        return silence

    async def expire(self, silence_id: str) -> Silence | None:
        """-> the silence as it ended; None: no such silence, or it is over."""
        current = {s.id: s for s in self.silences()}.get(silence_id)
        if current is None:
            return None
        now = self._wall()
        ended = attrs.evolve(current, until=max(now, current.start))
        if self._share is not None:
            await self._share(ended)
            return ended
        await self._save(ended)
        self._holds.expire(silence_id, now)
        self._dispatcher.reschedule()
        return ended

    async def _save(self, silence: Silence) -> None:
        path = self._config().store_path
        if path is not None:
            await trio.to_thread.run_sync(save_silence, path, silence)

    def held_by(self, name: str) -> str | None:
        """What holds this target's alerts now ("maintenance:NAME", "silence:ID")."""
        labels = next((t.labels for t in self._config().targets if t.name == name), None)
        return self._holds.held_by(name, labels, self._wall())

    def windows(self) -> list[WindowStatus]:
        """Windows holding now or starting within UPCOMING, soonest first."""
        now = self._wall()
        shown = []
        for window in self._holds.windows():
            span = next_occurrence(window, now)
            if span is not None and span[0] < now + UPCOMING:
                shown.append(
                    WindowStatus(window.name, *span, span[0] <= now, self._matched(window))
                )
        return sorted(shown, key=lambda w: w.start)

    def _matched(self, window: Maintenance) -> tuple[str, ...]:
        return tuple(t.name for t in self._config().targets if window.matches(t.name, t.labels))
