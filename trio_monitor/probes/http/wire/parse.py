"""Reading one HTTP/1.1 response off a connection, with httptools (llhttp) as the parser.

llhttp checks the syntax (status line, header names and values, Content-Length,
chunked framing) in C; this module keeps the rules a client adds: interim 1xx responses
are skipped, a response to HEAD ends with its head, a body without a length ends with
the connection, the head is bounded in size and header count (a header flood is a
protocol error, not memory), and bytes after the response make the connection unusable.
"""

from __future__ import annotations

import httptools
import httpx

from ....net.sockets import Conn

MAX_HEAD = 64 * 1024  # bytes of status line and headers
MAX_HEADERS = 256
_HTTP = b"HTTP/"
_FRAMING = (b"content-length", b"transfer-encoding")


class _HeadDone(Exception):
    """Raised from a callback to stop the parser at the end of a HEAD response's head."""


class HeadTooLarge(Exception):
    pass


def _looks_like_http(head: bytes) -> bool:
    """Could these first bytes still become an HTTP/1 status line?"""
    return head[: len(_HTTP)] == _HTTP[: len(head)]


def _preview(data: bytes) -> str:
    return repr(data[:16])


class ResponseReader:
    """Parser callbacks and the state of one response being read from `conn`."""

    __slots__ = (
        "_body",
        "_complete",
        "_conn",
        "_encoded",
        "_expect_body",
        "_framed",
        "_head_bytes",
        "_head_done",
        "_headers",
        "_is_head",
        "_keep_alive",
        "_parser",
        "_prefix",
        "_received",
        "_status",
        "_trailing",
        "reason",
    )

    def __init__(self, conn: Conn, method: bytes) -> None:
        self._conn = conn
        self._parser = httptools.HttpResponseParser(self)
        self._is_head = method == b"HEAD"
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._head_done = False
        self._complete = False
        self._trailing = False
        self._keep_alive = False
        self._framed = False  # Content-Length or chunked: the body's end is known
        self._encoded = False  # Content-Encoding: httpx must decode the body
        self._expect_body = True
        self._body: list[bytes] = []
        self._received = 0
        self._prefix = b""  # the first bytes received, for error messages
        self._status = 0
        self.reason = b""

    # --- httptools callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:
            self._trailing = True  # bytes after the response: the connection is unusable

    def on_status(self, reason: bytes) -> None:
        self._count(len(reason))
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        if len(self._headers) >= MAX_HEADERS:
            raise HeadTooLarge(f"more than {MAX_HEADERS} header fields")
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if 100 <= status < 200:  # interim (100 Continue, 103 Early Hints): wait for the real one
            self._headers = []
            self.reason = b""
            return
        self._status = status
        self._head_done = True
        self._keep_alive = parser.should_keep_alive()
        for name, _ in self._headers:
            lower = name.lower()
            if lower in _FRAMING:
                self._framed = True
            elif lower == b"content-encoding":
                self._encoded = True
        self._expect_body = not (self._is_head or status in (204, 304))
        if self._is_head:
            raise _HeadDone

    def on_body(self, body: bytes) -> None:
        if body:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._head_done:
            self._complete = True

    # ---------------------------------------------------------------------------

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD:
            raise HeadTooLarge(f"response head larger than {MAX_HEAD // 1024} KiB")

    def _feed(self, data: bytes) -> None:
        if len(self._prefix) < 16:
            self._prefix += data[: 16 - len(self._prefix)]
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__ or exc.__cause__
            if isinstance(cause, _HeadDone):
                self._complete = True
                self._keep_alive = False  # what followed the head is unknown: never reuse
                return
            if isinstance(cause, HeadTooLarge):
                raise httpx.RemoteProtocolError(f"invalid response: {cause}") from None
            raise
        except httptools.HttpParserError as exc:
            if self._complete:  # garbage after a complete response: ours is fine, the
                self._trailing = True  # connection is not
                return
            raise self._invalid(exc) from None

    def _invalid(self, exc: Exception) -> httpx.RemoteProtocolError:
        if self._head_done:
            return httpx.RemoteProtocolError(f"invalid response body: {exc}")
        if self._status == 0 and not _looks_like_http(self._prefix):
            return httpx.RemoteProtocolError(
                f"not an HTTP response: received {self._received} bytes starting "
                f"{_preview(self._prefix)} (illegal status line)"
            )
        return httpx.RemoteProtocolError(f"invalid response head: {exc}")

    def _eof(self) -> None:
        """The server closed the connection."""
        if not self._head_done:
            if self._received and not _looks_like_http(self._prefix):
                raise httpx.RemoteProtocolError(
                    f"not an HTTP response: received {self._received} bytes starting "
                    f"{_preview(self._prefix)}, then the server closed the connection"
                )
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a complete response"
                + (f" (received {self._received} bytes)" if self._received else "")
            )
        if self._framed:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            )
        self._complete = True  # no length, not chunked: the body ends with the connection
        self._keep_alive = False

    # --- the reading side --------------------------------------------------------

    async def read_head(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        """Read until the head is complete; called right after the request went out."""
        while not self._head_done:
            data = await self._conn.recv(wait_first=self._received == 0)
            if not data:
                self._eof()
            else:
                self._feed(data)
        if not self._expect_body and not self._complete:
            self._complete = True  # llhttp ends 204/304 itself; this covers HEAD's stop
        return self._status, self._headers

    @property
    def received(self) -> int:
        return self._received

    async def next_body_chunk(self) -> bytes:
        """The next piece of the body, b"" at its end."""
        while not self._body and not self._complete:
            data = await self._conn.recv()
            if not data:
                self._eof()
            else:
                self._feed(data)
        if self._body:
            return self._body.pop(0)
        return b""

    @property
    def encoded(self) -> bool:
        """The body has a Content-Encoding (read it through httpx, which decodes)."""
        return self._encoded

    @property
    def reusable(self) -> bool:
        """Complete, keep-alive, and nothing more on the wire."""
        return self._complete and self._keep_alive and not self._trailing
