"""The status page (trio_monitor/server/page.py and static/).

The page: self-contained (no URL to another origin anywhere), its CSP hashes match, the
palette's scale is in it (and nowhere in its files), and - in real headless Chromium
(Debian's /usr/bin/chromium driven by Debian's /usr/bin/chromedriver through selenium;
nothing is downloaded) - it renders a fake API served on 127.0.0.1: states, texts, the
hostile name as text, uptime-bar colours checked on screenshot pixels, no horizontal
scrolling at 375 px, the token and error banners, and bounded (lazy) history requests.
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from chromium import WAIT_S
from chromium import set_viewport as _viewport
from pngs import read_png

from trio_monitor._palette import COLORS, OK_FROM, WARN_FROM, level
from trio_monitor.server.page import status_page_csp, status_page_html

HOSTILE = "<img src=x onerror=alert(1)>"

# --- the page as text ----------------------------------------------------------------


def _script_and_style(page: str) -> tuple[str, str]:
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.S)
    (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
    return script, style


def test_page_has_no_external_urls():
    page = status_page_html()
    assert page.startswith("<!DOCTYPE html>")
    # every URL-valued attribute: only data: URLs (the empty favicon)
    attrs = re.findall(
        r"\b(src|href|action|formaction|poster|srcset|xlink:href|background)\s*=\s*"
        r"(\"[^\"]*\"|'[^']*'|[^\s>]+)",
        page,
        re.I,
    )
    assert attrs == [("href", '"data:,"')]
    # no absolute or protocol-relative URLs anywhere, but the SVG namespace name
    assert re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"'`)]*", page, re.I) == [
        "http://www.w3.org/2000/svg"
    ]
    assert not re.search(r"""["'(=]\s*//[^/\s]""", page)  # "//host/..."
    assert "@import" not in page
    assert not re.search(r"url\(\s*(?!#)", page)  # no CSS url() but fragment refs
    assert "<link" not in page.replace('<link rel="icon" href="data:,">', "")
    assert page.count("<script") == 1  # the inline one, no src
    script, _ = _script_and_style(page)
    # the only requests: same-origin fetches of the API, relative to the page
    assert script.count("fetch(") == 1
    assert "fetch(new URL(path, location.href)" in script
    paths = re.findall(r"\bapi\(\s*\"([^\"]*)\"", script)
    assert paths, "no API calls found"
    assert all(p.startswith("api/v1/") for p in paths), paths
    for banned in ("XMLHttpRequest", "WebSocket", "EventSource", "sendBeacon", "import("):
        assert banned not in script


def test_page_never_builds_html_from_strings():
    page = status_page_html()
    script, _ = _script_and_style(page)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "srcdoc", "setTimeout(\"", "javascript:"):  # fmt: skip
        assert sink not in script, sink
    assert "textContent" in script


