"""ws:// and wss:// targets (probes/ws/): real WebSocket servers on loopback (trio-websocket,
wss with trustme certificates), raw TCP servers for the misbehaving ones, the config's
problem lines, and one run of the real console script."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
import trio.testing
import trustme
from factories import write_config
from test_cli import check_probe, cli_config, parse_lines, run_cli
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from trio_monitor import ConfigError, ProbeResult, parse_config
from trio_monitor.probes.ws import PLACEHOLDERS, WsProber
from trio_monitor.probes.ws.probe import CLOSE_TIMEOUT, facts


def config(*targets: dict, **monitor) -> object:
    return parse_config(
        {"monitor": {"retries": 0, **monitor}, "targets": list(targets)}, env={}, path="m.toml"
    )


async def probe_one(target: dict, **monitor) -> ProbeResult:
    (t,) = config({"name": "ws", **target}, **monitor).targets  # type: ignore[attr-defined]
    prober = WsProber()
    return await prober.probe(prober.prepare(t), 1, set())


def problems(*targets: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config(*targets)
    return info.value.problems


# --- servers -----------------------------------------------------------------------


class Echo:
    """A WebSocket server: echoes each message; `seen` keeps each request's headers and
    proposed subprotocols; `greeting` is sent first, if set."""

    def __init__(self, greeting: str | None = None) -> None:
        self.greeting = greeting
        self.seen: list[WebSocketRequest] = []

    async def handle(self, request: WebSocketRequest) -> None:
        self.seen.append(request)
        offered = request.proposed_subprotocols
        ws = await request.accept(subprotocol=offered[0] if offered else None)
        try:
            if self.greeting is not None:
                await ws.send_message(self.greeting)
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed:
            pass


async def serve(nursery: trio.Nursery, handler, ssl_context=None) -> int:
    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, ssl_context)
    return server.port


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Echo, int]]:
    async with trio.open_nursery() as nursery:
        handler = Echo()
        yield handler, await serve(nursery, handler.handle)
        nursery.cancel_scope.cancel()


@pytest.fixture
def server_cert(ca: trustme.CA, tmp_path) -> tuple[ssl.SSLContext, str]:
    """A server context for 127.0.0.1/localhost signed by `ca`, and the CA's file."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ctx, str(ca_file)


async def raw_server(nursery: trio.Nursery, handle: Callable[[trio.SocketStream], Awaitable]):
    """A TCP server on 127.0.0.1 running `handle` per connection; its port."""
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def read_request(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        if not chunk:
            break
        data += chunk
    return data


def accept_answer(request: bytes) -> bytes:
    """The 101 answer to a WebSocket handshake request (RFC 6455 section 4.2.2)."""
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def reader_tasks() -> list[str]:
    """trio-websocket's client reader tasks alive anywhere in the run (the probe's)."""
    found = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        frame = getattr(task.coro, "cr_frame", None)
        connection = frame.f_locals.get("self") if frame is not None else None
        if task.name.endswith("_reader_task") and getattr(connection, "is_client", False):
            found.append(task.name)
        stack.extend(t for n in task.child_nurseries for t in n.child_tasks)
    return found


# --- probes ------------------------------------------------------------------------


async def test_send_and_expect_match_the_echo(echo):
    handler, port = echo
    result = await probe_one(
        {"url": f"ws://127.0.0.1:{port}/chat?room=1", "send": "ping 1", "expect": r"^ping \d$"}
    )
    assert (result.ok, result.error, result.kind, result.status) == (True, None, "ws", 101)
    assert result.received == "ping 1"
    assert result.bytes == len(b"ping 1")
    assert result.remote_addr == f"127.0.0.1:{port}"
    phases = result.phases_ms
    assert phases is not None
    assert phases["dns"] is None
    assert phases["tls"] is None
    assert all(phases[p] is not None for p in ("connect", "ttfb", "transfer"))
    assert result.latency_ms is not None
    assert result.latency_ms >= phases["ttfb"]
    assert handler.seen[0].path == "/chat?room=1"
    assert reader_tasks() == []


async def test_an_expect_that_does_not_match_is_a_content_error(echo):
    _, port = echo
    result = await probe_one(
        {"url": f"ws://127.0.0.1:{port}/", "send": "x" * 300, "expect": "pong"}
    )
    assert (result.ok, result.error, result.status) == (False, "content", 101)
    assert result.error_detail == "the first message does not match 'pong'"
    assert result.received == "x" * 256  # the first 256 characters


async def test_the_handshake_alone_without_send_or_expect(echo):
    handler, port = echo
    result = await probe_one({"url": f"ws://localhost:{port}/"})
    assert (result.ok, result.status, result.received, result.bytes) == (True, 101, None, 0)
    assert result.phases_ms is not None
    assert result.phases_ms["dns"] is not None  # a name: /etc/hosts answered
    assert result.phases_ms["transfer"] is None  # no message waited for
    assert handler.seen[0].headers  # it got there


async def test_expect_alone_reads_the_server_greeting():
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, Echo(greeting='{"status": "UP"}').handle)
        result = await probe_one({"url": f"ws://127.0.0.1:{port}/", "expect": '"UP"'})
        nursery.cancel_scope.cancel()
    assert (result.ok, result.received) == (True, '{"status": "UP"}')


