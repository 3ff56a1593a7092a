"""TLS certificate details of a connection: what the probe line's `tls` object says.

`tls_details(ssl_object, now)` reads the chain the server presented (verified or not)
from an `ssl.SSLObject` (trio's SSLStream) or an `ssl.SSLSocket`, and the negotiated
version and cipher. Every probe of an HTTPS target calls it, and a target presents the
same certificates probe after probe, so each distinct certificate (by its DER bytes) is
parsed once, in a bounded cache.
"""

from __future__ import annotations

import _ssl
import functools
import ssl
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from attrs import frozen

if TYPE_CHECKING:
    from cryptography import x509

DAY = 86400.0
PARSED_CERTS = 4096  # distinct certificates kept parsed (a few KiB each)
_ENCODING_DER = _ssl.ENCODING_DER  # what the chain's _ssl.Certificate.public_bytes takes


@frozen
class CertInfo:
    """One certificate, parsed: what the details need of it."""

    subject: str  # RFC 4514, e.g. "CN=example.com,O=Example"
    issuer: str
    sans: tuple[str, ...]  # DNS names and IP addresses
    not_before: float  # unix seconds
    not_after: float


@frozen
class TlsDetails:
    """A connection's TLS facts: its leaf certificate, the chain's earliest expiry, the
    negotiated version and cipher. Times are unix seconds (JSON: RFC 3339)."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: float
    not_after: float
    days_left: float  # (not_after - probe time) in days; negative once expired
    version: str | None  # "TLSv1.3"
    cipher: str | None  # "TLS_AES_256_GCM_SHA384"
    # the earliest not_after of the presented chain (leaf included), and whose it is:
    # an intermediate that expires first breaks the chain before the leaf does
    earliest_not_after: float
    earliest_subject: str

    def invalid_reason(self, now: float) -> str | None:
        """Why the leaf is not valid at `now` ("certificate expired on 2026-11-20 (10
        days ago)"), or None while it is."""
        if now > self.not_after:
            return f"certificate {describe_expiry(self.not_after, now)}"
        if now < self.not_before:
            return (
                f"certificate not valid before {_date(self.not_before)} "
                f"(in {_span(self.not_before - now)})"
            )
        return None

    def chain_reason(self, now: float) -> str | None:
        """`invalid_reason`, or else why a chain certificate is not valid at `now`
        (verification refuses an expired intermediate; the earliest expiry is the one)."""
        reason = self.invalid_reason(now)
        if reason is None and now > self.earliest_not_after:
            when = describe_expiry(self.earliest_not_after, now)
            reason = f"chain certificate {self.earliest_subject} {when}"
        return reason


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _span(seconds: float) -> str:
    """Whole days (or hours, under a day), counted down like `days_left` (13.5 days is
    "13 days"), with a minute's tolerance: a certificate issued for 3 days is "in 3
    days" the seconds after, not "in 2 days"."""
    seconds += 60
    days = int(seconds // DAY)
    if days >= 1:
        return f"{days} day{'s' if days != 1 else ''}"
    hours = int(seconds // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}" if hours else "less than an hour"


def _ago(seconds: float) -> str:
    span = _span(seconds)
    return span if span == "less than an hour" else f"{span} ago"


def describe_expiry(not_after: float, now: float) -> str:
    """ "expires on 2026-12-03 (in 3 days)" or "expired on 2026-11-20 (10 days ago)"."""
    if now > not_after:
        return f"expired on {_date(not_after)} ({_ago(now - not_after)})"
    return f"expires on {_date(not_after)} (in {_span(not_after - now)})"


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    names = ext.value.get_values_for_type(x509.DNSName)
    addresses = ext.value.get_values_for_type(x509.IPAddress)
    return (*names, *(str(a) for a in addresses))


@functools.lru_cache(maxsize=PARSED_CERTS)  # keyed by the DER bytes: one parse per certificate
def parse_der(der: bytes) -> CertInfo | None:
    """A certificate's details; None if it cannot be parsed (the handshake accepted it,
    but a malformed extension must not turn into a failed probe)."""
    from cryptography import x509  # ~30 ms to import: only once a certificate comes

    try:
        cert = x509.load_der_x509_certificate(der)
        return CertInfo(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            sans=_sans(cert),
            not_before=cert.not_valid_before_utc.timestamp(),
            not_after=cert.not_valid_after_utc.timestamp(),
        )
    except ValueError:
        return None


def presented_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> list[bytes]:
    """The DER certificates the peer presented, leaf first; [] if none (or no handshake).

    Python 3.11 has no public API for the unverified chain (3.13 adds one), but both
    ssl.SSLObject and ssl.SSLSocket hold an `_ssl._SSLSocket` with
    `get_unverified_chain()`; without it, the leaf alone."""
    inner = getattr(ssl_object, "_sslobj", None)
    getter = getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        try:
            chain = getter() or []
            return [c.public_bytes(_ENCODING_DER) for c in chain]
        except (ValueError, ssl.SSLError):
            pass
    try:
        leaf = ssl_object.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        return []
    return [leaf] if leaf else []


def tls_details(ssl_object: ssl.SSLObject | ssl.SSLSocket, now: float) -> TlsDetails | None:
    """The connection's TLS details at `now` (unix seconds); None if the peer presented
    no certificate we can parse."""
    certs = [info for der in presented_chain(ssl_object) if (info := parse_der(der)) is not None]
    if not certs:
        return None
    leaf = certs[0]
    earliest = min(certs, key=lambda c: c.not_after)
    cipher = ssl_object.cipher()
    return TlsDetails(
        subject=leaf.subject,
        issuer=leaf.issuer,
        sans=leaf.sans,
        not_before=leaf.not_before,
        not_after=leaf.not_after,
        days_left=round((leaf.not_after - now) / DAY, 2),
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        earliest_not_after=earliest.not_after,
        earliest_subject=earliest.subject,
    )
