"""ICMP and ICMPv6 echo messages: building requests, reading replies.

Pure functions on bytes, no sockets. A reply is accepted only if it is an echo reply
(type 0, ICMPv6 129, code 0) long enough for its header, with a valid checksum
(IPv4: checked here; ICMPv6: its checksum covers a pseudo-header with addresses we do
not see, and the kernel verifies it before a read returns the packet: raw ICMPv6
sockets checksum by default, ping sockets get what icmpv6_rcv accepted), and what it
echoes is for the waiting probe to match: identifier, sequence number, payload.
"""

from __future__ import annotations

import struct

from attrs import frozen

ECHO_REQUEST = {False: 8, True: 128}  # by "is IPv6"
ECHO_REPLY = {False: 0, True: 129}
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
HEADER_SIZE = _HEADER.size
_FILLER = b"trio-monitor "


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum (RFC 1071): the ones' complement of the ones' complement
    sum of 16-bit big-endian words, an odd last byte padded with zero. A message that
    carries its own checksum sums to 0."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def payload(token: bytes, size: int) -> bytes:
    """`size` bytes: the probe's random token first (what tells its replies from another
    pinger's with the same identifier), then filler text as ping's pattern would be."""
    body = token + _FILLER * (size // len(_FILLER) + 1)
    return body[:size]


def echo_request(ipv6: bool, ident: int, seq: int, data: bytes) -> bytes:
    """An echo request. The checksum is computed for IPv4; for ICMPv6 it covers a
    pseudo-header with the source address, which the kernel fills in on send (raw
    ICMPv6 and ping sockets both do), so it is left 0 here."""
    message = _HEADER.pack(ECHO_REQUEST[ipv6], 0, 0, ident, seq) + data
    if ipv6:
        return message
    return message[:2] + checksum(message).to_bytes(2, "big") + message[4:]


@frozen
class Echo:
    """An echo reply as read: what it echoes, and the hop limit it arrived with."""

    ident: int
    seq: int
    data: bytes
    hop_limit: int | None


def parse_reply(
    packet: bytes | bytearray | memoryview,
    ipv6: bool,
    *,
    ip_header: bool = False,
    hop_limit: int | None = None,
) -> Echo | None:
    """The echo reply in `packet`, or None for anything else: another type, a truncated
    or corrupt message. `ip_header`: the packet starts with its IPv4 header (what an
    IPv4 raw socket reads), whose TTL is then the hop limit."""
    view = memoryview(packet)
    if ip_header:
        header_size = (view[0] & 0x0F) * 4 if view else 0
        if header_size < 20 or len(view) < header_size or view[0] >> 4 != 4:
            return None
        hop_limit = view[8]
        view = view[header_size:]
    if len(view) < HEADER_SIZE:
        return None
    kind, code, _, ident, seq = _HEADER.unpack_from(view)
    if kind != ECHO_REPLY[ipv6] or code != 0:
        return None
    if not ipv6 and checksum(view) != 0:
        return None
    return Echo(ident, seq, bytes(view[HEADER_SIZE:]), hop_limit)