async def test_headers_subprotocols_and_url_credentials_reach_the_server(echo):
    handler, port = echo
    result = await probe_one(
        {
            "url": f"ws://me:secret@127.0.0.1:{port}/",
            "headers": {"X-Token": "t0k"},
            "subprotocols": ["v2.chat", "v1.chat"],
        },
        headers={"X-Fleet": "a"},
    )
    assert result.ok
    assert result.url == f"ws://me:***@127.0.0.1:{port}/"  # redacted, as HTTP's
    (request,) = handler.seen
    headers = {k.decode(): v.decode() for k, v in request.headers}
    assert headers["x-token"] == "t0k"
    assert headers["x-fleet"] == "a"  # [monitor] headers, as HTTP targets get them
    assert headers["authorization"] == "Basic " + base64.b64encode(b"me:secret").decode()
    assert headers["user-agent"].startswith("trio-monitor/")
    assert request.proposed_subprotocols == ("v2.chat", "v1.chat")


async def test_the_host_header_names_the_port_unless_one_is_configured():
    requests: list[bytes] = []

    async def upgrade(stream: trio.SocketStream) -> None:
        requests.append(await read_request(stream))
        await stream.send_all(accept_answer(requests[-1]))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        port = await raw_server(nursery, upgrade)
        url = f"ws://localhost:{port}/"
        assert (await probe_one({"url": url})).ok
        assert (await probe_one({"url": url, "headers": {"Host": "chat.example"}})).ok
        nursery.cancel_scope.cancel()
    hosts = [[h for h in r.split(b"\r\n") if h.lower().startswith(b"host:")] for r in requests]
    assert hosts == [[f"Host: localhost:{port}".encode()], [b"Host: chat.example"]]


async def test_wss_verifies_with_ca_file_and_reports_the_certificate(server_cert):
    ctx, ca_file = server_cert
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, Echo().handle, ctx)
        ok = await probe_one(
            {"url": f"wss://localhost:{port}/", "ca_file": ca_file, "send": "hi", "expect": "hi"}
        )
        untrusted = await probe_one({"url": f"wss://localhost:{port}/"})
        unverified = await probe_one({"url": f"wss://127.0.0.1:{port}/", "verify_tls": False})
        nursery.cancel_scope.cancel()
    assert (ok.ok, ok.status, ok.received) == (True, 101, "hi")
    assert ok.tls is not None
    assert ok.tls.days_left > 1
    assert ok.tls.version
    assert ok.phases_ms is not None
    assert ok.phases_ms["tls"] is not None
    assert (untrusted.ok, untrusted.error) == (False, "tls")
    assert "certificate verify failed" in (untrusted.error_detail or "")
    assert untrusted.tls is not None  # what it presented, as for HTTPS
    assert unverified.ok
    assert unverified.tls is not None


