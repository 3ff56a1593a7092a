"""The icmp:// kind: packets as bytes, real pings to 127.0.0.0/8 and ::1 over each socket
kind, many probes sharing one raw socket, loss made by the kernel itself (it drops an
echo request whose checksum is wrong), and the config-time socket check.

Nothing leaves the host: every address pinged is in 127.0.0.0/8 or ::1. A socket kind
the kernel refuses here skips its tests with the reason (.ci/run lets the test process's
group open unprivileged ICMP sockets; CI runs as root, which may open raw ones).
"""

from __future__ import annotations

import json
import socket
import struct

import pytest
import trio
from factories import config_doc, make_config, write_config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_cli import PROBE_KEYS, parse_lines, run_cli

from trio_monitor import ConfigError, ErrorKind
from trio_monitor.probes import icmp
from trio_monitor.probes.icmp import open_icmp_prober, sockets
from trio_monitor.probes.icmp import probe as icmp_probe
from trio_monitor.probes.icmp.packet import (
    Echo,
    checksum,
    echo_request,
    parse_reply,
    payload,
)
from trio_monitor.server.metrics import Metrics

# --- packets -------------------------------------------------------------------------


def test_checksum_is_rfc_1071s():
    # RFC 1071 section 3's example: the sum is ddf2, its complement 220d
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert checksum(b"\x01") == ~0x0100 & 0xFFFF  # an odd byte is padded with zero
    assert checksum(b"") == 0xFFFF


def test_an_ipv4_echo_request_carries_its_checksum():
    data = payload(b"12345678", 20)
    message = echo_request(False, 0x1234, 7, data)
    assert message[:2] == b"\x08\x00"
    assert struct.unpack("!HH", message[4:8]) == (0x1234, 7)
    assert message[8:] == data
    assert checksum(message) == 0


def test_an_icmpv6_echo_request_leaves_the_checksum_to_the_kernel():
    message = echo_request(True, 1, 2, b"abc")
    assert message[:4] == b"\x80\x00\x00\x00"


def test_the_payload_starts_with_the_token_and_has_the_size():
    assert payload(b"TOKEN123", 0) == b""
    assert payload(b"TOKEN123", 4) == b"TOKE"
    assert payload(b"TOKEN123", 56)[:8] == b"TOKEN123"
    assert len(payload(b"TOKEN123", 1000)) == 1000


def _reply(ident: int, seq: int, data: bytes) -> bytes:
    """The echo reply a host sends to echo_request(False, ident, seq, data)."""
    message = bytearray(echo_request(False, ident, seq, data))
    message[0] = 0
    message[2:4] = b"\0\0"
    message[2:4] = checksum(message).to_bytes(2, "big")
    return bytes(message)


def _ip_header(ttl: int, size: int) -> bytes:
    return (
        bytes([0x45, 0]) + (20 + size).to_bytes(2, "big") + bytes(4) + bytes([ttl, 1]) + bytes(10)
    )


def test_a_reply_is_read_with_or_without_its_ip_header():
    reply = _reply(0xBEEF, 2, b"data")
    assert parse_reply(reply, False, hop_limit=57) == Echo(0xBEEF, 2, b"data", 57)
    raw = _ip_header(61, len(reply)) + reply
    assert parse_reply(raw, False, ip_header=True) == Echo(0xBEEF, 2, b"data", 61)
    v6 = b"\x81\x00\x12\x34" + struct.pack("!HH", 5, 6) + b"x"  # checked by the kernel
    assert parse_reply(v6, True, hop_limit=64) == Echo(5, 6, b"x", 64)


@pytest.mark.parametrize(
    ("packet", "ip_header"),
    [
        (echo_request(False, 1, 1, b"x"), False),  # our own request, as raw sockets see it
        (_reply(1, 1, b"x")[:7], False),  # truncated
        (_reply(1, 1, b"x")[:4] + b"\0\2" + _reply(1, 1, b"x")[6:], False),  # bad checksum
        (b"\x00\x01" + _reply(1, 1, b"x")[2:], False),  # code 1
        (b"\x03\x01" + bytes(30), False),  # destination unreachable
        (_reply(1, 1, b"x"), True),  # no IP header where one must be
        (_ip_header(64, 9)[:12], True),  # a truncated IP header
        (b"", True),
        (b"\x80\x00\x00\x00" + bytes(4), True),
    ],
)
def test_stray_and_broken_packets_are_no_replies(packet, ip_header):
    assert parse_reply(packet, False, ip_header=ip_header) is None


