"""Name resolution for probes: IP literals, then /etc/hosts, then DNS on trio.

The system resolver (trio's getaddrinfo) runs each lookup in a worker thread: it cannot
be timed apart from the connection, nor cancelled (the thread runs on after a deadline),
and a slow nameserver ties up the thread pool of the whole process. Here a lookup is
dnspython's async stub resolver on trio sockets: one UDP (or TCP, after a truncated
answer) exchange per question, in the probe's task, inside the probe's cancel scope.

What the system resolver's files still decide (read once, when a Resolver is made):
- /etc/resolv.conf as dnspython reads it (nameserver, search/domain, options ndots,
  timeout, rotate, edns0), plus `options attempts:N`, which dnspython ignores: a
  lookup's bound is timeout x attempts x nameservers, as glibc's. No nameserver line:
  127.0.0.1, as glibc (resolv.conf(5)).
- /etc/hosts, which dnspython never reads: its entries for the family asked win over
  DNS, as with nsswitch's "files dns".

Errors are `ProbeFailure(ErrorKind.DNS, detail)`, one line saying what the nameserver
answered (NXDOMAIN, no A record, SERVFAIL from X) or that it did not within the bound.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.message
import dns.nameserver
import dns.rdatatype
import dns.resolver
import trio
from attrs import frozen

from .._config import IpFamily as Family
from .._errors import ErrorKind, ProbeFailure
from .addr import ip_literal, with_port

Source = Literal["literal", "hosts", "dns", "cache"]

HOSTS_FILE = "/etc/hosts"
RESOLV_CONF = "/etc/resolv.conf"
DEFAULT_ATTEMPTS = 2  # glibc's, resolv.conf(5); it caps attempts at 5
MAX_ATTEMPTS = 5
MAX_ADDRESSES = 64  # kept per name: a resolution's `limit` is at most this
CACHE_SIZE = 4096  # names (per family) remembered with cache=True; the oldest go first
MAX_TTL = 86400.0  # a TTL longer than a day is a zone's typo, not a reason to stop looking

_RDTYPES: Mapping[Family, tuple[dns.rdatatype.RdataType, ...]] = {
    "ipv4": (dns.rdatatype.A,),
    "ipv6": (dns.rdatatype.AAAA,),
    "any": (dns.rdatatype.A, dns.rdatatype.AAAA),
}
_RECORDS: Mapping[Family, str] = {"ipv4": "A", "ipv6": "AAAA", "any": "A or AAAA"}


@frozen
class Resolution:
    """The addresses a host name stands for, the first one first.

    `addresses` keep each family's answer order; with family "any" they alternate,
    IPv4 first (so "the first address" is an A record when there is one, and a cap
    keeps both families). `omitted`: how many more the name had beyond the limit.
    `elapsed`: seconds spent, trio's clock (0 for a literal; a cache hit costs ~0).
    """

    host: str
    addresses: tuple[str, ...]
    source: Source
    elapsed: float
    omitted: int = 0


def read_hosts(path: str | Path) -> dict[str, tuple[str, ...]]:
    """A hosts(5) file: name (lower-case) -> its addresses in file order.

    Each line is `ADDRESS NAME [ALIAS...]`; `#` starts a comment; a line whose first
    field is not an IP address is skipped, as glibc does. No file: no entries.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    hosts: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) < 2:
            continue
        address = ip_literal(fields[0])
        if address is None:
            continue
        for name in fields[1:]:
            known = hosts.setdefault(_hosts_key(name), [])
            if address not in known:
                known.append(address)
    return {name: tuple(addresses) for name, addresses in hosts.items()}


def _hosts_key(name: str) -> str:
    return name.lower().rstrip(".")


def _is_ipv6(address: str) -> bool:
    return ":" in address


def _of_family(addresses: Iterable[str], family: Family) -> list[str]:
    if family == "any":
        return list(addresses)
    want_ipv6 = family == "ipv6"
    return [a for a in addresses if _is_ipv6(a) == want_ipv6]


def _interleaved(addresses: Iterable[str]) -> tuple[str, ...]:
    """IPv4 and IPv6 addresses alternating, IPv4 first, each family in its order."""
    v4 = [a for a in addresses if not _is_ipv6(a)]
    v6 = [a for a in addresses if _is_ipv6(a)]
    out: list[str] = []
    for i in range(max(len(v4), len(v6))):
        out.extend(family[i] for family in (v4, v6) if i < len(family))
    return tuple(out)


