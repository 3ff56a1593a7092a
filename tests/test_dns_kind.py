"""The dns:// probe kind (trio_monitor/probes/dns/) against the loopback DNS server
(tests/dns_server.py): every record type, rcodes, truncation, silence, a closed port,
its config keys, and one run of the real console script."""

from __future__ import annotations

import json
import socket
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from dns_server import DnsServer
from factories import config_doc, make_config, probe_result, write_config
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trio_monitor import ConfigError, ErrorKind, ProbeResult
from trio_monitor._config import Config
from trio_monitor._records import DnsAnswer
from trio_monitor.probes import base as probe_kinds
from trio_monitor.probes.dns import PLACEHOLDERS, open_dns_prober
from trio_monitor.probes.dns.probe import DnsProber, facts

SYSTEM = ("127.0.0.1", 53)  # where targets without `resolver` would ask (never asked here)


def resolver_of(server: DnsServer) -> str:
    host, port = server.address
    return f"{host}:{port}"


def dns_config(*targets: dict[str, Any], **monitor: Any) -> Config:
    return make_config(config_doc(*targets, monitor=monitor), path="m.toml")


def target(server: DnsServer, query: str, **keys: Any) -> dict[str, Any]:
    return {"url": f"dns://{query}", "resolver": resolver_of(server), **keys}


async def probe_one(table: dict[str, Any], **monitor: Any) -> ProbeResult:
    (t,) = dns_config(table, **monitor).targets
    prober = DnsProber(SYSTEM)
    return await prober.probe(prober.prepare(t), 1, set())


def problems(*targets: dict[str, Any], **monitor: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        dns_config(*targets, **monitor)
    return caught.value.problems


# --- answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record_type", "data"),
    [
        ("A", ["127.0.0.2", "127.0.0.3"]),
        ("AAAA", ["::1", "fe80::2"]),
        ("CNAME", ["target.test."]),
        ("MX", ["10 mail.test.", "20 backup.test."]),
        ("TXT", ['"v=spf1 -all"', '"two" "strings"']),
        ("NS", ["ns1.test.", "ns2.test."]),
        ("SOA", ["ns1.test. admin.test. 2024010101 3600 600 86400 60"]),
        ("SRV", ["10 5 5060 sip.test."]),
        ("CAA", ['0 issue "letsencrypt.org"']),
    ],
)
async def test_each_record_type_answers_in_order(dns_server, record_type, data):
    dns_server.set("zone.test", records={record_type: data})
    result = await probe_one(target(dns_server, "zone.test", record_type=record_type.lower()))
    assert (result.ok, result.error, result.kind) == (True, None, "dns")
    assert result.dns is not None
    assert result.dns.record_type == record_type
    assert result.dns.rcode == "NOERROR"
    assert result.dns.answers == tuple(data)
    assert (result.dns.server, result.dns.tcp) == (resolver_of(dns_server), False)
    assert result.remote_addr == resolver_of(dns_server)
    assert dns_server.count("zone.test", record_type, "udp") == 1
    assert dns_server.count() == 1


async def test_record_type_defaults_to_a_and_the_timings(dns_server):
    dns_server.set("web.test", a=["127.0.0.2"])
    result = await probe_one(target(dns_server, "web.test"))
    assert result.dns is not None
    assert result.dns.answers == ("127.0.0.2",)
    assert dns_server.count("web.test", "A") == 1
    assert result.phases_ms is not None
    assert {k for k, v in result.phases_ms.items() if v is not None} == {"ttfb"}
    assert result.ttfb_ms == result.phases_ms["ttfb"]
    assert result.latency_ms is not None
    assert result.ttfb_ms is not None
    assert 0 < result.ttfb_ms <= result.latency_ms
    assert (result.status, result.attempts) == (None, 1)


