"""Records and configs for tests: sensible defaults, keyword overrides.

Every record field a test does not name gets a default here, so a new field on
ProbeResult, AlertEvent or RoundSummary changes this file and no test.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from trio_monitor import Config, ErrorKind, Target, parse_config
from trio_monitor._records import AlertEvent, ProbeResult, RoundSummary
from trio_monitor.net.certs import DAY, TlsDetails
from trio_monitor.probes import base as probe_kinds

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z: a whole hour (and day) in unix seconds

_BY_OK: Any = object()  # "default: depends on ok"


def probe_result(
    target: str = "api",
    *,
    ts: float = T0,
    ok: bool = True,
    url: str | None = None,
    status: int | None = _BY_OK,
    latency_ms: float | None = _BY_OK,
    error: ErrorKind | str | None = _BY_OK,
    attempts: int = 1,
    round: int = 1,
    **fields: Any,
) -> ProbeResult:
    """One probe of `target` at `http://<target>.test/`: a 200 in 12.5 ms when ok, a
    refused connection (no status, no latency) when not. Any other field by keyword."""
    return ProbeResult(
        ts=ts,
        target=target,
        url=f"http://{target}.test/" if url is None else url,
        ok=ok,
        status=(200 if ok else None) if status is _BY_OK else status,
        latency_ms=(12.5 if ok else None) if latency_ms is _BY_OK else latency_ms,
        error=(None if ok else ErrorKind.CONNECT) if error is _BY_OK else error,
        attempts=attempts,
        round=round,
        **fields,
    )


def tls_details(
    not_after: float = T0 + 30 * DAY,
    *,
    ts: float = T0,
    subject: str = "CN=site",
    earliest_not_after: float | None = None,
    **fields: Any,
) -> TlsDetails:
    """A TLS 1.3 connection's details, seen at `ts`, with a leaf expiring at `not_after`."""
    values: dict[str, Any] = {
        "subject": subject,
        "issuer": "CN=ca",
        "sans": ("site",),
        "not_before": not_after - 90 * DAY,
        "not_after": not_after,
        "days_left": round((not_after - ts) / DAY, 2),
        "version": "TLSv1.3",
        "cipher": "TLS_AES_128_GCM_SHA256",
        "earliest_not_after": not_after if earliest_not_after is None else earliest_not_after,
        "earliest_subject": subject,
    }
    return TlsDetails(**(values | fields))


def alert_event(
    event: str = "down",
    target: str = "api",
    *,
    ts: float = T0,
    url: str | None = None,
    **fields: Any,
) -> AlertEvent:
    """An alert of `event` for `target` at `http://<target>.test/`; the rest by keyword."""
    return AlertEvent(
        ts=ts,
        target=target,
        url=f"http://{target}.test/" if url is None else url,
        event=event,
        **fields,
    )


def round_summary(
    *,
    ts: float = T0,
    round: int = 1,
    targets: int = 1,
    ok: int = 1,
    failed: int = 0,
    duration_ms: float = 10.0,
    **fields: Any,
) -> RoundSummary:
    """A round of one target that was ok; the rest by keyword."""
    return RoundSummary(
        ts=ts,
        round=round,
        targets=targets,
        ok=ok,
        failed=failed,
        duration_ms=duration_ms,
        **fields,
    )


def config_doc(*targets: Mapping[str, Any], **sections: Mapping[str, Any]) -> dict[str, Any]:
    """A config document: `sections` (monitor=, alerts=, storage=, server=...) and these
    [[targets]], in that order."""
    return {**{name: dict(table) for name, table in sections.items()}, "targets": list(targets)}


def make_config(
    data: Mapping[str, Any] | str, *, env: Mapping[str, str] | None = None, path: str = "<memory>"
) -> Config:
    """parse_config of a document or of TOML text; the environment is empty unless given."""
    doc = tomllib.loads(data) if isinstance(data, str) else dict(data)
    return parse_config(doc, env={} if env is None else env, path=path)


def make_target(url: str = "http://127.0.0.1/", *, name: str = "t", **fields: Any) -> Target:
    """The one Target of a config with `{"name": name, "url": url, **fields}`."""
    return make_config(config_doc({"name": name, "url": url, **fields})).targets[0]


def target_schemes() -> str:
    """The target URL schemes of every registered kind, as a URL problem lists them:
    "dns://, http:// or https://"."""
    *others, last = [f"{scheme}://" for scheme in sorted(probe_kinds.schemes())]
    return f"{', '.join(others)} or {last}" if others else last


def write_config(directory: Path, config: Mapping[str, Any] | str, name: str = "m.toml") -> Path:
    """Write a config document (as TOML) or TOML text to `directory / name`, creating the
    directory if need be; return the file's path."""
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = config if isinstance(config, str) else tomli_w.dumps(dict(config))
    path.write_text(text, encoding="utf-8")
    return path
