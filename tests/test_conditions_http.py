"""Conditions on HTTP targets, end to end against the real loopback servers of
tests/servers.py: each http placeholder, the status check left to a [STATUS] condition,
a port that must be closed, and the body kept only when a condition reads it."""

from __future__ import annotations

import json
import re

import pytest
from servers import closed_port
from test_cli import run_cli

from trio_monitor._config import parse_config
from trio_monitor._errors import ErrorKind
from trio_monitor._records import ProbeResult
from trio_monitor.probes.http import KIND
from trio_monitor.probes.http.addresses import probe_every_address
from trio_monitor.probes.http.probe import prepare, probe
from trio_monitor.probes.http.wire import ProbeTransport

HEALTH = json.dumps({"status": "UP", "items": [{"id": 1}, {"id": 2}]}).encode()


@pytest.fixture
async def transport():
    async with ProbeTransport(per_host=8) as transport:
        yield transport


def plan_for(url: str, *conditions: str, **keys):
    config = parse_config({"targets": [{"url": url, "conditions": list(conditions), **keys}]})
    return prepare(config.targets[0])


async def run(transport, url: str, *conditions: str, **keys) -> ProbeResult:
    return await probe(transport, plan_for(url, *conditions, **keys), 1)


def outcomes(result: ProbeResult) -> list[tuple[str, bool, str | None]]:
    return [(c.condition, c.ok, c.actual) for c in result.conditions or ()]


def test_http_declares_its_placeholders():
    assert set(KIND.placeholders) == {
        "STATUS",
        "BODY",
        "HEADER",
        "CERTIFICATE_EXPIRATION",
        "RESPONSE_TIME",
        "CONNECTED",
        "IP",
        "PHASE",
    }


@pytest.mark.parametrize(
    ("condition", "ok", "actual"),
    [
        ("[STATUS] == 200", True, "200"),
        ("[STATUS] == any(201, 204)", False, "200"),
        ("[BODY].status == UP", True, "UP"),
        ("[BODY].status == DOWN", False, "UP"),
        ("len([BODY].items) > 0", True, "2"),
        ("has([BODY].errors) == false", True, "false"),
        ('[BODY] == pat(*"UP"*)', True, HEALTH.decode()),
        ("[HEADER].content-type == application/octet-stream", True, "application/octet-stream"),
        ("[HEADER].Content-Length == 49", True, "49"),
        ("[CONNECTED] == true", True, "true"),
        ("[IP] == 127.0.0.1", True, "127.0.0.1"),
        ("[PHASE].tls < 1", False, None),  # http://: no TLS phase
        ("[CERTIFICATE_EXPIRATION] > 48h", False, None),  # http://: no certificate
    ],
)
async def test_each_http_placeholder(server, transport, condition, ok, actual):
    server.bodies["health"] = HEALTH
    result = await run(transport, server.url("/body/health"), condition)
    assert outcomes(result) == [(condition, ok, actual)]
    assert (result.ok, result.error) == (ok, None if ok else ErrorKind.CONDITION)


async def test_response_time_and_phases_are_the_results(server, transport):
    result = await run(transport, server.url("/ok"), "[RESPONSE_TIME] < 1m", "[PHASE].connect < 1m")
    assert result.ok
    (response_time, connect) = result.conditions
    assert response_time.ok
    assert connect.ok
    assert result.phases_ms is not None
    assert connect.actual == f"{result.phases_ms['connect']:g}ms"


async def test_a_failed_condition_names_the_actual_value(server, transport):
    server.bodies["down"] = b'{"status": "DOWN"}'
    result = await run(
        transport, server.url("/body/down"), "[STATUS] == 200", "[BODY].status == UP"
    )
    assert (result.ok, result.error, result.error_detail) == (
        False,
        ErrorKind.CONDITION,
        "[BODY].status (DOWN) == UP",
    )
    assert outcomes(result) == [
        ("[STATUS] == 200", True, "200"),
        ("[BODY].status == UP", False, "DOWN"),
    ]


async def test_certificate_expiration_on_https(tls_server, transport):
    result = await run(
        transport,
        tls_server.url("/ok"),
        "[CERTIFICATE_EXPIRATION] > 48h",
        "[PHASE].tls > 0",
        verify_tls=False,
    )
    assert result.ok, result.error_detail
    assert result.tls is not None
    expiry, tls_phase = result.conditions
    assert expiry.ok
    assert expiry.actual is not None
    # a long duration, as 1234h5m6s (a zero unit is left out: 1234h5m, 1234h6s)
    assert re.fullmatch(r"\d+h(\d+m)?(\d+s)?", expiry.actual), expiry.actual
    assert tls_phase.ok
    short = await run(
        transport, tls_server.url("/ok"), "[CERTIFICATE_EXPIRATION] < 48h", verify_tls=False
    )
    assert (short.ok, short.error) == (False, ErrorKind.CONDITION)


