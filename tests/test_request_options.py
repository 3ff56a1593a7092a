"""Request options (issue 11 item 6): body and json, Basic and Bearer auth with secrets
from ${ENV} or files, ca_file, mTLS, server_name, proxy and HTTP/2, against loopback
servers; each key's validation, and that no secret is ever shown."""

from __future__ import annotations

import base64
import importlib.util
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme
from factories import config_doc, make_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import closed_port, serving_h2, start_test_proxy, start_test_server
from test_probe import NoDNS

from trio_monitor import ConfigError
from trio_monitor._config import Config
from trio_monitor._records import ProbeResult, to_line
from trio_monitor.probes.http import open_http_prober
from trio_monitor.probes.http.probe import _next_request, prepare
from trio_monitor.probes.http.wire import SSL_CONTEXT

SECRET = "s3cr3t-Pa55"  # what must never be seen


def config(*targets: dict[str, Any], env: dict[str, str] | None = None, **monitor: Any) -> Config:
    named = [{"name": f"t{i}", **t} for i, t in enumerate(targets)]
    return make_config(config_doc(*named, monitor={"retries": 0, **monitor}), env=env)


def problems(*targets: dict[str, Any], env: dict[str, str] | None = None, **monitor: Any):
    with pytest.raises(ConfigError) as caught:
        config(*targets, env=env, **monitor)
    return caught.value.problems


async def probe_all(cfg: Config) -> list[ProbeResult]:
    async with open_http_prober(cfg) as prober:
        return [await prober.probe(prober.prepare(t), 1, set()) for t in cfg.targets]


def shown(result: ProbeResult) -> str:
    return to_line(result)


# --- body and json -------------------------------------------------------------------


async def test_body_and_json_reach_the_server_as_sent(server):
    cfg = config(
        {"url": server.url("/ok"), "method": "POST", "body": "héllo=1"},
        {"url": server.url("/ok"), "method": "PUT", "json": {"a": [1, 2.5, "x"], "b": True}},
        {
            "url": server.url("/ok"),
            "method": "POST",
            "json": [1],
            "headers": {"Content-Type": "application/vnd.api+json"},
        },
    )
    assert all(r.ok for r in await probe_all(cfg))
    text, table, own = server.requests
    assert (text["method"], text["body"]) == ("POST", "héllo=1".encode())
    assert text["headers"]["content-length"] == str(len("héllo=1".encode()))
    assert "content-type" not in text["headers"]
    assert table["method"] == "PUT"
    assert json.loads(table["body"]) == {"a": [1, 2.5, "x"], "b": True}
    assert table["headers"]["content-type"] == "application/json"
    assert table["headers"]["content-length"] == str(len(table["body"]))
    assert own["headers"]["content-type"] == "application/vnd.api+json"  # a configured one wins


async def test_the_body_is_built_once_per_target(server):
    cfg = config({"url": server.url("/ok"), "method": "POST", "json": {"k": "v"}})
    async with open_http_prober(cfg) as prober:
        plan = prober.prepare(cfg.targets[0])
        for _ in range(3):
            assert (await prober.probe(plan, 1, set())).ok
    assert plan.request.stream is plan.request.stream  # the plan holds it
    assert [r["body"] for r in server.requests] == [b'{"k":"v"}'] * 3


@pytest.mark.parametrize(
    ("code", "method", "keeps_body"),
    [(303, "POST", False), (302, "POST", False), (301, "POST", False), (307, "POST", True)],
)
async def test_redirects_drop_the_body_as_browsers_do(server, code, method, keeps_body):
    cfg = config({"url": server.url(f"/redirect-with/{code}"), "method": method, "json": [1]})
    assert (await probe_all(cfg))[0].ok
    hop = server.requests[1]
    assert hop["method"] == (method if keeps_body else "GET")
    assert hop["body"] == (b"[1]" if keeps_body else b"")
    assert ("content-type" in hop["headers"]) is keeps_body
    assert ("content-length" in hop["headers"]) is keeps_body


