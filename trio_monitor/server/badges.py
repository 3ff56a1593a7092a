"""The SVG badges (`GET /api/v1/badges/{name}/status.svg` and `uptime.svg`): flat
shields.io-style SVGs, to serve as `image/svg+xml; charset=utf-8`.

Their colours and the availability thresholds are the palette's
(trio_monitor/_palette.py), the same scale as the status page's uptime bars and the
HTML report. One exception, for legibility: the palette's "nodata" grey is a light
fill meant for bars, and white badge text on it is unreadable, so "unknown" and "n/a"
badges use the darker NODATA_FILL.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from decimal import ROUND_DOWN, Decimal
from typing import get_args
from xml.sax.saxutils import escape as _xml_escape

from .. import _palette

__all__ = ["BADGE_MAX_CHARS", "NODATA_FILL", "badge_svg", "status_badge", "uptime_badge"]

NODATA_FILL = "#6e7781"  # white text on it: contrast about 4.5:1
_LABEL_FILL = "#555"  # the label's half: neutral, whatever the message says
_LEVELS: tuple[str, ...] = get_args(_palette.Level)

_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# characters XML 1.0 does not allow, and lone surrogates (not encodable as UTF-8)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
BADGE_MAX_CHARS = 48
_NARROW = set("fijlrtI!|.,:;'`()[]{} ")
_WIDE = set("mwMW%@")


def _badge_text(text: str) -> str:
    text = _NOT_XML.sub("\ufffd", " ".join(str(text).split()))
    if len(text) > BADGE_MAX_CHARS:
        text = text[: BADGE_MAX_CHARS - 1] + "\u2026"
    return text


def _text_width(text: str) -> int:
    """Estimated width in px of `text` in 11 px Verdana, from its characters."""
    w = 0.0
    for ch in text:
        if unicodedata.east_asian_width(ch) in "WF":
            w += 11
        elif ch in _NARROW:
            w += 4
        elif ch in _WIDE:
            w += 10
        elif ch.isupper() or ch.isdigit():
            w += 7.5
        else:
            w += 6.5
    return max(1, round(w))


def _badge_color(color: str) -> str:
    key = color.strip().lower()
    if key in _LEVELS:
        return NODATA_FILL if key == "nodata" else _palette.COLORS[key]
    if _HEX.fullmatch(key):
        return key
    raise ValueError(
        f"unknown badge colour {color!r}: use #rgb, #rrggbb or a level: {', '.join(_LEVELS)}"
    )


def badge_svg(label: str, message: str, color: str) -> str:
    """A flat shields.io-style badge: `label` on grey, `message` on `color`.

    `color` is a level of the palette ("ok", "warn", "bad", "nodata") or a
    `#rgb`/`#rrggbb` hex colour; anything else is a ValueError. Text is XML-escaped,
    control characters become U+FFFD, and each part is cut to BADGE_MAX_CHARS.
    """
    fill = _badge_color(color)
    label, message = _badge_text(label), _badge_text(message)
    lw, mw = _text_width(label) + 10, _text_width(message) + 10
    width = lw + mw
    # ids unique per badge, so several badges can be inlined into one page
    uid = hashlib.sha1(f"{label}\0{message}\0{fill}".encode()).hexdigest()[:8]
    title = _xml_escape(f"{label}: {message}", {'"': "&quot;"})
    lt, mt = _xml_escape(label), _xml_escape(message)

    def text(x: float, tw: int, body: str) -> str:  # with its shadow, as shields.io
        common = f'x="{x:g}" textLength="{tw}" lengthAdjust="spacingAndGlyphs"'
        return (
            f'<text {common} y="15" fill="#010101" fill-opacity=".3" aria-hidden="true">'
            f'{body}</text><text {common} y="14">{body}</text>'
        )

    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" '
        f'viewBox="0 0 {width} 20" role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        f'<linearGradient id="s{uid}" x2="0" y2="100%">'
        '<stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r{uid}"><rect width="{width}" height="20" rx="3" fill="#fff"/>'
        "</clipPath>"
        f'<g clip-path="url(#r{uid})">'
        f'<rect width="{lw}" height="20" fill="{_LABEL_FILL}"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{fill}"/>'
        f'<rect width="{width}" height="20" fill="url(#s{uid})"/></g>'
        '<g fill="#fff" text-anchor="middle" '
        'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f"{text(lw / 2, lw - 10, lt)}{text(lw + mw / 2, mw - 10, mt)}</g></svg>"
    )


def status_badge(state: str, *, label: str = "status") -> str:
    """ "up" (ok), "down" (bad); anything else "unknown" (no data). Case-insensitive."""
    key = state.strip().upper()
    if key not in _palette.STATE_LEVEL:
        key = "UNKNOWN"
    return badge_svg(label, key.lower(), _palette.STATE_LEVEL[key])


def uptime_badge(pct: float | None, *, label: str = "uptime") -> str:
    """E.g. "99.95%", coloured by the palette's level; "n/a" for None (no checks) or a
    non-finite number. The figure is cut, never rounded up, to two decimals: 99.999
    shows "99.99%", never "100%"."""
    if pct is None or not math.isfinite(pct):
        return badge_svg(label, "n/a", "nodata")
    pct = min(100.0, max(0.0, float(pct)))
    text = Decimal(repr(pct)).quantize(Decimal("0.01"), rounding=ROUND_DOWN).normalize()
    return badge_svg(label, f"{text:f}%", _palette.level(pct))
