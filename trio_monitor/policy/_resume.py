"""What the stages rebuild from history at start-up (`Policy.resume`)."""

from __future__ import annotations

from typing import Any

from .._config import Target
from .._records import AlertEvent
from ..store.records import Incident


def resumed_down(target: Target, incident: Incident, **marks: Any) -> AlertEvent:
    """An outage's `down` resumed from an open incident, as far as history keeps it
    (when and why it began; `marks`: the policy's, e.g. `suppressed_by`)."""
    return AlertEvent(
        ts=incident.start,
        target=target.name,
        url=target.url,
        event="down",
        reason=incident.error,
        since=incident.start,
        labels=dict(target.labels) or None,
        **marks,
    )