def test_an_icmpv6_request_is_no_reply():
    assert parse_reply(echo_request(True, 1, 1, b"x"), True) is None


def test_a_pending_probe_counts_only_its_own_replies_once():
    pending = sockets.Pending(ident=9, addr="127.0.0.1", data=b"token", count=2)
    pending.sent[0] = 10.0
    others = [
        (Echo(8, 0, b"token", 64), "127.0.0.1"),  # another identifier
        (Echo(9, 0, b"token", 64), "127.0.0.2"),  # another host
        (Echo(9, 0, b"other", 64), "127.0.0.1"),  # another pinger's payload
        (Echo(9, 2, b"token", 64), "127.0.0.1"),  # a sequence number never sent
        (Echo(9, 1, b"token", 64), "127.0.0.1"),  # one not sent yet
    ]
    for echo, source in others:
        pending.deliver(echo, source, 11.0)
    assert (pending.received, pending.rtts) == (0, [None, None])
    pending.deliver(Echo(9, 0, b"token", 63), "127.0.0.1", 10.5)
    pending.deliver(Echo(9, 0, b"token", 62), "127.0.0.1", 10.9)  # a duplicate
    assert (pending.received, pending.rtts, pending.hop_limit) == (1, [0.5, None], 63)
    assert not pending.done.is_set()
    pending.sent[1] = 11.0
    pending.deliver(Echo(9, 1, b"token", 63), "127.0.0.1", 11.25)
    assert pending.rtts == [0.5, 0.25]
    assert pending.done.is_set()


# --- real pings ------------------------------------------------------------------------


def _require(kind: str, ipv6: bool = False) -> None:
    """Skip, with the reason, where this kernel refuses the socket kind (or has no ::1)."""
    if ipv6 and not _has_ipv6_loopback():
        pytest.skip("this host has no IPv6 loopback (::1)")
    try:
        sockets.open_socket(kind, ipv6).close()
    except OSError as exc:
        why = {
            "dgram": "net.ipv4.ping_group_range does not include this process's group"
            " (.ci/run sets it when it runs as root)",
            "raw": "this process lacks CAP_NET_RAW",
        }[kind]
        pytest.skip(f"the kernel refuses {kind} ICMP sockets ({exc.strerror}): {why}")


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


# Sync fixtures, not calls in the async tests: pytest-trio loses the reason of a skip
# raised inside the trio run ("Skipped").
@pytest.fixture
def raw():
    _require("raw")


@pytest.fixture
def dgram():
    _require("dgram")


@pytest.fixture
def loopback(kind, ipv6):
    _require(kind, ipv6)


@pytest.fixture
def sockets_allowed(monkeypatch):
    """Play a machine that allows ICMP sockets: for tests of config keys only, which
    must not depend on the machine they run on (the check opens and closes one)."""
    monkeypatch.setattr(sockets, "open_socket", lambda kind, ipv6: socket.socket())


def _config(*urls: str, icmp_socket: str = "auto", **keys):
    return make_config(
        config_doc(
            *({"url": url, "timeout": "2s", **keys} for url in urls),
            monitor={"icmp_socket": icmp_socket},
        )
    )


async def _ping_all(config):
    async with open_icmp_prober(config) as prober:
        results = {}

        async def one(target):
            results[target.name] = await prober.probe(prober.prepare(target), 1, set())

        async with trio.open_nursery() as nursery:
            for target in config.targets:
                nursery.start_soon(one, target)
        return dict(prober._listeners), results  # the shared raw sockets, before closing