async def test_a_refused_upgrade_is_a_status_error_with_the_status():
    async def refuse(request: WebSocketRequest) -> None:
        await request.reject(403, body=b"no entry")

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, refuse)
        result = await probe_one({"url": f"ws://127.0.0.1:{port}/", "expect": "x"})
        nursery.cancel_scope.cancel()
    assert (result.ok, result.error, result.status) == (False, "status", 403)
    assert result.error_detail == "HTTP 403 to the WebSocket handshake, not 101: no entry"
    assert result.latency_ms is not None  # it answered
    assert reader_tasks() == []


@pytest.mark.parametrize(
    ("answer", "error", "status", "detail"),
    [
        # a refusal without a length, ended by closing the connection
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\ndown", "status", 503, "HTTP 503 to the"),
        (b"", "connect", None, "connection closed before the handshake was answered"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "protocol", None, "not a WebSocket handshake answer"),
    ],
)
async def test_an_answer_that_ends_the_connection_fails_at_once(answer, error, status, detail):
    async def handle(stream: trio.SocketStream) -> None:
        await read_request(stream)
        await stream.send_all(answer) if answer else None
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        port = await raw_server(nursery, handle)
        with trio.fail_after(3):  # not the 10 s timeout
            result = await probe_one({"url": f"ws://127.0.0.1:{port}/"}, timeout="10s")
        nursery.cancel_scope.cancel()
    assert (result.ok, result.error, result.status) == (False, error, status)
    assert (result.error_detail or "").startswith(detail)
    assert reader_tasks() == []


async def test_a_server_that_never_answers_times_out_without_a_leaked_task(autojump_clock):
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        port = await raw_server(nursery, silent)
        started = trio.current_time()
        result = await probe_one({"url": f"ws://127.0.0.1:{port}/", "timeout": "2s"})
        took = trio.current_time() - started
        assert reader_tasks() == []  # checked while the server still holds the connection
        nursery.cancel_scope.cancel()
    assert (result.ok, result.error) == (False, "timeout")
    assert result.error_detail == "no answer to the WebSocket handshake within 2s"
    assert result.latency_ms is None
    assert took == pytest.approx(2.0, abs=0.01)


async def test_a_server_that_never_answers_the_close(autojump_clock):
    """The outcome stands; the close costs CLOSE_TIMEOUT at most, and never the deadline."""

    async def deaf(stream: trio.SocketStream) -> None:
        await stream.send_all(accept_answer(await read_request(stream)))
        await stream.send_all(b"\x81\x05hello")  # one text frame, then nothing ever
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        port = await raw_server(nursery, deaf)
        url = f"ws://127.0.0.1:{port}/"
        started = trio.current_time()
        result = await probe_one({"url": url, "expect": "hel", "timeout": "10s"})
        took = trio.current_time() - started
        # a deadline shorter than the close's bound ends the close, not the outcome
        short = await probe_one({"url": url, "expect": "nope", "timeout": "300ms"})
        short_took = trio.current_time() - started - took
        assert reader_tasks() == []
        nursery.cancel_scope.cancel()
    assert (result.ok, result.received) == (True, "hello")
    assert took == pytest.approx(CLOSE_TIMEOUT, abs=0.01)
    assert result.latency_ms is not None
    assert result.latency_ms < 100
    assert (short.ok, short.error, short.received) == (False, "content", "hello")
    assert short_took == pytest.approx(0.3, abs=0.01)


async def test_a_server_closing_before_the_first_message():
    async def bye(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.aclose(code=1001, reason="going away")

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, bye)
        result = await probe_one({"url": f"ws://127.0.0.1:{port}/", "expect": "x"})
        nursery.cancel_scope.cancel()
    assert (result.ok, result.error, result.status) == (False, "content", 101)
    assert result.error_detail == (
        "closed by the server (1001 GOING_AWAY: going away) before a message"
    )


