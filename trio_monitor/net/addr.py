"""IP addresses as text: telling a literal from a name, and writing one with a port.

Light on purpose (no dnspython): the transport asks it for every request.
"""

from __future__ import annotations

import functools
import ipaddress


@functools.lru_cache(maxsize=4096)  # one answer per host a config names
def ip_literal(host: str) -> str | None:
    """`host` as an IP address in its canonical text ("[::1]" -> "::1"), else None."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def bracketed(ip: str) -> str:
    """An address as it is written before a port: IPv6 in brackets."""
    return f"[{ip}]" if ":" in ip else ip


def with_port(ip: str, port: int) -> str:
    return f"{bracketed(ip)}:{port}"


# a wildcard listen address is not one to connect to: loopback instead
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def local_url(listen: tuple[str, int]) -> str:
    """The http:// origin a client on this machine reaches a `[server] listen` at."""
    host, port = listen
    return f"http://{with_port(_LOOPBACK.get(host, host), port)}"