def _attempts(resolv_conf: str) -> int:
    """`options attempts:N` of a resolv.conf text (the last one wins, as in glibc)."""
    attempts = DEFAULT_ATTEMPTS
    for line in resolv_conf.splitlines():
        fields = line.split()
        if fields[:1] != ["options"]:
            continue
        for option in fields[1:]:
            name, _, value = option.partition(":")
            if name == "attempts" and value.isdigit():
                attempts = min(max(int(value), 1), MAX_ATTEMPTS)
    return attempts


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _configured_stub(resolv_conf: str) -> dns.asyncresolver.Resolver:
    """dnspython's stub resolver, set up from a resolv.conf text as dnspython reads it."""
    stub = dns.asyncresolver.Resolver(configure=False)
    try:
        stub.read_resolv_conf(io.StringIO(resolv_conf))
    except dns.resolver.NoResolverConfiguration:  # no nameserver line (the rest is read)
        stub.nameservers = ["127.0.0.1"]
    return stub


def _nameservers_of(stub: dns.asyncresolver.Resolver) -> list[tuple[str, int]]:
    return [(str(ns), stub.port) for ns in stub.nameservers]


def system_nameservers(resolv_conf: str | Path = RESOLV_CONF) -> tuple[tuple[str, int], ...]:
    """The nameservers a Resolver without `nameserver` asks, as (IP, port), in
    resolv.conf's order (none listed: 127.0.0.1, as glibc)."""
    return tuple(_nameservers_of(_configured_stub(_read_text(resolv_conf))))


