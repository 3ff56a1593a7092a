"""probe(): one probe of one target, retries and deadline included.

Most tests run against the real loopback server of tests/servers.py. Where exact timing or
exact chunking matters, the transport is an httpx.MockTransport (no network at all) and the
clock trio's autojump clock. Nothing here resolves a real name or leaves 127.0.0.1.

Every test here fails on a ResourceWarning, or on an exception left unraised in a finalizer:
capped body reading must close what it opens (see _probe._read_body).
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import random
import socket
from collections.abc import Callable
from functools import partial

import httpx
import pytest
import trio
from servers import CHUNK, GZIP_PLAIN, closed_port

from trio_monitor._config import USER_AGENT, parse_config
from trio_monitor._errors import ErrorKind, ProbeFailure
from trio_monitor._records import ProbeResult
from trio_monitor.probes.base import BACKOFF_BASE, BACKOFF_CAP, backoff_delay, retry_after
from trio_monitor.probes.http.probe import prepare, probe
from trio_monitor.probes.http.wire import ProbeTransport

pytestmark = pytest.mark.filterwarnings(
    "error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning"
)

MOCK_URL = "http://127.0.0.1/"  # only ever seen by MockTransport handlers
SEED = 20240611
HOSTILE_ROUTES = (
    "/ok",
    "/status/500",
    "/status/599",
    "/slow/10",
    "/hang",
    "/reset",
    "/close",
    "/big/200000",
    "/endless",
    "/drip",
    "/redirect/2",
    "/loop",
    "/garbage",
    "/badheader",
    "/gzip",
    "/echo",
    "/body/missing",
    "/gate",
    "/hook",
    "/no/such/route",
)


# --- helpers ---------------------------------------------------------------------


def make_plan(url: str, *, env: dict | None = None, monitor: dict | None = None, **target):
    """The Plan of one target `{"url": url, **target}`, resolved by parse_config."""
    data = {"monitor": monitor or {}, "targets": [{"url": url, **target}]}
    return prepare(parse_config(data, env=env or {}).targets[0])


async def run(transport: httpx.AsyncBaseTransport, url: str, **target) -> ProbeResult:
    return await probe(transport, make_plan(url, **target), 1)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def assert_failed(result: ProbeResult, kind: ErrorKind, *fragments: str) -> None:
    """`result` failed with `kind`, and its error_detail mentions every fragment."""
    assert (result.ok, result.error) == (False, kind), result
    for fragment in fragments:
        assert fragment.lower() in result.error_detail.lower(), result.error_detail


def mock_transport(handler) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


class Chunks(httpx.AsyncByteStream):
    """A response body delivered in exactly these chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self):
        for chunk in self._chunks:
            yield chunk


def connect_error(calls: list[float], request: httpx.Request) -> httpx.Response:
    """MockTransport handler: note the time and refuse, as a closed port does."""
    calls.append(trio.current_time())
    raise httpx.ConnectError("connection refused", request=request)


async def serve_raw(nursery: trio.Nursery, reply: bytes | Callable[[], bytes]) -> str:
    """A loopback server that reads a request head, sends `reply` verbatim and closes.

    A callable `reply` is called for each connection's reply.
    """

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            received = b""
            while b"\r\n\r\n" not in received:
                data = await stream.receive_some(65536)
                if not data:
                    return
                received += data
            await stream.send_all(reply() if callable(reply) else reply)

    listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"


@pytest.fixture
async def transport():
    async with ProbeTransport(per_host=8) as transport:
        yield transport


