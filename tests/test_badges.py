"""The SVG badges (trio_monitor/server/badges.py): well-formed XML, escaped text, and
the palette's colours and thresholds (trio_monitor/_palette.py), the same scale as the
status page's bars.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from trio_monitor._palette import COLORS, OK_FROM, WARN_FROM
from trio_monitor.server.badges import (
    BADGE_MAX_CHARS,
    NODATA_FILL,
    badge_svg,
    status_badge,
    uptime_badge,
)

SVG = "{http://www.w3.org/2000/svg}"
# the message part's fill for each level of the palette
FILL = {"ok": COLORS["ok"], "warn": COLORS["warn"], "bad": COLORS["bad"], "nodata": NODATA_FILL}


def test_the_thresholds_are_the_palettes():
    # the parametrized cases below are written for these: a changed scale shows here first
    assert (OK_FROM, WARN_FROM) == (99.9, 95.0)


def _parse_badge(svg: str) -> tuple[ET.Element, list[str], list[str]]:
    """-> (root, the visible texts, the rect fills)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    texts = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("aria-hidden") is None]
    fills = [r.get("fill") or "" for r in root.iter(f"{SVG}rect")]
    return root, texts, fills


def test_badge_svg_is_valid_svg_with_two_parts():
    svg = badge_svg("build", "passing", "ok")
    root, texts, _fills = _parse_badge(svg)
    assert texts == ["build", "passing"]
    assert root.get("height") == "20"
    assert root.get("aria-label") == "build: passing"
    assert root.find(f"{SVG}title").text == "build: passing"
    # clip rect, label part, message part, gloss
    width = int(root.get("width"))
    g = root.find(f"{SVG}g")
    label_rect, message_rect, _ = g.findall(f"{SVG}rect")
    assert label_rect.get("fill") == "#555"
    assert message_rect.get("fill") == COLORS["ok"]
    assert int(label_rect.get("width")) + int(message_rect.get("width")) == width
    assert int(message_rect.get("x")) == int(label_rect.get("width"))
    assert svg.count("<text") == 4  # each text with its shadow


def test_badge_width_grows_with_the_text():
    short = int(ET.fromstring(badge_svg("a", "b", "bad")).get("width"))
    longer = int(ET.fromstring(badge_svg("a much longer label", "b", "bad")).get("width"))
    wide = int(ET.fromstring(badge_svg("a", "MMMMMMMMMM", "bad")).get("width"))
    narrow = int(ET.fromstring(badge_svg("a", "iiiiiiiiii", "bad")).get("width"))
    assert short < longer
    assert narrow < wide
    # each text is squeezed into its part: textLength is the part width minus padding
    root = ET.fromstring(badge_svg("uptime", "99.95%", "ok"))
    rects = root.find(f"{SVG}g").findall(f"{SVG}rect")
    lengths = [int(t.get("textLength")) for t in root.iter(f"{SVG}text")]
    assert lengths == [int(rects[0].get("width")) - 10] * 2 + [int(rects[1].get("width")) - 10] * 2


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        '"/><svg onload=alert(1)>',
        "a & b ' \" < >",
        "]]><!-- --><!DOCTYPE x [<!ENTITY e 'x'>]>&e;",
        "ctrl\x00\x01\x08\x0b\x1b\x7f chars \ud800 and \ufffe",
        "tab\tand\nnew\r\nlines",
    ],
)
def test_badge_escapes_hostile_text(hostile):
    svg = badge_svg(hostile, hostile, "bad")
    root, texts, _ = _parse_badge(svg)  # well-formed XML whatever the text
    svg.encode("utf-8")  # no lone surrogates left
    for bad in ("<script", "<svg onload", "<!--", "<!DOCTYPE", "<!ENTITY"):
        assert bad not in svg.split(">", 1)[1]  # nothing but our own markup
    assert all(ord(ch) >= 0x20 for ch in svg)  # no control characters, even escaped
    expected = " ".join(hostile.split())
    expected = re.sub(
        "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]", "\ufffd", expected
    )
    assert texts == [expected, expected]
    assert root.get("aria-label") == f"{expected}: {expected}"
    plain = ET.fromstring(badge_svg("a", "b", "bad"))
    # the same elements as any badge: nothing injected
    assert [e.tag for e in root.iter()] == [e.tag for e in plain.iter()]


def test_badge_cuts_long_text():
    _, texts, _ = _parse_badge(badge_svg("x" * 500, "y" * 500, "nodata"))
    assert texts == ["x" * (BADGE_MAX_CHARS - 1) + "\u2026", "y" * (BADGE_MAX_CHARS - 1) + "\u2026"]


def test_badge_ids_differ_between_badges():
    ids = set()
    for svg in (status_badge("up"), status_badge("down"), uptime_badge(99.0)):
        root = ET.fromstring(svg)
        ids |= {e.get("id") for e in root.iter() if e.get("id")}
    assert len(ids) == 6


@pytest.mark.parametrize(
    ("color", "fill"),
    [
        ("ok", "#2da44e"),
        ("warn", "#d4a72c"),
        ("Warn", "#d4a72c"),
        ("bad", "#cf222e"),
        ("nodata", NODATA_FILL),  # darker than the palette's, for white text
        ("#ABCDEF", "#abcdef"),
        ("#0f0", "#0f0"),
    ],
)
def test_badge_colours(color, fill):
    _, _, fills = _parse_badge(badge_svg("l", "m", color))
    assert fills[2] == fill


@pytest.mark.parametrize(
    "color",
    ["", "green", "purple-ish", "#12345", "#ggg", 'ok" onload="x', "url(#x)", "#1234567", "line"],
)
def test_badge_refuses_unknown_colours(color):
    with pytest.raises(ValueError, match="badge colour"):
        badge_svg("l", "m", color)


@pytest.mark.parametrize(
    ("state", "message", "color"),
    [
        ("up", "up", "ok"),
        ("UP", "up", "ok"),
        ("down", "down", "bad"),
        ("DOWN", "down", "bad"),
        ("unknown", "unknown", "nodata"),
        ("UNKNOWN", "unknown", "nodata"),
        ("<b>weird</b>", "unknown", "nodata"),
    ],
)
def test_status_badge(state, message, color):
    _, texts, fills = _parse_badge(status_badge(state))
    assert texts == ["status", message]
    assert fills[2] == FILL[color]
    _, texts, _ = _parse_badge(status_badge(state, label="api <prod>"))
    assert texts == ["api <prod>", message]


@pytest.mark.parametrize(
    ("pct", "message", "color"),
    [
        (100.0, "100%", "ok"),
        (100, "100%", "ok"),
        (99.999, "99.99%", "ok"),  # cut, never rounded up to 100%
        (99.95, "99.95%", "ok"),
        (99.9, "99.9%", "ok"),  # OK_FROM
        (99.89, "99.89%", "warn"),
        (99.0, "99%", "warn"),
        (98.999, "98.99%", "warn"),
        (95.0, "95%", "warn"),  # WARN_FROM
        (94.99, "94.99%", "bad"),
        (91.25, "91.25%", "bad"),
        (12.3456, "12.34%", "bad"),
        (0.0, "0%", "bad"),
        (-3.0, "0%", "bad"),
        (250.0, "100%", "ok"),
        (None, "n/a", "nodata"),
        (float("nan"), "n/a", "nodata"),
        (float("inf"), "n/a", "nodata"),
    ],
)
def test_uptime_badge(pct, message, color):
    _, texts, fills = _parse_badge(uptime_badge(pct))
    assert texts == ["uptime", message]
    assert fills[2] == FILL[color]
