"""What a condition compares: the value types, and how a value reads as a number or
as text (the way Gatus reads them, so pasted conditions mean what they meant there)."""

from __future__ import annotations

import enum
import json
import re

# A fact that did not exist (no body, no connection, a JSON path that matched nothing):
# the condition fails with actual null.
MISSING = object()
ACTUAL_MAX = 200  # characters of a value kept in `actual` and in error_detail


class Type(enum.Enum):
    """What a placeholder's fact is (`ProbeKind.placeholders` maps names to these)."""

    NUMBER = "number"  # int or float: [STATUS]
    DURATION = "duration"  # milliseconds (float); the other side may say 500, 500ms, 48h
    TEXT = "text"  # str: [IP], [DNS_RCODE]
    BOOL = "bool"  # [CONNECTED]
    BODY = "body"  # bytes (or str): [BODY], and JSON paths into it, [BODY].a.b[0]
    FIELDS = "fields"  # Mapping[str, str | float], lower-case names: [HEADER].name, [PHASE].tls
    # Mapping[str, str]: by CSS selector, as written after the dot, the text of the
    # element it selects: [SELECTOR].h1, [SELECTOR]#status .label (no selector: missing)
    ELEMENTS = "elements"


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_DURATION_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
_DURATION_MS["d"] = 8.64e7


def parse_number(text: str) -> float | None:
    """'200', '-1.5', '1e3' -> a float; anything else (NaN, inf, '1_000') -> None."""
    text = text.strip()
    return float(text) if _NUMBER.fullmatch(text) else None


def parse_duration_ms(text: str) -> float | None:
    """'48h', '1h30m', '500ms', '1.5s' -> milliseconds (Go's units, and `d`); else None."""
    s = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(s):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _DURATION_MS[match.group(2)]
        pos = match.end()
    return total if pos and pos == len(s) else None


def number(value: object) -> float | None:
    """A value as a number: numbers, and text that is one ("10" in a header or JSON)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return parse_number(value)
    return None


def text(value: object) -> str:
    """A value as Gatus writes it: true/false, 200 (not 200.0), JSON minified."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(round(value, 3))
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def same(a: object, b: object) -> bool:
    """Equality as Gatus has it: as numbers when both are numbers, else as text."""
    na, nb = number(a), number(b)
    if na is not None and nb is not None:
        return na == nb
    return text(a) == text(b)


def format_ms(ms: float) -> str:
    """A duration for people: 612.3ms, 2.5s, 1187h4m (whole seconds past a minute)."""
    if abs(ms) < 1000:
        return f"{round(ms, 3):g}ms"
    if abs(ms) < 60_000:
        return f"{round(ms / 1000, 3):g}s"
    seconds = int(ms // 1000)
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes or seconds else ""]
    parts.append(f"{seconds}s" if seconds else "")
    return sign + "".join(parts)


def shown(value: object, duration: bool) -> str | None:
    """A value as the `actual` text (None when missing), cut at ACTUAL_MAX characters."""
    if value is MISSING:
        return None
    out = format_ms(value) if duration and isinstance(value, int | float) else text(value)
    return out if len(out) <= ACTUAL_MAX else out[:ACTUAL_MAX] + "…"
