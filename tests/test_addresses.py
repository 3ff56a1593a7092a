"""addresses = "all": every address behind a name, against the loopback DNS server and
servers on several loopback addresses (127.0.0.2, 127.0.0.3, ...) sharing one port."""

from __future__ import annotations

import ssl
from functools import partial

import pytest
import trio
import trustme
from test_http import OK, RawServer
from test_probe import make_plan

from trio_monitor._config import ConfigError, parse_config
from trio_monitor._errors import ErrorKind
from trio_monitor._records import to_dict
from trio_monitor.probes.http import HttpProber
from trio_monitor.probes.http.wire import ProbeTransport

NAME = "multi.test"


async def listen(nursery: trio.Nursery, hosts: list[str], port: int = 0, **kw) -> tuple[int, dict]:
    """A RawServer answering OK on each of `hosts`, all on one port -> (port, servers)."""
    servers = {}
    for host in hosts:
        server = RawServer(OK, None)
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, port, host=host))
        port = listeners[0].socket.getsockname()[1]
        servers[host] = server
    return port, servers


@pytest.fixture
async def prober():
    async with ProbeTransport(per_host=8) as transport:
        yield HttpProber(transport)


async def probe_all(prober, dns_server, port: int, scheme="http", **target):
    resolver = "{}:{}".format(*dns_server.address)
    plan = make_plan(f"{scheme}://{NAME}:{port}/", addresses="all", resolver=resolver, **target)
    return await prober.probe(plan, 1, set())


async def test_every_address_is_probed_and_a_dead_one_fails_the_target(nursery, dns_server, prober):
    port, servers = await listen(nursery, ["127.0.0.2", "127.0.0.3"])
    dns_server.set(NAME, a=["127.0.0.2", "127.0.0.3", "127.0.0.4"])  # nothing on .4
    result = await probe_all(prober, dns_server, port, retries=0)

    assert (result.ok, result.error) == (False, ErrorKind.CONNECT)
    assert result.error_detail == "1 of 3 addresses fail: 127.0.0.4 connect"
    line = to_dict(result)["addresses"]
    assert [(a["addr"], a["ok"], a["error"]) for a in line] == [
        ("127.0.0.2", True, None),
        ("127.0.0.3", True, None),
        ("127.0.0.4", False, "connect"),
    ]
    assert line[0]["latency_ms"] > 0
    assert line[2]["latency_ms"] is None
    # each live address got exactly one request, for the name (Host stays the name)
    for server in servers.values():
        (head,) = server.requests
        assert f"host: {NAME}:{port}".encode() in head.lower()
    assert result.phases_ms["dns"] > 0  # the one lookup


async def test_min_addresses_ok(nursery, dns_server, prober):
    port, _ = await listen(nursery, ["127.0.0.2", "127.0.0.3"])
    dns_server.set(NAME, a=["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    result = await probe_all(prober, dns_server, port, retries=0, min_addresses_ok=2)

    assert (result.ok, result.error, result.error_detail) == (True, None, None)
    assert [a.ok for a in result.addresses] == [True, True, False]  # still shown

    dns_server.set(NAME, a=["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"])
    result = await probe_all(prober, dns_server, port, retries=0, min_addresses_ok=3)
    assert result.ok is False
    assert result.error_detail == (
        "2 of 4 addresses fail: 127.0.0.4 connect, 127.0.0.5 connect (2 ok, min_addresses_ok 3)"
    )


async def test_too_few_addresses_for_min_addresses_ok(nursery, dns_server, prober):
    port, _ = await listen(nursery, ["127.0.0.2"])
    dns_server.set(NAME, a=["127.0.0.2"])
    result = await probe_all(prober, dns_server, port, min_addresses_ok=2)

    assert (result.ok, result.error) == (False, ErrorKind.DNS)
    assert "only 1 addresses behind the name, min_addresses_ok is 2" in result.error_detail


async def test_ipv4_and_ipv6_and_a_hanging_address(nursery, dns_server, prober):
    async def never(stream):
        async with stream:
            await trio.sleep_forever()

    port, _ = await listen(nursery, ["127.0.0.2", "::1"])
    await nursery.start(partial(trio.serve_tcp, never, port, host="127.0.0.3"))
    dns_server.set(NAME, a=["127.0.0.2", "127.0.0.3"], aaaa=["::1"])
    result = await probe_all(prober, dns_server, port, timeout="500ms", retries=0)

    assert [(a.addr, a.ok, a.error) for a in result.addresses] == [
        ("127.0.0.2", True, None),
        ("::1", True, None),  # A and AAAA alternate, IPv4 first
        ("127.0.0.3", False, ErrorKind.TIMEOUT),
    ]
    assert result.error_detail == "1 of 3 addresses fail: 127.0.0.3 timeout"

    dns_server.set(NAME, a=["127.0.0.2"], aaaa=["::1"])
    only_v6 = await probe_all(prober, dns_server, port, ip_family="ipv6")
    assert [a.addr for a in only_v6.addresses] == ["::1"]
    assert only_v6.remote_addr == f"[::1]:{port}"


async def test_tls_keeps_the_name_for_sni_and_verification(nursery, dns_server, prober, tmp_path):
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(NAME).configure_cert(server_ctx)
    seen: list[str | None] = []

    def remember(sslobj, name, _ctx):
        seen.append(name)

    server_ctx.sni_callback = remember

    async def handle(stream):
        tls = trio.SSLStream(stream, server_ctx, server_side=True)
        async with tls:
            await tls.do_handshake()
            data = b""
            while b"\r\n\r\n" not in data:
                data += await tls.receive_some(65536)
            await tls.send_all(OK)

    port = 0
    for host in ("127.0.0.2", "127.0.0.3"):
        listeners = await nursery.start(partial(trio.serve_tcp, handle, port, host=host))
        port = listeners[0].socket.getsockname()[1]
    dns_server.set(NAME, a=["127.0.0.2", "127.0.0.3"])
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    result = await probe_all(prober, dns_server, port, scheme="https", ca_file=str(ca_file))

    assert result.ok, result
    assert [a.ok for a in result.addresses] == [True, True]
    assert seen == [NAME, NAME]  # SNI is the name at both addresses
    assert result.tls is not None


async def test_a_name_that_does_not_resolve(dns_server, prober):
    result = await probe_all(prober, dns_server, 80)

    assert (result.ok, result.error) == (False, ErrorKind.DNS)
    assert "NXDOMAIN" in result.error_detail
    assert result.addresses is None


def test_all_addresses_cannot_go_through_a_proxy():
    doc = {
        "targets": [
            {"url": "http://example.test/", "addresses": "all", "proxy": "http://127.0.0.1:1"}
        ]
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env={})
    assert 'targets[0].addresses: "all" cannot be used with a proxy or http2' in str(caught.value)
