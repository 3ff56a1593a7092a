"""One palette and one availability scale for everything that colours uptime: the
status page, the SVG badges and the HTML report.

    ok      availability >= 99.9 %
    warn    availability >= 95 %
    bad     below 95 %
    nodata  no checks (grey)

The status page's script reads the same thresholds from the page it is served in, so
the browser never keeps a copy of its own.
"""

from __future__ import annotations

from typing import Literal

Level = Literal["ok", "warn", "bad", "nodata"]

OK_FROM = 99.9  # percent
WARN_FROM = 95.0

COLORS: dict[str, str] = {
    "ok": "#2da44e",
    "warn": "#d4a72c",
    "bad": "#cf222e",
    "nodata": "#d0d7de",
    "line": "#0969da",  # latency lines and sparklines
}

# A target's state on the same scale.
STATE_LEVEL: dict[str, Level] = {"UP": "ok", "DOWN": "bad", "UNKNOWN": "nodata"}


def level(availability_pct: float | None) -> Level:
    """Where an availability (percent, 0-100) falls on the scale; None: no checks."""
    if availability_pct is None or availability_pct != availability_pct:  # None or NaN
        return "nodata"
    if availability_pct >= OK_FROM:
        return "ok"
    return "warn" if availability_pct >= WARN_FROM else "bad"