async def test_an_a_query_through_a_cname_lists_the_chain(dns_server):
    dns_server.set("alias.test", records={"CNAME": ["real.test."]})
    dns_server.set("real.test", a=["127.0.0.5"])
    result = await probe_one(target(dns_server, "alias.test"))
    assert result.ok
    assert result.dns is not None
    assert result.dns.answers == ("real.test.", "127.0.0.5")


async def test_noerror_without_a_record_of_the_type_fails(dns_server):
    dns_server.set("web.test", a=["127.0.0.2"])
    dns_server.set("dangling.test", records={"CNAME": ["gone.test."]})
    result = await probe_one(target(dns_server, "web.test", record_type="MX"))
    assert (result.ok, result.error, result.error_detail) == (
        False,
        ErrorKind.DNS,
        "NOERROR but no MX record",
    )
    assert result.dns is not None
    assert (result.dns.rcode, result.dns.answers) == ("NOERROR", ())
    # a CNAME is no A record
    dangling = await probe_one(target(dns_server, "dangling.test"))
    assert (dangling.ok, dangling.error_detail) == (False, "NOERROR but no A record")
    assert dangling.dns is not None
    assert dangling.dns.answers == ("gone.test.",)


@pytest.mark.parametrize("rcode", ["NXDOMAIN", "SERVFAIL", "REFUSED"])
async def test_an_rcode_other_than_noerror_fails_with_dns(dns_server, rcode):
    if rcode != "NXDOMAIN":  # a name nobody set is NXDOMAIN
        dns_server.set("bad.test", rcode=rcode)
    result = await probe_one(target(dns_server, "bad.test"))
    assert (result.ok, result.error) == (False, ErrorKind.DNS)
    assert result.error_detail == f"{rcode} from {resolver_of(dns_server)}"
    assert result.dns is not None
    assert (result.dns.rcode, result.dns.answers) == (rcode, ())
    assert result.attempts == 1  # an answer is not asked again
    assert dns_server.count() == 1


async def test_the_authority_section_is_counted(dns_server):
    dns_server.set(
        "web.test",
        a=["127.0.0.2"],
        authority={"NS": ["ns1.test.", "ns2.test."]},
    )
    result = await probe_one(target(dns_server, "web.test"))
    assert result.dns is not None
    assert (result.dns.authority_rrs, result.dns.additional_rrs) == (2, 0)


@pytest.mark.parametrize("forced", [True, False])  # TC set, or the answer is too big
async def test_a_truncated_udp_answer_is_asked_again_over_tcp(dns_server, forced):
    many = [f'"{"x" * 200} {i}"' for i in range(10)]  # more than our 1232-byte EDNS size
    dns_server.set("big.test", records={"TXT": many}, truncate=forced)
    result = await probe_one(target(dns_server, "big.test", record_type="TXT"))
    assert result.ok
    assert result.dns is not None
    assert (result.dns.tcp, result.dns.answers) == (True, tuple(many))
    assert dns_server.count("big.test", "TXT", "udp") == 1
    assert dns_server.count("big.test", "TXT", "tcp") == 1


async def test_the_name_is_sent_idna_encoded(dns_server):
    dns_server.set("xn--bcher-kva.test", a=["127.0.0.2"])
    result = await probe_one(target(dns_server, "bücher.test"))
    assert result.ok
    assert dns_server.count("xn--bcher-kva.test", "A") == 1


async def test_the_question_asks_for_recursion(dns_server):
    dns_server.set("web.test", a=["127.0.0.2"])
    seen: list[int] = []
    answer = dns_server.answer

    def recording(wire: bytes, transport: str) -> bytes | None:
        seen.append(int.from_bytes(wire[2:4]))  # the header's flags
        return answer(wire, transport)

    dns_server.answer = recording  # type: ignore[method-assign]
    assert (await probe_one(target(dns_server, "web.test"))).ok
    (flags,) = seen
    assert flags & 0x0100  # RD


# --- no answer ----------------------------------------------------------------------


