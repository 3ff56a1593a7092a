"""The keys of HTTP(S) targets, and their resolution into an `HttpSpec`.

Unset keys inherit from [monitor], where the same names set the defaults.
Everything a probe sends is built here, once per config load: the body, the
Authorization header (from the URL's userinfo, `basic_auth` or `bearer_token`, secrets
from ${ENV} or read from files now, so a reload re-reads them), and the SSL context
(net/tls.py: its files read and loaded now). No secret is ever put in a problem line.
"""

from __future__ import annotations

import base64
import importlib.util
import json as jsonlib
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from attrs import field, frozen

from ..._config import (
    ONLY_WITH_ALL_ADDRESSES,
    AddressPolicy,
    ByteSize,
    ConnectionPolicy,
    Count,
    HostName,
    IpFamily,
    MonitorSection,
    Nameserver,
    Positive,
    TargetSection,
    TooLargePolicy,
    _Invalid,
    check_header_value,
    check_token,
    expand_env,
    expand_headers,
    expand_path,
    inherit,
    is_normal_url,
    parse_status_spec,
)
from ..._secrets import MASK, redact_url
from ...net.tls import Tls, TlsLoader, load_tls
from ..base import Resolve


@frozen
class BasicAuthSection:
    """`basic_auth = { username, password }` (or `password_file`)."""

    username: str
    password: str | None = None
    password_file: str | None = None


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
    body: str | None = None
    json: Any = None  # a table or an array, sent as JSON
    basic_auth: BasicAuthSection | None = None
    bearer_token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    server_name: HostName | None = None
    proxy: str | None = None  # "": none, whatever [monitor] says
    http2: bool | None = None


@frozen
class HttpSpec:
    """An HTTP target's request and checks, every default applied.

    `url` is where requests go, without userinfo: the URL's credentials are in
    `headers`, as `Authorization: Basic` (Target.url is the redacted one, for showing).
    """

    url: str
    method: str
    headers: tuple[tuple[str, str], ...] = field(repr=lambda h: repr(masked(h)))
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
    body: bytes | None = None  # sent with every probe (built once, here)
    tls: Tls = field()  # default: verify_tls's, without files
    server_name: str | None = None  # SNI and the name the certificate must carry
    proxy: str | None = field(default=None, repr=False)  # may hold credentials
    http2: bool = False
    # the target set expect_status itself (else a [STATUS] condition decides: prepare())
    own_status: bool = False

    @tls.default
    def _tls(self) -> Tls:
        return load_tls(self.verify_tls)


