"""The keys of dns:// targets, and their resolution into a `DnsSpec`.

`dns://NAME` names what is asked (IDNA-encoded when it is not ASCII), `record_type`
the question's type, `resolver` the server asked (unset: [monitor] resolver, else
resolv.conf's first nameserver, read when the prober opens). The URL holds only the
name: the server never goes there (Gatus users write it in `url`; a hint says so).
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen

from ..._config import MonitorSection, Nameserver, TargetSection, inherit
from ...net.addr import ip_literal
from ..base import Resolve

SCHEME = "dns"
# the types asked for; their order is the README's
RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA")
_URL_ONLY_NAME = (
    f"{SCHEME}:// takes only the name to query, like dns://example.com "
    "(the server goes in `resolver`)"
)


@frozen
class DnsTargetSection(TargetSection):
    """[[targets]] with a dns:// URL."""

    record_type: str = "A"
    resolver: Nameserver | None = None


@frozen
class DnsSpec:
    """A DNS target's question, every default applied."""

    name: str  # absolute, as sent ("example.com.", "xn--bcher-kva.example.")
    record_type: str  # one of RECORD_TYPES
    resolver: tuple[str, int] | None  # (IP, port); None: resolv.conf's first nameserver


def query_name(url: str) -> str:
    """The absolute name a dns:// URL asks about; ValueError (a user-facing message)
    when the URL holds more than a name, or no valid one."""
    text = url.partition("://")[2].removesuffix("/")
    if not text:
        raise ValueError(f"{_URL_ONLY_NAME}, got {url!r}")
    if any(c in text for c in "/?#@") or _has_port(text):
        raise ValueError(f"{_URL_ONLY_NAME}, got {url!r}")
    if ip_literal(text) is not None:
        raise ValueError(
            f"{_URL_ONLY_NAME}, got the address {text!r}: write it as resolver = {text!r}"
        )
    # dnspython only for a config with dns targets (`validate` of others never loads it)
    import dns.exception
    import dns.name

    try:
        name = dns.name.from_unicode(text, idna_codec=dns.name.IDNA_2008_Practical)
    except dns.exception.DNSException as exc:  # an empty or too long label, bad IDNA
        raise ValueError(f"invalid DNS name {text!r}: {_sentence(exc)}") from None
    return name.to_text()


def _has_port(text: str) -> bool:
    """`name:53` (a colon anywhere: no DNS name written in a URL has one)."""
    return ":" in text and ip_literal(text) is None


def _sentence(exc: Exception) -> str:
    """dnspython's message as part of a line: "a DNS label is > 63 octets long"."""
    text = str(exc).rstrip(".")
    return text[:1].lower() + text[1:]


def dns_resolver(m: MonitorSection, env: Mapping[str, str], problems: list[str]) -> Resolve:
    def resolve(t: DnsTargetSection, where: str, problems: list[str]) -> DnsSpec:
        assert t.url is not None  # a kind with URL schemes has one (_config.py checks)
        try:
            name = query_name(t.url)
        except ValueError as exc:
            problems.append(f"{where}.url: {exc}")
            name = "."
        record_type = t.record_type.upper()
        if record_type not in RECORD_TYPES:
            problems.append(
                f"{where}.record_type: must be one of {', '.join(RECORD_TYPES)}, "
                f"got {t.record_type!r}"
            )
            record_type = "A"
        return DnsSpec(name=name, record_type=record_type, resolver=inherit(t.resolver, m.resolver))

    return resolve