async def test_a_silent_nameserver_is_a_timeout_asked_once_per_window(dns_server):
    dns_server.set("hang.test", silent=True)
    started = trio.current_time()
    result = await probe_one(target(dns_server, "hang.test", timeout="600ms", retries=2))
    elapsed = trio.current_time() - started
    assert (result.ok, result.error) == (False, ErrorKind.TIMEOUT)
    assert result.error_detail == f"no answer from {resolver_of(dns_server)} within 0.6s"
    assert (result.dns, result.remote_addr, result.phases_ms, result.ttfb_ms) == (
        None,
        None,
        None,
        None,
    )
    # the question went out again at 200 and 400 ms: three datagrams, one per window
    assert result.attempts == 3
    assert dns_server.count("hang.test", transport="udp") == 3
    assert 0.6 <= elapsed < 1.5
    assert result.latency_ms is not None
    assert result.latency_ms >= 600


async def test_without_retries_one_datagram(dns_server):
    dns_server.set("hang.test", silent=True)
    result = await probe_one(target(dns_server, "hang.test", timeout="300ms", retries=0))
    assert (result.error, result.attempts) == (ErrorKind.TIMEOUT, 1)
    assert dns_server.count("hang.test") == 1


async def test_a_lost_datagram_is_sent_again(dns_server):
    dns_server.set("flaky.test", a=["127.0.0.2"])
    answer = dns_server.answer
    calls = 0

    def drop_first(wire: bytes, transport: str) -> bytes | None:
        nonlocal calls
        calls += 1
        reply = answer(wire, transport)
        return None if calls == 1 else reply

    dns_server.answer = drop_first  # type: ignore[method-assign]
    result = await probe_one(target(dns_server, "flaky.test", timeout="400ms", retries=1))
    assert (result.ok, result.attempts) == (True, 2)
    assert dns_server.count("flaky.test", transport="udp") == 2
    # the time to the answer is the second question's, the latency the whole probe's
    assert result.ttfb_ms is not None
    assert result.latency_ms is not None
    assert result.ttfb_ms < 200 <= result.latency_ms


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_closed_port_is_connect():
    port = closed_udp_port()
    result = await probe_one(
        {"url": "dns://web.test", "resolver": f"127.0.0.1:{port}", "timeout": "5s"}
    )
    assert (result.ok, result.error) == (False, ErrorKind.CONNECT)
    assert result.error_detail == f"127.0.0.1:{port}: connection refused"
    assert result.latency_ms is not None
    assert result.latency_ms < 1000
    assert result.dns is None


async def test_the_deadline_is_in_deadlines_while_the_probe_runs(dns_server):
    dns_server.set("hang.test", silent=True)
    (t,) = dns_config(target(dns_server, "hang.test", timeout="5s", retries=0)).targets
    prober = DnsProber(SYSTEM)
    deadlines: set[trio.CancelScope] = set()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(prober.probe, prober.prepare(t), 1, deadlines)
        await trio.testing.wait_all_tasks_blocked()
        assert len(deadlines) == 2  # the probe's, and its window's
        for scope in deadlines:
            scope.deadline = trio.current_time()  # as if they ran out
    assert deadlines == set()


# --- config -------------------------------------------------------------------------


def test_the_kind_is_chosen_by_the_scheme():
    assert probe_kinds.for_scheme("dns") is probe_kinds.get("dns")
    (t,) = dns_config({"url": "dns://Example.com."}).targets
    assert t.kind == "dns"
    assert (t.spec.name, t.spec.record_type, t.spec.resolver) == ("Example.com.", "A", None)


def test_resolver_inherits_the_monitor_default():
    cfg = dns_config(
        {"url": "dns://a.test"},
        {"url": "dns://b.test", "resolver": "[::1]:5353"},
        resolver="127.0.0.9",
    )
    prober = DnsProber(SYSTEM)
    plans = [prober.prepare(t) for t in cfg.targets]
    assert [p.server for p in plans] == [("127.0.0.9", 53), ("::1", 5353)]
    assert [p.limit_key for p in plans] == ["dns://127.0.0.9:53", "dns://[::1]:5353"]


