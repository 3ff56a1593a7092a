"""The keys of HTTP(S) targets, and their resolution into an `HttpSpec`.

Unset keys inherit from [monitor], where the same names set the defaults.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping

import httpx
from attrs import frozen

from ..._config import (
    ONLY_WITH_ALL_ADDRESSES,
    AddressPolicy,
    ByteSize,
    ConnectionPolicy,
    Count,
    IpFamily,
    MonitorSection,
    Nameserver,
    Positive,
    TargetSection,
    TooLargePolicy,
    _Invalid,
    check_header_value,
    check_token,
    expand_headers,
    inherit,
    parse_status_spec,
)
from ..base import Resolve


@frozen
class HttpTargetSection(TargetSection):
    """[[targets]] with an http:// or https:// URL."""

    method: str | None = None
    headers: dict[str, str] | None = None
    expect_status: tuple[int | str, ...] | None = None
    follow_redirects: bool | None = None
    max_redirects: Count | None = None
    contains: str | None = None
    max_body: ByteSize | None = None
    on_too_large: TooLargePolicy | None = None
    verify_tls: bool | None = None
    connection: ConnectionPolicy | None = None
    resolver: Nameserver | None = None
    ip_family: IpFamily | None = None
    addresses: AddressPolicy | None = None
    min_addresses_ok: Positive | None = None


@frozen
class HttpSpec:
    """An HTTP target's request and checks, every default applied.

    `url` is where requests go, without userinfo: the URL's credentials are in
    `headers`, as `Authorization: Basic` (Target.url is the redacted one, for showing).
    """

    url: str
    method: str
    headers: tuple[tuple[str, str], ...]
    expect_status: frozenset[int]
    follow_redirects: bool
    max_redirects: int
    contains: str | None
    max_body: int
    on_too_large: TooLargePolicy
    verify_tls: bool
    connection: ConnectionPolicy
    resolver: tuple[str, int] | None  # (IP, port); None: resolv.conf's nameservers
    ip_family: IpFamily
    addresses: AddressPolicy
    min_addresses_ok: int | None  # None: every address (addresses = "all" only)


def _method(value: str) -> str:
    return check_token(value, "method").upper()


def _checked(value: str, check: Callable[[str], str], where: str, problems: list[str]) -> str:
    """`check(value)`, or the value as it is with its problem collected."""
    try:
        return check(value)
    except _Invalid as exc:
        problems.append(f"{where}: {exc}")
        return value


def _basic_auth(url: httpx.URL) -> str:
    """The Authorization value for a URL's userinfo, as curl sends it (percent-decoded;
    a user without a password has an empty one)."""
    credentials = f"{url.username}:{url.password}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def http_resolver(m: MonitorSection, env: Mapping[str, str], problems: list[str]) -> Resolve:
    try:
        default_status = parse_status_spec(m.expect_status)
    except _Invalid as exc:
        problems.append(f"monitor.expect_status: {exc}")
        default_status = frozenset(range(200, 400))
    base_headers = {
        "user-agent": _checked(m.user_agent, check_header_value, "monitor.user_agent", problems)
    } | expand_headers(m.headers, "monitor.headers", env, problems)
    default_method = _checked(m.method, _method, "monitor.method", problems)

    def resolve(t: HttpTargetSection, where: str, problems: list[str]) -> HttpSpec:
        status = default_status
        if t.expect_status is not None:
            try:
                status = parse_status_spec(t.expect_status)
            except _Invalid as exc:
                problems.append(f"{where}.expect_status: {exc}")
        headers = base_headers | expand_headers(t.headers, f"{where}.headers", env, problems)
        addresses = inherit(t.addresses, m.addresses)
        if t.min_addresses_ok is not None and addresses == "first":
            problems.append(f"{where}.min_addresses_ok: {ONLY_WITH_ALL_ADDRESSES}")
        url = httpx.URL(t.url)
        if url.userinfo and "authorization" not in headers:  # a configured one wins, as in curl
            headers["authorization"] = _basic_auth(url)
        return HttpSpec(
            url=str(url.copy_with(userinfo=b"") if url.userinfo else url),  # parsing is costly
            method=default_method
            if t.method is None
            else _checked(t.method, _method, f"{where}.method", problems),
            headers=tuple(headers.items()),
            expect_status=status,
            follow_redirects=inherit(t.follow_redirects, m.follow_redirects),
            max_redirects=inherit(t.max_redirects, m.max_redirects),
            contains=t.contains,
            max_body=inherit(t.max_body, m.max_body),
            on_too_large=inherit(t.on_too_large, m.on_too_large),
            verify_tls=inherit(t.verify_tls, m.verify_tls),
            connection=inherit(t.connection, m.connection),
            resolver=inherit(t.resolver, m.resolver),
            ip_family=inherit(t.ip_family, m.ip_family),
            addresses=addresses,
            min_addresses_ok=inherit(t.min_addresses_ok, m.min_addresses_ok)
            if addresses == "all"
            else None,
        )

    return resolve
