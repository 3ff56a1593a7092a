"""trio_monitor.net.dns against the loopback DNS server (tests/dns_server.py)."""

from __future__ import annotations

from pathlib import Path

import dns.asyncbackend
import pytest
import trio
import trio.testing
from dns_server import DnsServer

from trio_monitor._errors import ErrorKind, ProbeFailure
from trio_monitor.net.dns import Resolver, read_hosts


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A resolv.conf (1 s x 1 attempt: quick timeouts) and an empty hosts file, so no
    test depends on the machine's files or sends a query outside 127.0.0.1."""
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("")
    return {"resolv_conf": resolv_conf, "hosts_file": hosts}


@pytest.fixture
def resolver(dns_server: DnsServer, files: dict[str, Path]) -> Resolver:
    return Resolver(dns_server.address, **files)


async def failure(resolver: Resolver, host: str, family: str = "any") -> ProbeFailure:
    with pytest.raises(ProbeFailure) as caught:
        await resolver.resolve(host, family)  # type: ignore[arg-type]
    assert caught.value.kind is ErrorKind.DNS
    return caught.value


async def test_several_a_records_in_answer_order(dns_server, resolver):
    dns_server.set("multi.test", a=["127.0.0.3", "127.0.0.2", "127.0.0.4"])
    found = await resolver.resolve("multi.test", "ipv4")
    assert found.addresses == ("127.0.0.3", "127.0.0.2", "127.0.0.4")
    assert found.source == "dns"
    assert found.elapsed >= 0
    assert found.omitted == 0


async def test_any_asks_a_and_aaaa_at_once_and_alternates_ipv4_first(dns_server, resolver):
    dns_server.set("dual.test", a=["127.0.0.2", "127.0.0.3"], aaaa=["::1"])
    found = await resolver.resolve("dual.test")
    assert found.addresses == ("127.0.0.2", "::1", "127.0.0.3")
    assert dns_server.count("dual.test", "A") == 1
    assert dns_server.count("dual.test", "AAAA") == 1


async def test_family_filtering(dns_server, resolver):
    dns_server.set("dual.test", a=["127.0.0.2"], aaaa=["::1"])
    assert (await resolver.resolve("dual.test", "ipv6")).addresses == ("::1",)
    assert (await resolver.resolve("dual.test", "ipv4")).addresses == ("127.0.0.2",)
    assert dns_server.count("dual.test", "A") == 1  # each family asked only for itself
    assert dns_server.count("dual.test", "AAAA") == 1


async def test_one_family_is_enough_for_any(dns_server, resolver):
    dns_server.set("v4only.test", a=["127.0.0.2"])
    assert (await resolver.resolve("v4only.test")).addresses == ("127.0.0.2",)


async def test_nxdomain(resolver):
    assert (await failure(resolver, "nowhere.test")).detail == (
        "NXDOMAIN: nowhere.test does not exist"
    )


@pytest.mark.parametrize(
    ("family", "detail"),
    [
        ("ipv6", "no AAAA record for v4only.test"),
        ("ipv4", "no A record for v6only.test"),
        ("any", "no A or AAAA record for empty.test"),
    ],
)
async def test_no_record_of_the_family(dns_server, resolver, family, detail):
    dns_server.set("v4only.test", a=["127.0.0.2"])
    dns_server.set("v6only.test", aaaa=["::1"])
    dns_server.set("empty.test")
    host = detail.rpartition(" ")[2]
    assert (await failure(resolver, host, family)).detail == detail


async def test_servfail_names_the_nameserver(dns_server, resolver):
    dns_server.set("broken.test", rcode="SERVFAIL")
    host, port = dns_server.address
    assert (await failure(resolver, "broken.test")).detail == f"SERVFAIL from {host}:{port}"


