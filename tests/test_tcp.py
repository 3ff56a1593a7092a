"""tcp:// and tls:// targets against real servers on 127.0.0.1: banners, send/expect,
refused and silent ports, TLS with trustme certificates, STARTTLS for SMTP, IMAP and
PostgreSQL, the config's problem lines, the metric, and a run of the console script."""

from __future__ import annotations

import functools
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
import trustme
from factories import config_doc, make_config, write_config
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from servers import closed_port
from test_cli import cli_config, parse_lines, run_cli

from trio_monitor import ConfigError, ErrorKind, ProbeResult
from trio_monitor.probes.tcp import TcpProber
from trio_monitor.probes.tcp.config import SendError, decode_send
from trio_monitor.probes.tcp.probe import _Trace
from trio_monitor.server.metrics import Metrics

Handler = Callable[[trio.SocketStream], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 running `handler` per connection; yields its port."""

    async def guarded(stream: trio.SocketStream) -> None:
        try:
            async with stream:
                await handler(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
            pass  # the probe closed first, or refused our certificate: its business

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, guarded, 0, host="127.0.0.1")
        )
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def read_line(stream: trio.abc.Stream, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        data = await stream.receive_some(4096)
        if not data:
            raise trio.BrokenResourceError
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.rstrip(b"\r")


async def run_probe(table: dict, **monitor: object) -> ProbeResult:
    config = make_config(config_doc(table, monitor={"timeout": "2s", **monitor}))
    prober = TcpProber()
    return await prober.probe(prober.prepare(config.targets[0]), 1, set())


def problems(table: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        make_config(config_doc(table))
    return caught.value.problems


# --- servers -----------------------------------------------------------------------


async def smtp_banner(stream: trio.SocketStream) -> None:
    await stream.send_all(b"220 mail.test ESMTP ready\r\n")
    await trio.sleep_forever()


async def redis(stream: trio.SocketStream) -> None:
    buffer = bytearray()
    while True:
        line = await read_line(stream, buffer)
        await stream.send_all(b"+PONG\r\n" if line == b"PING" else b"-ERR unknown command\r\n")


async def silent(stream: trio.SocketStream) -> None:
    await trio.sleep_forever()


async def says_then_closes(stream: trio.SocketStream) -> None:
    await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n")


async def says_then_stalls(stream: trio.SocketStream) -> None:
    await stream.send_all(b"hello, ")
    await trio.sleep_forever()


# --- tcp ---------------------------------------------------------------------------


async def test_a_banner_matches_expect():
    async with serving(smtp_banner) as port:
        r = await run_probe({"url": f"tcp://127.0.0.1:{port}", "expect": "^220 "})
    assert (r.ok, r.kind, r.error, r.status) == (True, "tcp", None, None)
    assert r.received == "220 mail.test ESMTP ready\r\n"
    assert r.remote_addr == f"127.0.0.1:{port}"
    assert r.bytes == len(r.received)
    assert r.phases_ms is not None
    assert r.phases_ms["dns"] is None
    assert r.phases_ms["tls"] is None
    assert r.phases_ms["connect"] is not None
    assert r.phases_ms["ttfb"] is not None
    assert r.ttfb_ms == r.phases_ms["ttfb"]
    assert r.latency_ms is not None
    assert r.latency_ms >= r.phases_ms["connect"]


async def test_connect_only_without_expect():
    async with serving(silent) as port:
        r = await run_probe({"url": f"tcp://127.0.0.1:{port}"})
    assert r.ok
    assert r.received is None
    assert r.bytes == 0
    assert r.phases_ms is not None
    assert r.phases_ms["ttfb"] is None


async def test_a_host_name_is_resolved_with_a_dns_phase(tmp_path):
    async with serving(smtp_banner) as port:
        r = await run_probe(
            {"url": f"tcp://localhost:{port}", "expect": "220", "ip_family": "ipv4"}
        )
    assert r.ok, r.error_detail
    assert r.phases_ms is not None
    assert r.phases_ms["dns"] is not None


async def test_redis_ping_pong_with_send_and_expect():
    async with serving(redis) as port:
        ok = await run_probe(
            {"url": f"tcp://127.0.0.1:{port}", "send": "PING\\r\\n", "expect": r"^\+PONG"}
        )
        wrong = await run_probe(
            {"url": f"tcp://127.0.0.1:{port}", "send": "PING\r\n", "expect": r"^\+PANG"}
        )
    assert ok.ok
    assert ok.received == "+PONG\r\n"
    # the server answered, and waits for more: the deadline ends the reading
    assert wrong.error == ErrorKind.CONTENT
    assert wrong.received == "+PONG\r\n"
    assert wrong.error_detail == "no match for '^\\+PANG' (within 2s): in '+PONG\\r\\n'"


async def test_a_refused_port_is_a_connect_error_after_the_retry():
    r = await run_probe({"url": f"tcp://127.0.0.1:{closed_port()}", "expect": "x"})
    assert (r.ok, r.error, r.attempts, r.latency_ms) == (False, ErrorKind.CONNECT, 2, None)
    assert "Connection refused" in (r.error_detail or "")
    assert r.received == ""
    assert r.remote_addr is None


async def test_a_silent_server_is_a_timeout():
    async with serving(silent) as port:
        r = await run_probe({"url": f"tcp://127.0.0.1:{port}", "expect": "220", "timeout": "300ms"})
    assert (r.ok, r.error, r.latency_ms) == (False, ErrorKind.TIMEOUT, None)
    assert r.error_detail == "nothing received within 0.3s"
    assert r.remote_addr == f"127.0.0.1:{port}"  # it connected


async def test_expect_mismatch_shows_what_came():
    async with serving(says_then_closes) as port:
        closed = await run_probe({"url": f"tcp://127.0.0.1:{port}", "expect": "^220"})
    async with serving(says_then_stalls) as port:
        stalled = await run_probe(
            {"url": f"tcp://127.0.0.1:{port}", "expect": "world", "timeout": "300ms"}
        )
    assert closed.error == ErrorKind.CONTENT
    assert closed.received == "SSH-2.0-OpenSSH_9.6\r\n"
    assert closed.error_detail == (
        "no match for '^220' (the server closed the connection): in 'SSH-2.0-OpenSSH_9.6\\r\\n'"
    )
    assert closed.latency_ms is not None
    assert stalled.error == ErrorKind.CONTENT
    assert stalled.received == "hello, "
    assert "(within 0.3s)" in (stalled.error_detail or "")


def test_a_character_split_across_reads_is_decoded_whole():
    trace = _Trace()
    encoded = "café".encode()
    trace.add(encoded[:4])  # "caf" and the first byte of "é"
    assert trace.text == "caf"
    trace.add(encoded[4:])
    assert (trace.text, bytes(trace.received)) == ("café", encoded)


async def test_reading_stops_at_the_cap():
    async def flood(stream: trio.SocketStream) -> None:
        while True:
            await stream.send_all(b"a" * 65536)

    async with serving(flood) as port:
        r = await run_probe({"url": f"tcp://127.0.0.1:{port}", "expect": "b"})
    assert r.error == ErrorKind.CONTENT
    assert r.bytes == 64 * 1024
    assert r.received == "a" * 256
    assert "(first 64 KiB)" in (r.error_detail or "")


async def test_conditions_read_what_a_tcp_probe_saw():
    conditions = [
        "[CONNECTED] == true",
        "[BODY] == pat(*PONG*)",
        "[IP] == 127.0.0.1",
        "[RESPONSE_TIME] < 5000",
        "[PHASE].connect < 1000",
    ]
    async with serving(redis) as port:
        url = f"tcp://127.0.0.1:{port}"
        ok = await run_probe(
            {"url": url, "send": "PING\n", "expect": "PONG", "conditions": conditions}
        )
        # without expect, nothing is read: BODY is empty
        failed = await run_probe({"url": url, "conditions": ["[BODY] == pat(*PONG*)"]})
    closed = await run_probe(
        {"url": f"tcp://127.0.0.1:{closed_port()}", "conditions": ["[CONNECTED] == false"]}
    )
    assert ok.ok, ok.error_detail
    assert ok.conditions is not None
    assert [(c.condition, c.ok) for c in ok.conditions] == [(c, True) for c in conditions]
    assert ok.conditions[1].actual == "+PONG"
    assert ok.conditions[2].actual == "127.0.0.1"
    assert (failed.ok, failed.error) == (False, ErrorKind.CONDITION)
    assert failed.error_detail == "[BODY] () == pat(*PONG*)"
    assert closed.ok  # a port that must stay closed
    assert closed.conditions is not None
    assert closed.conditions[0].actual == "false"


async def test_certificate_expiration_condition_on_a_tls_target(tmp_path, ca):
    now = datetime.now(UTC)
    cert = ca.issue_cert("127.0.0.1", not_after=now + timedelta(days=1))
    async with serving(tls_handler(server_context(cert))) as port:
        r = await run_probe(
            {
                "url": f"tls://127.0.0.1:{port}",
                "ca_file": ca_file(tmp_path, ca),
                "conditions": ["[CERTIFICATE_EXPIRATION] > 1h", "[CERTIFICATE_EXPIRATION] > 48h"],
            }
        )
    assert r.error == ErrorKind.CONDITION
    assert r.conditions is not None
    assert [c.ok for c in r.conditions] == [True, False]
    assert (r.error_detail or "").startswith("[CERTIFICATE_EXPIRATION] (")


def test_conditions_are_checked_against_the_kinds_placeholders():
    assert problems({"url": "tcp://127.0.0.1:25", "conditions": ["[STATUS] == 200"]}) == [
        "<memory>: targets[0].conditions[0]: '[STATUS] == 200': [STATUS] is not offered by"
        " tcp targets (they have [BODY], [CONNECTED], [IP], [PHASE], [RESPONSE_TIME])"
    ]
    expiry = ["[CERTIFICATE_EXPIRATION] > 48h"]
    assert problems({"url": "tcp://127.0.0.1:25", "conditions": expiry}) == [
        "<memory>: targets[0].conditions[0]: '[CERTIFICATE_EXPIRATION] > 48h':"
        " [CERTIFICATE_EXPIRATION] is not offered by tcp targets (they have [BODY],"
        " [CONNECTED], [IP], [PHASE], [RESPONSE_TIME])"
    ]
    make_config(config_doc({"url": "tls://127.0.0.1:25", "conditions": expiry}))


# --- config ------------------------------------------------------------------------


def test_send_escapes():
    assert decode_send(r"PING\r\n") == b"PING\r\n"
    assert decode_send(r"a\tb\\n\x00\xff") == b"a\tb\\n\x00\xff"
    assert decode_send("é\n") == "é\n".encode()


FUZZ = settings(max_examples=300, deadline=None, database=None)
_ESCAPES = {"\r": r"\r", "\n": r"\n", "\t": r"\t", "\\": "\\\\"}


def _written(data: bytes) -> str:
    """`data` as a `send` value would write it: printable ASCII as it is, a backslash
    doubled, the rest escaped."""
    return "".join(
        _ESCAPES.get(chr(b)) or (chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in data
    )


@pytest.mark.fuzz
@FUZZ
@given(st.binary(max_size=60))
def test_send_escapes_write_any_bytes(data):
    assert decode_send(_written(data)) == data


@pytest.mark.fuzz
@FUZZ
@given(
    st.text(max_size=40)
    | st.lists(st.sampled_from(["\\", "x", "0", "f", "g", "r", "é"])).map("".join)
)
@example("\\")  # a lone backslash at the end
@example("\\x4")  # \x with one hex digit
@example("\\xé9")
def test_any_send_text_is_bytes_or_one_config_line(text):
    try:
        data = decode_send(text)
    except SendError as exc:
        message = str(exc)
        assert message.startswith("unknown escape '\\"), message
        assert "\n" not in message
        return
    if "\\" not in text:
        assert data == text.encode()


@pytest.mark.fuzz
@FUZZ
@given(send=st.none() | st.text(max_size=20), expect=st.none() | st.text(max_size=20))
@example(send=None, expect="(?P<")
@example(send=None, expect="a{99999999999999999999}")  # re's OverflowError: was a traceback
@example(send=None, expect="(" * 1000 + ")" * 1000)  # re's RecursionError: was a traceback
@example(send=None, expect="[[")  # re's FutureWarning (a nested set): was a traceback
@example(send="", expect=None)
def test_any_send_and_expect_are_a_spec_or_one_line_each(send, expect):
    table = {"url": "tcp://127.0.0.1:25", "send": send, "expect": expect}
    try:
        (t,) = make_config(config_doc({k: v for k, v in table.items() if v is not None})).targets
    except ConfigError as exc:
        for line in exc.problems:
            assert line.startswith(("<memory>: targets[0].send: ", "<memory>: targets[0].expect: "))
            assert "\n" not in line
        return
    assert t.spec.send == (None if send is None else decode_send(send))
    assert (t.spec.expect and t.spec.expect.pattern) == expect


@pytest.mark.parametrize(
    ("expect", "why"),
    [("a{99999999999999999999}", "the repetition number is too large"),
     ("(" * 1000 + ")" * 1000, "groups nested too deeply")],
)  # fmt: skip
@pytest.mark.parametrize("url", ["tcp://127.0.0.1:25", "ws://127.0.0.1:25/"])
def test_a_regex_past_the_re_modules_limits_is_one_line(url, expect, why):
    """re raises OverflowError and RecursionError for these, not re.error: they were
    tracebacks (found by the fuzz test below)."""
    (line,) = problems({"url": url, "expect": expect})
    assert line == f"<memory>: targets[0].expect: invalid regular expression {expect!r}: {why}"


def test_config_problems_are_one_line_each():
    assert problems({"url": "tcp://127.0.0.1"}) == [
        "<memory>: targets[0].url: a port is required: tcp://127.0.0.1:PORT"
    ]
    assert problems({"url": "tcp://127.0.0.1:25/x?y"}) == [
        "<memory>: targets[0].url: a tcp:// URL is only tcp://HOST:PORT (no user, path or query)"
    ]
    (line,) = problems({"url": "tcp://127.0.0.1:25", "expect": "(unclosed"})
    assert line.startswith("<memory>: targets[0].expect: invalid regular expression '(unclosed': ")
    assert problems({"url": "tcp://127.0.0.1:25", "send": r"PING\q"}) == [
        "<memory>: targets[0].send: unknown escape '\\q' (use \\r, \\n, \\t, \\\\ or \\xNN;"
        " \\\\ for a backslash)"
    ]
    assert problems({"url": "tcp://127.0.0.1:25", "method": "GET"}) == [
        "<memory>: targets[0].method: unknown key"
    ]
    assert problems({"url": "tls://127.0.0.1:25", "starttls": "pop3"}) == [
        '<memory>: targets[0].starttls: must be one of "smtp", "imap", "postgres", got \'pop3\''
    ]
    (line,) = problems({"url": "tls://127.0.0.1:25", "ca_file": "/nonexistent/ca.pem"})
    assert line.startswith("<memory>: targets[0].ca_file: cannot read /nonexistent/ca.pem")


def test_the_scheme_chooses_the_kind():
    config = make_config(
        config_doc({"url": "tcp://127.0.0.1:6379"}, {"url": "tls://[::1]:993", "name": "imaps"})
    )
    tcp, tls = config.targets
    assert (tcp.kind, tcp.spec.host, tcp.spec.port, tcp.spec.tls) == (
        "tcp",
        "127.0.0.1",
        6379,
        None,
    )
    assert (tls.kind, tls.spec.host, tls.spec.port) == ("tls", "::1", 993)
    assert tls.spec.tls.tls.setting.verify is True


def test_a_reload_of_the_same_table_is_the_same_target():
    """The compiled regex and the SSL context compare by value: a reload that changes
    nothing leaves the target as it was (its schedule and state kept)."""
    table = {"url": "tls://127.0.0.1:25", "expect": "^220", "send": "x", "starttls": "smtp"}
    first, again = (make_config(config_doc(table)).targets[0] for _ in range(2))
    assert first == again
    assert hash(first) == hash(again)
    changed = make_config(config_doc({**table, "expect": "^250"})).targets[0]
    assert changed != first


# --- tls ---------------------------------------------------------------------------


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def tls_handler(context: ssl.SSLContext, then: Handler | None = None) -> Handler:
    async def handle(raw: trio.SocketStream) -> None:
        stream = trio.SSLStream(raw, context, server_side=True)
        await stream.do_handshake()
        if then is not None:
            await then(stream)  # type: ignore[arg-type]
        else:
            await trio.sleep_forever()

    return handle


def ca_file(tmp_path: Path, ca: trustme.CA) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def test_tls_verified_with_the_certificate_details(tmp_path, ca):
    context = server_context(ca.issue_cert("127.0.0.1"))
    async with serving(tls_handler(context)) as port:
        r = await run_probe({"url": f"tls://127.0.0.1:{port}", "ca_file": ca_file(tmp_path, ca)})
    assert r.ok, r.error_detail
    assert r.kind == "tls"
    assert r.tls is not None
    assert "127.0.0.1" in r.tls.sans
    assert r.tls.version
    assert r.tls.days_left > 300
    assert r.phases_ms is not None
    assert r.phases_ms["tls"] is not None


async def test_tls_with_another_ca_fails_verification_but_shows_the_certificate(ca):
    context = server_context(ca.issue_cert("127.0.0.1"))
    async with serving(tls_handler(context)) as port:
        refused = await run_probe({"url": f"tls://127.0.0.1:{port}"})
        unverified = await run_probe({"url": f"tls://127.0.0.1:{port}", "verify_tls": False})
    assert refused.error == ErrorKind.TLS
    assert "certificate verify failed" in (refused.error_detail or "")
    assert refused.tls is not None  # what it presented
    assert unverified.ok
    assert unverified.tls is not None


async def test_tls_server_name_must_be_on_the_certificate(tmp_path, ca):
    context = server_context(ca.issue_cert("127.0.0.1", "mail.test"))
    async with serving(tls_handler(context)) as port:
        right = await run_probe(
            {
                "url": f"tls://127.0.0.1:{port}",
                "ca_file": ca_file(tmp_path, ca),
                "server_name": "mail.test",
            }
        )
        wrong = await run_probe(
            {
                "url": f"tls://127.0.0.1:{port}",
                "ca_file": ca_file(tmp_path, ca),
                "server_name": "other.test",
            }
        )
    assert right.ok, right.error_detail
    assert wrong.error == ErrorKind.TLS


async def test_an_expired_certificate_fails_even_unverified(tmp_path, ca):
    now = datetime.now(UTC)
    cert = ca.issue_cert(
        "127.0.0.1", not_before=now - timedelta(days=30), not_after=now - timedelta(days=2)
    )
    async with serving(tls_handler(server_context(cert))) as port:
        verified = await run_probe(
            {"url": f"tls://127.0.0.1:{port}", "ca_file": ca_file(tmp_path, ca)}
        )
        unverified = await run_probe({"url": f"tls://127.0.0.1:{port}", "verify_tls": False})
    for r in (verified, unverified):
        assert r.error == ErrorKind.TLS
        assert "certificate expired on" in (r.error_detail or "")
        assert r.tls is not None
        assert r.tls.days_left < 0


async def test_send_and_expect_after_the_handshake(tmp_path, ca):
    async def pong(stream: trio.SSLStream) -> None:  # type: ignore[type-arg]
        buffer = bytearray()
        if await read_line(stream, buffer) == b"PING":
            await stream.send_all(b"+PONG\r\n")
        await trio.sleep_forever()

    context = server_context(ca.issue_cert("127.0.0.1"))
    async with serving(tls_handler(context, pong)) as port:
        r = await run_probe(
            {
                "url": f"tls://127.0.0.1:{port}",
                "ca_file": ca_file(tmp_path, ca),
                "send": "PING\r\n",
                "expect": "PONG",
            }
        )
    assert r.ok, r.error_detail
    assert r.received == "+PONG\r\n"
    assert r.tls is not None


async def test_a_plain_server_on_a_tls_target_is_a_tls_error():
    async with serving(smtp_banner) as port:
        r = await run_probe({"url": f"tls://127.0.0.1:{port}"})
    assert r.error == ErrorKind.TLS
    assert r.tls is None


# --- STARTTLS ----------------------------------------------------------------------


def smtp_server(
    context: ssl.SSLContext, *, offer: bool = True, answer: bytes = b"220 go ahead"
) -> Handler:
    async def handle(raw: trio.SocketStream) -> None:
        buffer = bytearray()
        await raw.send_all(b"220 mail.test ESMTP\r\n")
        ehlo = await read_line(raw, buffer)
        assert ehlo.startswith(b"EHLO [127.0.0.1]")
        extensions = b"250-mail.test\r\n250-PIPELINING\r\n" + (
            b"250 STARTTLS\r\n" if offer else b"250 8BITMIME\r\n"
        )
        await raw.send_all(extensions)
        if await read_line(raw, buffer) != b"STARTTLS":
            return
        await raw.send_all(answer + b"\r\n")
        if answer.startswith(b"220"):
            await tls_handler(context)(raw)

    return handle


def imap_server(context: ssl.SSLContext, *, answer: bytes = b"a1 OK Begin TLS now") -> Handler:
    async def handle(raw: trio.SocketStream) -> None:
        buffer = bytearray()
        await raw.send_all(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n")
        if await read_line(raw, buffer) != b"a1 STARTTLS":
            return
        await raw.send_all(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n" + answer + b"\r\n")
        if b" OK " in answer:
            await tls_handler(context)(raw)

    return handle


def postgres_server(context: ssl.SSLContext, *, answer: bytes = b"S") -> Handler:
    async def handle(raw: trio.SocketStream) -> None:
        request = b""
        while len(request) < 8:
            request += await raw.receive_some(8 - len(request))
        assert struct.unpack("!ii", request) == (8, 80877103)
        await raw.send_all(answer)
        if answer == b"S":
            await tls_handler(context)(raw)

    return handle


@pytest.mark.parametrize(
    ("flavour", "make"),
    [("smtp", smtp_server), ("imap", imap_server), ("postgres", postgres_server)],
)
async def test_starttls_upgrades_then_verifies(tmp_path, ca, flavour, make):
    context = server_context(ca.issue_cert("127.0.0.1"))
    async with serving(make(context)) as port:
        r = await run_probe(
            {
                "url": f"tls://127.0.0.1:{port}",
                "starttls": flavour,
                "ca_file": ca_file(tmp_path, ca),
            }
        )
    assert r.ok, r.error_detail
    assert r.tls is not None
    assert "127.0.0.1" in r.tls.sans


@pytest.mark.parametrize(
    ("flavour", "server", "error", "detail"),
    [
        (
            "smtp",
            lambda c: smtp_server(c, answer=b"454 4.7.0 TLS not available"),
            ErrorKind.TLS,
            "SMTP server refused STARTTLS: '454 4.7.0 TLS not available'",
        ),
        (
            "smtp",
            lambda c: smtp_server(c, offer=False),
            ErrorKind.TLS,
            "SMTP server does not offer STARTTLS (EHLO lists: PIPELINING, 8BITMIME)",
        ),
        (
            "smtp",
            lambda c: smtp_server(c, answer=b"220 go ahead\r\nINJECTED"),
            ErrorKind.PROTOCOL,
            "SMTP: the server sent 10 bytes after its go-ahead, before the TLS handshake"
            " (refused: they could be injected)",
        ),
        (
            "imap",
            lambda c: imap_server(c, answer=b"a1 NO STARTTLS disabled"),
            ErrorKind.TLS,
            "IMAP server refused STARTTLS: 'a1 NO STARTTLS disabled'",
        ),
        (
            "postgres",
            lambda c: postgres_server(c, answer=b"N"),
            ErrorKind.TLS,
            "PostgreSQL server refused SSL (answered 'N' to SSLRequest)",
        ),
        (
            "postgres",
            lambda c: postgres_server(c, answer=b"E"),
            ErrorKind.PROTOCOL,
            "PostgreSQL: expected 'S' or 'N' to SSLRequest, got b'E'",
        ),
        (
            "smtp",
            lambda c: says_then_closes,
            ErrorKind.PROTOCOL,
            "SMTP: expected a 220 greeting, got 'SSH-2.0-OpenSSH_9.6'",
        ),
    ],
)
async def test_starttls_refusals_say_what_the_server_answered(ca, flavour, server, error, detail):
    context = server_context(ca.issue_cert("127.0.0.1"))
    async with serving(server(context)) as port:
        r = await run_probe({"url": f"tls://127.0.0.1:{port}", "starttls": flavour, "retries": 0})
    assert (r.error, r.error_detail) == (error, detail)


# --- metrics -----------------------------------------------------------------------


async def test_probe_failed_due_to_regex_and_the_certificate_expiry(tmp_path, ca):
    context = server_context(ca.issue_cert("127.0.0.1"))
    metrics = Metrics()
    async with serving(says_then_closes) as port:
        metrics.observe(
            await run_probe({"url": f"tcp://127.0.0.1:{port}", "expect": "^220", "name": "ssh"})
        )
        metrics.observe(
            await run_probe({"url": f"tcp://127.0.0.1:{port}", "expect": "^SSH", "name": "ssh2"})
        )
    async with serving(tls_handler(context)) as port:
        tls = await run_probe(
            {"url": f"tls://127.0.0.1:{port}", "ca_file": ca_file(tmp_path, ca), "name": "tls"}
        )
        metrics.observe(tls)
    gauges = {
        (s.name, s.labels.get("target")): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    assert gauges["probe_failed_due_to_regex", "ssh"] == 1
    assert gauges["probe_failed_due_to_regex", "ssh2"] == 0
    assert ("probe_failed_due_to_regex", "tls") in gauges  # no expect: 0
    assert tls.tls is not None
    assert gauges["probe_ssl_earliest_cert_expiry", "tls"] == tls.tls.earliest_not_after


# --- end to end --------------------------------------------------------------------


@pytest.mark.subprocess
async def test_run_once_through_the_console_script_with_a_near_expiry_certificate(tmp_path, ca):
    """What a user sees: one JSON line per tcp:// and tls:// target, and the tls://
    target's certificate, two days from expiry, fires `cert_expiring` like an HTTPS one."""
    now = datetime.now(UTC)
    cert = ca.issue_cert(
        "127.0.0.1", not_before=now - timedelta(days=88), not_after=now + timedelta(days=2)
    )
    async with serving(redis) as redis_port, serving(tls_handler(server_context(cert))) as tls_port:
        config = write_config(
            tmp_path,
            cli_config(
                {
                    "name": "redis",
                    "url": f"tcp://127.0.0.1:{redis_port}",
                    "send": "PING\\r\\n",
                    "expect": r"^\+PONG",
                },
                {
                    "name": "smtps",
                    "url": f"tls://127.0.0.1:{tls_port}",
                    "ca_file": ca_file(tmp_path, ca),
                },
            ),
        )
        done = await run_cli("run", "--once", "-c", str(config), cwd=tmp_path)
    assert done.code == 0, done.lines
    records = parse_lines(done.lines)
    probes = {r["target"]: r for r in records if r["type"] == "probe"}
    redis_line, tls_line = probes["redis"], probes["smtps"]
    assert (redis_line["kind"], redis_line["ok"], redis_line["received"]) == (
        "tcp",
        True,
        "+PONG\r\n",
    )
    assert redis_line["status"] is None
    assert (tls_line["kind"], tls_line["ok"]) == ("tls", True)
    assert tls_line["tls"]["days_left"] < 2.01
    (alert,) = [r for r in records if r["type"] == "alert"]
    assert (alert["event"], alert["target"]) == ("cert_expiring", "smtps")
    assert alert["days_left"] == tls_line["tls"]["days_left"]