async def test_a_refused_port_is_a_connect_error():
    with trio.socket.socket() as sock:  # bound, never listening: connections are refused
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = await probe_one({"url": f"ws://127.0.0.1:{port}/"})
    assert (result.ok, result.error, result.status, result.latency_ms) == (
        False,
        "connect",
        None,
        None,
    )
    assert "Connection refused" in (result.error_detail or "")
    assert result.phases_ms is None
    assert result.remote_addr is None


async def test_names_resolve_through_the_configured_resolver(dns_server, echo):
    _, port = echo
    dns_server.set("chat.test", a=["127.0.0.1"])
    host, dns_port = dns_server.address
    result = await probe_one(
        {"url": f"ws://chat.test:{port}/", "resolver": f"{host}:{dns_port}", "ip_family": "ipv4"}
    )
    assert (result.ok, result.remote_addr) == (True, f"127.0.0.1:{port}")
    assert dns_server.count("chat.test", "A") == 1
    dns_server.set("gone.test", rcode="NXDOMAIN")
    gone = await probe_one({"url": f"ws://gone.test:{port}/", "resolver": f"{host}:{dns_port}"})
    assert (gone.ok, gone.error) == (False, "dns")


async def test_facts_for_conditions(echo, server_cert):
    _, port = echo
    result = await probe_one({"url": f"ws://127.0.0.1:{port}/", "send": "up", "expect": "up"})
    found = facts(result, b"up", result.ts)
    assert set(found) == set(PLACEHOLDERS)
    assert (found["CONNECTED"], found["STATUS"], found["BODY"], found["IP"]) == (
        True,
        101,
        b"up",
        "127.0.0.1",
    )
    assert found["RESPONSE_TIME"] == result.latency_ms
    assert found["PHASE"] == result.phases_ms
    assert found["CERTIFICATE_EXPIRATION"] is None  # ws://
    ctx, ca_file = server_cert
    async with trio.open_nursery() as nursery:
        tls_port = await serve(nursery, Echo().handle, ctx)
        secure = await probe_one({"url": f"wss://127.0.0.1:{tls_port}/", "ca_file": ca_file})
        nursery.cancel_scope.cancel()
    assert secure.tls is not None
    left = facts(secure, None, secure.ts)["CERTIFICATE_EXPIRATION"]
    assert left == pytest.approx((secure.tls.not_after - secure.ts) * 1000)
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        refused = await probe_one({"url": f"ws://127.0.0.1:{sock.getsockname()[1]}/"})
    assert {k: v for k, v in facts(refused, None, refused.ts).items() if v is not None} == {
        "CONNECTED": False
    }


async def greeting_server(nursery: trio.Nursery, greeting: str) -> int:
    return await serve(nursery, Echo(greeting=greeting).handle)


async def test_conditions_on_the_first_message_without_expect():
    """Gatus's way: conditions on [BODY] read the first message, no `expect` needed."""
    conditions = [
        "[CONNECTED] == true",
        "[STATUS] == 101",
        "[BODY].status == UP",
        "[RESPONSE_TIME] < 5000",
        "[PHASE].ttfb < 5000",
    ]
    async with trio.open_nursery() as nursery:
        up = await greeting_server(nursery, '{"status": "UP"}')
        down = await greeting_server(nursery, '{"status": "DOWN"}')
        ok = await probe_one({"url": f"ws://127.0.0.1:{up}/", "conditions": conditions})
        failed = await probe_one({"url": f"ws://127.0.0.1:{down}/", "conditions": conditions})
        nursery.cancel_scope.cancel()
    assert (ok.ok, ok.received) == (True, '{"status": "UP"}')
    assert ok.conditions is not None
    assert [(c.condition, c.ok) for c in ok.conditions] == [(c, True) for c in conditions]
    assert [c.actual for c in ok.conditions][:3] == ["true", "101", "UP"]
    assert (failed.ok, failed.error, failed.error_detail) == (
        False,
        "condition",
        "[BODY].status (DOWN) == UP",
    )