async def test_a_silent_nameserver_is_a_timeout_within_the_bound(dns_server, resolver):
    dns_server.set("hang.test", silent=True)
    host, port = dns_server.address
    assert resolver.timeout == 1.0  # timeout:1 x attempts:1 x one nameserver
    started = trio.current_time()
    caught = await failure(resolver, "hang.test", "ipv4")
    assert caught.detail == f"no answer from {host}:{port} within 1s"
    assert trio.current_time() - started < 1.5


async def test_the_bound_is_timeout_times_attempts_times_nameservers(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "nameserver 127.0.0.1\nnameserver 127.0.0.2\noptions timeout:3 attempts:4 rotate\n"
    )
    resolver = Resolver(resolv_conf=conf, hosts_file=tmp_path / "none")
    assert resolver.timeout == 3 * 4 * 2
    assert resolver.nameservers == ("127.0.0.1:53", "127.0.0.2:53")
    conf.write_text("options attempts:99\n")  # no nameserver: 127.0.0.1 (glibc); at most 5
    resolver = Resolver(resolv_conf=conf, hosts_file=tmp_path / "none")
    assert resolver.nameservers == ("127.0.0.1:53",)
    assert resolver.timeout == 2 * 5  # dnspython's 2 s
    assert Resolver(("::1", 5353), resolv_conf=conf).nameservers == ("[::1]:5353",)


async def test_a_truncated_udp_answer_is_asked_again_over_tcp(dns_server, resolver):
    many = [f"127.0.1.{i}" for i in range(1, 11)]
    dns_server.set("big.test", a=many, truncate=True)
    assert (await resolver.resolve("big.test", "ipv4", limit=10)).addresses == tuple(many)
    assert dns_server.count("big.test", transport="udp") == 1
    assert dns_server.count("big.test", transport="tcp") == 1


async def test_hosts_entries_win_for_their_family(dns_server, files):
    files["hosts_file"].write_text(
        "# comment\n127.0.0.9  pinned.test alias.test  # trailing\n"
        "not-an-ip pinned.test\n::1 six.test\n"
    )
    dns_server.set("pinned.test", a=["127.0.0.2"], aaaa=["::1"])
    dns_server.set("six.test", a=["127.0.0.5"])
    resolver = Resolver(dns_server.address, **files)
    found = await resolver.resolve("Pinned.Test.")
    assert (found.addresses, found.source) == (("127.0.0.9",), "hosts")
    assert (await resolver.resolve("alias.test", "ipv4")).addresses == ("127.0.0.9",)
    assert dns_server.count("pinned.test") == 0
    # no IPv4 entry for six.test in the file: DNS answers for ipv4
    assert (await resolver.resolve("six.test", "ipv4")).addresses == ("127.0.0.5",)
    assert dns_server.count("six.test") == 1


