"""One net/dns `Resolver` per `resolver` value (None: the system's settings), made on
first use: a Resolver reads /etc/hosts and /etc/resolv.conf once, and dnspython is
loaded by the first name only, never at import. Each prober that resolves names has one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dns import Resolver


class Resolvers:
    def __init__(self) -> None:
        self._by_server: dict[tuple[str, int] | None, Resolver] = {}

    def get(self, nameserver: tuple[str, int] | None) -> Resolver:
        """The resolver asking `nameserver` (None: resolv.conf's nameservers)."""
        resolver = self._by_server.get(nameserver)
        if resolver is None:
            from .dns import Resolver

            resolver = self._by_server[nameserver] = Resolver(nameserver)
        return resolver

    def retain(self, nameservers: set[tuple[str, int] | None]) -> None:
        """Forget the resolvers of nameservers not in `nameservers` (after a reload)."""
        self._by_server = {k: v for k, v in self._by_server.items() if k in nameservers}
