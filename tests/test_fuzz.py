"""Property-based: what users type and feed us gets one line or a JSON error, never a
traceback or a 500. The CLI's parsers (`main(argv)` in-process), the JSON-lines reader of
`report --jsonl`, and every query parameter of the API (served on 127.0.0.1)."""

from __future__ import annotations

import io
import ipaddress
import json
import math
import string
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import httpx
import pytest
import trio
from factories import alert_event, probe_result, round_summary
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_server import FakeView, serving, target_status, write_history

from trio_monitor import ConfigError, parse_config
from trio_monitor._config import _checked_url, _Invalid, is_normal_url, parse_url
from trio_monitor._errors import UsageError
from trio_monitor._records import rfc3339, to_line
from trio_monitor.cli import main as cli_main
from trio_monitor.cli.main import main
from trio_monitor.probes.http.probe import parsed_url
from trio_monitor.report import Aggregator, build_report, feed_jsonl
from trio_monitor.report.html import render_html
from trio_monitor.report.json import render_json
from trio_monitor.report.text import render_text

pytestmark = pytest.mark.fuzz

EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    database=None,  # no .hypothesis directory in the tree; failures print their example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NOW = 1_800_000_000.0

# --- values people type for times, numbers and names -----------------------------------

UNITS = st.sampled_from(["", "ms", "s", "m", "h", "d", "y", "e9d"])
# decimal digits of every script (Arabic-Indic, fullwidth, ...), and digit-likes that
# str.isdigit() accepts but int() refuses (superscripts, fractions)
DIGITS = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=30)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    DIGITS,
    st.text(string.digits, min_size=15, max_size=400),
)
DURATIONS = st.builds(lambda n, u: n + u, NUMBERS, UNITS)
OFFSETS = st.sampled_from(["", "Z", "+14:00", "-14:00", "+23:59", "-23:59:59.999999"])
TIMES = st.one_of(
    st.builds(
        lambda d, o: d.isoformat() + o, st.datetimes(), OFFSETS
    ),  # years 1 to 9999, any offset
    st.builds(lambda d: d.isoformat(), st.dates()),
)
TYPED = st.one_of(DURATIONS, TIMES, NUMBERS, st.text(max_size=40))


# --- the CLI's parsers ---------------------------------------------------------------------