KINDS = ["raw", "dgram"]
ADDRESSES = [("127.0.0.1", "icmp://127.0.0.1", False), ("::1", "icmp://[::1]", True)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("addr", "url", "ipv6"), ADDRESSES, ids=["ipv4", "ipv6"])
@pytest.mark.usefixtures("loopback")
async def test_a_ping_to_loopback(kind, addr, url, ipv6):
    _, results = await _ping_all(_config(url, icmp_socket=kind, count=4, size=100))
    (result,) = results.values()
    assert (result.ok, result.error, result.kind) == (True, None, "icmp")
    details = result.icmp
    assert (details.sent, details.received, details.loss_pct) == (4, 4, 0.0)
    assert (details.addr, details.socket, result.remote_addr) == (addr, kind, addr)
    assert 0 < details.rtt_min_ms <= details.rtt_avg_ms <= details.rtt_max_ms < 2000
    assert result.latency_ms == details.rtt_avg_ms
    assert details.hop_limit == 64  # Linux's default TTL and hop limit; nothing between
    assert details.setup_ms is not None
    assert result.phases_ms == {
        "dns": None,
        "connect": None,
        "tls": None,
        "ttfb": None,
        "transfer": None,
    }


@pytest.mark.usefixtures("raw")
async def test_a_name_is_resolved(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.7 pinged.test\n")
    config = _config("icmp://pinged.test", icmp_socket="raw")
    async with open_icmp_prober(config) as prober:
        from trio_monitor.net.dns import Resolver

        prober._resolvers[None] = Resolver(hosts_file=hosts)
        result = await prober.probe(prober.prepare(config.targets[0]), 1, set())
    assert (result.ok, result.icmp.addr, result.icmp.received) == (True, "127.0.0.7", 3)
    assert result.phases_ms["dns"] is not None


@pytest.mark.usefixtures("dgram")
def test_auto_takes_dgram_where_the_kernel_allows_it():
    assert sockets.choose("auto") == "dgram"


@pytest.mark.usefixtures("sockets_allowed")
def test_auto_takes_raw_where_dgram_is_refused(monkeypatch):
    _refuse(monkeypatch, "dgram")
    assert sockets.choose("auto") == "raw"
    assert sockets.choose("raw") == "raw"
    with pytest.raises(sockets.Unavailable):
        sockets.choose("dgram")


@pytest.mark.usefixtures("raw")
async def test_many_probes_share_one_raw_socket_and_get_their_own_replies(monkeypatch):
    opened = []
    open_socket = sockets.open_socket

    def counting(kind, ipv6):
        opened.append((kind, ipv6))
        return open_socket(kind, ipv6)

    urls = [f"icmp://127.0.{i // 200}.{i % 200 + 1}" for i in range(300)]
    if _has_ipv6_loopback():
        urls.append("icmp://[::1]")
    config = _config(*urls, icmp_socket="raw", spacing="50ms")
    monkeypatch.setattr(sockets, "open_socket", counting)
    listeners, results = await _ping_all(config)
    assert len(results) == len(urls)
    for target in config.targets:
        result = results[target.name]
        assert (result.ok, result.icmp.sent, result.icmp.received) == (True, 3, 3), result
        assert result.icmp.addr == target.spec.host
    # one raw socket per family for all of them (and one IPv4 socket opened and closed
    # at once when the prober chose the socket kind)
    families = {"[" in url for url in urls}
    assert sorted(opened) == sorted([("raw", False), *(("raw", ipv6) for ipv6 in families)])
    assert len(listeners) == len(families)
    assert all(not listener._waiting for listener in listeners.values())  # all released


def _corrupt(monkeypatch, seqs):
    """Requests with these sequence numbers get a wrong checksum: the kernel drops them
    (icmp_rcv checks it), so they are never answered. Raw IPv4 only: for ICMPv6 and
    datagram sockets the kernel writes the checksum itself."""
    build = icmp_probe.echo_request

    def corrupted(ipv6, ident, seq, data):
        message = bytearray(build(ipv6, ident, seq, data))
        if seq in seqs:
            message[2] ^= 0xFF
        return bytes(message)

    monkeypatch.setattr(icmp_probe, "echo_request", corrupted)


@pytest.mark.usefixtures("raw")
async def test_no_reply_at_all_is_a_timeout(monkeypatch):
    _corrupt(monkeypatch, {0, 1, 2})
    _, results = await _ping_all(_config("icmp://127.0.0.1", icmp_socket="raw", timeout="500ms"))
    (result,) = results.values()
    assert (result.ok, result.error, result.latency_ms) == (False, ErrorKind.TIMEOUT, None)
    assert result.error_detail == "no reply to 3 echo requests within 500ms"
    details = result.icmp
    assert (details.sent, details.received, details.loss_pct) == (3, 0, 100.0)
    assert (details.rtt_min_ms, details.rtt_avg_ms, details.rtt_max_ms) == (None, None, None)
    facts = icmp_probe.facts(result)
    assert (facts["CONNECTED"], facts["IP"], facts["PACKET_LOSS"]) == (False, "127.0.0.1", 100.0)
    assert facts["RESPONSE_TIME"] is facts["RTT_MAX"] is None


@pytest.mark.usefixtures("raw")
async def test_a_partial_loss_is_ok_and_counted(monkeypatch):
    _corrupt(monkeypatch, {1})
    _, results = await _ping_all(_config("icmp://127.0.0.1", icmp_socket="raw", timeout="500ms"))
    (result,) = results.values()
    assert (result.ok, result.error) == (True, None)
    details = result.icmp
    assert (details.sent, details.received, details.loss_pct) == (3, 2, 33.3)
    facts = icmp_probe.facts(result)
    assert facts["PACKET_LOSS"] == 33.3
    assert facts["CONNECTED"] is True
    assert facts["RESPONSE_TIME"] == details.rtt_avg_ms == result.latency_ms
    assert facts["RTT_MAX"] == details.rtt_max_ms


@pytest.mark.parametrize(
    ("conditions", "ok", "error", "detail"),
    [
        (["[PACKET_LOSS] < 50", "[CONNECTED] == true"], True, None, None),
        (["[PACKET_LOSS] == 0"], False, ErrorKind.CONDITION, "[PACKET_LOSS] (33.3) == 0"),
        (["[RTT_MAX] < 2000", "[IP] == 127.0.0.1"], True, None, None),
    ],
)
@pytest.mark.usefixtures("raw")
async def test_conditions_read_loss_and_round_trips(monkeypatch, conditions, ok, error, detail):
    _corrupt(monkeypatch, {1})
    config = _config("icmp://127.0.0.1", icmp_socket="raw", timeout="500ms", conditions=conditions)
    _, results = await _ping_all(config)
    (result,) = results.values()
    assert (result.ok, result.error, result.error_detail) == (ok, error, detail)
    assert [(c.condition, c.ok) for c in result.conditions] == [(c, ok) for c in conditions]


@pytest.mark.usefixtures("raw")
async def test_no_reply_can_be_what_a_condition_asks_for(monkeypatch):
    _corrupt(monkeypatch, {0, 1, 2})
    config = _config(
        "icmp://127.0.0.1", icmp_socket="raw", timeout="500ms", conditions=["[CONNECTED] == false"]
    )
    _, results = await _ping_all(config)
    (result,) = results.values()
    assert (result.ok, result.error, result.icmp.received) == (True, None, 0)


@pytest.mark.usefixtures("sockets_allowed")
def test_an_unknown_placeholder_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        make_config(config_doc({"url": "icmp://127.0.0.1", "conditions": ["[STATUS] == 200"]}))
    (line,) = caught.value.problems
    assert line.startswith("<memory>: targets[0].conditions[0]: ")


@pytest.mark.usefixtures("raw", "dgram")
async def test_a_reload_with_another_icmp_socket_chooses_anew():
    raw = _config("icmp://127.0.0.1", icmp_socket="raw")
    dgram = _config("icmp://127.0.0.1", icmp_socket="dgram")
    async with open_icmp_prober(raw) as prober:
        first = await prober.probe(prober.prepare(raw.targets[0]), 1, set())
        await prober.reconfigure(raw, dgram)
        assert prober._listeners == {}  # the raw socket is closed
        second = await prober.probe(prober.prepare(dgram.targets[0]), 2, set())
    assert (first.icmp.socket, second.icmp.socket) == ("raw", "dgram")
    assert second.ok


@pytest.mark.usefixtures("raw")
async def test_a_reload_without_icmp_targets_closes_the_raw_sockets():
    config = _config("icmp://127.0.0.1", icmp_socket="raw")
    async with open_icmp_prober(config) as prober:
        await prober.probe(prober.prepare(config.targets[0]), 1, set())
        (listener,) = prober._listeners.values()
        await prober.reconfigure(config, make_config(config_doc({"url": "http://127.0.0.1/"})))
        assert prober._listeners == {}
        assert listener._sock.fileno() == -1


# --- the socket check at config load -----------------------------------------------------


def _refuse(monkeypatch, *kinds):
    """Play a machine whose kernel refuses these socket kinds (EPERM, EACCES as Linux)."""
    open_socket = sockets.open_socket

    def refusing(kind, ipv6):
        if kind in kinds:
            raise PermissionError(1, "Operation not permitted")
        return open_socket(kind, ipv6)

    monkeypatch.setattr(sockets, "open_socket", refusing)


def test_no_socket_kind_at_all_is_one_config_line(monkeypatch):
    _refuse(monkeypatch, "dgram", "raw")
    doc = config_doc(
        {"url": "http://127.0.0.1/"}, {"url": "icmp://127.0.0.1"}, {"url": "icmp://[::1]"}
    )
    with pytest.raises(ConfigError) as caught:
        make_config(doc)
    (line,) = caught.value.problems
    assert line.startswith("<memory>: targets[1].url: cannot open an ICMP socket: ")
    assert "net.ipv4.ping_group_range" in line
    assert "CAP_NET_RAW" in line
    assert "\n" not in line


def test_a_forced_kind_that_cannot_open_is_its_key(monkeypatch):
    _refuse(monkeypatch, "raw")
    with pytest.raises(ConfigError) as caught:
        make_config(config_doc({"url": "icmp://127.0.0.1"}, monitor={"icmp_socket": "raw"}))
    assert caught.value.problems == [
        "<memory>: monitor.icmp_socket: cannot open an ICMP socket: raw ICMP sockets need "
        "CAP_NET_RAW (e.g. systemd's AmbientCapabilities=CAP_NET_RAW)"
    ]


def test_without_icmp_targets_no_socket_is_tried(monkeypatch):
    _refuse(monkeypatch, "dgram", "raw")
    make_config(config_doc({"url": "http://127.0.0.1/"}, monitor={"icmp_socket": "raw"}))


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"count": 0}, "targets[0].count: must be 1 or more, got 0"),
        ({"count": 101, "spacing": "10ms"}, "targets[0].count: must be 100 or less, got 101"),
        ({"size": 65001}, "targets[0].size: must be 65000 bytes or less, got 65001"),
        (
            {"count": 20, "spacing": "1s", "timeout": "10s"},
            "targets[0].spacing: 20 requests 1s apart do not fit in the timeout (10s):"
            " fewer, closer, or a longer timeout",
        ),
        ({"url": "icmp://127.0.0.1:80"}, "targets[0].url: an icmp:// URL is only a host"),
        ({"url": "icmp://127.0.0.1/x"}, "targets[0].url: an icmp:// URL is only a host"),
        ({"contains": "x"}, "targets[0].contains: unknown key"),
    ],
)
@pytest.mark.usefixtures("sockets_allowed")
def test_bad_icmp_keys_are_one_line_each(keys, problem):
    with pytest.raises(ConfigError) as caught:
        make_config(config_doc({"url": "icmp://127.0.0.1", **keys}))
    (line,) = caught.value.problems
    assert line.startswith(f"<memory>: {problem}")


