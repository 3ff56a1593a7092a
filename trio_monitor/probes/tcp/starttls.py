"""`starttls`: a protocol's plain-text upgrade before the TLS handshake of a tls:// probe.

    smtp      the 220 greeting, EHLO (STARTTLS must be offered), STARTTLS, 220
    imap      the untagged OK greeting, `a1 STARTTLS`, `a1 OK`
    postgres  SSLRequest, the one byte answer 'S'

A server that refuses the upgrade is a `tls` failure quoting its answer; one that
answers something else than the protocol's words is a `protocol` failure. Bytes the
server sends after its go-ahead and before the handshake are refused (`protocol`): a
man in the middle could inject them in plain text, to be read as if they came over TLS.
"""

from __future__ import annotations

import struct

from ..._errors import ErrorKind, ProbeFailure
from ...net.sockets import Conn
from .config import Starttls

MAX_REPLY = 16 * 1024  # bytes of one reply (an SMTP EHLO answer is a few hundred)
SHOWN = 120  # characters of an answer quoted in error_detail
EHLO_NAME_FALLBACK = "trio-monitor.invalid"
# PostgreSQL's SSLRequest: length 8, then the code 1234 5679 (protocol docs, 55.2.10)
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
IMAP_TAG = "a1"


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= SHOWN else text[: SHOWN - 3] + "...")


class Dialog:
    """Lines (or bytes) read off a connection, for one protocol's plain-text exchange."""

    def __init__(self, conn: Conn, protocol: str) -> None:
        self._conn = conn
        self._protocol = protocol
        self._buffer = bytearray()

    async def _more(self) -> None:
        data = await self._conn.recv()
        if not data:
            raise ProbeFailure(
                ErrorKind.CONNECT,
                f"{self._protocol}: the server closed the connection before the TLS upgrade",
            )
        self._buffer += data
        if len(self._buffer) > MAX_REPLY:
            raise ProbeFailure(
                ErrorKind.PROTOCOL,
                f"{self._protocol}: an answer longer than {MAX_REPLY} bytes without its end",
            )

    async def line(self) -> str:
        """One line, without its CRLF (or LF)."""
        while (end := self._buffer.find(b"\n")) < 0:
            await self._more()
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line.decode("utf-8", "replace").rstrip("\r\n")

    async def byte(self) -> bytes:
        while not self._buffer:
            await self._more()
        first = bytes(self._buffer[:1])
        del self._buffer[:1]
        return first

    async def send(self, text: str | bytes) -> None:
        await self._conn.send_all(text.encode() if isinstance(text, str) else text)

    def check_nothing_pending(self) -> None:
        """Nothing may follow the go-ahead in plain text (see the module's docstring)."""
        if self._buffer:
            raise ProbeFailure(
                ErrorKind.PROTOCOL,
                f"{self._protocol}: the server sent {len(self._buffer)} bytes after its "
                "go-ahead, before the TLS handshake (refused: they could be injected)",
            )


def _continues(line: str) -> bool:
    """An SMTP reply line with more to come: a code, then "-" ("250-PIPELINING")."""
    return line[:3].isdigit() and line[3:4] == "-"


async def _smtp_reply(dialog: Dialog) -> tuple[str, list[str]]:
    """An SMTP reply: its code and its lines ("250-a", "250 b": the last has a space)."""
    lines = [await dialog.line()]
    while _continues(lines[-1]):
        lines.append(await dialog.line())
    return lines[-1][:3], lines


def _ehlo_name(conn: Conn) -> str:
    """Our address as an SMTP address literal (RFC 5321 4.1.3): we have no domain name."""
    try:
        ip = conn.local_ip
    except OSError:
        return EHLO_NAME_FALLBACK
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


async def _smtp(conn: Conn) -> None:
    dialog = Dialog(conn, "SMTP")
    code, lines = await _smtp_reply(dialog)
    if code != "220":
        raise ProbeFailure(
            ErrorKind.PROTOCOL, f"SMTP: expected a 220 greeting, got {_shown(lines[0])}"
        )
    await dialog.send(f"EHLO {_ehlo_name(conn)}\r\n")
    code, lines = await _smtp_reply(dialog)
    if code != "250":
        raise ProbeFailure(ErrorKind.PROTOCOL, f"SMTP: EHLO answered {_shown(lines[-1])}")
    if not any(line[4:].upper().split()[:1] == ["STARTTLS"] for line in lines[1:]):
        offered = ", ".join(line[4:].split()[0] for line in lines[1:] if line[4:].split())
        raise ProbeFailure(
            ErrorKind.TLS,
            f"SMTP server does not offer STARTTLS (EHLO lists: {offered or 'nothing'})",
        )
    await dialog.send("STARTTLS\r\n")
    code, lines = await _smtp_reply(dialog)
    if code != "220":
        raise ProbeFailure(ErrorKind.TLS, f"SMTP server refused STARTTLS: {_shown(lines[-1])}")
    dialog.check_nothing_pending()


async def _imap(conn: Conn) -> None:
    dialog = Dialog(conn, "IMAP")
    greeting = await dialog.line()
    if not greeting.upper().startswith("* OK"):
        raise ProbeFailure(
            ErrorKind.PROTOCOL, f"IMAP: expected an untagged OK greeting, got {_shown(greeting)}"
        )
    await dialog.send(f"{IMAP_TAG} STARTTLS\r\n")
    while not (line := await dialog.line()).startswith(f"{IMAP_TAG} "):
        pass  # untagged lines (a CAPABILITY) may come first
    if not line[len(IMAP_TAG) + 1 :].upper().startswith("OK"):
        raise ProbeFailure(ErrorKind.TLS, f"IMAP server refused STARTTLS: {_shown(line)}")
    dialog.check_nothing_pending()


async def _postgres(conn: Conn) -> None:
    dialog = Dialog(conn, "PostgreSQL")
    await dialog.send(SSL_REQUEST)
    answer = await dialog.byte()
    if answer == b"N":
        raise ProbeFailure(
            ErrorKind.TLS, "PostgreSQL server refused SSL (answered 'N' to SSLRequest)"
        )
    if answer != b"S":
        raise ProbeFailure(
            ErrorKind.PROTOCOL, f"PostgreSQL: expected 'S' or 'N' to SSLRequest, got {answer!r}"
        )
    dialog.check_nothing_pending()


_UPGRADES = {"smtp": _smtp, "imap": _imap, "postgres": _postgres}


async def upgrade(conn: Conn, protocol: Starttls) -> None:
    """The plain-text part of `protocol`'s STARTTLS: on return, the handshake may start.
    Raises ProbeFailure (or OSError from the connection)."""
    await _UPGRADES[protocol](conn)
