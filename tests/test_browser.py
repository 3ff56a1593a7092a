"""kind = "browser" (probes/browser/): pages served on loopback by the tests, loaded in
Debian's real Chromium over the DevTools protocol; the config's problem lines; Chromium
killed, hung and over its memory cap; the real console script.

Each test opens its own prober, so its own Chromium with its own profile directory
(safe under -n). Tests that start Chromium are marked `browser` and skipped, with the
reason, where Debian's chromium is missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from chromium import CHROMIUM
from factories import write_config
from servers import TestServer
from test_cli import cli_config, run_cli

from trio_monitor import ConfigError, ErrorKind, ProbeResult, parse_config
from trio_monitor._records import to_dict
from trio_monitor.probes.browser import BrowserProber, open_browser_prober
from trio_monitor.probes.http import open_http_prober

NO_CHROMIUM = not Path(CHROMIUM).is_file()
WHY = "Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)"


def browser_test(test):
    """Marked `browser`; skipped, saying why, where Debian's chromium is missing."""
    return pytest.mark.browser(pytest.mark.skipif(NO_CHROMIUM, reason=WHY)(test))


# the motivating case: the HTML is a shell, a script writes what the user sees (split
# in the source, so the text is only in the page once the script ran)
APP = """<!doctype html><html><head><title>app</title></head><body>
<div id="app">Loading...</div>
<script>document.getElementById("app").textContent = "Dashboard" + " ready";</script>
</body></html>"""
SCRIPT_ERROR = """<!doctype html><html><body><p>shown</p>
<script>window.notAFunction();</script></body></html>"""
API_CALL = """<!doctype html><html><body><p id="out">waiting</p><script>
fetch("/status/500").then((r) => { document.getElementById("out").textContent = "api " + r.status; });
</script></body></html>"""
LATE = """<!doctype html><html><body><script>
setTimeout(() => {
  const p = document.createElement("p"); p.id = "late"; p.textContent = "late" + " content";
  document.body.appendChild(p);
}, 300);
</script></body></html>"""
COOKIE = """<!doctype html><html><body><p id="jar"></p><script>
document.getElementById("jar").textContent = document.cookie ? "cookie " + document.cookie : "no" + " cookie";
document.cookie = "visited=yes; max-age=3600; path=/";
</script></body></html>"""


def config(*targets: dict, **monitor) -> object:
    return parse_config({"monitor": {"retries": 0, **monitor}, "targets": list(targets)}, env={})


def page_target(server: TestServer, page: str, **keys) -> dict:
    return {"name": page, "kind": "browser", "url": server.url(f"/page/{page}"), **keys}


@pytest.fixture
async def prober() -> AsyncIterator[BrowserProber]:
    async with open_browser_prober(config()) as opened:  # type: ignore[arg-type]
        yield opened


async def load(prober: BrowserProber, target: dict, **monitor) -> ProbeResult:
    (t,) = config(target, **monitor).targets  # type: ignore[attr-defined]
    return await prober.probe(prober.prepare(t), 1, set())


def problems(*targets: dict, **monitor) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config(*targets, **monitor)
    return info.value.problems


# --- the page and its checks -------------------------------------------------------


@browser_test
async def test_content_a_script_renders_fails_over_http_and_passes_in_the_browser(server, prober):
    server.pages["app"] = APP
    target = page_target(server, "app", contains="Dashboard ready")
    http_target = {k: v for k, v in target.items() if k != "kind"}
    (t,) = config(http_target).targets  # type: ignore[attr-defined]
    async with open_http_prober(config(http_target)) as http:  # type: ignore[arg-type]
        over_http = await http.probe(http.prepare(t), 1, set())
    assert (over_http.ok, over_http.error) == (False, ErrorKind.CONTENT)

    result = await load(prober, target)
    assert result.ok, result.error_detail
    assert (result.kind, result.status, result.error) == ("browser", 200, None)
    assert result.remote_addr == f"127.0.0.1:{server.port}"
    assert result.latency_ms is not None
    assert result.latency_ms > 0
    page = result.browser
    assert page is not None
    assert (page.requests, page.failed_requests, page.console_errors) == (1, 0, 0)
    assert page.dom_content_loaded_ms is not None
    assert page.load_ms is not None
    assert 0 < page.dom_content_loaded_ms <= page.load_ms
    assert page.transfer_bytes >= len(APP)
    line = to_dict(result)["browser"]
    assert set(line) == {
        "dom_content_loaded_ms", "load_ms", "lcp_ms", "requests", "failed_requests",
        "console_errors", "transfer_bytes", "steps", "screenshot", "console_log",
    }  # fmt: skip
    assert line["steps"] == []