@pytest.mark.usefixtures("sockets_allowed")
def test_the_spec_has_every_default():
    spec = make_config(config_doc({"url": "icmp://[::1]"})).targets[0].spec
    assert (spec.host, spec.count, spec.spacing, spec.size) == ("::1", 3, 0.2, 56)
    assert (spec.resolver, spec.ip_family) == (None, "any")
    assert icmp.KIND.placeholders.keys() == {
        "PACKET_LOSS",
        "RTT_MAX",
        "RESPONSE_TIME",
        "CONNECTED",
        "IP",
        "PHASE",
    }


# --- metrics, and the real console script -----------------------------------------------


@pytest.mark.usefixtures("raw")
async def test_metrics_have_blackbox_icmp_phases_and_hop_limit():
    _, results = await _ping_all(_config("icmp://127.0.0.1", icmp_socket="raw", name="lo"))
    metrics = Metrics()
    metrics.observe(results["lo"])
    text = metrics.render().decode()
    details = results["lo"].icmp
    assert 'probe_icmp_duration_seconds{phase="resolve",target="lo"} 0.0' in text
    setup = round(details.setup_ms / 1000, 6)
    assert f'probe_icmp_duration_seconds{{phase="setup",target="lo"}} {setup}' in text
    rtt = round(details.rtt_avg_ms / 1000, 6)
    assert f'probe_icmp_duration_seconds{{phase="rtt",target="lo"}} {rtt}' in text
    assert 'probe_icmp_reply_hop_limit{target="lo"} 64.0' in text
    assert 'probe_http_duration_seconds{phase="resolve",target="lo"}' not in text