async def test_without_resolver_the_first_nameserver_of_resolv_conf(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("search test\nnameserver 127.0.0.7\nnameserver 127.0.0.8\n")
    cfg = dns_config({"url": "dns://a.test"})
    async with open_dns_prober(cfg, resolv_conf=conf) as prober:
        assert prober.prepare(cfg.targets[0]).server == ("127.0.0.7", 53)
    conf.write_text("options ndots:2\n")  # no nameserver line: 127.0.0.1, as glibc
    async with open_dns_prober(cfg, resolv_conf=conf) as prober:
        assert prober.prepare(cfg.targets[0]).server == ("127.0.0.1", 53)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            {"url": "dns://a.test", "record_type": "PTR"},
            "m.toml: targets[0].record_type: must be one of A, AAAA, CNAME, MX, TXT, NS, "
            "SOA, SRV, CAA, got 'PTR'",
        ),
        (
            {"url": "dns://a.test", "record_type": 28},
            "m.toml: targets[0].record_type: expected a string, got 28",
        ),
        (
            {"url": "dns://a..test"},
            "m.toml: targets[0].url: invalid DNS name 'a..test': a DNS label is empty",
        ),
        (
            {"url": f"dns://{'a' * 64}.test"},
            f"m.toml: targets[0].url: invalid DNS name '{'a' * 64}.test': "
            "a DNS label is > 63 octets long",
        ),
        (
            {"url": "dns://a.test:53"},
            "m.toml: targets[0].url: dns:// takes only the name to query, like "
            "dns://example.com (the server goes in `resolver`), got 'dns://a.test:53'",
        ),
        (
            {"url": "dns://a.test/MX"},
            "m.toml: targets[0].url: dns:// takes only the name to query, like "
            "dns://example.com (the server goes in `resolver`), got 'dns://a.test/MX'",
        ),
        (
            {"url": "dns://8.8.8.8"},
            "m.toml: targets[0].url: dns:// takes only the name to query, like "
            "dns://example.com (the server goes in `resolver`), got the address "
            "'8.8.8.8': write it as resolver = '8.8.8.8'",
        ),
        (
            {"url": "dns://a.test", "resolver": "dns.google"},
            'm.toml: targets[0].resolver: expected "IP" or "IP:PORT" like "10.0.0.53", '
            '"127.0.0.1:5353" or '
            "\"[::1]:5353\", got 'dns.google' (an IP address: a name would need a resolver "
            "itself)",
        ),
        (
            {"url": "dns://a.test", "resolver": "127.0.0.1:99999"},
            "m.toml: targets[0].resolver: port must be 1-65535, got '127.0.0.1:99999'",
        ),
        (
            {"url": "dns://a.test", "contains": "x"},
            "m.toml: targets[0].contains: unknown key",
        ),
    ],
)
def test_config_problems_are_one_line_each(table, problem):
    assert problems(table) == [problem]


def test_record_type_is_case_insensitive_and_a_root_query_is_a_name():
    (mx, root) = dns_config(
        {"url": "dns://a.test", "record_type": "mx"},
        {"url": "dns://.", "record_type": "NS"},
    ).targets
    assert mx.spec.record_type == "MX"
    assert root.spec.name == "."


# --- the console script ---------------------------------------------------------------


