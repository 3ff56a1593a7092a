"""kind = "browser" (probes/browser/): pages served on loopback by the tests, loaded in
Debian's real Chromium over the DevTools protocol; the config's problem lines; Chromium
killed, hung and over its memory cap; the real console script.

Each test opens its own prober, so its own Chromium with its own profile directory
(safe under -n). Tests that start Chromium are marked `browser` and skipped, with the
reason, where Debian's chromium is missing.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from chromium import CHROMIUM
from factories import config_doc, make_config, write_config
from fakes import FakeProber, dispatcher_for, running
from prometheus_client.parser import text_string_to_metric_families
from servers import TestServer
from test_cli import WAIT, check_probe, cli_config, parse_lines, run_cli, start_monitor
from test_lifecycle import LineSink

from trio_monitor import ConfigError, ErrorKind, ProbeResult, parse_config
from trio_monitor._records import to_dict
from trio_monitor.engine.schedule import Scheduler
from trio_monitor.probes.browser import BrowserProber, chromium, open_browser_prober
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
    assert page.lcp_ms is not None
    assert page.lcp_ms > 0
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
    assert config(base, browser_cpu="equal").monitor.browser_cpu == "equal"  # type: ignore[attr-defined]
    assert problems(base, browser_cpu="low") == [
        '<memory>: monitor.browser_cpu: must be one of "idle", "equal", got \'low\''
    ]
    # a key of an earlier design: the line says what replaced it
    assert problems(base, browser_cpu_weight=10) == [
        '<memory>: monitor.browser_cpu_weight: replaced by browser_cpu = "idle" | "equal"'
    ]
    # an http(s) URL without `kind` stays an HTTP target
    (h,) = config({"name": "h", "url": "http://127.0.0.1:1/"}).targets  # type: ignore[attr-defined]
    assert h.kind == "http"


@pytest.fixture
def fake_chromium(tmp_path, monkeypatch) -> None:
    """A `chromium` on PATH that config load finds (never run)."""
    (tmp_path / "chromium").write_text("#!/bin/sh\n")
    (tmp_path / "chromium").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))


class _FakeBrowserProber(FakeProber):
    def prepare(self, target):
        return BrowserProber.prepare(self, target)  # type: ignore[arg-type]  # the real plan


async def test_a_failed_browser_target_is_confirmed_as_any_other(fake_chromium, autojump_clock):
    """Confirmation probes (confirm_interval, recover_interval) are the scheduler's,
    whatever the kind: a failing browser target is probed again at confirm_interval."""
    target = {"name": "b", "kind": "browser", "url": "http://127.0.0.1:1/", "timeout": "1s"}
    doc = config_doc(target, monitor={"stagger": "0s", "interval": "30s", "confirm_interval": "2s"})
    prober = _FakeBrowserProber({"b": 1.0}, fail_during={"b": (30.0, 40.5)})
    records: list = []
    scheduler = Scheduler(
        make_config(doc), {"browser": prober}, dispatcher_for(make_config(doc), records)
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(65)
        scheduler.stop()
    # failures from 30 on: confirmed every 2 s; the first success (42) ends it
    assert prober.starts["b"] == [0, 30, 32, 34, 36, 38, 40, 42, 60]
    assert [r.confirm for r in records if isinstance(r, ProbeResult)][:4] == [
        False,
        False,
        True,
        True,
    ]


@browser_test
@pytest.mark.parametrize("retries", [0, 1])
async def test_a_failed_navigation_is_retried_in_a_fresh_context(
    server, prober, monkeypatch, retries
):
    """As HTTP targets: a connection the page's server reset is tried again while
    `retries` last, each attempt in a browser context of its own."""
    contexts: list[str] = []
    opened = chromium.Chromium.open_page

    async def open_page(self):
        page = await opened(self)
        contexts.append(page.context_id)
        if len(contexts) > 1:  # the second attempt finds the server answering
            server.page_resets = 0
        return page

    monkeypatch.setattr(chromium.Chromium, "open_page", open_page)
    server.pages["app"] = APP
    server.page_resets = 1000  # Chromium resends a reset request itself, a few times
    result = await load(
        prober, page_target(server, "app", contains="Dashboard ready", retries=retries)
    )
    assert result.attempts == retries + 1
    assert len(set(contexts)) == len(contexts) == retries + 1
    if retries:
        assert result.ok, result.error_detail
        assert result.browser.requests == 1  # type: ignore[union-attr]  # the last attempt's
    else:
        assert (result.ok, result.error) == (False, ErrorKind.CONNECT)
        assert result.error_detail == "net::ERR_CONNECTION_RESET"


@browser_test
async def test_a_page_that_answers_is_never_retried(server, prober):
    result = await load(prober, page_target(server, "app", retries=2))  # no such page: 404
    assert (result.ok, result.error, result.attempts) == (False, ErrorKind.STATUS, 1)
    assert server.hits["/page/app"] == 1


def test_css_selectors_are_checked_at_load_with_a_real_parser(fake_chromium):
    base = {"name": "b", "kind": "browser", "url": "http://127.0.0.1:1/"}
    wait_for = ["selector:div[", "selector:", "selector:>>>", "selector:p::before"]
    steps = [{"click": "a:contains(x)"}, {"fill": "#a :foo", "value": "v"}]
    steps += [{"press": "a", "selector": "a,"}, {"wait_for": "selector:#x ~"}]
    targets = [base | {"name": f"w{i}", "wait_for": w} for i, w in enumerate(wait_for)]
    assert problems(*targets, base | {"name": "s", "steps": steps}) == [
        "<memory>: targets[0].wait_for: not a CSS selector (malformed attribute selector at"
        " position 3): 'div['",
        '<memory>: targets[1].wait_for: must be "load", "networkidle" or "selector:CSS", got'
        " 'selector:'",
        "<memory>: targets[2].wait_for: not a CSS selector (invalid character '>' position 0):"
        " '>>>'",
        "<memory>: targets[3].wait_for: a pseudo-element never matches an element: 'p::before'",
        "<memory>: targets[4].steps[0].click: not a CSS selector (:contains() is not CSS;"
        " Chromium refuses it): 'a:contains(x)'",
        "<memory>: targets[4].steps[1].fill: not a CSS selector (unknown pseudo-class ':foo'):"
        " '#a :foo'",
        "<memory>: targets[4].steps[2].selector: not a CSS selector (invalid character ','"
        " position 1): 'a,'",
        "<memory>: targets[4].steps[3].wait_for: not a CSS selector (invalid character ' '"
        " position 2): '#x ~'",
    ]
    # CSS Level 4, and Chromium's pseudo-classes that soupsieve does not know
    good = [":not(.a, .b) > li:nth-child(2n+1 of .x)", "main:has(> h1):is(.a, .b)"]
    good += ["form:user-invalid input:-webkit-autofill:valid", 'a[href$=".pdf" i]']
    targets = [
        base | {"name": f"g{i}", "wait_for": f"selector:{css}"} for i, css in enumerate(good)
    ]
    assert [t.spec.selector for t in config(*targets).targets] == good  # type: ignore[attr-defined]


def test_the_selectors_conditions_read_are_checked_at_load(fake_chromium):
    base = {"name": "b", "kind": "browser", "url": "http://127.0.0.1:1/"}
    conditions = ["[SELECTOR].p::before == x", "[STATUS] == 200", "[SELECTOR].a:contains(x) == y"]
    conditions += ["len([SELECTOR].#a :foo) > 1", "[SELECTOR].main:has(> h1) == Welcome"]
    assert problems(
        base | {"conditions": conditions}, base | {"name": "c", "conditions": conditions[:1]}
    ) == [
        "<memory>: targets[0].conditions[0]: '[SELECTOR].p::before == x': a pseudo-element"
        " never matches an element: 'p::before'",
        "<memory>: targets[0].conditions[2]: '[SELECTOR].a:contains(x) == y': not a CSS"
        " selector (:contains() is not CSS; Chromium refuses it): 'a:contains(x)'",
        "<memory>: targets[0].conditions[3]: 'len([SELECTOR].#a :foo) > 1': not a CSS selector"
        " (unknown pseudo-class ':foo'): '#a :foo'",
        "<memory>: targets[1].conditions[0]: '[SELECTOR].p::before == x': a pseudo-element"
        " never matches an element: 'p::before'",
    ]
    good = ["[SELECTOR].main:has(> h1) == Welcome", "[SELECTOR].#app .x:valid == ok"]
    assert len(config(base | {"conditions": good}).targets[0].conditions) == 2  # type: ignore[attr-defined]


def test_without_the_browser_extra_a_browser_target_is_one_line(fake_chromium, monkeypatch):
    monkeypatch.setitem(sys.modules, "soupsieve", None)  # import soupsieve: ImportError
    target = {"name": "b", "kind": "browser", "url": "http://127.0.0.1:1/"}
    assert problems(target | {"wait_for": "selector:#app"}, target | {"name": "c"}) == [
        "<memory>: targets[0].kind: browser targets need the browser extra"
        " (pip install 'trio-monitor[browser]')"
    ]
    config({"name": "h", "url": "http://127.0.0.1:1/"})  # no browser target: not needed


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


@browser_test
async def test_an_uncaught_script_error_fails_unless_allowed(server, prober):
    server.pages["broken"] = SCRIPT_ERROR
    result = await load(prober, page_target(server, "broken", contains="shown"))
    assert (result.ok, result.error) == (False, ErrorKind.CONTENT)
    assert result.error_detail == (
        "1 uncaught script error: TypeError: window.notAFunction is not a function"
    )
    assert result.browser is not None
    assert result.browser.console_errors == 1
    allowed = page_target(server, "broken", contains="shown", allow_console_errors=True)
    result = await load(prober, allowed)
    assert result.ok, result.error_detail
    assert result.browser is not None
    assert result.browser.console_errors == 1


@browser_test
async def test_a_failed_api_call_counts_against_max_failed_requests(server, prober):
    server.pages["api"] = API_CALL
    # the page's script shows the API's answer: wait for it, then judge the requests
    target = page_target(server, "api", wait_for="selector:#out:not(:empty)", contains="api 500")
    target["wait_for"] = "networkidle"
    result = await load(prober, target)
    assert (result.ok, result.error) == (False, ErrorKind.CONTENT)
    assert result.error_detail == (
        f"1 failed request (max_failed_requests 0): GET {server.url('/status/500')}: HTTP 500"
    )
    assert result.browser is not None
    assert (result.browser.requests, result.browser.failed_requests) == (2, 1)
    result = await load(prober, target | {"max_failed_requests": 1})
    assert result.ok, result.error_detail


@browser_test
async def test_wait_for_a_selector_sees_what_a_script_adds_after_load(server, prober):
    server.pages["late"] = LATE
    at_load = await load(prober, page_target(server, "late", contains="late content"))
    assert (at_load.ok, at_load.error) == (False, ErrorKind.CONTENT)
    waited = page_target(server, "late", contains="late content", wait_for="selector:#late")
    result = await load(prober, waited)
    assert result.ok, result.error_detail
    assert result.latency_ms is not None
    assert result.latency_ms >= 300


@browser_test
async def test_conditions_on_the_rendered_text_and_on_elements(server, prober):
    server.pages["app"] = APP
    conditions = [
        "[STATUS] == 200",
        "[DOM] == pat(*ready*)",
        "[SELECTOR].#app == Dashboard ready",
        "[SELECTOR].body>div == Dashboard ready",
        "len([DOM]) < 100",
        "[RESPONSE_TIME] < 10s",
        "[CONNECTED] == true",
        "[IP] == 127.0.0.1",
        "len([SELECTOR].#app) == 15",
    ]
    result = await load(prober, page_target(server, "app", conditions=conditions))
    assert result.ok, result.error_detail
    assert result.conditions is not None
    assert [c.actual for c in result.conditions][:5] == [
        "200", "Dashboard ready", "Dashboard ready", "Dashboard ready", "15",
    ]  # fmt: skip
    failing = ["[SELECTOR].#app == Loading...", "[SELECTOR].#nothing == x"]
    result = await load(prober, page_target(server, "app", conditions=failing))
    assert (result.ok, result.error) == (False, ErrorKind.CONDITION)
    assert result.error_detail == (
        "[SELECTOR].#app (Dashboard ready) == Loading...; [SELECTOR].#nothing (missing) == x"
    )


def browser_tasks() -> list[str]:
    """Tasks anywhere in the run that belong to a probe of a page (its waits)."""
    found = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if "browser.probe" in task.name or "_load" in task.name:
            found.append(task.name)
        stack.extend(t for n in task.child_nurseries for t in n.child_tasks)
    return found


@browser_test
async def test_a_page_past_the_deadline_times_out_and_the_browser_goes_on(server, prober):
    # 3 s: Chromium makes the page well within it on a loaded machine (1 s was not)
    target = {"name": "hang", "kind": "browser", "url": server.url("/hang"), "timeout": "3s"}
    result = await load(prober, target)
    assert (result.ok, result.error) == (False, ErrorKind.TIMEOUT)
    assert result.error_detail == "no answer from the page's server within 3s"
    running = prober.running
    assert running is not None  # not restarted: the page was slow, not Chromium
    assert not running.connection._calls  # no command left waiting
    assert not running.connection._sessions  # the page's session is gone
    server.pages["app"] = APP
    again = await load(prober, page_target(server, "app", contains="Dashboard ready"))
    assert again.ok, again.error_detail
    assert prober.running is running
    assert browser_tasks() == []


# --- Chromium's own trouble --------------------------------------------------------


def hanging(server: TestServer, timeout: str = "30s") -> dict:
    return {"name": "hang", "kind": "browser", "url": server.url("/hang"), "timeout": timeout}


async def in_flight_while(
    prober: BrowserProber, target: dict, server: TestServer, act
) -> ProbeResult:
    """Probe `target` (a page that never answers), and `act()` once its request is in."""
    results: list[ProbeResult] = []

    async def probe() -> None:
        results.append(await load(prober, target))

    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe)
            await server.wait_in_flight(1)
            act()
    (result,) = results
    return result


async def ended(pids: set[int]) -> None:
    """Return once each of these processes has ended (its pidfd is readable)."""
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            await trio.lowlevel.wait_readable(fd)
        finally:
            os.close(fd)


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(b")") + 2 :][:1] != b"Z"


@browser_test
async def test_a_killed_chromium_fails_the_probe_in_flight_and_the_next_one_restarts_it(
    server, prober
):
    server.pages["app"] = APP
    assert (await load(prober, page_target(server, "app"))).ok
    first = prober.running
    assert first is not None
    assert first.pid is not None
    result = await in_flight_while(
        prober, hanging(server), server, lambda: os.kill(first.pid, signal.SIGKILL)
    )
    assert (result.ok, result.error) == (False, ErrorKind.BROWSER)
    assert result.error_detail == "Chromium was killed (SIGKILL)"
    assert prober.running is None
    assert prober.restarts == {"crash": 1, "hang": 0, "memory": 0, "reload": 0}  # metrics
    await first.ended.wait()
    assert not alive(first.pid)
    again = await load(prober, page_target(server, "app", contains="Dashboard ready"))
    assert again.ok, again.error_detail
    assert prober.running is not None
    assert prober.running is not first


def _trio_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("Trio thread")]


@browser_test
async def test_chromium_outlives_the_thread_that_started_it(server, prober, monkeypatch):
    # trio's idle worker threads end after IDLE_TIMEOUT (10 s); the kernel sends
    # Chromium's parent-death SIGKILL when the thread that forked it ends
    monkeypatch.setattr(trio._core._thread_cache, "IDLE_TIMEOUT", 0.01)
    monkeypatch.setattr(chromium, "MEMORY_EVERY", 3600.0)  # no watchdog thread meanwhile
    server.pages["app"] = APP
    assert (await load(prober, page_target(server, "app"))).ok
    first = prober.running
    assert first is not None
    assert first.pid is not None
    with trio.fail_after(WAIT):  # every idle worker thread has ended: one waits for Chromium
        while True:
            if len(_trio_threads()) <= 1:
                break
            await trio.sleep(0.01)
    again = await load(prober, page_target(server, "app", contains="Dashboard ready"))
    assert again.ok, again.error_detail
    assert prober.running is first
    assert alive(first.pid)
    assert prober.restarts["crash"] == 0


@browser_test
async def test_a_chromium_that_stops_answering_is_killed_and_replaced(server, prober, monkeypatch):
    monkeypatch.setattr(chromium, "BROWSER_BOUND", 1.0)
    server.pages["app"] = APP
    assert (await load(prober, page_target(server, "app"))).ok
    first = prober.running
    assert first is not None
    assert first.pid is not None
    os.kill(first.pid, signal.SIGSTOP)  # the browser process: nothing answers any more
    result = await load(prober, page_target(server, "app", timeout="5s"))
    assert (result.ok, result.error) == (False, ErrorKind.BROWSER)
    assert result.error_detail == "Chromium did not answer Target.createBrowserContext within 1s"
    await first.ended.wait()
    assert not alive(first.pid)  # SIGKILL ends a stopped process too
    assert prober.restarts == {"crash": 0, "hang": 1, "memory": 0, "reload": 0}
    again = await load(prober, page_target(server, "app"))
    assert again.ok, again.error_detail


@browser_test
async def test_a_chromium_over_its_memory_cap_is_restarted_and_the_probe_says_so(
    server, monkeypatch
):
    monkeypatch.setattr(chromium, "MEMORY_EVERY", 0.05)
    async with open_browser_prober(config(browser_memory="64MiB")) as capped:  # type: ignore[arg-type]
        with trio.fail_after(WAIT):
            result = await load(capped, hanging(server))
    assert capped.restarts == {"crash": 0, "hang": 0, "memory": 1, "reload": 0}
    assert (result.ok, result.error) == (False, ErrorKind.BROWSER)
    assert result.error_detail is not None
    assert re.fullmatch(
        r"Chromium used \d+ MiB, over browser_memory \(64 MiB\): restarted", result.error_detail
    ), result.error_detail


@browser_test
async def test_pages_wait_for_a_browser_slot_before_their_deadline_starts(server):
    server.pages["app"] = APP
    slow = {"name": "slow", "kind": "browser", "url": server.url("/slow/1500")}
    quick = page_target(server, "app", timeout="1s")
    results: dict[str, ProbeResult] = {}

    async def probe(target: dict) -> None:
        results[target["name"]] = await load(one, target)

    limited = config(browser_concurrency=1)
    async with open_browser_prober(limited) as one:  # type: ignore[arg-type]
        # Chromium started first: its start-up (seconds on a loaded machine) is not
        # in the slow probe, so the two probes begin together as the test means
        assert (await load(one, page_target(server, "app"))).ok
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe, slow)
            await server.wait_in_flight(1)
            nursery.start_soon(probe, quick)  # waits 1.5 s for the slot, then has its 1 s
    assert results["slow"].ok, results["slow"].error_detail
    assert results["app"].ok, results["app"].error_detail
    assert results["app"].ts - results["slow"].ts < 1
    assert server.max_in_flight == 1


@browser_test
async def test_metrics_show_a_browser_targets_page_load_and_chromiums_restarts(server):
    server.pages["app"] = APP
    doc = config_doc(
        page_target(server, "app", contains="Dashboard ready"),
        monitor={"interval": "1h", "stagger": "0s", "retries": 0},
        server={"listen": "127.0.0.1:0"},
    )
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, make_config(doc), out=out)
        await out.wait_for(lambda o: o.of_type("probe"))
        host, port = monitor.listening
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://{host}:{port}/metrics")).text
        monitor.stop()
    (line,) = out.of_type("probe")
    assert line["ok"], line["error_detail"]
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    app = (("target", "app"),)
    assert found["probe_browser_load_seconds", app] == pytest.approx(
        line["browser"]["load_ms"] / 1000
    )
    assert found["probe_browser_requests", app] == 1
    assert found["probe_browser_console_errors", app] == 0
    assert found["probe_http_status_code", app] == 200
    restarts = {
        labels[0][1]: count
        for (name, labels), count in found.items()
        if name == "trio_monitor_browser_restarts_total"
    }
    assert restarts == {"crash": 0, "hang": 0, "memory": 0, "reload": 0}


# --- the console script --------------------------------------------------------------


@browser_test
@pytest.mark.subprocess
async def test_run_once_prints_the_browser_line(tmp_path, server):
    server.pages["app"] = APP
    write_config(tmp_path, cli_config(page_target(server, "app", contains="Dashboard ready")))
    done = await run_cli("run", "-c", "m.toml", "--once", cwd=tmp_path)
    assert done.code == 0, done.stderr
    probe, _round = parse_lines(done.stdout.splitlines())
    check_probe(probe)
    assert (probe["kind"], probe["ok"], probe["status"]) == ("browser", True, 200)
    assert probe["browser"]["requests"] == 1
    assert probe["browser"]["steps"] == []


def processes() -> dict[int, tuple[int, int, bytes]]:
    """Every process: pid -> (parent, process group, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2 :].split()
            found[int(entry.name)] = (int(fields[1]), int(fields[2]), command)
    return found