class NoDNS(trio.abc.HostnameResolver):
    """Fails every name lookup, as for an unknown name, and records the names asked for."""

    def __init__(self) -> None:
        self.names: list[str] = []

    async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        self.names.append(host.decode() if isinstance(host, bytes) else host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def getnameinfo(self, sockaddr, flags):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


# --- success ---------------------------------------------------------------------


async def test_ok(server, transport):
    result = await probe(transport, make_plan(server.url("/ok"), name="home"), 7)

    assert (result.ok, result.error, result.error_detail) == (True, None, None)
    assert (result.target, result.url, result.round) == ("home", server.url("/ok"), 7)
    assert result.status == 200
    assert result.attempts == 1
    assert 0 < result.ttfb_ms <= result.latency_ms
    assert result.bytes == len(b"hello world")
    assert result.content_hash == sha256(b"hello world")
    assert result.remote_addr == f"127.0.0.1:{server.port}"
    assert (result.truncated, result.final_url, result.slow) == (False, None, False)
    assert server.hits["/ok"] == 1


@pytest.mark.parametrize(
    ("path", "slow", "expected"),
    [("/slow/50", "10ms", True), ("/ok", "10s", False), ("/status/500", "1ms", False)],
)
async def test_slow_flag(server, transport, path, slow, expected):
    result = await run(transport, server.url(path), slow=slow)
    assert result.slow is expected
    assert result.latency_ms is not None


async def test_gzip_body_is_decoded(server, transport):
    result = await run(transport, server.url("/gzip"), contains="compressed hello")

    assert result.ok, result
    assert result.bytes == len(GZIP_PLAIN)
    assert result.content_hash == sha256(GZIP_PLAIN)
    assert "gzip" in server.requests[-1]["headers"]["accept-encoding"]


async def test_configured_headers_are_sent(server, transport):
    plan = make_plan(
        server.url("/echo"),
        env={"TOKEN": "s3cret"},
        monitor={"headers": {"X-Team": "ops"}},
        headers={"Authorization": "Bearer ${TOKEN}", "X-Custom": "yes"},
    )
    result = await probe(transport, plan, 1)

    assert result.ok, result
    sent = server.requests[-1]["headers"]
    assert sent["authorization"] == "Bearer s3cret"
    assert sent["x-custom"] == "yes"
    assert sent["x-team"] == "ops"
    assert sent["user-agent"] == USER_AGENT


@pytest.mark.parametrize(
    ("monitor", "headers", "expected"),
    [
        ({}, {}, USER_AGENT),
        ({"user_agent": "probe-test/1"}, {}, "probe-test/1"),
        ({"user_agent": "probe-test/1"}, {"User-Agent": "mine/2"}, "mine/2"),
    ],
)
async def test_user_agent(server, transport, monitor, headers, expected):
    await probe(transport, make_plan(server.url("/echo"), monitor=monitor, headers=headers), 1)
    assert server.requests[-1]["headers"]["user-agent"] == expected


async def test_latin1_header_values_are_sent_as_latin1(server, transport):
    plan = make_plan(
        server.url("/echo"),
        env={"WHO": "Zoë"},
        monitor={"user_agent": "sonde-é/1", "headers": {"X-Team": "équipe"}},
        headers={"X-Who": "${WHO}"},
    )
    result = await probe(transport, plan, 1)

    assert result.ok, result
    sent = server.requests[-1]["headers"]  # the test server decodes bytes as Latin-1
    assert (sent["x-team"], sent["x-who"], sent["user-agent"]) == ("équipe", "Zoë", "sonde-é/1")


async def test_head(server, transport):
    result = await run(transport, server.url("/ok"), method="HEAD")

    assert (result.ok, result.status, result.bytes) == (True, 200, 0)
    assert result.content_hash == sha256(b"")
    assert server.requests[-1]["method"] == "HEAD"


async def test_post(server, transport):
    result = await run(transport, server.url("/hook"), method="POST")

    assert (result.ok, result.status) == (True, 200)
    request = server.requests[-1]
    assert (request["method"], request["body"]) == ("POST", b"")
    assert request["headers"]["content-length"] == "0"
    assert server.received == [b""]


# --- redirects -------------------------------------------------------------------


@pytest.mark.parametrize(("hops", "max_redirects"), [(3, 3), (0, 0), (3, 10)])
async def test_redirects_are_followed(server, transport, hops, max_redirects):
    result = await run(transport, server.url(f"/redirect/{hops}"), max_redirects=max_redirects)

    assert (result.ok, result.status) == (True, 200)
    assert result.bytes == len(b"landed")
    assert result.final_url == (server.url("/redirect/0") if hops else None)
    assert sum(server.hits.values()) == hops + 1


@pytest.mark.parametrize(("path", "max_redirects"), [("/redirect/4", 3), ("/redirect/1", 0)])
async def test_too_many_redirects(server, transport, path, max_redirects):
    result = await run(transport, server.url(path), max_redirects=max_redirects)

    assert_failed(result, ErrorKind.REDIRECTS, f"more than {max_redirects} redirects")
    assert result.attempts == 1
    assert sum(server.hits.values()) == max_redirects + 1


async def test_redirect_loop(server, transport):
    result = await run(transport, server.url("/loop"), max_redirects=5)

    assert_failed(result, ErrorKind.REDIRECTS, "more than 5 redirects")
    assert server.hits["/loop"] == 6


@pytest.mark.parametrize(("expect_status", "ok"), [(["2xx"], False), ([302], True), (None, True)])
async def test_redirect_not_followed(server, transport, expect_status, ok):
    settings = {"expect_status": expect_status} if expect_status else {}  # default: 200-399
    result = await run(transport, server.url("/redirect/3"), follow_redirects=False, **settings)

    assert (result.ok, result.status, result.final_url) == (ok, 302, None)
    if not ok:
        assert_failed(result, ErrorKind.STATUS, "HTTP 302")
    assert server.hits == {"/redirect/3": 1}


async def test_post_redirected_by_302_becomes_get(server, transport):
    result = await run(transport, server.url("/redirect/1"), method="POST")

    assert result.ok, result
    assert [r["method"] for r in server.requests] == ["POST", "GET"]


@pytest.mark.parametrize(
    ("location", "kept"),
    [
        ("/next", True),  # same origin
        ("https://127.0.0.1/next", True),  # https upgrade of the same host
        ("http://127.0.0.1:8080/next", False),  # another port is another origin
        ("https://127.0.0.1:8443/next", False),
    ],
)
@pytest.mark.parametrize(
    ("url", "headers"),
    [
        (MOCK_URL + "start", {"Authorization": "Bearer t"}),
        (MOCK_URL.replace("//", "//user:pass@") + "start", {}),  # sent as Basic auth
    ],
    ids=["header", "userinfo"],
)
async def test_credentials_stay_with_the_target_origin(location, kept, url, headers):
    sent: dict[str, httpx.Headers] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        sent[str(request.url)] = request.headers
        if request.url.path == "/start":
            return httpx.Response(302, headers={"location": location})
        return httpx.Response(200, text="landed")

    plan = make_plan(url, headers={**headers, "Cookie": "s=1", "X-Other": "o"})
    async with mock_transport(handler) as transport:
        result = await probe(transport, plan, 1)

    assert result.ok, result
    assert "authorization" in sent[MOCK_URL + "start"]
    final = sent[result.final_url]
    assert final["x-other"] == "o"
    assert ("authorization" in final, "cookie" in final) == (kept, kept)
    assert final["host"] == httpx.URL(result.final_url).netloc.decode()


async def test_url_credentials_are_sent_as_basic_auth(server, transport):
    path = "/basic/alice/p@ss"
    url = server.url(path).replace("//", "//alice:p%40ss@")
    result = await run(transport, url)
    refused = await run(transport, server.url(path), retries=0)

    assert result.ok, result
    assert result.url == result.target == url.replace("p%40ss", "***")
    assert (refused.ok, refused.status) == (False, 401)


async def test_a_final_url_is_shown_redacted():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/start":
            return httpx.Response(302, headers={"location": "http://u:secret@127.0.0.1/next"})
        return httpx.Response(200, text="landed")

    async with mock_transport(handler) as transport:
        result = await run(transport, MOCK_URL + "start")

    assert result.final_url == "http://u:***@127.0.0.1/next"


async def test_invalid_redirect_location_is_a_protocol_error():  # httpx checks it
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://[::1"})

    async with mock_transport(handler) as transport:
        result = await run(transport, MOCK_URL, retries=0)

    assert_failed(result, ErrorKind.PROTOCOL, "invalid url in location header")


# --- body size -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/endless", f"/big/{3 * CHUNK + 1}"])
async def test_large_body_is_truncated_by_default(server, transport, path):
    max_body = 1 << 20 if path == "/endless" else 100_000
    settings = {} if path == "/endless" else {"max_body": max_body}
    result = await run(transport, server.url(path), **settings)

    assert (result.ok, result.status, result.truncated) == (True, 200, True)
    assert result.bytes == max_body
    assert result.content_hash == sha256(b"x" * max_body)


async def test_large_body_over_tls_is_truncated(tls_server, transport):
    result = await run(transport, tls_server.url("/endless"), verify_tls=False, max_body="100KiB")

    assert (result.ok, result.truncated, result.bytes) == (True, True, 100 * 1024)


async def test_body_of_exactly_max_body_is_not_truncated(server, transport):
    result = await run(transport, server.url("/big/100000"), max_body=100_000, on_too_large="fail")

    assert (result.ok, result.truncated, result.bytes) == (True, False, 100_000)


async def test_too_large_fails(server, transport):
    result = await run(transport, server.url("/big/100001"), max_body=100_000, on_too_large="fail")

    assert_failed(result, ErrorKind.TOO_LARGE, "max_body (100000 bytes)")
    assert (result.status, result.truncated, result.bytes) == (200, True, 100_000)
    assert result.attempts == 1


async def test_truncated_connection_is_not_reused(server, transport):
    first = await run(transport, server.url("/endless"), max_body="64KiB")
    second = await run(transport, server.url("/ok"))

    assert (first.truncated, second.ok) == (True, True)
    assert server.connections == 2  # the rest of /endless was never read: not reusable


# --- content ---------------------------------------------------------------------


@pytest.mark.parametrize(("contains", "ok"), [("world", True), ("goodbye", False)])
async def test_contains(server, transport, contains, ok):
    result = await run(transport, server.url("/ok"), contains=contains)

    assert (result.ok, result.status, result.bytes) == (ok, 200, 11)
    if not ok:
        assert_failed(result, ErrorKind.CONTENT, "body does not contain 'goodbye'")
        assert result.attempts == 1


@pytest.mark.parametrize(("needle", "ok"), [("NEEDLE", True), ("NEEDLES", False)])
async def test_contains_across_the_64k_read_boundary(server, transport, needle, ok):
    server.bodies["straddle"] = b"a" * (CHUNK - 3) + b"NEEDLE" + b"b" * CHUNK
    result = await run(transport, server.url("/body/straddle"), contains=needle)

    assert result.ok is ok
    assert result.bytes == len(server.bodies["straddle"])
    if not ok:
        assert_failed(result, ErrorKind.CONTENT, needle)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 6, 7, 100])
