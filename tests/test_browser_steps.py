"""Browser targets' `steps` (probes/browser/steps.py) and a failed probe's artifacts
(probes/browser/artifacts.py): a login form served on loopback, driven in Debian's real
Chromium; the secret a step types never shown; screenshots and console logs kept with
bounded retention; the config's problem lines.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
from test_browser import browser_test, config, page_target, problems
from test_server import TOKEN, FakeView, serving, target_status

from trio_monitor import ErrorKind, ProbeResult
from trio_monitor._records import to_line
from trio_monitor.probes.browser import BrowserProber, open_browser_prober
from trio_monitor.probes.browser import artifacts as artifacts_module
from trio_monitor.probes.browser.artifacts import DIRECTORY, artifact_file, slug
from trio_monitor.probes.browser.steps import Step, StepRun

PASSWORD = "hunter2-s3cret-Pa55"
ENV = {"APP_USER": "alice", "APP_PASSWORD": PASSWORD}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# no favicon request (the test server has none: a failed sub-request)
NO_ICON = '<link rel="icon" href="data:,">'

# the form checks the password in the page (the test's own), logs what was typed, and
# navigates to the welcome page: a click that loads another document
LOGIN = f"""<!doctype html><html><head>{NO_ICON}</head><body>
<form id="login">
  <input id="user" name="user"> <input id="password" name="password" type="password">
  <div style="height: 3000px"></div>
  <button id="go" type="submit">Log in</button>
