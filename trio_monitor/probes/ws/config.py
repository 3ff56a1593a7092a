"""The keys of ws:// and wss:// targets, and their resolution into a `WsSpec`.

Unset keys inherit from [monitor] where the same names set the defaults (headers,
verify_tls, the TLS files, resolver, ip_family), as HTTP targets' do. Built here, once per
config load: the handshake's headers (the URL's user:password as Basic auth), the
`expect` regex (compiled: a bad one is a config problem), and for wss:// the SSL context
(the HTTP kind's loader: one context per distinct TLS setting, files read now).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx
from attrs import field, frozen

from ..._config import (
    HostName,
    IpFamily,
    MonitorSection,
    Nameserver,
    TargetSection,
    _Invalid,
    check_token,
    expand_headers,
    inherit,
)
from ...conditions import COMMON, Type
from ...net.addr import bracketed
from ...net.tls import Tls, TlsLoader
from ..base import Resolve, compile_expect
from ..http.config import basic_auth_value, masked

PLACEHOLDERS: Mapping[str, Type] = {
    **COMMON,  # CONNECTED: the handshake was answered with 101, as in Gatus
    "STATUS": Type.NUMBER,  # the handshake's HTTP status
    "BODY": Type.BODY,  # the first message received
    "CERTIFICATE_EXPIRATION": Type.DURATION,  # wss://: ms left on the leaf
}

# what the handshake itself writes: a configured value would be sent twice
HANDSHAKE_HEADERS = frozenset(
    {
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)
_TLS_KEYS = ("verify_tls", "ca_file", "client_cert", "client_key", "server_name")


@frozen
class WsTargetSection(TargetSection):
    """[[targets]] with a ws:// or wss:// URL."""

    headers: dict[str, str] | None = None
    subprotocols: tuple[str, ...] | None = None
    send: str | None = None  # a text message sent once the handshake is done
    expect: str | None = None  # a regex searched for in the first message received
    resolver: Nameserver | None = None
    ip_family: IpFamily | None = None
    # wss:// only
    verify_tls: bool | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    server_name: HostName | None = None


@frozen
class WsSpec:
    """A WebSocket target's handshake and checks, every default applied."""

    host: str  # what is resolved and connected to (an IPv6 literal without brackets)
    port: int
    resource: str  # the request target: path and query ("/chat?room=1")
    host_header: str  # Host: the URL's host (and port, unless the scheme's default)
    headers: tuple[tuple[str, str], ...] = field(repr=lambda h: repr(masked(h)))
    subprotocols: tuple[str, ...]
    send: str | None
    expect: re.Pattern[str] | None
    resolver: tuple[str, int] | None  # (IP, port); None: resolv.conf's nameservers
    ip_family: IpFamily
    tls: Tls | None  # wss:// only
    server_name: str | None = None  # SNI and the name the certificate must carry


def _subprotocols(values: tuple[str, ...] | None, key: str, problems: list[str]) -> tuple[str, ...]:
    for i, value in enumerate(values or ()):
        try:
            check_token(value, "subprotocol")
        except _Invalid as exc:
            problems.append(f"{key}[{i}]: {exc}")
    return values or ()


def _headers(
    base: dict[str, str],
    t: WsTargetSection,
    where: str,
    url: httpx.URL,
    env: Mapping[str, str],
    problems: list[str],
) -> dict[str, str]:
    own = expand_headers(t.headers, f"{where}.headers", env, problems)
    for name in t.headers or {}:
        if name.lower() in HANDSHAKE_HEADERS:
            hint = "use subprotocols" if name.lower() == "sec-websocket-protocol" else "remove it"
            problems.append(f"{where}.headers.{name}: set by the WebSocket handshake; {hint}")
    headers = base | own
    if url.userinfo and "authorization" not in headers:
        headers["authorization"] = basic_auth_value(url)  # a configured one wins, as in curl
    return headers


def ws_resolver(m: MonitorSection, env: Mapping[str, str], problems: list[str]) -> Resolve:
    # [monitor]'s user_agent and headers were checked by the HTTP kind's resolver
    base = {"user-agent": m.user_agent} | expand_headers(m.headers, "monitor.headers", env, [])
    tls = TlsLoader(env)

    def resolve(t: WsTargetSection, where: str, problems: list[str]) -> WsSpec:
        assert t.url is not None  # a kind with URL schemes has one (_config.py checks)
        url = httpx.URL(t.url)
        secure = url.scheme == "wss"
        if not secure:
            for name in _TLS_KEYS:
                if getattr(t, name) is not None:
                    problems.append(f"{where}.{name}: only for wss:// URLs")
        headers = _headers(base, t, where, url, env, problems)
        host = bracketed(url.host)
        default_host = host if url.port is None else f"{host}:{url.port}"
        host_header = headers.pop("host", default_host)  # a configured Host wins
        target_tls = None
        if secure:
            verify = inherit(t.verify_tls, m.verify_tls)
            target_tls = tls.for_target(t, m, where, verify, problems)
        return WsSpec(
            host=url.host,
            port=url.port or (443 if secure else 80),
            resource=url.raw_path.decode("ascii"),
            host_header=host_header,
            headers=tuple(headers.items()),
            subprotocols=_subprotocols(t.subprotocols, f"{where}.subprotocols", problems),
            send=t.send,
            expect=compile_expect(t.expect, f"{where}.expect", problems),
            resolver=inherit(t.resolver, m.resolver),
            ip_family=inherit(t.ip_family, m.ip_family),
            tls=target_tls,
            server_name=t.server_name,
        )

    return resolve
