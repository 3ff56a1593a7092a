"""The keys tls:// targets add to tcp://'s: the TLS keys of HTTPS targets that make sense
without HTTP (verify_tls, ca_file, client_cert, client_key, server_name; unset ones
inherit from [monitor], as for HTTPS) and `starttls`."""

from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen

from ..._config import HostName, MonitorSection, inherit
from ...net.tls import TlsLoader
from ..base import Resolve
from ..tcp.config import Starttls, TcpSpec, TcpTargetSection, TlsStep, tcp_spec


@frozen
class TlsTargetSection(TcpTargetSection):
    """[[targets]] with a tls:// URL."""

    verify_tls: bool | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    server_name: HostName | None = None
    starttls: Starttls | None = None


def tls_resolver(m: MonitorSection, env: Mapping[str, str], problems: list[str]) -> Resolve:
    contexts = TlsLoader(env)

    def resolve(t: TlsTargetSection, where: str, problems: list[str]) -> TcpSpec:
        verify = inherit(t.verify_tls, m.verify_tls)
        step = TlsStep(
            tls=contexts.for_target(t, m, where, verify, problems),
            server_name=t.server_name,
            starttls=t.starttls,
        )
        return tcp_spec(t, m, where, problems, tls=step)

    return resolve