@pytest.mark.parametrize(("needle", "ok"), [("needle", True), ("needled", False)])
async def test_contains_in_any_chunking(chunk_size, needle, ok):
    body = b"<p>needl needle</p>"
    chunks = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]

    async with mock_transport(
        lambda request: httpx.Response(200, stream=Chunks(chunks))
    ) as transport:
        result = await run(transport, MOCK_URL, contains=needle)

    assert (result.ok, result.bytes, result.content_hash) == (ok, len(body), sha256(body))


async def test_contains_is_only_searched_within_max_body(server, transport):
    server.bodies["late"] = b"a" * 1000 + b"NEEDLE"
    result = await run(transport, server.url("/body/late"), contains="NEEDLE", max_body=1003)

    assert_failed(result, ErrorKind.CONTENT, "NEEDLE")
    assert (result.truncated, result.bytes) == (True, 1003)


# --- failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expect_status", "ok"),
    [
        ("/status/500", None, False),
        ("/status/500", ["2xx"], False),
        ("/status/204", ["2xx"], True),
        ("/status/404", [404], True),
        ("/ok", [404], False),
        ("/status/503", ["500-599"], True),
    ],
)
async def test_expect_status(server, transport, path, expect_status, ok):
    settings = {"expect_status": expect_status} if expect_status else {}
    result = await run(transport, server.url(path), retries=2, **settings)

    status = 200 if path == "/ok" else int(path.rsplit("/", 1)[1])
    assert (result.ok, result.status) == (ok, status)
    if not ok:
        assert_failed(result, ErrorKind.STATUS, f"HTTP {status}")
    assert result.attempts == 1  # a status is an answer: never retried
    assert server.hits[path] == 1