def ours(monitor: int) -> set[int]:
    """The Chromium processes `monitor` started: its child's process group, and the crash
    handlers that name that Chromium's profile."""
    running = processes()
    leaders = {
        pid: re.search(rb"--user-data-dir=([^\x00]+)", command)
        for pid, (parent, _, command) in running.items()
        if parent == monitor and b"--user-data-dir=" in command
    }
    profiles = [match[1] for match in leaders.values() if match]
    return {
        pid
        for pid, (_, group, command) in running.items()
        if group in leaders or any(profile in command for profile in profiles)
    }


@browser_test
@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("signals", "codes"),
    [
        ((signal.SIGTERM,), (0,)),
        ((signal.SIGTERM, signal.SIGTERM), (0, 130)),  # the hard stop
        ((signal.SIGKILL,), (-signal.SIGKILL,)),  # no clean-up of ours: the kernel's
    ],
    ids=["stop", "hard-stop", "killed"],
)
async def test_no_chromium_process_is_left_after_the_monitor_ends(tmp_path, server, signals, codes):
    write_config(tmp_path, cli_config(hanging(server), grace="3s"))
    async with start_monitor(tmp_path / "m.toml") as running:
        await server.wait_in_flight(1)  # Chromium runs, a page is loading
        started = ours(running.process.pid)
        assert len(started) >= 3  # the browser, its zygotes, renderers, ...
        for signum in signals:
            running.send(signum)
        assert await running.wait_exit() in codes
    with trio.fail_after(WAIT):  # killed by the kernel, after a SIGKILL of ours: soon
        await ended(started)
    assert [pid for pid in started if alive(pid)] == []