async def test_a_status_condition_decides_the_status(server, transport):
    # a pasted Gatus "[STATUS] == 404": no expect_status of its own, the condition decides
    found = await run(transport, server.url("/nothing-here"), "[STATUS] == 404")
    assert (found.ok, found.status, found.error) == (True, 404, None)
    wrong = await run(transport, server.url("/ok"), "[STATUS] == 404")
    assert (wrong.ok, wrong.error, wrong.error_detail) == (
        False,
        ErrorKind.CONDITION,
        "[STATUS] (200) == 404",
    )
    # a target's own expect_status still applies
    own = await run(transport, server.url("/nothing-here"), "[STATUS] == 404", expect_status=[200])
    assert (own.ok, own.error) == (False, ErrorKind.STATUS)
    assert outcomes(own) == [("[STATUS] == 404", True, "404")]
    # without a [STATUS] condition the [monitor] default (200-399) applies
    other = await run(transport, server.url("/nothing-here"), "[BODY] == not found")
    assert (other.ok, other.error) == (False, ErrorKind.STATUS)


async def test_a_port_that_must_be_closed(transport):
    url = f"http://127.0.0.1:{closed_port()}/"
    closed = await run(transport, url, "[CONNECTED] == false", retries=0)
    assert (closed.ok, closed.error, closed.error_detail) == (True, None, None)
    assert outcomes(closed) == [("[CONNECTED] == false", True, "false")]
    expected_open = await run(transport, url, "[CONNECTED] == true", retries=0)
    assert (expected_open.ok, expected_open.error) == (False, ErrorKind.CONNECT)
    assert outcomes(expected_open) == [("[CONNECTED] == true", False, "false")]


async def test_an_open_port_fails_connected_false(server, transport):
    result = await run(transport, server.url("/ok"), "[CONNECTED] == false")
    assert (result.ok, result.error, result.error_detail) == (
        False,
        ErrorKind.CONDITION,
        "[CONNECTED] (true) == false",
    )


async def test_the_body_is_kept_only_when_a_condition_reads_it(server):
    assert plan_for(server.url("/ok"), "[BODY] == x").keep_body
    assert plan_for(server.url("/ok"), "len([BODY].a) > 0").keep_body
    assert not plan_for(server.url("/ok"), "[STATUS] == 200").keep_body
    assert not plan_for(server.url("/ok")).keep_body
    assert plan_for(server.url("/ok"), "[HEADER].etag == x").keep_headers
    assert not plan_for(server.url("/ok"), "[BODY] == x").keep_headers


async def test_without_conditions_the_line_has_none(server, transport):
    result = await run(transport, server.url("/ok"))
    assert (result.ok, result.conditions) == (True, None)


async def test_the_body_is_checked_up_to_max_body(server, transport):
    result = await run(transport, server.url("/big/5000"), "len([BODY]) == 100", max_body=100)
    assert (result.ok, result.truncated) == (True, True)


async def test_every_address_checks_the_conditions(server, transport):
    server.bodies["health"] = HEALTH
    url = server.url("/body/health").replace("127.0.0.1", "localhost")
    plan = plan_for(url, "[BODY].status == DOWN", addresses="all", ip_family="ipv4")
    result = await probe_every_address(transport, plan, 1)
    assert (result.ok, result.error) == (False, ErrorKind.CONDITION)
    assert result.addresses is not None
    assert [a.error for a in result.addresses] == [ErrorKind.CONDITION]


@pytest.mark.subprocess
async def test_validate_shows_one_line_per_bad_condition(tmp_path, server):
    (tmp_path / "m.toml").write_text(
        f"""
[[targets]]
url = "{server.url("/ok")}"
conditions = ["[STATUS] == 200", "[STAUTS] == 200", "[BODY].status = UP"]

[[targets]]
url = "{server.url("/ok")}"
name = "second"
conditions = ["[DOMAIN_EXPIRATION] > 720h", "[IP] > 5", "[CONNECTED] == true"]
""",
        encoding="utf-8",
    )
    done = await run_cli("validate", "-c", "m.toml", cwd=tmp_path)
    assert (done.code, done.stdout) == (2, "")
    offered = "[BODY], [CERTIFICATE_EXPIRATION], [CONNECTED], [HEADER], [IP], [PHASE], [RESPONSE_TIME], [STATUS]"
    assert done.stderr.splitlines() == [
        "m.toml: targets[0].conditions[1]: '[STAUTS] == 200': unknown placeholder [STAUTS]"
        f" (http targets have {offered})",
        "m.toml: targets[0].conditions[2]: '[BODY].status = UP': no comparison: write LEFT OP"
        " RIGHT with OP one of == != < <= > >= between spaces",
        "m.toml: targets[1].conditions[0]: '[DOMAIN_EXPIRATION] > 720h': [DOMAIN_EXPIRATION] is"
        " not supported: trio-monitor does no WHOIS/RDAP look-ups for domain expiry",
        "m.toml: targets[1].conditions[1]: '[IP] > 5': > compares numbers, and [IP] is text",
    ]