@pytest.mark.subprocess
async def test_once_through_the_console_script(tmp_path, dns_server):
    from test_cli import run_cli

    dns_server.set("mail.test", records={"MX": ["10 mx1.mail.test.", "20 mx2.mail.test."]})
    doc = config_doc(
        target(dns_server, "mail.test", name="mx", record_type="MX"),
        target(dns_server, "gone.test", name="gone"),
        monitor={"timeout": "5s", "retries": 0},
        alerts={"failure_threshold": 1},
    )
    write_config(tmp_path, doc)
    done = await run_cli("run", "--once", "-c", "m.toml", cwd=tmp_path)
    assert done.code == 1, done.stderr
    probes = {r["target"]: r for line in done.lines if (r := json.loads(line))["type"] == "probe"}
    mx, gone = probes["mx"], probes["gone"]
    assert (mx["ok"], mx["kind"], mx["status"], mx["error"]) == (True, "dns", None, None)
    assert mx["dns"] == {
        "record_type": "MX",
        "rcode": "NOERROR",
        "answers": ["10 mx1.mail.test.", "20 mx2.mail.test."],
        "server": resolver_of(dns_server),
        "tcp": False,
        "authority_rrs": 0,
        "additional_rrs": 0,
    }
    assert mx["phases_ms"]["connect"] is None
    assert mx["phases_ms"]["ttfb"] > 0
    assert (gone["ok"], gone["error"], gone["error_detail"]) == (
        False,
        "dns",
        f"NXDOMAIN from {resolver_of(dns_server)}",
    )
    assert gone["dns"]["rcode"] == "NXDOMAIN"


# --- what conditions and alerts read ------------------------------------------------------


async def test_the_facts_conditions_read(dns_server):
    dns_server.set("web.test", a=["127.0.0.2", "127.0.0.3"])
    result = await probe_one(target(dns_server, "web.test"))
    values = facts(result)
    assert values["DNS_RCODE"] == "NOERROR"
    assert values["BODY"] == b"127.0.0.2\n127.0.0.3"
    assert values["RESPONSE_TIME"] == result.latency_ms
    assert (values["CONNECTED"], values["IP"]) == (True, "127.0.0.1")
    assert values["PHASE"] == result.phases_ms
    assert set(values) == set(PLACEHOLDERS)
    silent = attrs.evolve(
        result, ok=False, dns=None, phases_ms=None, latency_ms=None, remote_addr=None
    )
    # no answer: no rcode, no body (a condition on them fails with actual null)
    assert facts(silent) == {
        "RESPONSE_TIME": None,
        "CONNECTED": False,
        "IP": None,
        "PHASE": None,
    }


def condition_rows(result: ProbeResult) -> list[tuple[str, bool, str | None]]:
    assert result.conditions is not None
    return [(c.condition, c.ok, c.actual) for c in result.conditions]


async def test_conditions_pass_on_the_answer(dns_server):
    dns_server.set("web.test", a=["127.0.0.1"])
    result = await probe_one(
        target(
            dns_server,
            "web.test",
            conditions=["[DNS_RCODE] == NOERROR", "[BODY] == 127.0.0.1", "[CONNECTED] == true"],
        )
    )
    assert (result.ok, result.error) == (True, None)
    assert condition_rows(result) == [
        ("[DNS_RCODE] == NOERROR", True, "NOERROR"),
        ("[BODY] == 127.0.0.1", True, "127.0.0.1"),
        ("[CONNECTED] == true", True, "true"),
    ]


async def test_conditions_decide_instead_of_the_rcode(dns_server):
    """`[DNS_RCODE] == NXDOMAIN` asserts a name does not exist: the rcode alone would
    fail the probe."""
    result = await probe_one(
        target(dns_server, "gone.test", conditions=["[DNS_RCODE] == NXDOMAIN"])
    )
    assert (result.ok, result.error, result.error_detail) == (True, None, None)
    assert result.dns is not None
    assert result.dns.rcode == "NXDOMAIN"
    assert condition_rows(result) == [("[DNS_RCODE] == NXDOMAIN", True, "NXDOMAIN")]
    # and NOERROR without a record of the type is no failure either
    dns_server.set("web.test", a=["127.0.0.1"])
    mx = await probe_one(
        target(dns_server, "web.test", record_type="MX", conditions=["[DNS_RCODE] == NOERROR"])
    )
    assert (mx.ok, mx.error) == (True, None)