def test_body_and_json_problems():
    assert problems({"url": "http://127.0.0.1/", "body": "x", "json": {"a": 1}}) == [
        "<memory>: targets[0].json: set body or json, not both"
    ]
    assert problems({"url": "http://127.0.0.1/", "json": "text"}) == [
        "<memory>: targets[0].json: expected a table or an array, got 'text'"
    ]
    (line,) = problems({"url": "http://127.0.0.1/", "json": {"when": float("nan")}})
    assert line == "<memory>: targets[0].json: nan and inf have no JSON form"
    import datetime

    (line,) = problems({"url": "http://127.0.0.1/", "json": {"d": datetime.date(2026, 1, 2)}})
    assert line.startswith("<memory>: targets[0].json: a date (2026-01-02) has no JSON form")


# --- credentials ------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_basic_and_bearer_from_config_env_and_files(server, tmp_path):
    (tmp_path / "password").write_text(SECRET + "\n")
    (tmp_path / "token").write_text(SECRET + "\r\n")
    env = {"PW": SECRET, "DIR": str(tmp_path)}
    cfg = config(
        {
            "url": server.url("/echo"),
            "basic_auth": {"username": "alice", "password": "${PW}"},
        },
        {
            "url": server.url("/echo"),
            "basic_auth": {"username": "bob", "password_file": "${DIR}/password"},
        },
        {"url": server.url("/echo"), "bearer_token": "${PW}"},
        {"url": server.url("/echo"), "token_file": str(tmp_path / "token")},
        env=env,
    )
    results = await probe_all(cfg)
    assert all(r.ok for r in results), results
    seen = [r["headers"].get("authorization") for r in server.requests]
    assert seen == [
        basic("alice", SECRET),
        basic("bob", SECRET),
        f"Bearer {SECRET}",
        f"Bearer {SECRET}",
    ]
    for result in results:
        assert SECRET not in shown(result)
    assert all(SECRET not in repr(t) for t in cfg.targets)


async def test_a_reload_rereads_secret_files(tmp_path):
    (tmp_path / "token").write_text("old")
    table = {"url": "http://127.0.0.1/", "token_file": str(tmp_path / "token")}
    first = config(table)
    (tmp_path / "token").write_text("new")
    second = config(table)
    assert dict(first.targets[0].spec.headers)["authorization"] == "Bearer old"
    assert dict(second.targets[0].spec.headers)["authorization"] == "Bearer new"
    assert first.targets[0].spec != second.targets[0].spec  # the target counts as changed


async def test_credentials_never_follow_a_redirect_to_another_origin(server):
    async with trio.open_nursery() as nursery:
        other = await start_test_server(nursery)
        cfg = config(
            {"url": server.url(f"/elsewhere/{other.port}"), "bearer_token": SECRET},
            {
                "url": server.url(f"/elsewhere/{other.port}"),
                "basic_auth": {"username": "u", "password": SECRET},
            },
        )
        assert all(r.ok for r in await probe_all(cfg))
        nursery.cancel_scope.cancel()
    assert [r["headers"].get("authorization") for r in server.requests] == [
        f"Bearer {SECRET}",
        basic("u", SECRET),
    ]
    assert [r["headers"].get("authorization") for r in other.requests] == [None, None]


def test_credential_problems_name_the_key_and_never_the_secret(tmp_path):
    (tmp_path / "empty").write_text("\n")
    missing = tmp_path / "missing"
    url = "http://127.0.0.1/"
    cases = [
        (
            {"basic_auth": {"username": "u", "password": SECRET, "password_file": "f"}},
            "targets[0].basic_auth.password_file: set password or password_file, not both",
        ),
        (
            {"basic_auth": {"username": "u"}},
            "targets[0].basic_auth.password: set password or password_file",
        ),
        (
            {"basic_auth": {"username": "a:b", "password": SECRET}},
            "targets[0].basic_auth.username: must not contain ':' (Basic auth splits at it)",
        ),
        (
            {"basic_auth": {"password": SECRET}},
            "targets[0].basic_auth.username: required key missing",
        ),
        (
            {"bearer_token": SECRET, "basic_auth": {"username": "u", "password": SECRET}},
            "targets[0].basic_auth: set one of basic_auth and bearer_token, not both",
        ),
        (
            {"bearer_token": SECRET, "headers": {"Authorization": SECRET}},
            "targets[0].bearer_token: set one of bearer_token and headers.Authorization, not both",
        ),
        (
            {"bearer_token": "${NOPE}"},
            "targets[0].bearer_token: environment variable NOPE is not set",
        ),
        ({"bearer_token": f"a\x01{SECRET}"}, "targets[0].bearer_token: a token must be printable"),
        (
            {"token_file": str(missing)},
            f"targets[0].token_file: cannot read {missing}: No such file",
        ),
        (
            {"token_file": str(tmp_path / "empty")},
            f"targets[0].token_file: {tmp_path / 'empty'} is empty",
        ),
        (
            {"bearer_token": SECRET, "token_file": "f"},
            "targets[0].token_file: set bearer_token or token_file, not both",
        ),
    ]
    for extra, expected in cases:
        (line,) = problems({"url": url, **extra})
        assert line.startswith(f"<memory>: {expected}"), (extra, line)
        assert SECRET not in line
    (line,) = problems({"url": f"http://u:{SECRET}@127.0.0.1/", "bearer_token": SECRET})
    assert "not both" in line
    assert SECRET not in line