@pytest.mark.parametrize("path", ["/hang", "/drip"])
async def test_timeout(server, transport, path):
    result = await run(transport, server.url(path), timeout="300ms", retries=3)

    assert_failed(result, ErrorKind.TIMEOUT, "within 0.3s")
    assert (result.status, result.latency_ms, result.bytes) == (None, None, 0)
    assert result.attempts == 1
    assert server.hits[path] == 1


async def test_connection_refused(transport):
    port = closed_port()
    result = await run(transport, f"http://127.0.0.1:{port}/", retries=0)

    assert_failed(result, ErrorKind.CONNECT, f"127.0.0.1:{port}")
    assert result.error_detail.endswith("(Connection refused)")  # the OS reason, unwrapped
    assert (result.status, result.attempts) == (None, 1)


@pytest.mark.parametrize(("path", "detail"), [("/reset", "reset"), ("/close", "disconnected")])
@pytest.mark.parametrize("retries", [0, 2])
async def test_connection_dropped_is_retried(server, transport, path, detail, retries):
    result = await run(transport, server.url(path), retries=retries)

    assert_failed(result, ErrorKind.CONNECT, detail)
    assert result.attempts == retries + 1
    assert server.hits[path] == retries + 1


async def test_refused_connection_is_retried(transport):
    result = await run(transport, f"http://127.0.0.1:{closed_port()}/", retries=2)

    assert_failed(result, ErrorKind.CONNECT)
    assert result.attempts == 3


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_connection_closed_mid_body(nursery, transport, reply):
    url = await serve_raw(nursery, reply)
    result = await run(transport, url, retries=0)

    assert_failed(result, ErrorKind.CONNECT, "peer closed connection")