</form>
<p id="msg"></p>
<script>
document.getElementById("login").addEventListener("submit", (event) => {{
  event.preventDefault();
  const user = document.getElementById("user").value;
  const password = document.getElementById("password").value;
  console.log("login attempt with " + password);
  if (user === "alice" && password === {PASSWORD!r}) location.assign("/page/welcome");
  else document.getElementById("msg").textContent = "Wrong " + "password";
}});
</script></body></html>"""
WELCOME = f"""<!doctype html><html><head>{NO_ICON}</head><body><h1 id="hello">...</h1><script>
document.getElementById("hello").textContent = "Welcome" + " back";
console.error("welcome page: widget " + "failed to load");
</script></body></html>"""

LOGIN_STEPS = [
    {"fill": "#user", "value": "${APP_USER}"},
    {"fill": "#password", "value": "${APP_PASSWORD}"},
    {"click": "#go"},
    {"wait_for": "load"},
    {"expect_text": "Welcome back"},
]


def steps_config(*targets: dict, **monitor) -> object:
    from trio_monitor import parse_config

    return parse_config({"monitor": {"retries": 0, **monitor}, "targets": list(targets)}, env=ENV)


@pytest.fixture
async def prober(tmp_path) -> AsyncIterator[BrowserProber]:
    with_history = attrs.evolve(config(), store_path=str(tmp_path / "history.db"))  # type: ignore[misc]
    async with open_browser_prober(with_history) as opened:
        yield opened


async def run(prober: BrowserProber, target: dict, **monitor) -> ProbeResult:
    (t,) = steps_config(target, **monitor).targets  # type: ignore[attr-defined]
    return await prober.probe(prober.prepare(t), 1, set())


def login_target(server, steps=LOGIN_STEPS, **keys) -> dict:
    server.pages["login"] = LOGIN
    server.pages["welcome"] = WELCOME
    return page_target(server, "login", steps=steps, allow_console_errors=True, **keys)


def shown_everywhere(result: ProbeResult) -> str:
    """Every form a result takes on its way out: the JSON line, its repr, its error."""
    return "\n".join((to_line(result), repr(result), str(result.error_detail)))


# --- steps -------------------------------------------------------------------------


@browser_test
async def test_a_login_path_fills_clicks_and_finds_the_welcome_text(server, prober, tmp_path):
    result = await run(prober, login_target(server))
    assert result.ok, result.error_detail
    steps = result.browser.steps  # type: ignore[union-attr]
    assert [(s.action, s.target, s.ok, s.error) for s in steps] == [
        ("fill", "#user", True, None),
        ("fill", "#password", True, None),
        ("click", "#go", True, None),
        ("wait_for", "load", True, None),
        ("expect_text", "Welcome back", True, None),
    ]
    assert all(s.ms >= 0 for s in steps)
    assert PASSWORD not in shown_everywhere(result)
    # a passing probe keeps nothing
    assert (result.browser.screenshot, result.browser.console_log) == (None, None)  # type: ignore[union-attr]
    assert not (tmp_path / DIRECTORY).exists()


@browser_test
async def test_a_missing_element_fails_the_probe_naming_the_step(server, prober, tmp_path):
    steps = [*LOGIN_STEPS[:2], {"click": "#no-such-button"}, {"expect_text": "Welcome"}]
    result = await run(prober, login_target(server, steps))
    assert (result.ok, result.error) == (False, ErrorKind.CONTENT)
    assert result.error_detail == 'steps[2] click "#no-such-button": no element matches (waited 2s)'
    ran = result.browser.steps  # type: ignore[union-attr]
    assert [(s.action, s.ok) for s in ran] == [("fill", True), ("fill", True), ("click", False)]
    assert ran[-1].ms >= 2000
    assert PASSWORD not in shown_everywhere(result)


@browser_test
async def test_a_wrong_password_fails_expect_text_and_the_secret_stays_out(server, prober):
    steps = [
        {"fill": "#user", "value": "alice"},
        {"fill": "#password", "value": "${APP_PASSWORD}"},
        {"press": "Enter", "selector": "#password"},
        {"expect_text": "Welcome back"},
    ]
    server.pages["login"] = LOGIN.replace(repr(PASSWORD), repr("another"))
    target = page_target(server, "login", steps=steps)
    result = await run(prober, target)
    assert (result.ok, result.error) == (False, ErrorKind.CONTENT)
    assert result.error_detail == (
        'steps[3] expect_text "Welcome back": not in the rendered page (waited 2s)'
    )
    assert PASSWORD not in shown_everywhere(result)
    # the page logged what was typed: the kept console log masks it
    log = (prober.artifacts.root / result.browser.console_log).read_text()  # type: ignore[operator, union-attr]
    assert "login attempt with ***" in log
    assert PASSWORD not in log


# a form that sends what was typed in a URL (as GET forms do), to a path that fails
LEAKY = f"""<!doctype html><html><head>{NO_ICON}</head><body>
<input id="password"><button id="go" onclick="send()">go</button><p id="out"></p><script>
function send() {{
  const pw = document.getElementById("password").value;
  fetch("/nothing-here?pw=" + encodeURIComponent(pw)).then(() => {{
    document.getElementById("out").textContent = "Signed " + "in";
  }});
}}
</script></body></html>"""


@browser_test
async def test_a_secret_in_a_failed_requests_url_is_masked_in_the_error(server, prober):
    server.pages["leaky"] = LEAKY
    steps = [
        {"fill": "#password", "value": "${APP_PASSWORD}"},
        {"click": "#go"},
        {"expect_text": "Signed in"},
    ]
    result = await run(prober, page_target(server, "leaky", steps=steps))
    assert (result.ok, result.error) == (False, ErrorKind.CONTENT)
    assert result.error_detail == (
        f"1 failed request (max_failed_requests 0): GET {server.url('/nothing-here?pw=***')}:"
        " HTTP 404"
    )
    assert PASSWORD not in shown_everywhere(result)


@browser_test
async def test_a_step_cut_short_by_the_deadline_is_a_timeout_naming_it(server, prober):
    steps = [{"wait_for": "selector:#never"}]
    # 3 s: the page loads well within it on a loaded machine (1 s was not)
    result = await run(prober, login_target(server, steps, timeout="3s"))
    assert (result.ok, result.error) == (False, ErrorKind.TIMEOUT)
    assert (
        result.error_detail == 'steps[0] wait_for "selector:#never": not done within the 3s timeout'
    )
    assert [(s.action, s.ok) for s in result.browser.steps] == [("wait_for", False)]  # type: ignore[union-attr]


@browser_test
async def test_goto_loads_another_page(server, prober):
    server.pages["welcome"] = WELCOME
    server.pages["login"] = LOGIN
    steps = [
        {"goto": server.url("/page/welcome")},
        {"wait_for": "networkidle"},
        {"expect_text": "Welcome back"},
    ]
    result = await run(prober, page_target(server, "login", steps=steps, allow_console_errors=True))
    assert result.ok, result.error_detail
    assert [s.action for s in result.browser.steps] == ["goto", "wait_for", "expect_text"]  # type: ignore[union-attr]


# --- artifacts ---------------------------------------------------------------------


@browser_test
async def test_a_failed_probe_keeps_a_png_and_the_console_log(server, prober, tmp_path):
    server.pages["welcome"] = WELCOME
    result = await run(prober, page_target(server, "welcome", contains="Goodbye"))
    assert (result.ok, result.error) == (False, ErrorKind.CONTENT)
    details = result.browser
    assert details is not None
    folder = f"{DIRECTORY}/{slug('welcome')}/"
    assert details.screenshot is not None
    assert details.console_log is not None
    assert details.screenshot.startswith(folder)
    assert details.screenshot.endswith(".png")
    assert details.console_log == details.screenshot.removesuffix(".png") + ".log"
    png = (tmp_path / details.screenshot).read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 1000
    log = (tmp_path / details.console_log).read_text()
    assert "error: welcome page: widget failed to load" in log
    line = to_line(result)
    assert f'"screenshot":"{details.screenshot}"' in line


@browser_test
@pytest.mark.parametrize("condition", ["[SELECTOR].#hello == Goodbye", "[DOM] == pat(*Goodbye*)"])
async def test_a_probe_failed_by_its_conditions_alone_keeps_them_too(
    server, prober, tmp_path, condition
):
    """The page loaded fine, its checks passed: only a condition failed. The screenshot
    is taken while the page is still open."""
    server.pages["welcome"] = WELCOME
    result = await run(prober, page_target(server, "welcome", conditions=[condition]))
    assert (result.ok, result.error, result.status) == (False, ErrorKind.CONDITION, 200)
    details = result.browser
    assert details is not None
    assert details.screenshot is not None, "no screenshot for a conditions-only failure"
    assert (tmp_path / details.screenshot).read_bytes().startswith(PNG_MAGIC)
    assert details.console_log == details.screenshot.removesuffix(".png") + ".log"
    log = (tmp_path / details.console_log).read_text()
    assert "error: welcome page: widget failed to load" in log


@browser_test
async def test_only_the_newest_artifacts_are_kept(server, tmp_path):
    server.pages["welcome"] = WELCOME
    cfg = attrs.evolve(config(), store_path=str(tmp_path / "h.db"))  # type: ignore[misc]
    async with open_browser_prober(cfg) as prober:
        prober.artifacts.keep = 2
        kept = [
            (await run(prober, page_target(server, "welcome", contains="Goodbye"))).browser
            for _ in range(3)
        ]
    names = sorted(p.name for p in (tmp_path / DIRECTORY / slug("welcome")).iterdir())
    newest = [Path(k.screenshot).stem for k in kept[1:]]  # type: ignore[union-attr, arg-type]
    assert names == sorted(f"{stem}{s}" for stem in newest for s in (".log", ".png"))


def test_retention_caps_the_total_size_oldest_first(tmp_path, monkeypatch):
    store = artifacts_module.ArtifactStore(tmp_path, keep=20)
    monkeypatch.setattr(artifacts_module, "MAX_TOTAL_BYTES", 2500)
    for n, target in enumerate(["a", "b", "c"]):
        store._save(tmp_path, 20, target, 1_700_000_000 + n, b"x" * 1000, "")
    left = sorted(p.parent.name for p in (tmp_path / DIRECTORY).rglob("*.png"))
    assert left == [slug("b"), slug("c")]


def test_an_artifact_is_found_only_by_its_own_name_under_its_target(tmp_path):
    store = artifacts_module.ArtifactStore(tmp_path, keep=20)
    shot, _ = store._save(tmp_path, 20, "a/b", 1_700_000_000.25, PNG_MAGIC, "hi\n")
    assert shot == f"{DIRECTORY}/{slug('a/b')}/20231114T221320.250Z.png"
    file = Path(shot).name  # type: ignore[arg-type]
    assert artifact_file(tmp_path, "a/b", file) == tmp_path / shot  # type: ignore[operator]
    assert artifact_file(tmp_path, "other", file) is None
    for bad in ("../history.db", "..", "x.png", f"{file}/..", f"../{slug('a/b')}/{file}"):
        assert artifact_file(tmp_path, "a/b", bad) is None
    assert slug("a/b") != slug("a-b")


def test_no_state_directory_keeps_nothing():
    assert not artifacts_module.ArtifactStore(None, keep=20).enabled
    assert not artifacts_module.ArtifactStore(Path("/tmp"), keep=0).enabled


# --- config ------------------------------------------------------------------------


def test_steps_are_checked_at_load_one_line_each(tmp_path, monkeypatch):
    (tmp_path / "chromium").write_text("#!/bin/sh\n")
    (tmp_path / "chromium").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    base = {"name": "b", "kind": "browser", "url": "http://127.0.0.1:1/"}
    good = [
        {"goto": "https://127.0.0.1/x"},
        {"fill": "#p", "value_file": str(tmp_path / "pw")},
        {"press": "Enter"},
        {"press": "a", "selector": "input[name='q']"},
        {"wait_for": "selector:#done"},
    ]
    (t,) = config(base | {"steps": good}).targets  # type: ignore[attr-defined]
    assert t.spec.steps[1].value == PASSWORD
    assert PASSWORD not in repr(t)
    bad = [
        {"hover": "#x"},
        {"click": "#a", "fill": "#b"},
        {"click": "div[data-x='1'"},
        {"goto": "ftp://127.0.0.1/"},
        {"fill": "#p"},
        {"fill": "#p", "value": "${NOT_SET_ANYWHERE}"},
        {"press": "Hyper"},
        {"wait_for": "idle"},
        {"click": "#a", "value": "x"},
        {"expect_text": ""},
        {"fill": "#p", "value_file": str(tmp_path / "none")},
        {"click": "> a"},
    ]
    assert problems(base | {"steps": bad}) == [
        f"<memory>: targets[0].steps[{i}]{line}"
        for i, line in enumerate(
            [
                ": one action per step (goto, click, fill, press, wait_for, expect_text),"
                " got no action",
                ": one action per step (goto, click, fill, press, wait_for, expect_text),"
                " got 2 actions (click, fill)",
                ".click: not a CSS selector (malformed attribute selector at position 3):"
                " \"div[data-x='1'\"",
                ".goto: must be an http:// or https:// URL, got 'ftp://127.0.0.1/'",
                ".value: set value or value_file (one of them)",
                ".value: environment variable NOT_SET_ANYWHERE is not set",
                ".press: unknown key 'Hyper' (one character, or Enter, Tab, Escape,"
                " Backspace, Delete, Space, ArrowUp, ArrowDown, ArrowLeft, ArrowRight, Home,"
                " End, PageUp, PageDown)",
                '.wait_for: must be "load", "networkidle" or "selector:CSS", got \'idle\'',
                ".value: unknown key for a click step",
                ".expect_text: must not be empty",
                f".value_file: cannot read {tmp_path / 'none'}: No such file or directory",
                ".click: not a CSS selector (invalid character '>' position 0): '> a'",
            ]
        )
    ]
    assert problems(base | {"steps": "click"})[0].startswith("<memory>: targets[0].steps")
    assert os.environ.get("NOT_SET_ANYWHERE") is None


# --- the API -----------------------------------------------------------------------


async def test_the_api_serves_a_targets_artifacts_and_nothing_else(tmp_path):
    store = artifacts_module.ArtifactStore(tmp_path, keep=20)
    shot, log = store._save(tmp_path, 20, "app/login", 1_700_000_000.5, PNG_MAGIC + b"x", "a\n")
    store._save(tmp_path, 20, "other", 1_700_000_001.5, PNG_MAGIC, "secret of other\n")
    (tmp_path / "history.db").write_text("not for the API")
    view = FakeView(target_status("app/login", "DOWN"), target_status("other", "DOWN"))
    view.state_dir = tmp_path
    base = "/api/v1/targets/app%2Flogin/artifacts/"
    png, text = Path(shot).name, Path(log).name  # type: ignore[arg-type]
    async with serving(view, token=TOKEN) as served:
        async with served.client(TOKEN) as client:
            got = await client.get(base + png)
            assert (got.status_code, got.content) == (200, PNG_MAGIC + b"x")
            assert got.headers["content-type"] == "image/png"
            assert got.headers["x-content-type-options"] == "nosniff"
            got = await client.get(base + text)
            assert (got.status_code, got.text) == (200, "a\n")
            assert got.headers["content-type"] == "text/plain; charset=utf-8"
            other = Path(store._save(tmp_path, 20, "other", 1_700_000_002.5, PNG_MAGIC, "")[0]).name  # type: ignore[arg-type]
            refused = [
                base + "..%2F..%2Fhistory.db",
                base + "..%2Fhistory.db",
                base + "%2E%2E",
                base + other,  # another target's file, by its name
                base + f"..%2F{slug('other')}%2F{other}",
                "/api/v1/targets/nobody/artifacts/" + png,
            ]
            for path in refused:
                answer = await client.get(path)
                assert answer.status_code == 404, (path, answer.text)
                assert "not for the API" not in answer.text
        async with served.client(None) as anonymous:  # the token rules of every API path
            assert (await anonymous.get(base + png)).status_code == 401


async def test_no_state_directory_serves_no_artifact():
    view = FakeView(target_status("app"))
    async with serving(view) as served, served.client() as client:
        got = await client.get("/api/v1/targets/app/artifacts/20261130T160102.123Z.png")
        assert got.status_code == 404
        assert got.json() == {"error": "no artifact '20261130T160102.123Z.png' of target 'app'"}


@pytest.mark.browser
def test_a_failed_browser_card_links_its_screenshot(browser, tmp_path):
    from test_page import _wait as wait
    from test_page_kinds import _status
    from test_server import serving_in_thread

    from trio_monitor._records import BrowserDetails

    store = artifacts_module.ArtifactStore(tmp_path, keep=20)
    shot, log = store._save(tmp_path, 20, "shop/login", 1_700_000_000.5, PNG_MAGIC, "x\n")
    details = BrowserDetails(None, None, None, 1, 0, 0, 10, screenshot=shot, console_log=log)
    failed = _status(
        1_700_000_010.0, "shop/login", "browser", "http://shop.test/", None, ok=False,
        error=ErrorKind.CONTENT, browser=details,
    )  # fmt: skip
    passing = _status(
        1_700_000_010.0, "home", "browser", "http://home.test/", None,
        browser=BrowserDetails(1.0, 2.0, None, 1, 0, 0, 10),
    )  # fmt: skip
    view = FakeView(failed, passing)
    view.state_dir = tmp_path
    with serving_in_thread(view, page=None) as base:
        browser.get(base + "/")
        links = wait(
            browser,
            "the artifact links",
            """const a = [...document.querySelectorAll("#targets .card a.artifact")];
            return a.length ? a.map((x) => [x.closest(".card").dataset.name, x.textContent,
              x.getAttribute("href")]) : null;""",
        )
        prefix = "api/v1/targets/shop%2Flogin/artifacts/"
        assert links == [
            ["shop/login", "screenshot", prefix + Path(shot).name],  # type: ignore[arg-type]
            ["shop/login", "console log", prefix + Path(log).name],  # type: ignore[arg-type]
        ]
        fetched = browser.execute_async_script(
            """const done = arguments[arguments.length - 1];
            fetch(arguments[0]).then(async (r) => done([r.status, r.headers.get("content-type"),
              (await r.arrayBuffer()).byteLength]));""",
            base + "/" + prefix + Path(shot).name,  # type: ignore[arg-type]
        )
        assert fetched == [200, "image/png", len(PNG_MAGIC)]


async def test_a_reload_moves_the_artifacts_and_changes_how_many_are_kept(tmp_path):
    before = attrs.evolve(config(), store_path=str(tmp_path / "a" / "h.db"))  # type: ignore[misc]
    after = attrs.evolve(
        config(browser_artifacts_keep=3),  # type: ignore[misc]
        store_path=str(tmp_path / "b" / "h.db"),
    )
    async with open_browser_prober(before) as prober:
        assert (prober.artifacts.root, prober.artifacts.keep) == (tmp_path / "a", 20)
        await prober.reconfigure(before, after)
        assert (prober.artifacts.root, prober.artifacts.keep) == (tmp_path / "b", 3)


async def test_a_deadline_before_a_step_began_fails_the_probe_naming_that_step():
    # the deadline may come after the load but before the steps (while lcp_ms is
    # awaited): the probe must not pass with its steps never run
    run = StepRun((Step("click", "#go", selector="#go"), Step("expect_text", "Done")))
    failure = run.timed_out(1.0)
    assert failure is not None
    assert (failure.kind, failure.detail) == (
        ErrorKind.TIMEOUT,
        'steps[0] click "#go": not done within the 1s timeout',
    )
    assert [(s.action, s.ok) for s in run.results] == [("click", False)]
