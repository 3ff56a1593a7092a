"""`trio-monitor simulate`: replay a recording through a candidate config's alert code.

    sources.py   the recording: history's raw rows and outbox, or JSON lines (streamed)
    engine.py    Replay: the live monitor's Dispatcher, state machine, policy and routing
    render.py    the outcome as a JSON object (its one shape) and as text

`simulate(config, recording)` -> the JSON object (`render.to_json`'s shape).
"""

from __future__ import annotations

from typing import Any

from .._config import Config
from .engine import Replay
from .render import render_text, to_json
from .sources import HistoryRecording, JsonlRecording, Recording, Sent

__all__ = [
    "HistoryRecording",
    "JsonlRecording",
    "Recording",
    "Replay",
    "Sent",
    "render_text",
    "simulate",
    "to_json",
]


def simulate(config: Config, recording: Recording) -> dict[str, Any]:
    replay = Replay(config)
    for result in recording.probes(replay.targets):
        replay.feed(result)
    replay.finish()
    sent = recording.sent()
    replay.settle(s.alert for s in _paged(replay, sent))
    return to_json(replay, recording, sent)


def _paged(replay: Replay, sent: list[Sent]) -> list[Sent]:
    """What the recording sent to some notifier: history's outbox rows; JSON lines'
    deliverable alerts that one of the candidate's notifiers takes."""
    if sent and sent[0].notifier is None:
        return [s for s in sent if any(n.accepts(s.alert) for n in replay.notifiers)]
    return sent