async def test_random_bytes_are_always_a_protocol_error(nursery, transport):
    # Bytes that never form a response head used to be "connect" (httpcore says "server
    # disconnected" for them too) unless h11 happened to reject them first: by luck.
    rngs = iter(random.Random(seed) for seed in range(200))
    sizes: list[int] = []

    def reply() -> bytes:
        rng = next(rngs)
        sizes.append(rng.randint(1, 4096))
        return rng.randbytes(sizes[-1])

    url = await serve_raw(nursery, reply)
    kinds = collections.Counter()
    for _ in range(200):
        result = await run(transport, url, retries=0)
        kinds[result.error] += 1
    assert kinds == {ErrorKind.PROTOCOL: 200}
    assert len(sizes) == 200


@pytest.mark.parametrize(
    ("reply", "kind", "detail"),
    [
        (b"", ErrorKind.CONNECT, "disconnected"),  # closed before any byte
        (b"HTTP/1.1 200 OK\r\nContent-Le", ErrorKind.CONNECT, "disconnected"),  # head cut short
        (b"HTT", ErrorKind.CONNECT, "disconnected"),
        (b"hello", ErrorKind.PROTOCOL, "not an HTTP response: received 5 bytes"),
        (b"\x00", ErrorKind.PROTOCOL, ""),  # h11 rejects this one itself
    ],
)
async def test_closed_before_a_response_head(nursery, transport, reply, kind, detail):
    url = await serve_raw(nursery, reply)
    result = await run(transport, url, retries=0)

    assert_failed(result, kind, detail)


