"""A small authoritative DNS server for tests, running inside the test's trio loop.

It listens on 127.0.0.1, UDP and TCP on the same OS-chosen port, and answers from
records a test sets per name (``DnsServer.set``): A/AAAA lists with a TTL, records of
any other type as text (``records={"MX": ["10 mail.test."]}``; a CNAME is followed
within the table, as an authoritative server does), records for the authority section,
an rcode (NXDOMAIN, SERVFAIL...), silence (a nameserver that never answers), or a
truncated UDP answer (the full one comes over TCP; an answer too big for the client's
UDP size is truncated anyway). A name nobody set is NXDOMAIN. Every query
is recorded (``queries``, ``count``), so a test can prove a lookup did or did not
happen. Messages are built and parsed by dnspython.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

import attrs
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import trio

HOST = "127.0.0.1"


@attrs.frozen
class Records:
    """What the server answers for one name."""

    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    ttl: int = 60
    rcode: str = "NOERROR"
    silent: bool = False  # no answer at all, over either transport
    silent_for: tuple[str, ...] = ()  # record types ("AAAA") never answered
    truncate: bool = False  # over UDP: TC set and no records, so a client retries over TCP
    # other record types ("MX", "TXT", "CNAME"...): their data as zone-file text
    other: tuple[tuple[str, tuple[str, ...]], ...] = ()
    authority: tuple[tuple[str, tuple[str, ...]], ...] = ()  # sent in the authority section

    def of_type(self, rdtype: str) -> tuple[str, ...]:
        addresses = {"A": self.a, "AAAA": self.aaaa}.get(rdtype, ())
        return addresses + dict(self.other).get(rdtype, ())


@attrs.frozen
class Query:
    name: str  # lower-case, no trailing dot
    rdtype: str  # "A", "AAAA", ...
    transport: str  # "udp" or "tcp"


class DnsServer:
    """Create it with ``start_dns_server``; ``address`` is its (host, port)."""

    def __init__(self, udp: trio.socket.SocketType, tcp: trio.SocketListener) -> None:
        self._udp = udp
        self._tcp = tcp
        self.records: dict[str, Records] = {}
        self.queries: list[Query] = []

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._udp.getsockname()
        return host, port

    def set(
        self,
        name: str,
        *,
        a: Sequence[str] = (),
        aaaa: Sequence[str] = (),
        ttl: int = 60,
        rcode: str = "NOERROR",
        silent: bool = False,
        silent_for: Sequence[str] = (),
        truncate: bool = False,
        records: Mapping[str, Sequence[str]] | None = None,
        authority: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.records[_key(name)] = Records(
            tuple(a),
            tuple(aaaa),
            ttl,
            rcode,
            silent,
            tuple(silent_for),
            truncate,
            _pairs(records),
            _pairs(authority),
        )

    def count(
        self, name: str | None = None, rdtype: str | None = None, transport: str | None = None
    ) -> int:
        """How many queries matched every criterion given."""
        return sum(
            (name is None or q.name == _key(name))
            and (rdtype is None or q.rdtype == rdtype)
            and (transport is None or q.transport == transport)
            for q in self.queries
        )

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        """The reply to one query message, or None for no reply."""
        try:
            query = dns.message.from_wire(wire)
            question = query.question[0]
        except Exception:  # garbage gets no answer, like from a real server
            return None
        name, rdtype = _key(question.name.to_text()), dns.rdatatype.to_text(question.rdtype)
        self.queries.append(Query(name, rdtype, transport))
        records = self.records.get(name, Records(rcode="NXDOMAIN"))
        if records.silent or rdtype in records.silent_for:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.set_rcode(dns.rcode.from_text(records.rcode))
        if records.truncate and transport == "udp":
            return _truncated(response)
        owner = question.name
        for _ in range(8):  # a CNAME's target is looked up in the table too (not a loop)
            cname = records.of_type("CNAME") if rdtype != "CNAME" else ()
            found = cname or records.of_type(rdtype)
            if found:
                response.answer.append(
                    _rrset(owner, records.ttl, "CNAME" if cname else rdtype, found)
                )
            target = self.records.get(_key(cname[0])) if cname else None
            if target is None:
                break
            owner, records = dns.name.from_text(cname[0]), target
        for authority_type, data in records.authority:
            response.authority.append(_rrset(question.name, records.ttl, authority_type, data))
        # records in the order set; over UDP at most what the client said it takes
        # (512 bytes, or its EDNS payload), else TC set and no records, as servers do
        limit = 65535 if transport == "tcp" else max(512, query.payload if query.edns >= 0 else 0)
        try:
            return response.to_wire(want_shuffle=False, max_size=limit)
        except dns.exception.TooBig:
            return _truncated(response)

    async def serve_udp(self) -> None:
        with self._udp:
            while True:
                wire, peer = await self._udp.recvfrom(65535)
                reply = self.answer(wire, "udp")
                if reply is not None:
                    await self._udp.sendto(reply, peer)

    async def serve_tcp(self) -> None:
        async with self._tcp:
            await trio.serve_listeners(self._serve_connection, [self._tcp])

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        async with stream:
            buffer = b""
            try:
                while True:  # 2-byte length, then the message (RFC 1035 4.2.2)
                    while len(buffer) < 2 or len(buffer) < 2 + int.from_bytes(buffer[:2]):
                        data = await stream.receive_some()
                        if not data:
                            return
                        buffer += data
                    size = int.from_bytes(buffer[:2])
                    wire, buffer = buffer[2 : 2 + size], buffer[2 + size :]
                    reply = self.answer(wire, "tcp")
                    if reply is None:
                        await trio.sleep_forever()
                    await stream.send_all(len(reply).to_bytes(2) + reply)
            except trio.BrokenResourceError:
                return


def _key(name: str) -> str:
    return name.lower().rstrip(".")


def _truncated(response: dns.message.Message) -> bytes:
    response.flags |= dns.flags.TC
    for section in (response.answer, response.authority, response.additional):
        section.clear()
    return response.to_wire()


def _pairs(records: Mapping[str, Sequence[str]] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((rdtype, tuple(data)) for rdtype, data in (records or {}).items())


def _rrset(owner: dns.name.Name, ttl: int, rdtype: str, data: Sequence[str]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(owner, ttl, dns.rdataclass.IN, rdtype, list(data))


async def start_dns_server(nursery: trio.Nursery) -> DnsServer:
    """A DnsServer on 127.0.0.1, UDP and TCP on one port, served in `nursery`."""
    for _ in range(20):  # the OS picks a free UDP port; the same TCP port is rarely taken
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await udp.bind((HOST, 0))
        tcp = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            await tcp.bind(udp.getsockname())
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen()
        server = DnsServer(udp, trio.SocketListener(tcp))
        nursery.start_soon(server.serve_udp)
        nursery.start_soon(server.serve_tcp)
        return server
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")