def _run_main(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # --help, --version: argparse's own exit
            code = exc.code if isinstance(exc.code, int) else 0
    return code, err.getvalue()


REPORT_OPTIONS = st.lists(
    st.tuples(st.sampled_from(["--since", "--until", "--slowest", "--target", "--format"]), TYPED),
    max_size=4,
)


@EXAMPLES
@given(options=REPORT_OPTIONS)
@example(options=[("--since", "99999999999999d")])  # the absurd ranges
@example(options=[("--until", "9999-12-31T23:59:59-14:00")])
@example(options=[("--since", "0001-01-01T00:00:00+14:00")])
def test_report_options_are_one_line_at_worst(tmp_path, options):
    jsonl = tmp_path / "out.jsonl"
    if not jsonl.exists():
        lines = [to_line(probe_result("api", ts=NOW - 60)), to_line(round_summary(ts=NOW - 60))]
        jsonl.write_text("\n".join(lines) + "\n")
    argv = ["report", "--jsonl", str(jsonl), *(part for pair in options for part in pair)]
    code, err = _run_main(argv)
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert len(err.splitlines()) == 1, err


@EXAMPLES
@given(argv=st.lists(st.one_of(TYPED, st.sampled_from(["-c", "--since", "-o", "--once"]))))
def test_any_argv_parses_or_is_one_line(argv, monkeypatch):
    """Every command's parser (the commands themselves replaced: nothing runs): a usage
    error is one line on stderr, exit 2."""
    for name in cli_main.COMMANDS:
        monkeypatch.setattr(cli_main.command_module(name), "command", lambda _: 0)
    for command in ([], ["run"], ["report"], ["validate"], ["init"], ["health"]):
        code, err = _run_main([*command, *argv])
        assert code in (0, 2), err
        assert len(err.splitlines()) == (code == 2), err


# --- the JSON-lines reader -----------------------------------------------------------------

ODD_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
ODD_TIMES = st.one_of(TIMES, st.text(max_size=30), ODD_NUMBERS)


def _probe(ts, latency, status) -> dict:
    return json.loads(to_line(probe_result("api", ts=NOW - 60))) | {
        "ts": ts,
        "latency_ms": latency,
        "status": status,
    }


def _alert(event, ts, since, downtime) -> dict:
    return json.loads(to_line(alert_event(event, "api", ts=NOW - 30))) | {
        "ts": ts,
        "since": since,
        "downtime_s": downtime,
    }


def _removed(ts, since) -> dict:
    return {"schema": 1, "type": "removed", "ts": ts, "target": "api", "url": None} | {
        "since": since
    }


RECORDS = st.one_of(
    st.builds(_probe, ODD_TIMES, ODD_NUMBERS, ODD_NUMBERS),
    st.builds(_alert, st.sampled_from(["down", "up"]), ODD_TIMES, ODD_TIMES, ODD_NUMBERS),
    st.builds(_removed, ODD_TIMES, ODD_TIMES),
)


def _encode(record: dict) -> bytes:
    # json.dumps writes NaN and Infinity, which json.loads reads back, as Python's does
    return json.dumps(record, allow_nan=True).encode()


LINES = st.lists(
    st.one_of(RECORDS.map(_encode), st.binary(max_size=60), st.just(b"[" * 5000 + b"]" * 5000)),
    max_size=8,
)


def _odd_probe(**fields) -> list[bytes]:
    return [_encode(_probe(rfc3339(NOW - 50), 10.0, 200) | fields)]


@EXAMPLES
@given(lines=LINES, since=st.sampled_from([NOW - 86400, -6e10]))
@example(lines=_odd_probe(latency_ms=math.inf), since=NOW - 86400)  # the lines
@example(lines=_odd_probe(latency_ms=math.nan), since=NOW - 86400)
@example(lines=_odd_probe(latency_ms=10**400), since=NOW - 86400)
@example(lines=_odd_probe(status=10**4000), since=NOW - 86400)
@example(lines=_odd_probe(ts="9999-12-31T23:59:59-14:00"), since=NOW - 86400)
@example(lines=_odd_probe(ts="0001-01-01T00:00:00+14:00"), since=-6e10)
@example(lines=[_encode(_alert("up", rfc3339(NOW - 50), None, 1e300))], since=NOW - 86400)
def test_any_json_lines_are_read_skipping_what_is_bad(lines, since):
    """Past a first good line, nothing fails the report: bad lines are skipped, counted."""
    first = to_line(probe_result("api", ts=NOW - 60)).encode()
    stream = io.BytesIO(b"\n".join([first, *lines]) + b"\n")
    notes: list[str] = []
    agg = Aggregator(since, NOW)
    source = feed_jsonl(agg, stream, "out.jsonl", warn=notes.append)
    report = build_report(agg, source)
    for render in (render_text, render_json, render_html):
        render(report, 5)
    json.loads(render_json(report, 5))  # strict JSON: no NaN or Infinity got through
    # a generated "line" may hold newlines of its own: count what the stream holds
    assert source["lines"] == sum(1 for line in stream.getvalue().split(b"\n") if line.strip())


@EXAMPLES
@given(first=st.binary(max_size=60))
def test_a_bad_first_line_is_one_usage_error(first):
    message = ""
    try:
        feed_jsonl(Aggregator(0, NOW), io.BytesIO(first + b"\n"), "x.jsonl", warn=print)
    except UsageError as exc:
        message = str(exc)
    assert "\n" not in message


# --- the API's query parameters ------------------------------------------------------------

PATHS = st.sampled_from(
    [
        "/api/v1/targets/api/history",
        "/api/v1/incidents",
        "/api/v1/targets",
        "/api/v1/targets/api",
        "/api/v1/badges/api/status.svg",
    ]
)
QUERIES = st.dictionaries(
    st.sampled_from(["since", "until", "limit", "target"]) | st.text(max_size=8),
    TYPED,
    max_size=4,
)


def _fuzz_api(url: str) -> None:
    with httpx.Client(base_url=url, trust_env=False, timeout=10) as client:

        @EXAMPLES
        @given(path=PATHS, query=QUERIES)
        @example(path="/api/v1/incidents", query={"limit": "\u00b2"})  # "²": the 500
        @example(path="/api/v1/incidents", query={"limit": "\u0661\u0662"})  # Arabic-Indic 12
        @example(path="/api/v1/incidents", query={"since": "\uff11h"})  # fullwidth 1h
        def request(path: str, query: dict[str, str]) -> None:
            response = client.get(path, params=query)
            assert response.status_code < 500, (query, response.text)
            if response.status_code >= 400:
                assert isinstance(response.json()["error"], str)

        request()


async def test_no_query_parameter_makes_a_500(tmp_path: Path):
    path = str(tmp_path / "history.db")
    await write_history(path, [probe_result("api", ts=NOW - 60)])
    view = FakeView(target_status("api"), store_path=path)
    async with serving(view) as served:
        await trio.to_thread.run_sync(_fuzz_api, served.url)


# --- the resolver key ----------------------------------------------------------------

PORTS = st.one_of(NUMBERS, st.integers(min_value=-1, max_value=70_000).map(str), st.just(""))
IPS = st.one_of(st.ip_addresses().map(str), st.text(max_size=40))
RESOLVERS = st.one_of(
    st.builds(lambda ip, port: f"{ip}:{port}", IPS, PORTS),
    st.builds(lambda ip, port: f"[{ip}]:{port}", IPS, PORTS),
    IPS,
    st.text(st.characters(codec="utf-8"), max_size=60),
)


@EXAMPLES
@given(value=RESOLVERS)
@example(value="[::1]:5353")
@example(value="127.0.0.1:0")
@example(value="١٢٧.0.0.1:٥٣")
def test_a_resolver_value_is_an_address_and_port_or_one_line(value):
    try:
        config = parse_config({"monitor": {"resolver": value}}, env={}, path="m.toml")
    except ConfigError as exc:
        (line,) = exc.problems
        assert line.startswith("m.toml: monitor.resolver: ")
        assert "\n" not in line
        return
    ip, port = config.monitor.resolver
    assert str(ipaddress.ip_address(ip)) == ip
    assert 1 <= port <= 65535
    written = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"  # and it reads back
    assert parse_config({"monitor": {"resolver": written}}, env={}).monitor.resolver == (ip, port)


URL_PART = st.one_of(
    st.text(alphabet="aZ09.-_~%2eF/?=&:@;", max_size=12),  # mostly what the fast path takes
    st.text(alphabet="aZ09.-_~%2e/?#@:;=&+!$'()*,[] \"<>`{}|\\\té", max_size=12),
)
URLS = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "http:/", ""]),
        st.sampled_from(["a.test", "A.test", "127.0.0.1", "999.1.1.1", "[::1]", "x_y", "a..b", ""]),
        st.sampled_from(["", ":8080", ":80", ":443", ":0", ":99999", ":08", ":"]),
        st.sampled_from(["/", "", "?", "/x/", "#"]),
        URL_PART,
    ),
)