@pytest.mark.subprocess
@pytest.mark.usefixtures("raw")
async def test_once_through_the_console_script(tmp_path):
    write_config(tmp_path, {"targets": [{"name": "lo", "url": "icmp://127.0.0.1"}]})
    done = await run_cli("run", "--once", "-c", "m.toml", cwd=tmp_path)
    assert done.code == 0, done.stderr
    probe = next(r for r in parse_lines(done.lines) if r["type"] == "probe")
    assert set(probe) == PROBE_KEYS
    assert (probe["kind"], probe["ok"], probe["remote_addr"]) == ("icmp", True, "127.0.0.1")
    assert probe["icmp"]["sent"] == probe["icmp"]["received"] == 3
    assert probe["icmp"]["socket"] in ("dgram", "raw")
    assert probe["latency_ms"] == probe["icmp"]["rtt_avg_ms"]
    print(json.dumps(probe))  # the line docs/kinds/icmp.md shows (pytest -s)


# --- fuzz: count, spacing, size (and the timeout they must fit in) -----------------------

_DURATIONS = st.sampled_from(["1ms", "10ms", "200ms", "1s", "2s", "1h", "0s", "-1s", "1e9s", ""])
_KEY_VALUES = {
    "count": st.integers(min_value=-2, max_value=200) | st.sampled_from(["3", 3.5, True]),
    "spacing": _DURATIONS | st.floats(allow_nan=True) | st.integers(-1, 10),
    "size": st.integers(min_value=-1, max_value=70_000) | st.sampled_from(["1KiB", "64KB", "x"]),
    "timeout": _DURATIONS,
}