async def test_a_failed_condition_fails_with_its_actual_value(dns_server):
    dns_server.set("web.test", a=["127.0.0.2"])
    result = await probe_one(target(dns_server, "web.test", conditions=["[BODY] == 127.0.0.1"]))
    assert (result.ok, result.error) == (False, ErrorKind.CONDITION)
    assert result.error_detail == "[BODY] (127.0.0.2) == 127.0.0.1"
    assert condition_rows(result) == [("[BODY] == 127.0.0.1", False, "127.0.0.2")]


async def test_no_answer_fails_whatever_the_conditions(dns_server):
    dns_server.set("hang.test", silent=True)
    result = await probe_one(
        target(
            dns_server,
            "hang.test",
            timeout="300ms",
            retries=0,
            conditions=["[DNS_RCODE] == NXDOMAIN"],
        )
    )
    assert (result.ok, result.error) == (False, ErrorKind.TIMEOUT)
    assert condition_rows(result) == [("[DNS_RCODE] == NXDOMAIN", False, None)]


def test_conditions_are_checked_against_the_dns_placeholders():
    (line,) = problems({"url": "dns://a.test", "conditions": ["[STATUS] == 200"]})
    assert line.startswith("m.toml: targets[0].conditions[0]: '[STATUS] == 200': ")
    assert "[DNS_RCODE]" in line  # the ones a dns target has are named


def test_describe_says_the_answer():
    answer = DnsAnswer("A", "NOERROR", ("127.0.0.2", "127.0.0.3"), "127.0.0.1:53", False)
    many = attrs.evolve(answer, answers=tuple(f"127.0.0.{i}" for i in range(2, 7)))
    result = probe_result("zone", kind="dns", status=None, latency_ms=1.5, dns=answer)
    assert probe_kinds.describe(result) == "NOERROR A 127.0.0.2, 127.0.0.3 in 1.5 ms"
    assert probe_kinds.describe(attrs.evolve(result, dns=many)) == (
        "NOERROR A 127.0.0.2, 127.0.0.3, 127.0.0.4, ... in 1.5 ms"
    )
    nx = attrs.evolve(answer, rcode="NXDOMAIN", answers=())
    assert probe_kinds.describe(attrs.evolve(result, dns=nx)) == "NXDOMAIN in 1.5 ms"


# --- fuzz: the name in dns://NAME -----------------------------------------------------

_LABEL_BITS = st.sampled_from(
    ["a", "é", "xn--", "xn--bcher-kva", "-", ".", "..", "ß", "\u200d", "*", "_", "\\", "%41",
     "a" * 63, "ǅ", "ﬀ", "\u0660", "\u0301", ":", "/", "@", "[", "]", "?", "#", " ", "\x00"]
)  # fmt: skip


@pytest.mark.fuzz
@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=70) | st.lists(_LABEL_BITS, max_size=10).map("".join))
@example("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61)  # 254 octets: too long
@example("\u200d")  # a joiner alone: IDNA 2008 refuses it
@example("xn--a")  # punycode that does not decode
@example("0#\x80")  # a C1 control character: was two lines (the url and the name from it)
def test_a_dns_name_is_an_absolute_name_or_one_line(name):
    try:
        (t,) = dns_config({"url": f"dns://{name}"}).targets
    except ConfigError as exc:
        (line,) = exc.problems
        assert line.startswith("m.toml: targets[0].url: "), line
        assert "\n" not in line
        return
    asked = t.spec.name
    assert asked.endswith(".")
    assert asked.isascii()  # IDNA-encoded, as it goes on the wire
    # and it reads back: the name asked, written as a URL, asks the same
    (again,) = dns_config({"url": f"dns://{asked}"}).targets
    assert again.spec.name == asked