@pytest.mark.fuzz
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    username=st.text(max_size=20),
    token=st.text(max_size=40),
    proxy=st.text(max_size=40),
    server_name=st.text(max_size=30),
)
def test_odd_credentials_proxies_and_names_are_lines_never_leaks(
    username, token, proxy, server_name
):
    secret_token = f"{token}{SECRET}"
    tables = [
        {"url": "http://127.0.0.1/", "basic_auth": {"username": username, "password": SECRET}},
        {"url": "http://127.0.0.1/", "bearer_token": secret_token},
        {"url": "http://127.0.0.1/", "proxy": proxy.replace("@", f":{SECRET}@")},
        {"url": "https://127.0.0.1/", "server_name": server_name},
    ]
    for table in tables:
        try:
            config(table)
        except ConfigError as exc:
            for line in exc.problems:
                assert "\n" not in line
                assert SECRET not in line


# --- TLS: ca_file, mTLS, server_name ----------------------------------------------------


def write_pem(tmp_path: Path, name: str, blob: trustme.Blob) -> str:
    path = tmp_path / name
    blob.write_to_path(str(path))
    return str(path)


async def start_tls(nursery, cert: trustme.LeafCert, *, client_ca: trustme.CA | None = None):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    names: list[str | None] = []
    ctx.sni_callback = lambda _sock, name, _ctx: names.append(name)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(ctx)
    server = await start_test_server(nursery, ssl_context=ctx)
    server.sni = names  # type: ignore[attr-defined]
    return server


async def test_ca_file_mtls_and_server_name(tmp_path):
    ca = trustme.CA()
    ca_file = write_pem(tmp_path, "ca.pem", ca.cert_pem)
    client = ca.issue_cert("monitor@example.test")
    cert_file = write_pem(tmp_path, "client.pem", client.cert_chain_pems[0])
    key_file = write_pem(tmp_path, "client.key", client.private_key_pem)
    async with trio.open_nursery() as nursery:
        mtls = await start_tls(nursery, ca.issue_cert("127.0.0.1"), client_ca=ca)
        named = await start_tls(nursery, ca.issue_cert("probe.example.test"))
        cfg = config(
            {"url": mtls.url("/ok"), "client_cert": cert_file, "client_key": key_file},
            {"url": mtls.url("/ok")},  # no client certificate
            {"url": named.url("/ok"), "server_name": "probe.example.test"},
            {"url": named.url("/ok")},  # verified as 127.0.0.1: not its name
            ca_file=ca_file,
        )
        with_cert, without, sni, no_sni = await probe_all(cfg)
        default_trust = await probe_all(
            config({"url": named.url("/ok"), "server_name": "probe.example.test"})
        )
        nursery.cancel_scope.cancel()
    assert with_cert.ok, with_cert
    assert (without.ok, without.error) == (False, "tls"), without.error_detail
    assert sni.ok, sni
    assert "probe.example.test" in named.sni
    assert (no_sni.ok, no_sni.error) == (False, "tls")
    assert (default_trust[0].ok, default_trust[0].error) == (
        False,
        "tls",
    )  # the CA came from ca_file


def test_targets_with_one_tls_setting_share_one_context(tmp_path):
    ca = trustme.CA()
    ca_file = write_pem(tmp_path, "ca.pem", ca.cert_pem)
    cfg = config(
        {"url": "https://127.0.0.1:1/"},
        {"url": "https://127.0.0.1:2/"},
        {"url": "https://127.0.0.1:3/", "verify_tls": False},
        ca_file=ca_file,
    )
    a, b, c = (t.spec.tls.context for t in cfg.targets)
    assert a is b
    assert c is not a
    assert config({"url": "https://127.0.0.1:9/"}, ca_file=ca_file).targets[0].spec.tls.context is a