def test_page_csp_allows_exactly_its_own_script_and_style():
    import base64
    import hashlib

    page = status_page_html()
    script, style = _script_and_style(page)

    def sha(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    (meta,) = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    directives = dict(d.strip().split(" ", 1) for d in meta.split(";"))
    assert directives == {
        "default-src": "'none'",
        "script-src": sha(script),
        "style-src": sha(style),
        "connect-src": "'self'",
        "img-src": "data:",
        "base-uri": "'none'",
        "form-action": "'none'",
    }
    header = status_page_csp()
    assert header.startswith(meta)
    assert header.endswith("; frame-ancestors 'none'")
    # the CSP meta comes before anything it governs
    assert page.index("Content-Security-Policy") < page.index("<style>") < page.index("<script>")


def test_page_takes_its_scale_and_colours_from_the_palette():
    page = status_page_html()
    _, style = _script_and_style(page)
    assert f'data-ok-from="{OK_FROM:g}" data-warn-from="{WARN_FROM:g}"' in page
    for name, color in COLORS.items():
        assert f"--palette-{name}:{color}" in style
    # ... and the page's own files keep no copy of either
    static = files("trio_monitor.server") / "static"
    script, css = (static / "status.js").read_text(), (static / "status.css").read_text()
    for color in COLORS.values():
        assert color.lower() not in script.lower(), color
    for threshold in (OK_FROM, WARN_FROM):  # as a number, not inside "p95"
        assert not re.search(rf"(?<![\w.]){threshold:g}(?![\w.])", script), threshold
    assert "body.dataset.okFrom" in script
    # every uptime colour in the style: bar segments, legend swatches, sparkline strokes
    rules = re.findall(r"\.(seg|sw)\.(?!pending)(\w+)\{background:([^}]*)\}", css)
    assert {(kind, lv) for kind, lv, _ in rules} == {
        (kind, lv) for kind in ("seg", "sw") for lv in ("ok", "warn", "bad", "nodata")
    }
    assert all(value == f"var(--palette-{lv})" for _, lv, value in rules), rules
    assert ".spark .line{stroke:var(--palette-line)}" in css


def test_page_title_is_escaped_and_refresh_is_checked():
    page = status_page_html(title="<script>alert(1)</script> & co")
    assert "<script>alert(1)" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co") == 2  # title and h1
    assert 'data-refresh="30"' in status_page_html()
    assert 'data-refresh="10"' in status_page_html(refresh_s=10)
    with pytest.raises(ValueError, match="refresh_s"):
        status_page_html(refresh_s=1)


def test_page_is_responsive_markup():
    page = status_page_html()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "@media (max-width:760px)" in page


def test_read_png_roundtrip():
    """The reader itself, on a PNG written here with every filter type."""
    width, height, bpp = 5, 5, 3
    pixels = [
        bytes((x * 40, y * 50, (x + y) * 20) * 1) for y in range(height) for x in range(width)
    ]
    rows = [b"".join(pixels[y * width : (y + 1) * width]) for y in range(height)]
    raw = b"".join(bytes([0]) + r for r in rows)  # filter 0 for all: the simple case
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
    png += chunk(b"IEND", b"")
    assert read_png(png) == (width, height, bpp, rows)


# --- a fake API on 127.0.0.1 -----------------------------------------------------------


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeApi:
    """What the real server's API answers, from hand-made data; records every request."""

    def __init__(self, now: float, targets: list[dict], history: dict, incidents: list[dict]):
        self.now = now
        self.page = status_page_html().encode()
        self.targets = targets
        self.history = history  # (name, "24h"|"7d") -> samples
        self.incidents = incidents
        self.groups: list[dict] = []  # `groups` of /api/v1/incidents: open outages by cause
        # GET /api/v1/maintenance: nothing held or planned (None: a 404)
        self.maintenance: dict | None = {"windows": [], "silences": []}
        self.token: str | None = None
        self.mode = "ok"  # "ok" | "drop" (close without answering) | "500"
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    def seen(self, prefix: str = "/api/") -> list[tuple[str, str | None]]:
        with self.lock:
            return [r for r in self.requests if r[0].startswith(prefix)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):  # quiet
        pass

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: object) -> None:
        self._send(status, "application/json", json.dumps(obj).encode())

    def do_GET(self):
        api = self.server.api
        url = urlsplit(self.path)
        auth = self.headers.get("Authorization")
        with api.lock:
            api.requests.append((self.path, auth))
        if url.path == "/":
            return self._send(200, "text/html; charset=utf-8", api.page)
        if not url.path.startswith("/api/v1/"):
            return self._json(404, {"error": "not found"})
        if api.mode == "drop":
            self.close_connection = True
            return None
        if api.mode == "500":
            return self._json(500, {"error": "database is locked"})
        if api.token is not None and auth != f"Bearer {api.token}":
            return self._json(401, {"error": "missing or wrong bearer token"})
        query = parse_qs(url.query)
        if url.path == "/api/v1/targets":
            return self._json(200, api.targets)
        if url.path == "/api/v1/cluster":
            return self._json(200, None)  # as the real server answers outside cluster mode
        if url.path == "/api/v1/incidents":
            since = api.now - 7 * 86400
            return self._json(
                200,
                {
                    "since": _iso(since),
                    "until": _iso(api.now),
                    "incidents": api.incidents,
                    "groups": api.groups,
                },
            )
        if url.path == "/api/v1/maintenance" and api.maintenance is not None:
            return self._json(200, api.maintenance)
        m = re.fullmatch(r"/api/v1/targets/(.+)/history", url.path)
        if m:
            name, span = unquote(m.group(1)), query.get("since", ["24h"])[0]
            if not any(t["name"] == name for t in api.targets) or span not in ("24h", "7d"):
                return self._json(404, {"error": "no such target"})
            since = api.now - (86400 if span == "24h" else 7 * 86400)
            samples = api.history.get((name, span), [])
            return self._json(
                200,
                {
                    "target": name,
                    "since": _iso(since),
                    "until": _iso(api.now),
                    "samples": samples,
                    "truncated": False,
                },
            )
        return self._json(404, {"error": "not found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: FakeApi


@contextlib.contextmanager
def serve(api: FakeApi) -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.api = api
    thread = threading.Thread(target=server.serve_forever, name="fake-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _sample(ts: float, ok: bool, latency: float | None = 40.0) -> dict:
    return {
        "ts": _iso(ts),
        "ok": ok,
        "status": 200 if ok else None,
        "latency_ms": latency if ok else None,
        "error": None if ok else "connect",
    }


CHECKS = 40  # per bar segment: enough for one or two failures to stay above WARN_FROM


def _seg_class(n: int, failed: int) -> str:
    """The page's rule: the segment's availability on the palette's scale."""
    return level(100 * (n - failed) / n if n else None)


# db's 24 h: per hour (CHECKS an hour), how many of them failed; None: no data
DB_HOURS = [None] * 4 + [0] * 12 + [1, 2] + [0, 0] + [4] + [0] + [6, 6]
# db's 7 d: per 6-hour segment (CHECKS each), failures
DB_7D = [None] * 3 + [0] * 14 + [1, 3, 0, 0, 5, 0, 0, 0, 2, 0] + [6]


def _fake_api(now: float) -> FakeApi:
    day, week = now - 86400, now - 7 * 86400
    history: dict[tuple[str, str], list[dict]] = {}

    def hours(name: str, failures: list[int | None], start: float, seg_s: float) -> list[dict]:
        out = []
        for i, failed in enumerate(failures):
            if failed is None:
                continue
            for k in range(CHECKS):  # evenly spread in the segment
                ts = start + i * seg_s + (k + 0.5) * seg_s / CHECKS
                latency = 40.0 + 10 * (i % 5) + (200 if i == 10 else 0)
                out.append(_sample(ts, k >= failed, latency))
        return out

    history["db", "24h"] = hours("db", DB_HOURS, day, 3600)
    history["db", "7d"] = hours("db", DB_7D, week, 6 * 3600)
    history["api", "24h"] = hours("api", [0] * 24, day, 3600)
    history["api", "7d"] = hours("api", [0] * 28, week, 6 * 3600)
    history[HOSTILE, "24h"] = hours(HOSTILE, [0] * 20 + [1, 0, 1, 0], day, 3600)
    history[HOSTILE, "7d"] = hours(HOSTILE, [0] * 26 + [1, 1], week, 6 * 3600)
    # new-service: no history at all
    last_ok = {
        "ts": _iso(now - 12),
        "ok": True,
        "status": 200,
        "latency_ms": 42.5,
        "error": None,
        "error_detail": None,
        "kind": "http",
    }
    targets = [
        {
            "name": "api",
            "url": "https://api.example/health",
            "kind": "http",
            "state": "UP",
            "since": _iso(now - 3 * 86400),
            "last": last_ok,
            "interval_s": 30,
            "checks_24h": 2880,
            "availability_24h_pct": 100.0,
            "p95_24h_ms": 61.25,
            "tls": {
                "subject": "CN=api.example",
                "issuer": "CN=Example CA",
                "sans": ["api.example"],
                "not_before": _iso(now - 80 * 86400),
                "not_after": _iso(now + 9.5 * 86400),
                "days_left": 9.5,
                "version": "TLSv1.3",
                "cipher": "TLS_AES_256_GCM_SHA384",
                "earliest_not_after": _iso(now + 9.5 * 86400),
                "earliest_subject": "CN=api.example",
            },
            "phases_24h_ms": {
                "dns": {"p50": 0.42, "p95": 0.9, "count": 2880},
                "connect": {"p50": 1.05, "p95": 2.0, "count": 2880},
                "tls": {"p50": 8.2, "p95": 12.6, "count": 2880},
                "ttfb": {"p50": 39.6, "p95": 55.0, "count": 2880},
                "transfer": None,
            },
        },
        {
            "name": "db",
            "url": "tcp://db.example:5432",
            "kind": "tcp",
            "state": "DOWN",
            "suppressed_by": ["core-router", "dns"],
            "since": _iso(now - 2 * 3600 - 300),
            "last": {
                "ts": _iso(now - 5),
                "ok": False,
                "status": None,
                "latency_ms": None,
                "error": "connect",
                "error_detail": "all attempts to connect to db.example:5432 failed",
                "kind": "tcp",
            },
            "interval_s": 60,
            "checks_24h": 1440,
            "availability_24h_pct": 91.5,
            "p95_24h_ms": 88.0,
        },
        {
            "name": "new-service",
            "url": "https://new.example/",
            "state": "UNKNOWN",
            "since": None,
            "last": None,
            "interval_s": 30,
            "checks_24h": 0,
            "availability_24h_pct": None,
            "p95_24h_ms": None,
        },
        {
            "name": HOSTILE,
            "url": 'https://evil.example/"><script>alert(2)</script>',
            "state": "UP",
            "since": _iso(now - 86400),
            "degrading": {
                "ts": _iso(now - 60),
                "since": _iso(now - 600),
                "signal": "latency",
                "baseline": 9.5,
                "current": 31.0,
                "score": 1.25,
                "detail": "latency 31 ms vs 9.5 ms baseline <script>alert(4)</script>",
            },
            "last": {
                "ts": _iso(now - 20),
                "ok": False,
                "status": 500,
                "latency_ms": 12.0,
                "error": "status",
                "error_detail": "<b>bold</b> & <script>alert(3)</script>",
            },
            "interval_s": 30,
            "checks_24h": 2880,
            "availability_24h_pct": 99.93,
            "p95_24h_ms": 30.0,
        },
    ]
    incidents = [
        {
            "target": "db",
            "start": _iso(now - 2 * 3600 - 300),
            "end": None,
            "duration_s": 7500.0,
            "error": "connect",
        },
        {
            "target": HOSTILE,
            "start": _iso(now - 86400 + 600),
            "end": _iso(now - 86400 + 1200),
            "duration_s": 600.0,
            "error": "status",
        },
        {  # open, but its target is not probed any more
            "target": "gone",
            "start": _iso(now - 3 * 3600),
            "end": None,
            "duration_s": 600.0,
            "error": "dns",
            "end_reason": None,
            "last_seen": _iso(now - 3 * 3600 + 540),
            "unobserved": True,
        },
        {
            "target": "old",
            "start": _iso(now - 5 * 3600),
            "end": _iso(now - 4 * 3600),
            "duration_s": 3600.0,
            "error": "dns",
            "end_reason": "removed",
        },
    ]
    return FakeApi(now, targets, history, incidents)


# --- headless Chromium through selenium ------------------------------------------------


def _wait(driver, what: str, script: str, *args):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(
        lambda d: d.execute_script(script, *args), message=f"timed out waiting for {what}"
    )


# every card on screen has both uptime bars drawn, and no history fetch is running
SETTLED = """
const b = document.body;
if (!(Number(b.dataset.generation) >= (arguments[0] || 1)) || b.dataset.historyIdle !== "1")
  return false;
const cards = [...document.querySelectorAll("#targets .card")];
if (cards.length < (arguments[1] || 1)) return false;
const onScreen = cards.filter((c) => {
  const r = c.getBoundingClientRect();
  return r.bottom > 0 && r.top < innerHeight;
});
return onScreen.length > 0 &&
  onScreen.every((c) => c.querySelectorAll(".bar[data-loaded]").length === 2);
"""

CARDS = """
return [...document.querySelectorAll("#targets .card")].map((c) => ({
  name: c.dataset.name,
  cls: c.className,
  pill: c.querySelector(".pill").textContent,
  title: c.querySelector(".name").textContent,
  url: c.querySelector(".url").textContent,
  since: c.querySelector(".since").textContent,
  suppressed: c.querySelector(".suppressed").hidden ? null
    : c.querySelector(".suppressed").textContent,
  last: c.querySelector(".last").textContent,
  stats: c.querySelector(".stats").textContent,
  phases: c.querySelector(".phases").hidden ? null : c.querySelector(".phases").textContent,
  phases_p95: c.querySelector(".phases").title,
  err: c.querySelector(".err").hidden ? null : c.querySelector(".err").textContent,
  warning: c.querySelector(".degrading-note").hidden ? null
    : c.querySelector(".degrading-note").textContent,
  cert: c.querySelector(".cert").hidden ? null
    : [c.querySelector(".cert").textContent, c.querySelector(".cert").className],
  bars: [...c.querySelectorAll(".bar")].map((b) =>
    [...b.children].map((s) => s.className.replace("seg ", ""))),
  vals: [...c.querySelectorAll(".val")].map((v) => v.textContent),
  spark: c.querySelectorAll(".spark path").length,
}));
"""

# the centres of one card's bar segments, in viewport pixels
SEGMENT_CENTRES = """
const card = [...document.querySelectorAll("#targets .card")]
  .find((c) => c.dataset.name === arguments[0]);
const bar = card.querySelector('.bar[data-range="' + arguments[1] + '"]');
bar.scrollIntoView({block: "center"});
return [...bar.children].map((s) => {
  const r = s.getBoundingClientRect();
  return [Math.floor(r.left + r.width / 2), Math.floor(r.top + r.height / 2),
          r.width, r.height];
});
"""


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


SEG_RGB = {
    "ok": _rgb(COLORS["ok"]),
    "warn": _rgb(COLORS["warn"]),
    "bad": _rgb(COLORS["bad"]),
    "nodata": _rgb(COLORS["nodata"]),
}


def _pixel(shot: tuple[int, int, int, list[bytes]], x: int, y: int) -> tuple[int, int, int]:
    width, height, bpp, rows = shot
    assert 0 <= x < width, (x, width)
    assert 0 <= y < height, (y, height)
    return tuple(rows[y][x * bpp : x * bpp + 3])


def _screenshot(driver, path: Path) -> tuple[int, int, int, list[bytes]]:
    png = driver.get_screenshot_as_png()
    path.write_bytes(png)
    return read_png(png)


def _check_bar_pixels(driver, path: Path, name: str, span: str, expected: list[str]) -> None:
    """Scroll the bar into view, screenshot, and read each segment's colour there."""
    centres = driver.execute_script(SEGMENT_CENTRES, name, span)
    assert len(centres) == len(expected)
    assert all(w >= 2 and h >= 10 for _, _, w, h in centres), centres
    shot = _screenshot(driver, path)
    got = [_pixel(shot, x, y) for x, y, _, _ in centres]
    names = [next((k for k, v in SEG_RGB.items() if v == px), str(px)) for px in got]
    assert names == expected, f"{name} {span}: screenshot colours {names}, want {expected}"


def _no_horizontal_scroll(driver, width: int) -> None:
    """No horizontal scrolling, and (on a phone) no layout wider than the screen."""
    sizes = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth,"
        " document.body.scrollWidth];"
    )
    scroll_width, inner, body_width = sizes
    assert inner == width, f"layout viewport {inner} px wide on a {width} px screen: {sizes}"
    assert scroll_width <= inner, f"horizontal scroll: {sizes}"
    assert body_width <= inner, sizes


def _severe_logs(driver, allow: tuple[str, ...] = ()) -> list[str]:
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not any(a in e["message"] for a in allow)
    ]


@pytest.mark.browser
def test_status_page_in_headless_chromium(browser, tmp_path):
    now = time.time()
    api = _fake_api(now)
    expected_db_24h = [_seg_class(0 if f is None else CHECKS, f or 0) for f in DB_HOURS]
    expected_db_7d = [_seg_class(0 if f is None else CHECKS, f or 0) for f in DB_7D]
    assert {"nodata", "ok", "warn", "bad"} <= set(expected_db_24h)  # the data covers all four

    with serve(api) as base:
        _viewport(browser, 1280, 1000, mobile=False)
        browser.get_log("browser")  # drop what earlier pages logged
        browser.get(base + "/")
        _wait(browser, "the rendered target rows", SETTLED, 1, 4)
        cards = browser.execute_script(CARDS)

        # --- rows, states and texts
        assert [c["name"] for c in cards] == ["db", "new-service", HOSTILE, "api"]
        by = {c["name"]: c for c in cards}
        assert by["db"]["pill"] == "\u2715 DOWN"
        assert "st-down" in by["db"]["cls"]
        assert by["db"]["since"].startswith("down since ")
        assert by["db"]["since"].endswith("(2 h 5 min)")
        # DOWN behind DOWN parents (depends_on): its page waits for them
        assert by["db"]["suppressed"] == "suppressed by core-router, dns"
        assert by["api"]["suppressed"] is None
        assert (
            by["db"]["err"] == "\u2715 connect: all attempts to connect to db.example:5432 failed"
        )
        # a tcp probe has no HTTP status: its kind says what failed
        assert re.fullmatch(r"last check \d\d:\d\d:\d\d \u00b7 tcp failed", by["db"]["last"])
        assert (
            by["db"]["stats"] == "24 h: 91.5% of 1,440 checks \u00b7 p95 88 ms \u00b7 every 1 min"
        )
        assert by["new-service"]["pill"] == "? UNKNOWN"
        assert by["new-service"]["since"] == "no decision yet"
        assert by["new-service"]["last"] == "no checks yet"
        assert by["new-service"]["err"] is None
        assert by["new-service"]["stats"] == "24 h: no checks \u00b7 every 30 s"
        assert by["new-service"]["phases"] is None  # no phases_24h_ms: no line
        assert by["api"]["phases"] == "24 h p50: dns 0.4 / connect 1.1 / tls 8.2 / ttfb 40 ms"
        assert by["api"]["phases_p95"] == "p95: dns 0.9 / connect 2.0 / tls 13 / ttfb 55 ms"
        assert by["new-service"]["bars"] == [["nodata"] * 24, ["nodata"] * 28]
        assert by["new-service"]["vals"] == ["n/a", "n/a", "no data"]
        assert by["api"]["pill"] == "\u2713 UP"
        assert by["api"]["warning"] is None
        # an UP target with an open early warning: yellow, with its evidence (as text)
        assert by[HOSTILE]["pill"] == "! DEGRADING"
        assert "st-degrading" in by[HOSTILE]["cls"]
        assert re.fullmatch(
            r"degrading: latency 31 ms vs 9\.5 ms baseline <script>alert\(4\)</script>"
            r" \u00b7 since \d\d:\d\d:\d\d \u00b7 score 1\.3",
            by[HOSTILE]["warning"],
        )
        assert re.fullmatch(r"last check \d\d:\d\d:\d\d \u00b7 HTTP 200 \u00b7 43 ms \u00b7 ok",
                            by["api"]["last"])  # fmt: skip
        assert by["api"]["err"] is None
        # the certificate: days left, flagged below the default cert_expiry (14 days)
        assert by["api"]["cert"] == ["certificate: 9 days left", "cert cert-warn"]
        assert by["db"]["cert"] is None
        assert by["api"]["bars"] == [["ok"] * 24, ["ok"] * 28]
        assert by["api"]["vals"][:2] == ["100%", "100%"]
        assert by["api"]["spark"] == 1  # the line; no failure ticks
        assert by["db"]["spark"] == 2  # the line and the failure ticks
        assert by["db"]["bars"] == [expected_db_24h, expected_db_7d]

        # --- hostile text shows as text, nothing was injected
        h = by[HOSTILE]
        assert h["title"] == HOSTILE
        assert h["url"] == 'https://evil.example/"><script>alert(2)</script>'
        assert h["err"] == "\u2715 status: <b>bold</b> & <script>alert(3)</script>"
        assert re.fullmatch(
            r"last check \d\d:\d\d:\d\d \u00b7 HTTP 500 \u00b7 12 ms \u00b7 failed", h["last"]
        )
        injected = browser.execute_script(
            "return document.querySelectorAll('#targets img, #targets script, #targets b,"
            " #incidents img, #incidents script, #incidents b').length"
        )
        assert injected == 0

        # --- summary header, updated time, incidents
        assert browser.execute_script(
            "return ['n-up','n-down','n-unknown'].map((i) => document.getElementById(i)"
            ".textContent)"
        ) == ["\u2713 2 up", "\u2715 1 down", "? 1 unknown"]
        assert browser.title == "(1 down) trio-monitor status"
        updated = browser.execute_script("return document.getElementById('updated').textContent")
        assert re.fullmatch(r"updated \d\d:\d\d:\d\d", updated), updated
        assert browser.execute_script("return document.getElementById('banner').hidden")
        open_incidents = browser.execute_script(
            "return [...document.querySelectorAll('#open-incidents li')].map((l) => l.textContent)"
        )
        assert len(open_incidents) == 2
        assert re.fullmatch(
            r"db down since \d{4}-\d\d-\d\d \d\d:\d\d \(for 2 h 5 min\) \u00b7 connect",
            open_incidents[0],
        ), open_incidents
        assert re.fullmatch(  # not growing: no "for ..." since nobody probes it
            r"gone down since \d{4}-\d\d-\d\d \d\d:\d\d \u00b7 no data since "
            r"\d{4}-\d\d-\d\d \d\d:\d\d \u00b7 dns",
            open_incidents[1],
        ), open_incidents
        resolved = browser.execute_script(
            "return [...document.querySelectorAll('#resolved-incidents li')]"
            ".map((l) => l.firstChild.textContent)"
        )
        assert resolved == ["old", HOSTILE]
        removed = browser.execute_script(
            "return document.querySelector('#resolved-incidents li').textContent"
        )
        assert removed.endswith("\u00b7 dns \u00b7 removed (no longer monitored)"), removed

        # --- the screenshot: the bars' colours are really painted
        desktop = tmp_path / "status-desktop-1280.png"
        browser.execute_script("window.scrollTo(0, 0)")
        shot = _screenshot(browser, desktop)
        assert shot[:2] == (1280, 1000)
        present = {k: 0 for k in SEG_RGB}
        _, _, bpp, rows = shot
        for row in rows:
            for x in range(0, len(row), bpp):
                name = next((k for k, v in SEG_RGB.items() if v == tuple(row[x : x + 3])), None)
                if name:
                    present[name] += 1
        assert all(n > 200 for n in present.values()), present
        # the latency sparkline (anti-aliased: near the line colour)
        line = _rgb(COLORS["line"])
        blue = sum(
            1
            for row in rows
            for x in range(0, len(row), bpp)
            if all(abs(row[x + c] - line[c]) <= 40 for c in range(3))
        )
        assert blue > 300, "no latency sparkline drawn"
        _check_bar_pixels(browser, tmp_path / "db-24h-desktop.png", "db", "24h", expected_db_24h)
        _check_bar_pixels(browser, tmp_path / "db-7d-desktop.png", "db", "7d", expected_db_7d)
        _no_horizontal_scroll(browser, 1280)

        # --- a phone: 375 x 812
        _viewport(browser, 375, 812, mobile=True)
        browser.get(base + "/")
        _wait(browser, "the rendered rows at 375 px", SETTLED, 1, 4)
        _no_horizontal_scroll(browser, 375)
        shot = _screenshot(browser, tmp_path / "status-phone-375.png")
        assert shot[:2] == (375, 812)
        _check_bar_pixels(browser, tmp_path / "db-24h-phone.png", "db", "24h", expected_db_24h)
        _check_bar_pixels(browser, tmp_path / "db-7d-phone.png", "db", "7d", expected_db_7d)
        # and the whole page, for people to look at
        height = browser.execute_script("return document.documentElement.scrollHeight")
        _viewport(browser, 375, min(height, 4000), mobile=True)
        _wait(browser, "every card's bars", SETTLED, 1, 4)
        _no_horizontal_scroll(browser, 375)
        _screenshot(browser, tmp_path / "status-phone-375-full.png")

        # --- only same-origin requests, no console errors (a CSP violation is one)
        resources = browser.execute_script(
            "return performance.getEntriesByType('resource').map((e) => e.name)"
        )
        assert resources
        assert all(r.startswith(base + "/api/v1/") for r in resources), resources
        assert _severe_logs(browser) == []
        assert all(auth is None for _, auth in api.seen())  # no token, no header

    print(f"screenshots in {tmp_path}")


@pytest.mark.browser
def test_status_page_token_and_error_banners(browser, tmp_path):
    api = _fake_api(time.time())
    api.token = "s3cr/t+=x"
    banner = "return document.getElementById('banner').hidden ? null : document.getElementById('banner-msg').textContent"

    def click_refresh() -> None:
        gen = browser.execute_script("return Number(document.body.dataset.generation)")
        browser.execute_script("document.getElementById('refresh').click()")
        _wait(
            browser,
            "a refresh",
            "return Number(document.body.dataset.generation) > arguments[0]",
            gen,
        )

    with serve(api) as base:
        _viewport(browser, 1280, 1000, mobile=False)
        # no token: the page loads (it is public), the API says 401
        browser.get(base + "/")
        _wait(browser, "the token banner", "return document.body.dataset.error === 'auth'")
        msg = browser.execute_script(banner)
        assert "This status page needs a token" in msg
        assert "#token=YOUR_TOKEN" in msg
        assert "HTTP 401: missing or wrong bearer token" in msg
        assert browser.execute_script("return document.querySelectorAll('.card').length") == 0
        assert browser.execute_script(
            "return [document.getElementById('summary').hidden,"
            " document.getElementById('incidents').hidden,"
            " document.getElementById('updated').textContent]"
        ) == [True, True, "not loaded"]
        _screenshot(browser, tmp_path / "status-needs-token.png")
        assert api.seen()
        assert all(auth is None for _, auth in api.seen())

        # #token=... (URL-encoded): sent as a Bearer header; a fragment change re-fetches
        before = len(api.seen())
        browser.get(base + "/#token=s3cr%2Ft%2B%3Dx")
        _wait(browser, "rows with the token", SETTLED, 1, 4)
        assert browser.execute_script(banner) is None
        after = api.seen()[before:]
        assert after
        assert {auth for _, auth in after} == {"Bearer s3cr/t+=x"}
        assert any("/history?since=24h" in path for path, _ in after)

        # a wrong token: "refused", not "needs a token"
        browser.execute_script("location.hash = '#token=nope'")
        _wait(browser, "the refused banner", "return document.body.dataset.error === 'auth'")
        assert "The token was refused (HTTP 401" in browser.execute_script(banner)
        browser.execute_script("location.hash = '#token=s3cr%2Ft%2B%3Dx'")
        _wait(browser, "the banner to go", "return document.body.dataset.status === 'ok'")
        _wait(browser, "the histories with the token", SETTLED, 1, 4)

        # the monitor goes away: a network error banner, the last data stays on screen
        api.mode = "drop"
        click_refresh()
        msg = browser.execute_script(banner)
        assert msg is not None
        assert msg.startswith("Cannot reach the monitor (network error).")
        assert re.search(r"showing data from \d\d:\d\d:\d\d\.$", msg), msg
        assert browser.execute_script("return document.querySelectorAll('.card').length") == 4
        _screenshot(browser, tmp_path / "status-network-error.png")

        # the API fails: its status and error text, as text
        api.mode = "500"
        click_refresh()
        assert "The monitor's API failed (HTTP 500: database is locked)" in browser.execute_script(
            banner
        )
        # and recovers
        api.mode = "ok"
        click_refresh()
        assert browser.execute_script(banner) is None
        assert browser.execute_script("return document.body.dataset.status") == "ok"
        # only the expected failures were logged (failed fetches log as errors)
        assert (
            _severe_logs(browser, allow=("401", "500", "ERR_EMPTY_RESPONSE", "Failed to fetch"))
            == []
        )


@pytest.mark.browser
def test_history_requests_are_bounded_and_lazy(browser):
    now = time.time()
    api = _fake_api(now)
    template = api.targets[0]
    api.targets = [{**template, "name": f"t{i:03d}"} for i in range(300)]
    samples = api.history["api", "24h"]
    api.history = {(t["name"], "24h"): samples for t in api.targets}
    with serve(api) as base:
        _viewport(browser, 1280, 1000, mobile=False)
        browser.get(base + "/")
        _wait(browser, "the first screen of rows", SETTLED, 1, 300)
        first = {unquote(p.split("/")[4]) for p, _ in api.seen("/api/v1/targets/")}
        assert 2 <= len(first) <= 24, sorted(first)  # only cards on (or near) the screen
        assert "t000" in first
        assert "t150" not in first
        assert "t299" not in first
        assert len(api.seen("/api/v1/targets/")) == 2 * len(first)  # 24 h and 7 d, once each
        # scrolling to the end fetches the cards that come into view, and only those
        browser.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
        _wait(browser, "the last rows' bars", SETTLED, 1, 300)
        names = {unquote(p.split("/")[4]) for p, _ in api.seen("/api/v1/targets/")}
        assert "t299" in names
        assert "t150" not in names
        assert len(names) <= 2 * 24
        # the list and the incidents: one request each, whatever the number of targets
        refreshes = browser.execute_script("return Number(document.body.dataset.generation)")
        assert len([p for p, _ in api.seen() if p == "/api/v1/targets"]) == refreshes
        assert len(api.seen("/api/v1/incidents")) == refreshes


# --- a storm: 500 targets, 58 of them down ----------------------------------------------

# (name prefix, how many, url of the i-th, the probe's error, its detail): three shared
# causes (a /24 refusing connections, a /24 timing out, names the resolver cannot find),
# then targets down each for its own reason
STORM = [
    ("rack-a", 20, "http://10.1.2.{i}:8080/", "connect", "cannot connect to {ip} (Connection refused)"),
    ("rack-b", 14, "http://10.7.0.{i}/health", "timeout", "no answer within 10 s"),
    ("svc", 12, "https://svc-{i}.internal/", "dns", "no such name"),
    ("odd", 12, "https://odd{i}.example{i}.net/", "status", "HTTP 5{i:02d}"),
]  # fmt: skip
STORM_DOWN = sum(n for _, n, *_ in STORM)
STORM_TARGETS = 500


def _storm_api(now: float) -> FakeApi:
    """A fleet of 500 targets, 58 down; `groups` made by the server's own grouping code
    (policy/_grouping.py's facts and decide, app.py's JSON), so it is what the API says."""
    from trio_monitor._config import GROUP_BY
    from trio_monitor.policy._grouping import decide, facts
    from trio_monitor.server.app import _group_json

    api = _fake_api(now)
    up = api.targets[0]
    targets, incidents, down = [], [], []
    for prefix, n, url, error, detail in STORM:
        for i in range(1, n + 1):
            name, target_url = f"{prefix}-{i:02d}", url.format(i=i)
            text = detail.format(i=i, ip=f"10.1.2.{i}:8080")
            start = now - 600 - 7 * len(down)
            last = {
                "ts": _iso(now - 5),
                "ok": False,
                "status": None,
                "latency_ms": None,
                "error": error,
                "error_detail": text,
                "kind": "http",
            }
            targets.append(
                {**up, "name": name, "url": target_url, "state": "DOWN", "since": _iso(start)}
                | {"last": last, "tls": None}
            )
            incidents.append(
                {"target": name, "start": _iso(start), "end": None, "duration_s": 600.0}
                | {"error": error}
            )
            down.append(facts(name, target_url, error, text, {}, None, None))
    for i in range(STORM_TARGETS - len(targets)):
        targets.append({**up, "name": f"web-{i:03d}", "url": f"https://web-{i:03d}.example/"})
    groups, _ = decide(down, GROUP_BY, 3)
    api.targets, api.incidents, api.history = targets, incidents, {}
    api.groups = [_group_json(g, {i["target"]: i["error"] for i in incidents}) for g in groups]
    return api


# the list and the incidents rendered (history bars are not waited for)
RENDERED = """
const b = document.body;
return Number(b.dataset.generation) >= (arguments[0] || 1) &&
  document.querySelectorAll("#targets .card").length === arguments[1] &&
  !document.getElementById("incidents").hidden;
"""

# what the first screen shows: incident lines on it, where the first card starts
FIRST_SCREEN = """
window.scrollTo(0, 0);
const vh = innerHeight;
const onScreen = (e) => {
  if (!e.checkVisibility()) return false;  // not rendered (in a closed <details>)
  const r = e.getBoundingClientRect();
  return r.bottom > 0 && r.top < vh;
};
const card = document.querySelector("#targets .card").getBoundingClientRect();
return {
  lines: [...document.querySelectorAll("#open-incidents li")].filter(onScreen).length,
  first_card_top: Math.round(card.top),
  viewport: vh,
};
"""

GROUPS = """
return [...document.querySelectorAll("#open-incidents > li.inc-group, #open-incidents > li.inc-more")]
  .map((li) => ({
    cls: li.className,
    count: li.dataset.count || null,
    summary: li.querySelector("summary").textContent,
    open: li.querySelector("details").open,
    shown: [...li.querySelectorAll("details li")].filter((e) => e.checkVisibility()).length,
  }));
"""  # fmt: skip


def storm_first_screen(browser, base: str) -> dict:
    """Open the storm page at 1280x1000: how many incident lines its first screen shows
    and how far down its first target card starts (also run on the page before grouping
    to measure the difference: see README's "Storm grouping")."""
    _viewport(browser, 1280, 1000, mobile=False)
    browser.get(base + "/")
    browser.execute_script("localStorage.clear()")
    browser.get(base + "/")
    _wait(browser, "the storm's list and incidents", RENDERED, 1, STORM_TARGETS)
    result: dict = browser.execute_script(FIRST_SCREEN)
    return result


@pytest.mark.browser
def test_status_page_in_a_storm(browser, tmp_path):
    """500 targets, 58 down, most of them in three groups: the first screen shows the
    groups collapsed with their counts and the first card; groups open by click and by
    keyboard (and stay open across a refresh); the grid view works from the keyboard and
    is remembered; nothing is logged."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    api = _storm_api(time.time())
    assert sorted(g["count"] for g in api.groups) == [12, 14, 20]
    browser.get_log("browser")  # drop what earlier pages logged
    with serve(api) as base:
        screen = storm_first_screen(browser, base)
        _screenshot(browser, tmp_path / "storm-first-screen.png")
        # the first card starts on the first screen, with room for its head and facts
        assert screen["first_card_top"] + 150 <= screen["viewport"], screen
        # three groups, five singles and one "7 more" line, not 58 lines
        assert screen["lines"] == 3 + 5 + 1, screen
        groups = browser.execute_script(GROUPS)
        assert groups == [
            {"cls": "inc-group", "count": str(g["count"]), "summary": g["detail"], "open": False}
            | {"shown": 0}
            for g in api.groups
        ] + [{"cls": "inc-more", "count": None, "summary": "7 more open incidents"}
             | {"open": False, "shown": 0}]  # fmt: skip
        assert api.groups[1]["detail"] == (
            "20 targets on 10.1.2.0/24 failing with connect: connection refused"
        )

        # a click opens a group: its members' lines show
        summaries = browser.find_elements(
            By.CSS_SELECTOR, "#open-incidents > li > details > summary"
        )
        summaries[0].click()
        # the keyboard too: Tab to the next group's summary, Enter
        ActionChains(browser).send_keys(Keys.TAB).perform()
        assert browser.switch_to.active_element == summaries[1]
        ActionChains(browser).send_keys(Keys.ENTER).perform()
        opened = [(g["open"], g["shown"]) for g in browser.execute_script(GROUPS)]
        assert opened == [(True, 12), (True, 20), (False, 0), (False, 0)]
        # a refresh re-renders the incidents: what was open stays open, focus stays put
        gen = browser.execute_script("return Number(document.body.dataset.generation)")
        browser.execute_script("document.getElementById('refresh').click()")
        _wait(browser, "a refresh", RENDERED, gen + 1, STORM_TARGETS)
        opened = [(g["open"], g["shown"]) for g in browser.execute_script(GROUPS)]
        assert opened == [(True, 12), (True, 20), (False, 0), (False, 0)]
        assert (
            browser.execute_script("return document.activeElement.textContent")
            == api.groups[1]["detail"]
        )

        # the grid view: one cell per target, the whole fleet on the first screen
        toggle = browser.find_element(By.ID, "grid-toggle")
        toggle.click()
        assert toggle.get_attribute("aria-pressed") == "true"
        cells = browser.execute_script(
            "return [...document.querySelectorAll('#targets.grid .card')].map((c) => {"
            " const r = c.getBoundingClientRect();"
            " return [c.dataset.name, r.width, r.height, Math.round(r.top)]; })"
        )
        assert len(cells) == STORM_TARGETS
        assert all(w == h == 18 for _, w, h, _ in cells), cells[:3]
        # ten rows of 51 cells at 1280 px: the whole fleet fits in less than a screen
        assert cells[-1][3] + 18 - cells[0][3] <= 250
        first_down = sorted(n for n, *_ in cells[:STORM_DOWN])
        assert [n for n, *_ in cells[:STORM_DOWN]] == first_down  # DOWN first, by name
        # Tab from the toggle: past the incidents' summaries, to the cells, one by one
        toggle.click()  # off and on again: focus on the toggle, as a keyboard user has it
        toggle.click()
        for _ in range(12):
            ActionChains(browser).send_keys(Keys.TAB).perform()
            if browser.execute_script("return document.activeElement.classList.contains('card')"):
                break
        focused = browser.execute_script(
            "const e = document.activeElement;"
            " return [e.dataset.name, e.getAttribute('role'), e.getAttribute('aria-label'),"
            " getComputedStyle(e, '::after').content]"
        )
        assert focused == [cells[0][0], "button", f"{cells[0][0]}: down", f'"{cells[0][0]}: down"']
        ActionChains(browser).send_keys(Keys.TAB).perform()
        assert browser.execute_script("return document.activeElement.dataset.name") == cells[1][0]
        # the tooltip of a focused cell never makes the page scroll sideways
        _no_horizontal_scroll(browser, 1280)
        _screenshot(browser, tmp_path / "storm-grid.png")
        # Enter opens the cell's card: the list again, that card focused and on screen
        ActionChains(browser).send_keys(Keys.ENTER).perform()
        opened_card = browser.execute_script(
            "const e = document.activeElement, r = e.getBoundingClientRect();"
            " return [document.getElementById('targets').classList.contains('grid'),"
            " e.dataset.name, Math.round(r.top), innerHeight]"
        )
        assert opened_card[:2] == [False, cells[1][0]]
        assert 0 <= opened_card[2] < opened_card[3] - 150, opened_card  # on screen
        assert toggle.get_attribute("aria-pressed") == "false"

        # the choice is remembered on reload, both ways
        for want in (True, False):
            browser.find_element(By.ID, "grid-toggle").click()
            browser.refresh()
            _wait(browser, "the reloaded page", RENDERED, 1, STORM_TARGETS)
            assert browser.execute_script(
                "return [document.getElementById('targets').classList.contains('grid'),"
                " document.getElementById('grid-toggle').getAttribute('aria-pressed')]"
            ) == [want, str(want).lower()]
        assert _severe_logs(browser) == []


@pytest.mark.browser
def test_maintenance_windows_silences_and_held_targets_are_shown(browser):
    now = time.time()
    api = _fake_api(now)
    api.targets[0] = {**api.targets[0], "maintenance": "maintenance:weekly-db"}
    api.targets[1] = {**api.targets[1], "maintenance": "silence:3f9c0a1b2d4e"}
    held = [api.targets[0]["name"], api.targets[1]["name"]]
    api.maintenance = {
        "windows": [
            {"name": "weekly-db", "start": _iso(now - 600), "end": _iso(now + 3000),
             "active": True, "targets": [held[0]]},
            {"name": HOSTILE, "start": _iso(now + 86400), "end": _iso(now + 90000),
             "active": False, "targets": []},
        ],
        "silences": [
            {"id": "3f9c0a1b2d4e", "start": _iso(now - 60), "until": _iso(now + 7200),
             "active": True, "match": None, "targets": [held[1]], "comment": "db failover",
             "author": "alice"},
        ],
    }  # fmt: skip
    with serve(api) as base:
        _viewport(browser, 1280, 1000, mobile=False)
        browser.get(base + "/")
        _wait(browser, "the first refresh", SETTLED, 1, 2)
        lines = browser.execute_script(
            "return [...document.querySelectorAll('#maintenance li')].map((li) => li.textContent)"
        )
        assert (
            browser.execute_script("return document.getElementById('maintenance').hidden") is False
        )
        assert lines[0].startswith("Maintenance weekly-db: now, until ")
        assert lines[0].endswith(" \u00b7 1 target")
        assert lines[1].startswith(f"Maintenance {HOSTILE}: from ")  # as text, never HTML
        assert lines[2].startswith(f"Silenced {held[1]} until ")
        assert lines[2].endswith("(alice: db failover)")
        badges = browser.execute_script(
            "return [...document.querySelectorAll('#targets .card')].map((c) => {"
            " const b = c.querySelector('.held');"
            " return [c.dataset.name, b.hidden ? null : b.textContent, b.title]; })"
        )
        shown = {name: (text, title) for name, text, title in badges}
        assert shown[held[0]] == ("maintenance", "alerts held by maintenance:weekly-db")
        assert shown[held[1]] == ("silenced", "alerts held by silence:3f9c0a1b2d4e")
        assert all(text is None for name, (text, _) in shown.items() if name not in held)
        assert not browser.execute_script("return document.querySelector('img')")
        # nothing held or planned: the panel goes
        api.maintenance = {"windows": [], "silences": []}
        generation = browser.execute_script("return Number(document.body.dataset.generation)")
        browser.execute_script("document.getElementById('refresh').click()")
        _wait(browser, "the next refresh", SETTLED, generation + 1, 2)
        assert browser.execute_script("return document.getElementById('maintenance').hidden")
