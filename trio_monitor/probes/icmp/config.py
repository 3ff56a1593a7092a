"""The keys of icmp:// targets, and their resolution into an `IcmpSpec`.

`resolver` and `ip_family` inherit from [monitor], as HTTP targets' do; `count`,
`spacing` and `size` are the kind's own. Loading a config with an icmp:// target also
checks that this process can open the socket kind `[monitor] icmp_socket` asks for (one
problem line naming the sysctl and the capability if not): a monitor that cannot ping
says so at `validate`, not as a failed probe at 3 a.m.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from attrs import frozen

from ..._config import (
    ByteSize,
    Duration,
    IpFamily,
    MonitorSection,
    Nameserver,
    Positive,
    TargetSection,
    format_duration,
    inherit,
)
from ...net.addr import ip_literal
from ..base import Resolve
from .sockets import Unavailable, choose

DEFAULT_COUNT = 3
MAX_COUNT = 100
DEFAULT_SPACING = 0.2  # seconds between two echo requests
DEFAULT_SIZE = 56  # payload bytes, as ping sends
MAX_SIZE = 65000  # below what one IPv4 or IPv6 packet can carry


@frozen
class IcmpTargetSection(TargetSection):
    """[[targets]] with an icmp:// URL."""

    count: Positive | None = None
    spacing: Duration | None = None
    size: ByteSize | None = None
    resolver: Nameserver | None = None
    ip_family: IpFamily | None = None


@frozen
class IcmpSpec:
    """An icmp:// target's echo requests, every default applied."""

    host: str  # a name, or an IP address (IPv6 without brackets)
    count: int
    spacing: float  # seconds between two requests
    size: int  # payload bytes of each request
    resolver: tuple[str, int] | None  # (IP, port); None: resolv.conf's nameservers
    ip_family: IpFamily


def _host(url: str, where: str, problems: list[str]) -> str:
    """The host of `icmp://HOST`: nothing else may be in the URL."""
    parsed = httpx.URL(url)
    extra = (parsed.port is not None, parsed.userinfo, parsed.query, parsed.fragment)
    if any(extra) or parsed.path not in ("", "/"):
        problems.append(f"{where}.url: an icmp:// URL is only a host, got {url!r}")
    return ip_literal(parsed.host) or parsed.host


def icmp_resolver(m: MonitorSection, env: Mapping[str, str], problems: list[str]) -> Resolve:
    checked = False  # the socket check, once per config and only if it has icmp targets

    def resolve(t: IcmpTargetSection, where: str, problems: list[str]) -> IcmpSpec:
        nonlocal checked
        if not checked:
            checked = True
            try:
                choose(m.icmp_socket)
            except Unavailable as exc:
                key = "monitor.icmp_socket" if m.icmp_socket != "auto" else f"{where}.url"
                problems.append(f"{key}: {exc}")
        count = inherit(t.count, DEFAULT_COUNT)
        if count > MAX_COUNT:
            problems.append(f"{where}.count: must be {MAX_COUNT} or less, got {count}")
        size = inherit(t.size, DEFAULT_SIZE)
        if size > MAX_SIZE:
            problems.append(f"{where}.size: must be {MAX_SIZE} bytes or less, got {size}")
        spacing = inherit(t.spacing, DEFAULT_SPACING)
        timeout = inherit(t.timeout, m.timeout)
        if (count - 1) * spacing >= timeout:
            problems.append(
                f"{where}.spacing: {count} requests {format_duration(spacing)} apart do not fit"
                f" in the timeout ({format_duration(timeout)}): fewer, closer, or a longer timeout"
            )
        assert t.url is not None  # a kind with URL schemes has one (_config.py checks)
        return IcmpSpec(
            host=_host(t.url, where, problems),
            count=count,
            spacing=spacing,
            size=size,
            resolver=inherit(t.resolver, m.resolver),
            ip_family=inherit(t.ip_family, m.ip_family),
        )

    return resolve