@pytest.mark.fuzz
@pytest.mark.usefixtures("sockets_allowed")
@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(keys=st.fixed_dictionaries({}, optional=_KEY_VALUES))
@example(keys={"count": 100, "spacing": "10ms", "timeout": "1s"})  # 99 x 10ms = 990ms: fits
@example(keys={"count": 101})
@example(keys={"size": 65000})
def test_any_count_spacing_and_size_are_a_spec_or_one_line_each(keys):
    try:
        (t,) = make_config(config_doc({"url": "icmp://127.0.0.1", **keys})).targets
    except ConfigError as exc:
        for line in exc.problems:
            key = line.removeprefix("<memory>: targets[0].").partition(":")[0]
            assert key in _KEY_VALUES, line
            assert "\n" not in line
        return
    spec = t.spec
    assert 1 <= spec.count <= icmp.config.MAX_COUNT
    assert 0 <= spec.size <= icmp.config.MAX_SIZE
    assert (spec.count - 1) * spec.spacing < t.timeout


def _any_icmp_socket() -> str:
    for kind in KINDS:
        try:
            sockets.open_socket(kind, False).close()
        except OSError:
            continue
        return kind
    pytest.skip("the kernel refuses both ICMP socket kinds here (see _require)")


@pytest.mark.fuzz
@settings(max_examples=25, deadline=None, database=None)
@given(
    count=st.integers(min_value=1, max_value=4),
    spacing=st.sampled_from(["1ms", "5ms"]),
    size=st.sampled_from([0, 1, 7, 8, 9, 56, 1472, 1473, 9000, 65000]) | st.integers(0, 65000),
)
def test_any_valid_combination_pings_loopback(count, spacing, size):
    """Every request of every accepted combination gets its own reply (sizes around the
    token's 8 bytes and the Ethernet MTU, up to MAX_SIZE)."""
    kind = _any_icmp_socket()
    config = _config("icmp://127.0.0.1", icmp_socket=kind, count=count, spacing=spacing, size=size)
    _, results = trio.run(_ping_all, config)
    (result,) = results.values()
    assert (result.ok, result.error) == (True, None), result.error_detail
    assert (result.icmp.sent, result.icmp.received) == (count, count)
