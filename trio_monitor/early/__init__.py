"""Early warning: `degrading` alerts from baselines learned online (issue 16).

`EarlyWarning.observe` runs in the dispatch point right after `StateStore.observe`,
synchronously and in O(1) per probe: it folds the result into the target's baselines
(baselines.py) and detectors (detectors.py) and returns the `degrading` alerts, one per
episode of a signal. A target that is DOWN warns about nothing (its outage is the news)
and its episodes end, so the next degradation warns again.

The baselines outlive the process: `snapshot` copies them (cheaply, in the event loop)
and store.py writes them to the history file's `baselines` table in a worker thread,
periodically and at shutdown; `adopt` takes what store.py loaded at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import trio

from .._config import Config, EarlyWarningSection, Target
from .._records import AlertEvent, ProbeResult
from ..engine.state import DOWN, StateStore
from .detectors import TargetModel

__all__ = ["EarlyWarning"]

SNAPSHOT_CHUNK = 1000  # targets copied between two checkpoints of the event loop


class EarlyWarning:
    """Every target's models; the open warning of each."""

    def __init__(self, params: EarlyWarningSection, states: StateStore) -> None:
        self.params = params
        self._states = states
        self._models: dict[str, TargetModel] = {}
        self._open: dict[str, AlertEvent] = {}  # target -> its latest open warning

    @classmethod
    def for_config(cls, config: Config, states: StateStore) -> EarlyWarning:
        return cls(config.early_warning, states)

    def observe(self, target: Target, result: ProbeResult, now: float) -> list[AlertEvent]:
        """Fold a result (already through the StateStore) in. -> its `degrading` alerts."""
        if not target.early_warning:
            return []
        name = target.name
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = TargetModel()
        st = self._states.get(name)
        if st is not None and st.state == DOWN:
            model.reset()
            self._open.pop(name, None)
            return []
        found = model.observe(
            result, self.params, target.cert_alerts[0] if target.cert_alerts else 0.0
        )
        warning = self._open.get(name)
        if warning is not None and not model.alarmed(warning.signal or ""):
            del self._open[name]  # back to its baseline: the episode is over
        if not found:
            return []
        alerts = [
            AlertEvent(
                ts=result.ts,
                target=name,
                url=target.url,
                event="degrading",
                detail=f.detail,
                since=f.since,
                signal=f.signal,
                baseline=f.baseline,
                current=f.current,
                score=f.score,
            )
            for f in found
        ]
        self._open[name] = alerts[-1]
        return alerts

    def warning(self, name: str) -> AlertEvent | None:
        """The target's open warning (its latest), until its signal is back to normal."""
        return self._open.get(name)

    def scores(self) -> Iterator[tuple[str, str, float]]:
        """(target, signal, score) for every signal seen; score 1 is the threshold."""
        for name, model in list(self._models.items()):
            for signal, score in model.scores(self.params).items():
                yield name, signal, score

    def retain(self, names: Iterable[str]) -> None:
        keep = set(names)
        for name in [n for n in self._models if n not in keep]:
            del self._models[name]
            self._open.pop(name, None)

    async def reconfigure(self, old: Config, new: Config) -> None:
        """A target is its name: one still configured keeps its baselines; one whose
        early warning was turned off loses them (and its open warning)."""
        self.retain(t.name for t in new.targets if t.early_warning)
        self.params = new.early_warning

    async def snapshot(self) -> list[tuple[str, tuple[Any, ...]]]:
        """A copy of every target's baselines, taken in chunks between checkpoints."""
        out: list[tuple[str, tuple[Any, ...]]] = []
        names = list(self._models)
        for i in range(0, len(names), SNAPSHOT_CHUNK):
            for name in names[i : i + SNAPSHOT_CHUNK]:
                model = self._models.get(name)
                if model is not None:
                    out.append((name, model.state()))
            await trio.lowlevel.checkpoint()
        return out

    def adopt(self, models: Mapping[str, TargetModel]) -> None:
        """Baselines learned by an earlier run (store.load_models), before any probe."""
        self._models.update(models)
