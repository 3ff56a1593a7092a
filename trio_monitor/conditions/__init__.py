"""Conditions: Gatus's one-line assertions on a probe's result ("[STATUS] == 200",
"[BODY].status == UP", "[CERTIFICATE_EXPIRATION] > 48h"), docs/conditions.md.

A kind declares the placeholders it offers (`ProbeKind.placeholders`, name -> `Type`);
the config compiles each target's `conditions` against them at load (`compile_condition`:
a bad one is a `ConditionError`, one line); the kind, at the end of its probe, hands its
facts (name -> value) to `apply`, which records each outcome and fails the probe with
error kind `condition` if one fails.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._apply import apply
from ._compile import UNSUPPORTED, Condition, ConditionError, compile_condition
from ._values import Type

__all__ = [
    "COMMON",
    "UNSUPPORTED",
    "Condition",
    "ConditionError",
    "Type",
    "apply",
    "common_facts",
    "compile_condition",
    "keys",
    "needs",
]

# the placeholders of every kind that connects somewhere (see common_facts)
COMMON: Mapping[str, Type] = {
    "RESPONSE_TIME": Type.DURATION,
    "CONNECTED": Type.BOOL,
    "IP": Type.TEXT,
    "PHASE": Type.FIELDS,
}


def common_facts(
    latency_ms: float | None,
    remote_addr: str | None,
    phases_ms: Mapping[str, float | None] | None,
) -> dict[str, object]:
    """The facts of COMMON from a result's fields: RESPONSE_TIME its latency, CONNECTED
    whether it had a connection, IP the address it talked to ("ip:port" or an IP)."""
    return {
        "RESPONSE_TIME": latency_ms,
        "CONNECTED": remote_addr is not None,
        "IP": None if remote_addr is None else ip_of(remote_addr),
        "PHASE": phases_ms,
    }


def ip_of(remote_addr: str) -> str:
    """ "127.0.0.1:80" -> "127.0.0.1", "[::1]:443" -> "::1"; an IP alone stays as it is."""
    if remote_addr.startswith("["):
        return remote_addr[1:].partition("]")[0]
    host, sep, port = remote_addr.rpartition(":")
    return host if sep and host.count(":") == 0 and port.isdigit() else remote_addr


def needs(conditions: tuple[Condition, ...], name: str) -> bool:
    """Some condition reads the placeholder `name` (e.g. keep the body for "BODY")."""
    return any(name in c.needs for c in conditions)


def keys(conditions: tuple[Condition, ...], name: str) -> frozenset[str]:
    """The field names or CSS selectors conditions read after the placeholder `name`
    (e.g. the elements a browser probe reads for [SELECTOR])."""
    return frozenset(key for c in conditions for n, key in c.keys if n == name)