def masked(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Headers as shown: credentials masked (a repr may end up in a log)."""
    return tuple((k, MASK if k in _SECRET_HEADERS else v) for k, v in headers)


_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def _method(value: str) -> str:
    return check_token(value, "method").upper()


def _checked(value: str, check: Callable[[str], str], where: str, problems: list[str]) -> str:
    """`check(value)`, or the value as it is with its problem collected."""
    try:
        return check(value)
    except _Invalid as exc:
        problems.append(f"{where}: {exc}")
        return value


_PROXY_SCHEMES = frozenset({"http", "https", "socks5", "socks5h"})
_SOCKS = frozenset({"socks5", "socks5h"})


def _read_secret(path: str, key: str, problems: list[str]) -> str | None:
    """A secret file's text, less trailing line ends; a problem names the key and path."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        problems.append(f"{key}: cannot read {path}: {exc.strerror or exc}")
        return None
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        problems.append(f"{key}: {path} is not UTF-8 text")
        return None
    if not text:
        problems.append(f"{key}: {path} is empty")
        return None
    return text


def _secret(
    value: str | None,
    file: str | None,
    keys: tuple[str, str],
    env: Mapping[str, str],
    problems: list[str],
) -> str | None:
    """A secret given inline (with ${ENV}) or as a file (`keys`: their key paths).
    A problem line never holds the secret: only names, paths and what is wrong."""
    if value is not None and file is not None:
        names = " or ".join(key.rpartition(".")[2] for key in keys)
        problems.append(f"{keys[1]}: set {names}, not both")
        return None
    if file is not None:
        return _read_secret(expand_path(file, keys[1], env, problems), keys[1], problems)
    if value is None:
        return None
    try:
        text = expand_env(value, env)
    except _Invalid as exc:
        problems.append(f"{keys[0]}: {exc}")
        return None
    if not text:
        problems.append(f"{keys[0]}: must not be empty")
        return None
    return text


def _carries(text: str) -> bool:
    try:
        check_header_value(text)
    except _Invalid:
        return False
    return True


def _basic(username: str, password: str) -> str:
    """The Authorization value for a user and password, as curl sends it (UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def basic_auth_value(url: httpx.URL) -> str:
    """The Authorization value for a URL's userinfo, as curl sends it (percent-decoded;
    a user without a password has an empty one)."""
    return _basic(url.username, url.password or "")


def _authorization(
    t: HttpTargetSection,
    where: str,
    url: httpx.URL | None,
    env: Mapping[str, str],
    problems: list[str],
) -> str | None:
    """The Authorization value of `basic_auth` or `bearer_token`/`token_file`, if set."""
    sources = [
        key
        for key, present in (
            ("basic_auth", t.basic_auth is not None),
            ("bearer_token", t.bearer_token is not None or t.token_file is not None),
            ("the URL's user:password", url is not None and bool(url.userinfo)),
            ("headers.Authorization", any(k.lower() == "authorization" for k in t.headers or {})),
        )
        if present
    ]
    if len(sources) > 1 and sources[0] in ("basic_auth", "bearer_token"):
        problems.append(f"{where}.{sources[0]}: set one of {' and '.join(sources)}, not both")
        return None
    if t.basic_auth is not None:
        auth = t.basic_auth
        user_key = f"{where}.basic_auth.username"
        try:
            username = expand_env(auth.username, env)
        except _Invalid as exc:
            problems.append(f"{user_key}: {exc}")
            return None
        if ":" in username:
            problems.append(f"{user_key}: must not contain ':' (Basic auth splits at it)")
            return None
        keys = (f"{where}.basic_auth.password", f"{where}.basic_auth.password_file")
        if auth.password is None and auth.password_file is None:
            problems.append(f"{keys[0]}: set password or password_file")
            return None
        password = _secret(auth.password, auth.password_file, keys, env, problems)
        return None if password is None else _basic(username, password)
    keys = (f"{where}.bearer_token", f"{where}.token_file")
    token = _secret(t.bearer_token, t.token_file, keys, env, problems)
    if token is None:
        return None
    token = token.strip()
    if not token or not _carries(token) or "\t" in token:
        key = keys[1] if t.token_file is not None else keys[0]
        problems.append(
            f"{key}: a token must be printable characters up to U+00FF, without tabs or line breaks"
        )
        return None
    return f"Bearer {token}"


def _body(t: HttpTargetSection, where: str, problems: list[str]) -> bytes | None:
    """The request body of `body` (UTF-8 text) or `json` (compact JSON, UTF-8)."""
    if t.body is not None and t.json is not None:
        problems.append(f"{where}.json: set body or json, not both")
        return None
    if t.body is not None:
        return t.body.encode()
    if t.json is None:
        return None
    if not isinstance(t.json, dict | list):
        problems.append(f"{where}.json: expected a table or an array, got {t.json!r:.60}")
        return None

    def refuse(value: object) -> object:
        raise _Invalid(f"a {type(value).__name__} ({value}) has no JSON form")

    try:
        text = jsonlib.dumps(
            t.json, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=refuse
        )
    except _Invalid as exc:
        problems.append(f"{where}.json: {exc}")
        return None
    except ValueError:
        problems.append(f"{where}.json: nan and inf have no JSON form")
        return None
    return text.encode()


def _shown_proxy(text: str) -> str:
    """A proxy as a problem line shows it: a URL's password masked, and whatever comes
    before the last "@" of a text that is no URL (it may be one, mistyped)."""
    if "://" in text:
        return redact_url(text)
    return f"{MASK}@{text.rpartition('@')[2]}" if "@" in text else text


def _proxy(value: str, key: str, env: Mapping[str, str], problems: list[str]) -> str | None:
    """A proxy URL, checked; "" is none. Shown redacted: it may hold credentials."""
    try:
        text = expand_env(value, env)
    except _Invalid as exc:
        problems.append(f"{key}: {exc}")
        return None
    if not text:
        return None
    shown = _shown_proxy(text)
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        problems.append(f"{key}: not a URL: {shown!r}")
        return None
    if url.scheme not in _PROXY_SCHEMES or not url.host:
        problems.append(
            f"{key}: expected http://, https://, socks5:// or socks5h://HOST:PORT, got {shown!r}"
        )
        return None
    if url.raw_path not in (b"", b"/") or url.query or url.fragment:
        problems.append(f"{key}: a proxy URL has no path, query or fragment, got {shown!r}")
        return None
    if url.scheme in _SOCKS and importlib.util.find_spec("socksio") is None:
        problems.append(
            f"{key}: SOCKS proxies need the socksio package: pip install 'trio-monitor[socks]'"
        )
        return None
    return text


SCHEMES = frozenset({"http", "https"})


def _fallback(proxy: str | None, http2: bool) -> bool:
    """Does a target with these go through httpx's own transport (probe.route_of)?"""
    return proxy is not None or http2


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
    default_proxy = None if m.proxy is None else _proxy(m.proxy, "monitor.proxy", env, problems)
    tls = TlsLoader(env)

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
        assert t.url is not None  # an http target has one (_config.py checks)
        # most URLs are already as httpx writes them, without userinfo: parsing one is
        # the costly part of loading a big config (and then the spec holds nothing of
        # the URL but its text, in `url`: KIND.spec_url)
        url = None if is_normal_url(t.url, SCHEMES) else httpx.URL(t.url)
        authorization = _authorization(t, where, url, env, problems)
        if authorization is not None:
            headers["authorization"] = authorization
        elif url is not None and url.userinfo and "authorization" not in headers:
            headers["authorization"] = basic_auth_value(url)  # a configured one wins, as in curl
        body = _body(t, where, problems)
        if t.json is not None and "content-type" not in headers:
            headers["content-type"] = "application/json"
        verify = inherit(t.verify_tls, m.verify_tls)
        http2 = inherit(t.http2, m.http2)
        proxy = (
            default_proxy if t.proxy is None else _proxy(t.proxy, f"{where}.proxy", env, problems)
        )
        if addresses == "all" and _fallback(proxy, http2):
            problems.append(
                f'{where}.addresses: "all" cannot be used with a proxy or http2 (the proxy or '
                "httpx's HTTP/2 pool picks the address)"
            )
        return HttpSpec(
            url=t.url if url is None else str(url.copy_with(userinfo=b"") if url.userinfo else url),
            method=default_method
            if t.method is None
            else _checked(t.method, _method, f"{where}.method", problems),
            headers=tuple(headers.items()),
            expect_status=status,
            own_status=t.expect_status is not None,
            follow_redirects=inherit(t.follow_redirects, m.follow_redirects),
            max_redirects=inherit(t.max_redirects, m.max_redirects),
            contains=t.contains,
            max_body=inherit(t.max_body, m.max_body),
            on_too_large=inherit(t.on_too_large, m.on_too_large),
            connection=inherit(t.connection, m.connection),
            resolver=inherit(t.resolver, m.resolver),
            ip_family=inherit(t.ip_family, m.ip_family),
            addresses=addresses,
            min_addresses_ok=inherit(t.min_addresses_ok, m.min_addresses_ok)
            if addresses == "all"
            else None,
            verify_tls=verify,
            body=body,
            tls=tls.for_target(t, m, where, verify, problems, http2=http2),
            server_name=t.server_name,
            proxy=proxy,
            http2=http2,
        )

    return resolve