@pytest.mark.parametrize(
    ("path", "detail"), [("/garbage", "illegal status line"), ("/badheader", "content-length")]
)
async def test_protocol_error_is_retried(server, transport, path, detail):
    result = await run(transport, server.url(path), retries=1)

    assert_failed(result, ErrorKind.PROTOCOL, detail)
    assert result.attempts == 2
    assert server.hits[path] == 2


async def test_tls_verification(tls_server, transport):
    url = tls_server.url("/ok")
    # one transport, one origin: verifying and not are separate pools, nothing leaks between
    untrusted = await run(transport, url, retries=0)
    unverified = await run(transport, url, verify_tls=False)
    untrusted_again = await run(transport, url, retries=0)

    for result in (untrusted, untrusted_again):
        assert_failed(result, ErrorKind.TLS, "certificate verify failed")
    assert (unverified.ok, unverified.status, unverified.bytes) == (True, 200, 11)
    assert unverified.remote_addr == f"127.0.0.1:{tls_server.port}"


async def test_dns_failure(dns_server, transport):
    # names are resolved by our resolver (net/dns.py), here asking the loopback server,
    # which knows no "nowhere.invalid": NXDOMAIN
    resolver = "{}:{}".format(*dns_server.address)
    result = await run(transport, "http://nowhere.invalid/", retries=1, resolver=resolver)

    assert_failed(result, ErrorKind.DNS, "NXDOMAIN", "nowhere.invalid")
    assert result.attempts == 2
    assert dns_server.count("nowhere.invalid", "A") == 2  # resolved again by the retry


# --- retries and the deadline, in virtual time -----------------------------------


