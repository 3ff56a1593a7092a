"""TLS certificate details: the probe line's `tls` object, and expired or not yet valid
certificates failing the probe with `tls`, verified or not (loopback servers with
certificates from tests/certs.py)."""

from __future__ import annotations

import datetime as dt
import ssl
import time
import weakref
from pathlib import Path

import pytest
import trio
from certs import Chain, make_chain
from servers import start_test_server

from trio_monitor._config import parse_config
from trio_monitor._errors import ErrorKind
from trio_monitor._records import to_dict
from trio_monitor.net.certs import parse_der
from trio_monitor.probes.http.probe import prepare, probe
from trio_monitor.probes.http.wire import ProbeTransport

DAY = dt.timedelta(days=1)


_DIRS: weakref.WeakKeyDictionary[ProbeTransport, Path] = weakref.WeakKeyDictionary()
_CA_FILES: weakref.WeakKeyDictionary[ProbeTransport, str] = weakref.WeakKeyDictionary()


@pytest.fixture
async def transport(tmp_path):
    async with ProbeTransport(per_host=8) as transport:
        _DIRS[transport] = tmp_path
        yield transport


def trust(transport, chain: Chain) -> None:
    """Probes through `transport` trust the chain's root, by `ca_file`, from now on."""
    path = _DIRS[transport] / "trusted-ca.pem"
    path.write_bytes(chain.root_pem)
    _CA_FILES[transport] = str(path)


async def serve(nursery: trio.Nursery, chain: Chain, tmp_path):
    return await start_test_server(nursery, ssl_context=chain.server_context(tmp_path))


async def run(transport, url: str, **target):
    if transport in _CA_FILES:
        target.setdefault("ca_file", _CA_FILES[transport])
    data = {"targets": [{"url": url, **target}]}
    return await probe(transport, prepare(parse_config(data, env={}).targets[0]), 1)


async def test_tls_details_in_the_probe_line(nursery, transport, tmp_path):
    chain = make_chain(leaf_until=3 * DAY, intermediate_until=2 * DAY)
    server = await serve(nursery, chain, tmp_path)
    trust(transport, chain)

    for verify in (True, False):
        result = await run(transport, server.url("/ok"), verify_tls=verify, retries=0)
        assert result.ok, result.error_detail
        tls = result.tls
        assert tls is not None
        assert (tls.subject, tls.issuer) == ("CN=localhost", "CN=Test Intermediate")
        assert tls.sans == ("localhost", "127.0.0.1")
        assert 2.9 < tls.days_left <= 3.0
        assert tls.version == "TLSv1.3"
        assert tls.cipher
        # the intermediate expires first: the chain's earliest expiry is its
        assert tls.earliest_subject == "CN=Test Intermediate"
        assert tls.earliest_not_after == pytest.approx(time.time() + 2 * 86400, abs=60)
        line = to_dict(result)["tls"]
        assert line["not_after"].endswith("Z")
        assert line["earliest_not_after"].endswith("Z")
        assert line["sans"] == ["localhost", "127.0.0.1"]


async def test_plain_http_has_no_tls(server, transport):
    result = await run(transport, server.url("/ok"))
    assert result.ok
    assert result.tls is None
    assert to_dict(result)["tls"] is None


@pytest.mark.parametrize("verify", [True, False])
async def test_expired_certificate_fails_with_tls(nursery, transport, tmp_path, verify):
    chain = make_chain(leaf_from=-40 * DAY, leaf_until=-10 * DAY)
    server = await serve(nursery, chain, tmp_path)
    trust(transport, chain)

    result = await run(transport, server.url("/ok"), verify_tls=verify, retries=0)

    assert (result.ok, result.error) == (False, ErrorKind.TLS)
    expired_on = (dt.datetime.now(dt.UTC) - 10 * DAY).strftime("%Y-%m-%d")
    assert f"certificate expired on {expired_on} (10 days ago)" in result.error_detail
    assert result.tls is not None
    assert result.tls.days_left == pytest.approx(-10, abs=0.01)
    if verify:
        assert "verify failed" in result.error_detail
    else:
        assert result.status == 200  # the server answered; its certificate fails the probe


@pytest.mark.parametrize("verify", [True, False])
async def test_not_yet_valid_certificate_fails_with_tls(nursery, transport, tmp_path, verify):
    chain = make_chain(leaf_from=3 * DAY + dt.timedelta(hours=1), leaf_until=90 * DAY)
    server = await serve(nursery, chain, tmp_path)
    trust(transport, chain)

    result = await run(transport, server.url("/ok"), verify_tls=verify, retries=0)

    assert (result.ok, result.error) == (False, ErrorKind.TLS)
    assert "certificate not valid before" in result.error_detail
    assert "(in 3 days)" in result.error_detail


async def test_expired_intermediate_with_verification_names_it(nursery, transport, tmp_path):
    chain = make_chain(intermediate_until=-2 * DAY)
    server = await serve(nursery, chain, tmp_path)
    trust(transport, chain)

    verified = await run(transport, server.url("/ok"), retries=0)
    unverified = await run(transport, server.url("/ok"), verify_tls=False, retries=0)

    assert verified.error == ErrorKind.TLS
    assert "chain certificate CN=Test Intermediate expired on" in verified.error_detail
    assert "(2 days ago)" in verified.error_detail
    # without verification only the leaf's dates fail a probe (a stale extra certificate
    # in a chain, like an expired cross-sign, does not break clients); the line shows it
    assert unverified.ok
    assert unverified.tls.earliest_subject == "CN=Test Intermediate"


async def test_untrusted_certificate_still_shows_its_details(tls_server, transport):
    result = await run(transport, tls_server.url("/ok"), retries=0)

    assert result.error == ErrorKind.TLS
    assert "certificate verify failed" in result.error_detail
    assert result.tls is not None
    assert "127.0.0.1" in result.tls.sans


def test_each_certificate_is_parsed_once(tmp_path):
    leaf_pem = make_chain().chain_pem.decode().split("-----END CERTIFICATE-----")[0]
    der = ssl.PEM_cert_to_DER_cert(leaf_pem + "-----END CERTIFICATE-----\n")
    parse_der.cache_clear()
    for _ in range(5):
        assert parse_der(der) is not None
    info = parse_der.cache_info()
    assert (info.misses, info.hits) == (1, 4)
    assert parse_der(b"not a certificate") is None


async def test_untrusted_and_expired_says_expired_first(nursery, transport, tmp_path):
    # OpenSSL stops at the unknown issuer; the date is what an operator must see first
    chain = make_chain(leaf_from=-40 * DAY, leaf_until=-10 * DAY)
    server = await serve(nursery, chain, tmp_path)

    result = await run(transport, server.url("/ok"), retries=0)

    assert result.error == ErrorKind.TLS
    assert result.error_detail.startswith("certificate expired on ")
    assert "(10 days ago) (certificate verify failed: unable to get local issuer" in (
        result.error_detail
    )