class Resolver:
    """Resolves host names for probes; configured once, shared by every lookup.

    `nameserver` (IP, port) replaces resolv.conf's nameservers (the `resolver` key);
    resolv.conf's other settings still apply. `hosts_file` and `resolv_conf` are read
    here, once (tests point them at their own files).
    """

    def __init__(
        self,
        nameserver: tuple[str, int] | None = None,
        *,
        hosts_file: str | Path = HOSTS_FILE,
        resolv_conf: str | Path = RESOLV_CONF,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        conf = _read_text(resolv_conf)
        stub = _configured_stub(conf)
        servers = [nameserver] if nameserver is not None else _nameservers_of(stub)
        stub.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in servers]
        self._labels = {
            str(ns): with_port(ip, port)
            for ns, (ip, port) in zip(stub.nameservers, servers, strict=True)
        }
        # a lookup's bound: each nameserver gets `attempts` tries of `timeout` seconds
        # (resolv.conf's `timeout:`, else dnspython's 2 s), as in glibc
        self.timeout = float(stub.timeout) * _attempts(conf) * len(servers)
        stub.lifetime = self.timeout
        stub.cache = None  # ours below: dnspython's would also serve cache=False lookups
        self._stub = stub
        # Named, not sniffed: get_default_backend() keeps the first library it sniffs,
        # process-wide, whatever ran first (an asyncio test, a benchmark).
        self._backend = dns.asyncbackend.get_backend("trio")
        self._hosts = read_hosts(hosts_file)
        self._cache: OrderedDict[tuple[str, Family], tuple[float, tuple[str, ...], int]] = (
            OrderedDict()
        )
        self._cache_size = cache_size

    @property
    def nameservers(self) -> tuple[str, ...]:
        """Where questions go, as "IP:PORT" ("[IPv6]:PORT")."""
        return tuple(self._labels.values())

    async def resolve(
        self, host: str, family: Family = "any", *, limit: int = 16, cache: bool = False
    ) -> Resolution:
        """The addresses of `host` (at most `limit`), or ProbeFailure(DNS, why).

        An IP literal is returned as it is, whatever `family`. `cache=True` (connection
        "reuse") answers from earlier lookups within their TTL; `cache=False` ("fresh")
        asks every time. Cancellable at every wait; bounded by `self.timeout`.
        """
        if not 1 <= limit <= MAX_ADDRESSES:
            raise ValueError(f"limit must be 1-{MAX_ADDRESSES}, got {limit}")
        started = trio.current_time()
        literal = ip_literal(host)
        if literal is not None:
            return Resolution(host, (literal,), "literal", 0.0)
        key = (_hosts_key(host), family)
        source: Source
        if cache and (hit := self._cached(key)) is not None:
            addresses, total = hit
            source = "cache"
        elif known := _of_family(self._hosts.get(key[0], ()), family):
            addresses, total = _interleaved(known), len(known)
            source = "hosts"
        else:
            found, ttl = await self._ask(host, family)
            addresses, total = found[:MAX_ADDRESSES], len(found)
            source = "dns"
            if cache and ttl > 0:
                self._remember(key, addresses, total, ttl)
        return Resolution(
            host,
            addresses[:limit],
            source,
            trio.current_time() - started,
            omitted=max(0, total - limit),
        )

    # --- DNS ---------------------------------------------------------------------

    async def _ask(self, host: str, family: Family) -> tuple[tuple[str, ...], float]:
        """Every address DNS has for `host` and the smallest TTL, asking A and AAAA
        at once for "any"; ProbeFailure when none."""
        outcomes: dict[dns.rdatatype.RdataType, dns.resolver.Answer | Exception] = {}

        async def ask(rdtype: dns.rdatatype.RdataType, done: trio.CancelScope) -> None:
            try:
                outcomes[rdtype] = await self._stub.resolve(
                    host, rdtype, search=True, backend=self._backend
                )
            except dns.resolver.NXDOMAIN as exc:
                outcomes[rdtype] = exc
                done.cancel()  # the name does not exist: the other family cannot change that
            except dns.exception.DNSException as exc:
                outcomes[rdtype] = exc

        # dnspython bounds a lookup by the wall clock; this bound is trio's, so the
        # probe's own clock (and a test's autojump clock) governs it too
        with trio.move_on_after(self.timeout):
            async with trio.open_nursery() as nursery:
                for rdtype in _RDTYPES[family]:
                    nursery.start_soon(ask, rdtype, nursery.cancel_scope)
        return self._verdict(host, family, outcomes)

    def _verdict(
        self,
        host: str,
        family: Family,
        outcomes: Mapping[dns.rdatatype.RdataType, dns.resolver.Answer | Exception],
    ) -> tuple[tuple[str, ...], float]:
        answers = [a for a in outcomes.values() if isinstance(a, dns.resolver.Answer)]
        found = [rr.address for answer in answers if answer.rrset for rr in answer.rrset]
        if found:
            # half an answer (one family failed) is used, not remembered
            complete = all(
                isinstance(outcomes.get(t), dns.resolver.Answer | dns.resolver.NoAnswer)
                for t in _RDTYPES[family]
            )
            ttl = min(a.chaining_result.minimum_ttl for a in answers) if complete else 0
            return _interleaved(dict.fromkeys(found)), min(float(ttl), MAX_TTL)
        raise ProbeFailure(ErrorKind.DNS, self._why(host, family, outcomes))

    def _why(
        self,
        host: str,
        family: Family,
        outcomes: Mapping[dns.rdatatype.RdataType, dns.resolver.Answer | Exception],
    ) -> str:
        """One line: why no address (the most telling reason first)."""
        failures = [o for o in outcomes.values() if isinstance(o, Exception)]
        if any(isinstance(f, dns.resolver.NXDOMAIN) for f in failures):
            return f"NXDOMAIN: {host} does not exist"
        reasons = [self._reason(f) for f in failures if not isinstance(f, dns.resolver.NoAnswer)]
        unanswered = len(outcomes) < len(_RDTYPES[family])
        if unanswered or any(isinstance(f, dns.exception.Timeout) for f in failures):
            reasons.insert(0, self._no_answer())
        if reasons:
            return "; ".join(dict.fromkeys(r for r in reasons if r))
        return f"no {_RECORDS[family]} record for {host}"

    def _no_answer(self) -> str:
        return f"no answer from {', '.join(self.nameservers)} within {_seconds(self.timeout)}"

    def _reason(self, failure: Exception) -> str:
        if isinstance(failure, dns.exception.Timeout):
            return ""  # said once, by _no_answer
        if isinstance(failure, dns.resolver.NoNameservers):
            return "; ".join(
                dict.fromkeys(self._nameserver_error(*e) for e in failure.kwargs["errors"])
            )
        return str(failure)

    def _nameserver_error(
        self, server: str, tcp: bool, _port: int, error: object, _response: object
    ) -> str:
        where = self._labels.get(server, server)
        if isinstance(error, str):  # an rcode: SERVFAIL, REFUSED, NOTIMP...
            return f"{error} from {where}"
        if isinstance(error, dns.message.Truncated):
            return f"truncated answer from {where} over {'TCP' if tcp else 'UDP'}"
        if isinstance(error, OSError):
            return f"{where}: {(error.strerror or str(error)).lower()}"
        if isinstance(error, dns.exception.FormError | EOFError):
            return f"malformed answer from {where}"
        return f"{where}: {error}"

    # --- cache -------------------------------------------------------------------

    def _cached(self, key: tuple[str, Family]) -> tuple[tuple[str, ...], int] | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        expires, addresses, total = entry
        if trio.current_time() >= expires:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return addresses, total

    def _remember(
        self, key: tuple[str, Family], addresses: tuple[str, ...], total: int, ttl: float
    ) -> None:
        self._cache[key] = (trio.current_time() + ttl, addresses, total)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
