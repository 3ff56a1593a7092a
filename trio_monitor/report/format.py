"""How every renderer writes numbers and durations, so text and HTML agree."""

from __future__ import annotations

from .._config import human_duration as duration_for_people
from ..store.records import PhaseStats


def human_duration(seconds: float | None) -> str:
    """12 -> '12s', 130 -> '2m10s', 7260 -> '2h01m', 93600 -> '1d02h'; None -> '-'."""
    return "-" if seconds is None else duration_for_people(seconds)


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    if value < 10000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def fmt_phase(stats: PhaseStats | None) -> str:
    """A phase's "p50/p95" in ms; "-" when it did not happen."""
    if stats is None:
        return "-"
    return f"{_short_ms(stats.p50)}/{_short_ms(stats.p95)}"


def _short_ms(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def fmt_pct(value: float | None, digits: int = 2) -> str:
    """Never rounds a not-quite-perfect availability up to 100."""
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    if value < 100 and float(text) >= 100:
        text = f"{100 - 10**-digits:.{digits}f}"
    return text


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