def test_backoff_delay_is_capped_exponential_with_jitter():
    rng = random.Random(SEED)
    for retry in range(12):
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2**retry)
        delays = [backoff_delay(retry, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant


async def test_retry_after_decides_and_sleeps_the_backoff(autojump_clock):
    """The one retry decision the kinds that retry share (http, tcp, ws)."""
    refused = ProbeFailure(ErrorKind.CONNECT, "refused")
    with trio.move_on_after(60) as deadline:
        start = trio.current_time()
        # not retryable, or no retries left: final at once, no time spent
        assert not await retry_after(
            ProbeFailure(ErrorKind.STATUS, "HTTP 500"), 0, 3, deadline, random.Random(SEED)
        )
        assert not await retry_after(refused, 3, 3, deadline, random.Random(SEED))
        assert trio.current_time() == start
        # retryable with retries left: the backoff is slept
        assert await retry_after(refused, 2, 3, deadline, random.Random(SEED))
        assert trio.current_time() - start == pytest.approx(backoff_delay(2, random.Random(SEED)))
    with trio.move_on_after(0.05) as deadline:
        # a backoff that would end past the deadline: final now, the real error reported
        start = trio.current_time()
        assert not await retry_after(refused, 0, 3, deadline, random.Random(SEED))
        assert trio.current_time() == start


async def test_retries_back_off(autojump_clock):
    calls: list[float] = []
    async with mock_transport(partial(connect_error, calls)) as transport:
        plan = make_plan(MOCK_URL, retries=5, timeout="1m")
        result = await probe(transport, plan, 1, rng=random.Random(SEED))

    assert_failed(result, ErrorKind.CONNECT, "refused")
    assert result.attempts == len(calls) == 6
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    rng = random.Random(SEED)
    assert gaps == pytest.approx([backoff_delay(retry, rng) for retry in range(5)])
    for retry, gap in enumerate(gaps):
        assert BACKOFF_BASE * 2**retry / 2 <= gap <= BACKOFF_BASE * 2**retry


@pytest.mark.parametrize("seed", range(5))
async def test_no_retry_starts_that_could_not_finish_in_time(autojump_clock, seed):
    timeout = 0.5
    calls: list[float] = []
    start = trio.current_time()
    async with mock_transport(partial(connect_error, calls)) as transport:
        plan = make_plan(MOCK_URL, retries=10, timeout="500ms")
        result = await probe(transport, plan, 1, rng=random.Random(seed))
    end = trio.current_time()

    # the real error, reported as soon as no retry fits: not a timeout at the deadline
    assert_failed(result, ErrorKind.CONNECT, "refused")
    assert end == pytest.approx(calls[-1])
    assert end - start < timeout
    # each retry started after its backoff; the one after the last would end too late
    rng, expected = random.Random(seed), [start]
    for retry in itertools.count():
        delay = backoff_delay(retry, rng)
        if expected[-1] + delay >= start + timeout:
            break
        expected.append(expected[-1] + delay)
    assert calls == pytest.approx(expected)
    assert 1 < result.attempts == len(calls) < 11


@pytest.mark.parametrize("fail_first", [False, True])
async def test_deadline_covers_the_whole_probe(autojump_clock, fail_first):
    calls: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if fail_first and not calls:
            connect_error(calls, request)
        calls.append(trio.current_time())
        await trio.sleep(3600)
        return httpx.Response(200)

    start = trio.current_time()
    async with mock_transport(handler) as transport:
        result = await run(transport, MOCK_URL, retries=3, timeout="2s")

    assert trio.current_time() - start == pytest.approx(2.0)
    assert_failed(result, ErrorKind.TIMEOUT, "within 2s")
    assert result.attempts == len(calls) == (2 if fail_first else 1)
    assert result.status is None


# --- robustness ------------------------------------------------------------------


async def test_hostile_routes_never_raise(server):
    results: dict[tuple[str, str], ProbeResult] = {}

    async def one(transport: httpx.AsyncBaseTransport, path: str, method: str) -> None:
        plan = make_plan(server.url(path), method=method, timeout="300ms", max_body="100KiB")
        results[path, method] = await probe(transport, plan, 1)

    # per_host: all at once, so that the hanging routes cannot starve the others of a connection
    async with ProbeTransport(per_host=100) as transport:
        async with trio.open_nursery() as nursery:
            for path, method in itertools.product(HOSTILE_ROUTES, ("GET", "HEAD", "POST")):
                nursery.start_soon(one, transport, path, method)
        after = await run(transport, server.url("/ok"))

    assert len(results) == 3 * len(HOSTILE_ROUTES)
    for key, result in results.items():
        assert isinstance(result, ProbeResult), key
        assert result.ok == (result.error is None), (key, result)
        assert result.error != ErrorKind.INTERNAL, (key, result)
        assert result.ok or result.error_detail, (key, result)
    assert after.ok  # the server and the transport's pools survived it all


async def test_cancellation_propagates(server, transport):
    results: list[ProbeResult] = []

    async def run_forever() -> None:
        results.append(await run(transport, server.url("/hang"), timeout="1h"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_forever)
        await server.wait_in_flight(1)
        nursery.cancel_scope.cancel()

    assert results == []  # Cancelled went through probe(): it returned nothing


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"method": "POST"},
        {"method": "PUT"},
        {"headers": {"Host": "example.test", "X-Token": "é"}},
        {"url": "http://user:pw@127.0.0.1:8080/a?b=c"},
    ],
)
def test_a_plans_first_request_is_the_one_httpx_builds(extra):
    """The plan shares header entries and the empty body between targets; what it
    sends is still exactly what httpx.Request builds for the same method, URL, headers."""
    extra = {"url": "http://127.0.0.1:8080/x", **extra}
    plan = make_plan(extra.pop("url"), **extra)
    expected = httpx.Request(plan.spec.method, plan.spec.url, headers=plan.headers)
    assert plan.request.method == expected.method
    assert plan.request.url == expected.url
    assert plan.request.headers.raw == expected.headers.raw
    assert plan.request.headers.multi_items() == expected.headers.multi_items()
    assert b"".join(plan.request.stream) == b""  # type: ignore[arg-type]


def test_targets_with_the_same_headers_share_them():
    doc = {"targets": [{"url": f"http://127.0.0.1:{port}/"} for port in (8080, 8081)]}
    first, second = (prepare(t) for t in parse_config(doc, env={}).targets)
    assert first.headers is second.headers
    assert first.request.headers.raw[1:] == second.request.headers.raw[1:]  # after Host