@browser_test
async def test_a_reload_applies_the_limit_and_restarts_chromium_for_a_new_cap(server, prober):
    server.pages["app"] = APP
    before = config(page_target(server, "app"))
    assert (await load(prober, page_target(server, "app"))).ok
    first = prober.running
    await prober.reconfigure(before, config(page_target(server, "app"), browser_concurrency=3))  # type: ignore[arg-type]
    assert prober.limiter.total_tokens == 3
    assert prober.running is first  # nothing of Chromium's changed
    capped = config(page_target(server, "app"), browser_memory="2GiB")
    await prober.reconfigure(before, capped)  # type: ignore[arg-type]
    assert prober.running is None
    assert prober.restarts["reload"] == 1
    again = await load(prober, page_target(server, "app"))
    assert again.ok, again.error_detail
    assert prober.running is not None
    assert prober.running.memory_cap == 2 << 30
    assert prober.running.idle  # SCHED_IDLE: browser_cpu = "idle", the default
    equal = config(page_target(server, "app"), browser_memory="2GiB", browser_cpu="equal")
    await prober.reconfigure(capped, equal)  # type: ignore[arg-type]
    assert prober.running is None  # its policy is set when it starts
    assert prober.restarts["reload"] == 2
    await prober.reconfigure(equal, config())  # type: ignore[arg-type]
    assert prober.running is None  # no browser target left: no Chromium