def test_read_hosts(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 a.test A.test\n::1 a.test\n\n  # x\n1.2.3 b.test\n127.0.0.2\n")
    assert read_hosts(hosts) == {"a.test": ("127.0.0.1", "::1")}
    assert read_hosts(tmp_path / "missing") == {}


@pytest.mark.parametrize(
    ("host", "address"), [("127.0.0.7", "127.0.0.7"), ("::1", "::1"), ("[::1]", "::1")]
)
async def test_ip_literals_are_returned_without_a_query(dns_server, resolver, host, address):
    found = await resolver.resolve(host, "ipv6")
    assert (found.addresses, found.source, found.elapsed) == ((address,), "literal", 0.0)
    assert dns_server.count() == 0


async def test_the_cache_honours_the_ttl_only_when_asked(dns_server, resolver, autojump_clock):
    dns_server.set("cached.test", a=["127.0.0.2"], ttl=30)
    for _ in range(3):  # fresh: every lookup asks
        await resolver.resolve("cached.test", "ipv4", cache=False)
    assert dns_server.count("cached.test") == 3
    first = await resolver.resolve("cached.test", "ipv4", cache=True)
    await trio.sleep(29)
    again = await resolver.resolve("cached.test", "ipv4", cache=True)
    assert (first.source, again.source) == ("dns", "cache")
    assert again.addresses == ("127.0.0.2",)
    assert dns_server.count("cached.test") == 4
    await resolver.resolve("cached.test", "ipv4", cache=False)  # fresh never reads it
    assert dns_server.count("cached.test") == 5
    await trio.sleep(1)  # the TTL is over
    assert (await resolver.resolve("cached.test", "ipv4", cache=True)).source == "dns"
    assert dns_server.count("cached.test") == 6


async def test_a_zero_ttl_is_not_cached(dns_server, resolver):
    dns_server.set("zero.test", a=["127.0.0.2"], ttl=0)
    for _ in range(2):
        await resolver.resolve("zero.test", "ipv4", cache=True)
    assert dns_server.count("zero.test") == 2


async def test_half_an_answer_is_used_but_not_cached(dns_server, resolver, autojump_clock):
    dns_server.set("half.test", a=["127.0.0.2"], aaaa=["::1"], silent_for=["AAAA"])
    for _ in range(2):
        found = await resolver.resolve("half.test", cache=True)
        assert found.addresses == ("127.0.0.2",)
        assert found.elapsed == pytest.approx(resolver.timeout)  # AAAA was waited for
    assert dns_server.count("half.test", "A") == 2


async def test_the_cache_is_capped(dns_server, files):
    resolver = Resolver(dns_server.address, cache_size=2, **files)
    for name in ("a.test", "b.test", "c.test"):
        dns_server.set(name, a=["127.0.0.2"])
        await resolver.resolve(name, "ipv4", cache=True)
    await resolver.resolve("a.test", "ipv4", cache=True)  # the oldest went
    await resolver.resolve("c.test", "ipv4", cache=True)
    assert dns_server.count("a.test") == 2
    assert dns_server.count("c.test") == 1


async def test_the_limit_caps_and_counts_the_rest(dns_server, resolver):
    dns_server.set("many.test", a=[f"127.0.0.{i}" for i in range(2, 8)], aaaa=["::1", "::2"])
    found = await resolver.resolve("many.test", limit=4)
    assert found.addresses == ("127.0.0.2", "::1", "127.0.0.3", "::2")  # both families kept
    assert found.omitted == 4
    with pytest.raises(ValueError, match="limit"):
        await resolver.resolve("many.test", limit=0)


async def test_a_surrounding_deadline_cancels_a_lookup(dns_server, resolver, autojump_clock):
    dns_server.set("hang.test", silent=True)
    with trio.move_on_after(0.25) as scope:
        await resolver.resolve("hang.test")
    assert scope.cancelled_caught
    assert trio.current_time() == pytest.approx(0.25)


async def test_a_cancelled_lookup_leaves_no_task_behind(dns_server, resolver):
    dns_server.set("hang.test", silent=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(resolver.resolve, "hang.test")
        await trio.testing.wait_all_tasks_blocked()
        assert dns_server.count("hang.test") == 2  # A and AAAA, in parallel
        nursery.cancel_scope.cancel()
    assert dns_server.count("hang.test") == 2


async def test_trio_is_used_whatever_library_dnspython_sniffed_first(
    dns_server, resolver, monkeypatch
):
    # get_default_backend() keeps the first library it sniffs, process-wide
    monkeypatch.setattr(
        dns.asyncbackend, "_default_backend", dns.asyncbackend.get_backend("asyncio")
    )
    dns_server.set("any.test", a=["127.0.0.2"])
    assert (await resolver.resolve("any.test", "ipv4")).addresses == ("127.0.0.2",)


async def test_nxdomain_for_one_family_ends_the_lookup(dns_server, resolver, autojump_clock):
    dns_server.set("gone.test", rcode="NXDOMAIN", silent_for=["AAAA"])
    started = trio.current_time()
    assert (await failure(resolver, "gone.test")).detail == "NXDOMAIN: gone.test does not exist"
    assert trio.current_time() - started < resolver.timeout  # AAAA not waited for
