"""The keys of tcp:// targets (tls:// adds its own, probes/tls/config.py), and their
resolution into a `TcpSpec`.

Everything a probe needs is built here, once per config load: the host and port from
the URL, the bytes of `send` (its escapes decoded), the compiled `expect` regex. A bad
one is a problem line with its key path, never a failed probe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import httpx
from attrs import frozen

from ..._config import (
    IpFamily,
    MonitorSection,
    Nameserver,
    TargetSection,
    inherit,
)
from ...net.addr import ip_literal
from ...net.tls import Tls
from ..base import Resolve, compile_expect

Starttls = Literal["smtp", "imap", "postgres"]


@frozen
class TcpTargetSection(TargetSection):
    """[[targets]] with a tcp:// URL."""

    send: str | None = None  # text sent once connected; escapes: see decode_send
    expect: str | None = None  # a Python regex searched in what comes back
    resolver: Nameserver | None = None
    ip_family: IpFamily | None = None


@frozen
class TlsStep:
    """tls:// only: the handshake after the connection (and the plain-text upgrade)."""

    tls: Tls  # the SSL context of the target's TLS keys (net/tls.py), shared
    server_name: str | None  # SNI and the name verified; None: the URL's host
    starttls: Starttls | None = None


@frozen
class TcpSpec:
    """A tcp:// or tls:// target's settings, every default applied."""

    host: str  # a name, or an address (IPv6 without brackets)
    port: int
    send: bytes | None
    expect: re.Pattern[str] | None
    resolver: tuple[str, int] | None  # (IP, port); None: resolv.conf's nameservers
    ip_family: IpFamily
    tls: TlsStep | None = None


_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|(.)|\Z)", re.DOTALL)
_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}


class SendError(ValueError):
    pass


def decode_send(text: str) -> bytes:
    r"""`send` as bytes: UTF-8, with `\r`, `\n`, `\t`, `\\` and `\xNN` (one byte) decoded.
    A TOML basic string ("...") has already decoded its own escapes; these are for
    literal strings ('PING\r\n') and for bytes no text can hold ('\x00')."""
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(text):
        out += text[pos : match.start()].encode()
        hex_byte, char = match.groups()
        if hex_byte is not None:
            out.append(int(hex_byte, 16))
        elif char in _ESCAPES:
            out += _ESCAPES[char]
        else:
            shown = "\\" + (char or "")
            raise SendError(
                f"unknown escape '{shown}' (use \\r, \\n, \\t, \\\\ or \\xNN; \\\\ for a backslash)"
            )
        pos = match.end()
    out += text[pos:].encode()
    return bytes(out)


def host_port(url: str, where: str, problems: list[str]) -> tuple[str, int]:
    """The host and the (required) port of `scheme://host:port`."""
    scheme = url.partition("://")[0].lower()
    parsed = httpx.URL(url)  # the URL key's own check already accepted it
    host = ip_literal(parsed.host) or parsed.host
    if parsed.userinfo or parsed.raw_path not in (b"", b"/") or parsed.query or parsed.fragment:
        problems.append(
            f"{where}.url: a {scheme}:// URL is only {scheme}://HOST:PORT (no user, path or query)"
        )
    if parsed.port is None:
        problems.append(
            f"{where}.url: a port is required: {scheme}://{parsed.netloc.decode()}:PORT"
        )
        return host, 0
    return host, parsed.port


def tcp_spec(
    t: TcpTargetSection,
    m: MonitorSection,
    where: str,
    problems: list[str],
    tls: TlsStep | None = None,
) -> TcpSpec:
    """The spec of a tcp:// (or, with `tls`, a tls://) target."""
    assert t.url is not None  # a kind with URL schemes has one (_config.py checks)
    host, port = host_port(t.url, where, problems)
    send = None
    if t.send is not None:
        try:
            send = decode_send(t.send)
        except SendError as exc:
            problems.append(f"{where}.send: {exc}")
        if send == b"":
            problems.append(f"{where}.send: must not be empty (remove it to send nothing)")
    return TcpSpec(
        host=host,
        port=port,
        send=send,
        expect=compile_expect(t.expect, f"{where}.expect", problems),
        resolver=inherit(t.resolver, m.resolver),
        ip_family=inherit(t.ip_family, m.ip_family),
        tls=tls,
    )


def tcp_resolver(m: MonitorSection, env: Mapping[str, str], problems: list[str]) -> Resolve:
    def resolve(t: TcpTargetSection, where: str, problems: list[str]) -> TcpSpec:
        return tcp_spec(t, m, where, problems)

    return resolve