@browser_test
async def test_text_missing_from_the_rendered_page_is_a_content_failure(server, prober):
    server.pages["app"] = APP
    result = await load(prober, page_target(server, "app", contains="Loading..."))
    assert (result.ok, result.error) == (False, ErrorKind.CONTENT)
    assert result.error_detail == "'Loading...' not in the rendered page"
    assert result.status == 200


@browser_test
async def test_each_probe_has_a_fresh_context_no_cookie_is_shared(server, prober):
    server.pages["jar"] = COOKIE
    for _attempt in range(2):  # the page sets a cookie: the next probe must not see it
        result = await load(prober, page_target(server, "jar", contains="no cookie"))
        assert result.ok, result.error_detail


@browser_test
async def test_an_error_status_of_the_page_is_a_status_failure(server, prober):
    result = await load(prober, page_target(server, "missing"))
    assert (result.ok, result.error, result.status) == (False, ErrorKind.STATUS, 404)
    assert result.error_detail == "HTTP 404 for the page"


@browser_test
async def test_a_refused_connection_is_a_connect_failure(prober):
    with trio.socket.socket() as sock:  # a port that nothing listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = {"name": "gone", "kind": "browser", "url": f"http://127.0.0.1:{port}/"}
    result = await load(prober, target)
    assert (result.ok, result.error) == (False, ErrorKind.CONNECT)
    assert result.error_detail == "net::ERR_CONNECTION_REFUSED"
    assert result.browser is not None
    assert result.browser.load_ms is None


# --- config ------------------------------------------------------------------------


def test_a_browser_target_without_chromium_is_one_line_naming_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on it
    target = {"name": "b", "kind": "browser", "url": "http://127.0.0.1:1/"}
    assert problems(target) == [
        "<memory>: targets[0].kind: a browser target needs Chromium, and there is no"
        " `chromium` on PATH (apt-get install chromium, or set [monitor] chromium)"
    ]
    assert problems(target, target | {"name": "c"}, chromium=str(tmp_path / "chromium")) == [
        f"<memory>: monitor.chromium: no executable file at '{tmp_path / 'chromium'}'"
        " (apt-get install chromium, or fix the path)"
    ]
    # no browser target: Chromium is never looked for
    config({"name": "h", "url": "http://127.0.0.1:1/"}, chromium=str(tmp_path / "chromium"))


def test_browser_keys_and_their_problems(tmp_path, monkeypatch):
    (tmp_path / "chromium").write_text("#!/bin/sh\n")
    (tmp_path / "chromium").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    base = {"name": "b", "kind": "browser", "url": "http://127.0.0.1:1/"}
    (t,) = config(base | {"wait_for": "selector: #app .title"}).targets  # type: ignore[attr-defined]
    assert (t.kind, t.spec.wait_for, t.spec.selector) == ("browser", "selector:", "#app .title")
    assert (t.spec.allow_console_errors, t.spec.max_failed_requests) == (False, 0)
    assert problems(base | {"wait_for": "selector:"}, base | {"name": "c", "wait_for": "idle"}) == [
        '<memory>: targets[0].wait_for: must be "load", "networkidle" or "selector:CSS", got'
        " 'selector:'",
        '<memory>: targets[1].wait_for: must be "load", "networkidle" or "selector:CSS", got'
        " 'idle'",
    ]
    assert problems(base | {"url": "ws://127.0.0.1:1/"}) == [
        "<memory>: targets[0].url: kind 'browser' takes http:// or https:// URLs, got"
        " 'ws://127.0.0.1:1/'"
    ]
    assert problems(base | {"max_failed_requests": -1}) == [
        "<memory>: targets[0].max_failed_requests: must be 0 or more, got -1"
    ]
    assert problems(base, browser_memory="1MiB", browser_concurrency=0) == [
        "<memory>: monitor.browser_concurrency: must be 1 or more, got 0",
        "<memory>: monitor.browser_memory: must be from 64MiB to 64GiB, got '1MiB'",
    ]
    # an http(s) URL without `kind` stays an HTTP target
    (h,) = config({"name": "h", "url": "http://127.0.0.1:1/"}).targets  # type: ignore[attr-defined]
    assert h.kind == "http"


@pytest.mark.subprocess
async def test_validate_names_the_package_when_chromium_is_missing(tmp_path):
    target = {"name": "b", "kind": "browser", "url": "http://127.0.0.1:1/"}
    write_config(tmp_path, cli_config(target, chromium=str(tmp_path / "none")))
    done = await run_cli("validate", "-c", "m.toml", cwd=tmp_path)
    assert (done.code, done.stdout) == (2, "")
    assert done.stderr == (
        f"m.toml: monitor.chromium: no executable file at '{tmp_path / 'none'}'"
        " (apt-get install chromium, or fix the path)\n"
    )