def test_tls_file_problems(tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("client.test")
    other = ca.issue_cert("other.test")
    cert = write_pem(tmp_path, "c.pem", leaf.cert_chain_pems[0])
    key = write_pem(tmp_path, "c.key", leaf.private_key_pem)
    other_key = write_pem(tmp_path, "o.key", other.private_key_pem)
    (tmp_path / "junk").write_text("not a certificate\n")
    junk = str(tmp_path / "junk")
    missing = str(tmp_path / "missing.pem")
    url = "https://127.0.0.1/"
    cases = [
        ({"client_cert": cert}, "targets[0].client_key: required with client_cert"),
        ({"client_key": key}, "targets[0].client_cert: required with client_key"),
        ({"ca_file": missing}, f"targets[0].ca_file: cannot read {missing}: No such file"),
        ({"ca_file": junk}, f"targets[0].ca_file: no CA certificate in {junk}"),
        (
            {"client_cert": junk, "client_key": key},
            f"targets[0].client_cert: no PEM certificate in {junk}",
        ),
        (
            {"client_cert": cert, "client_key": junk},
            f"targets[0].client_key: cannot use {junk} with {cert}",
        ),
        (
            {"client_cert": cert, "client_key": other_key},
            f"targets[0].client_key: cannot use {other_key}",
        ),
        ({"server_name": "https://x/"}, "targets[0].server_name: expected a host name or address"),
    ]
    for extra, expected in cases:
        (line,) = problems({"url": url, **extra})
        assert line.startswith(f"<memory>: {expected}"), (extra, line)
    # a [monitor] default is reported once, at its own key, however many targets use it
    lines = problems({"url": url}, {"url": "https://127.0.0.1:2/"}, ca_file=missing)
    assert lines == [f"<memory>: monitor.ca_file: cannot read {missing}: No such file or directory"]


# --- proxy and HTTP/2 ------------------------------------------------------------------


async def test_requests_go_through_the_proxy(server, tls_server, ca, tmp_path):
    ca_file = write_pem(tmp_path, "ca.pem", ca.cert_pem)
    async with trio.open_nursery() as nursery:
        proxy = await start_test_proxy(nursery)
        cfg = config(
            {"url": server.url("/ok"), "proxy": proxy.url},
            {"url": tls_server.url("/ok"), "proxy": proxy.url, "ca_file": ca_file},
            {"url": server.url("/ok"), "proxy": f"http://127.0.0.1:{closed_port()}"},
            {"url": server.url("/ok"), "proxy": ""},  # none, whatever [monitor] says
            proxy=proxy.url,
        )
        plain, tunnelled, refused, direct = await probe_all(cfg)
        nursery.cancel_scope.cancel()
    assert plain.ok, plain
    assert tunnelled.ok, tunnelled
    assert (refused.ok, refused.error) == (False, "connect"), refused
    assert direct.ok
    assert proxy.requests == [
        f"GET {server.url('/ok')}",
        f"CONNECT 127.0.0.1:{tls_server.port}",
    ]
    assert len(server.requests) == 2  # the proxied one and the direct one


def test_proxy_problems_redact_credentials():
    cases = [
        (f"ftp://u:{SECRET}@127.0.0.1:1", "expected http://, https://, socks5:// or socks5h://"),
        (f"http://u:{SECRET}@127.0.0.1:1/path", "a proxy URL has no path, query or fragment"),
        ("${NOPE}", "environment variable NOPE is not set"),
        ("http://", "expected http://"),
    ]
    for proxy, expected in cases:
        (line,) = problems({"url": "http://127.0.0.1/", "proxy": proxy})
        assert line.startswith(f"<memory>: targets[0].proxy: {expected}"), line
        assert SECRET not in line


@pytest.mark.skipif(importlib.util.find_spec("socksio") is None, reason="needs trio-monitor[socks]")
async def test_requests_go_through_a_socks5_proxy(server, tls_server, ca, tmp_path):
    ca_file = write_pem(tmp_path, "ca.pem", ca.cert_pem)
    async with trio.open_nursery() as nursery:
        proxy = await start_test_proxy(nursery)
        socks = f"socks5://127.0.0.1:{proxy.port}"
        cfg = config(
            {"url": server.url("/ok"), "proxy": socks},
            {"url": tls_server.url("/ok"), "proxy": socks, "ca_file": ca_file},
        )
        results = await probe_all(cfg)
        nursery.cancel_scope.cancel()
    assert all(r.ok for r in results), results
    assert proxy.requests == [
        f"SOCKS5 127.0.0.1:{server.port}",
        f"SOCKS5 127.0.0.1:{tls_server.port}",
    ]


def test_a_socks_proxy_without_socksio_says_what_to_install(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "socksio" else find_spec(name, *a),
    )
    (line,) = problems({"url": "http://127.0.0.1/", "proxy": "socks5://127.0.0.1:1080"})
    assert line == (
        "<memory>: targets[0].proxy: SOCKS proxies need the socksio package:"
        " pip install 'trio-monitor[socks]'"
    )


async def test_http2_goes_over_h2(tmp_path, ca):
    leaf = ca.issue_cert("127.0.0.1")
    certfile = write_pem(tmp_path, "server.pem", leaf.cert_chain_pems[0])
    keyfile = write_pem(tmp_path, "server.key", leaf.private_key_pem)
    ca_file = write_pem(tmp_path, "ca.pem", ca.cert_pem)
    async with serving_h2(certfile, keyfile) as h2:
        cfg = config(
            {"url": h2.url("/a"), "http2": True},
            {"url": h2.url("/b")},
            {"url": h2.url("/c"), "http2": True, "verify_tls": False},
            ca_file=ca_file,
        )
        results = await probe_all(cfg)
    assert all(r.ok for r in results), results
    assert h2.versions == ["2", "1.1", "2"]
    spec_h1, spec_h2 = cfg.targets[1].spec, cfg.targets[0].spec
    assert spec_h1.tls.context is not spec_h2.tls.context  # h2 offered by ALPN on its own


@pytest.fixture
async def no_dns():
    """NoDNS (test_probe.py) for this test: no name lookup leaves the process."""
    resolver = NoDNS()
    previous = trio.socket.set_custom_hostname_resolver(resolver)
    yield resolver
    trio.socket.set_custom_hostname_resolver(previous)


async def test_fallback_transports_classify_errors_as_ours_do(no_dns, tls_server, server):
    """Through httpx's own transports: an unknown name is `dns` (and no lookup leaves our
    resolver), an untrusted certificate `tls`, a closed port `connect`."""
    cfg = config(
        {"url": "https://unknown.invalid/", "http2": True},
        {"url": tls_server.url("/ok"), "http2": True},  # its CA is not trusted
        {"url": f"https://127.0.0.1:{closed_port()}/", "http2": True},
        {"url": server.url("/ok"), "http2": True},  # http://: HTTP/1.1, fine
    )
    dns, tls, refused, plain = await probe_all(cfg)
    assert (dns.error, tls.error, refused.error) == ("dns", "tls", "connect")
    assert plain.ok
    assert no_dns.names == ["unknown.invalid"]


async def test_a_reload_closes_the_fallback_transports_no_target_takes(server):
    old = config(
        {"url": server.url("/ok"), "http2": True},
        {"url": server.url("/ok"), "proxy": "http://127.0.0.1:1"},
    )
    new = config({"url": server.url("/ok"), "http2": True})
    async with open_http_prober(old) as prober:
        for target in old.targets:
            await prober.probe(prober.prepare(target), 1, set())
        fallbacks = prober._fallbacks
        assert len(fallbacks.routes) == 2
        await prober.reconfigure(old, new)
        assert fallbacks.routes == {prober.prepare(new.targets[0]).route}
    assert fallbacks.routes == frozenset()  # closed with the prober


def test_server_name_never_follows_a_redirect_to_another_host():
    (target,) = config({"url": "https://127.0.0.5/", "server_name": "www.example.test"}).targets
    plan = prepare(target)
    assert plan.extensions["sni_hostname"] == "www.example.test"

    def hop(location: str) -> httpx.Request:
        response = httpx.Response(302, headers={"location": location}, request=plan.request)
        return _next_request(plan, response, "GET")

    assert hop("/next").extensions["sni_hostname"] == "www.example.test"
    assert "sni_hostname" not in hop("https://other.example.test/").extensions
    assert hop("https://other.example.test/").extensions[SSL_CONTEXT] is target.spec.tls