async def test_conditions_on_the_certificate_and_a_socket_that_must_stay_closed(server_cert):
    ctx, ca_file = server_cert
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, Echo().handle, ctx)
        secure = await probe_one(
            {
                "url": f"wss://localhost:{port}/",
                "ca_file": ca_file,
                "conditions": ["[CERTIFICATE_EXPIRATION] > 48h"],
            }
        )
        nursery.cancel_scope.cancel()
    assert secure.ok
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        closed = await probe_one(
            {
                "url": f"ws://127.0.0.1:{sock.getsockname()[1]}/",
                "conditions": ["[CONNECTED] == false"],
            }
        )
    assert (closed.ok, closed.error) == (True, None)


def test_conditions_are_checked_against_the_ws_placeholders():
    (line,) = problems({"url": "ws://127.0.0.1:9/", "conditions": ["[DNS_RCODE] == NOERROR"]})
    assert line.startswith("m.toml: targets[0].conditions[0]: ")
    assert "DNS_RCODE" in line


# --- config ------------------------------------------------------------------------


def test_a_bad_expect_is_one_problem_line_with_its_key_path():
    assert problems({"url": "ws://127.0.0.1:9/", "expect": "(unclosed"}) == [
        "m.toml: targets[0].expect: invalid regular expression '(unclosed': missing ),"
        " unterminated subpattern at position 0"
    ]


def test_tls_keys_are_for_wss_and_the_handshake_headers_its_own():
    assert problems(
        {
            "url": "ws://127.0.0.1:9/",
            "verify_tls": False,
            "headers": {"Sec-WebSocket-Protocol": "chat", "Upgrade": "h2c"},
            "subprotocols": ["a b"],
        }
    ) == [
        "m.toml: targets[0].verify_tls: only for wss:// URLs",
        "m.toml: targets[0].headers.Sec-WebSocket-Protocol: set by the WebSocket handshake; use"
        " subprotocols",
        "m.toml: targets[0].headers.Upgrade: set by the WebSocket handshake; remove it",
        "m.toml: targets[0].subprotocols[0]: invalid subprotocol 'a b': use letters, digits and"
        " !#$%&'*+-.^_`|~ only",
    ]


def test_the_kind_comes_from_the_scheme_and_http_keys_are_not_its_own():
    c = config({"url": "ws://127.0.0.1:9/"}, {"url": "wss://127.0.0.1:9/a"})
    assert [t.kind for t in c.targets] == ["ws", "ws"]  # type: ignore[attr-defined]
    assert problems({"url": "ws://127.0.0.1:9/", "contains": "x"})[0].startswith(
        "m.toml: targets[0].contains"
    )


# --- the console script ------------------------------------------------------------


@pytest.mark.subprocess
async def test_run_once_prints_the_ws_line(tmp_path, echo):
    _, port = echo
    write_config(
        tmp_path,
        cli_config(
            {"name": "chat", "url": f"ws://127.0.0.1:{port}/", "send": "hi", "expect": "hi"}
        ),
    )
    done = await run_cli("run", "--once", "-c", "m.toml", cwd=tmp_path)
    assert done.code == 0, done.stderr
    records = parse_lines(done.lines)
    (line,) = [r for r in records if r["type"] == "probe"]
    check_probe(line)
    assert (line["kind"], line["ok"], line["status"], line["received"]) == ("ws", True, 101, "hi")
    assert json.loads(done.lines[0])["remote_addr"] == f"127.0.0.1:{port}"


async def test_a_reload_forgets_resolvers_no_target_asks(dns_server):
    host, port = dns_server.address
    old = config({"url": "ws://chat.test/", "resolver": f"{host}:{port}"})
    new = config({"url": "ws://127.0.0.1:9/"})
    prober = WsProber()
    (target,) = old.targets  # type: ignore[attr-defined]
    asked = prober.resolver(target.spec.resolver)
    assert prober.resolver(target.spec.resolver) is asked  # one per `resolver` value
    await prober.reconfigure(old, new)  # type: ignore[arg-type]
    assert prober.resolver(target.spec.resolver) is not asked