@EXAMPLES
@given(url=URLS)
@example(url="http://a.test/./x")
@example(url="http://a.test/x/..?q")
@example(url="http://a.test/%zz")
@example(url="http://u:p@a.test/")
def test_the_url_fast_path_says_what_httpx_says(url):
    """parse_url skips httpx's parser for URLs in httpx's own form: it must accept and
    reject exactly what the full check does, and what it skips httpx writes unchanged."""
    schemes = frozenset({"http", "https"})
    try:
        expected: object = _checked_url(url, schemes)
    except _Invalid as exc:
        expected = str(exc)
    try:
        got: object = parse_url(url, schemes)
    except _Invalid as exc:
        got = str(exc)
    assert got == expected
    if is_normal_url(url, schemes):
        parsed = httpx.URL(url)
        assert str(parsed) == url
        assert not parsed.userinfo


@EXAMPLES
@given(url=URLS)
@example(url="http://a.test:8080")
@example(url="http://a.test/x?")
@example(url="https://[::1]:8443/a%2Fb?q=/?")
def test_a_plan_s_url_is_the_one_httpx_parses(url):
    """A plan's URL (probes/http/probe.py parsed_url) is built from its origin's parse,
    without parsing the URL again, when it is normal: it must be what httpx makes of it,
    down to httpx's private parse result (what its transport reads)."""
    try:
        expected = httpx.URL(url)
    except httpx.InvalidURL:
        return
    got = parsed_url(url)
    assert got._uri_reference == expected._uri_reference
    assert (got.raw_scheme, got.raw_host, got.port, got.raw_path) == (
        expected.raw_scheme,
        expected.raw_host,
        expected.port,
        expected.raw_path,
    )


# --- browser targets' CSS selectors ----------------------------------------------------

CSS_PIECES = st.sampled_from(
    [
        *("div", "#a", ".b", "*", "[", "]", "(", ")", ":", "::", ">", "+", "~", ",", " "),
        *("'", '"', "\\", "|", "=", "^=", "$=", "i]", ":not(", ":has(", ":nth-child(", " of "),
        *(":valid", ":-webkit-autofill", ":contains(", ":-soup-contains(", "::before", "\x00"),
    ]
)
SELECTORS = st.one_of(st.lists(CSS_PIECES, max_size=12).map("".join), st.text(max_size=40))


@EXAMPLES
@given(css=SELECTORS)
@example(css="div[")
@example(css=">>>")
@example(css=":not(" * 200)
def test_any_css_selector_validates_or_is_one_line(css, tmp_path_factory):
    """wait_for's and a step's selector: accepted, or one problem line each."""
    path = tmp_path_factory.getbasetemp() / "chromium"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    target = {"name": "b", "kind": "browser", "url": "http://127.0.0.1:1/"}
    doc = {"monitor": {"chromium": str(path)}, "targets": []}
    doc["targets"] = [target | {"wait_for": f"selector:{css}", "steps": [{"click": css}]}]
    problems: list[str] = []
    try:
        parse_config(doc, env={})
    except ConfigError as exc:
        problems = exc.problems
    assert all(len(line.splitlines()) == 1 for line in problems)
    assert all(line.startswith("<memory>: targets[0].") for line in problems)
