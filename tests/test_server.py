"""The embedded HTTP server, served for real by hypercorn's trio worker on 127.0.0.1 (a
port the OS chooses) inside each test's trio run, and asked over real connections.

Every response any test gets through `Served.client()` is validated against the
OpenAPI document the server itself serves (its schemas made strict: no undocumented
field, no undocumented status), so the document and the server cannot drift apart;
`test_openapi_tour` produces every documented response at least once.

The monitor behind the server is a small fake of `MonitorView`; history is a real
SQLite store written by the real writer. `trio-monitor health` runs as a subprocess.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import httpx
import jsonschema
import pytest
import trio
import trio.lowlevel
import trio.socket
import trio.testing
from factories import T0, alert_event, probe_result, round_summary, tls_details
from fakes import silence_desk
from prometheus_client.parser import text_string_to_metric_families

from trio_monitor import ErrorKind
from trio_monitor._config import Labels, ServerSection, StorageSection
from trio_monitor._errors import ServerError
from trio_monitor._palette import COLORS
from trio_monitor._records import (
    PHASES,
    DnsAnswer,
    ProbeResult,
    TargetRemoved,
    rfc3339,
    tls_dict,
    to_dict,
)
from trio_monitor.engine.view import Health, TargetStatus
from trio_monitor.policy._grouping import Group
from trio_monitor.server import app as server_module
from trio_monitor.server import auth, build_app, health, login, openapi_document, serve_http
from trio_monitor.server.badges import NODATA_FILL
from trio_monitor.server.contract import MAX_ROWS, RECENT
from trio_monitor.server.metrics import Metrics
from trio_monitor.server.page import status_page_csp, status_page_html
from trio_monitor.store import StoreStats, StoreWriter
from trio_monitor.store.records import PhaseStats

WAIT = 10.0  # seconds any wait may take before the test fails instead of hanging
TOKEN = "s3cret-t0ken"
HOUR = 3600.0
# an http target's 24 hours: no tls, connect p50 1.05 ms over 2,880 probes
PHASES_24H = {
    "dns": PhaseStats(0.4, 0.9, 2880),
    "connect": PhaseStats(1.05, 2.0, 2880),
    "tls": None,
    "ttfb": PhaseStats(38.5, 40.1, 2880),
    "transfer": PhaseStats(0.3, 1.2, 2880),
}
SVG = "{http://www.w3.org/2000/svg}"
OK, WARN, BAD = (COLORS[level] for level in ("ok", "warn", "bad"))
HEALTHY = Health(True, "ok", 2.5, 60.0)
UNHEALTHY = Health(False, "no round for 95 s (limit 60 s)", 95.0, 60.0)
LATE = Health(False, "probes start 6.0 s late", 1.0, 20.0, 6.00049, 9.0)


# --- the fake monitor ------------------------------------------------------------------


def target_status(
    name: str = "api",
    state: str = "UP",
    *,
    availability: float | None = 99.5,
    with_probe: bool = True,
    kind: str = "http",
) -> TargetStatus:
    now = time.time()
    ok = state != "DOWN"
    last = probe_result(
        name,
        ts=now - 1,
        url="http://api.test/health",
        ok=ok,
        status=200 if ok and kind == "http" else None,
        attempts=1 if ok else 2,
        round=7,
        error_detail=None if ok else "connection refused",
        ttfb_ms=10.25 if ok else None,
        bytes=662 if ok else 0,
        content_hash="sha256:95e9" if ok else None,
        remote_addr="127.0.0.1:8080" if ok else None,
        kind=kind,
    )
    return TargetStatus(
        name=name,
        url="http://api.test/health",
        state=state,
        since=None if state == "UNKNOWN" else now - HOUR,
        last=last if with_probe else None,
        interval_s=30.0,
        checks_24h=0 if availability is None else 2880,
        availability_24h_pct=availability,
        p95_24h_ms=None if availability is None else 41.7,
        kind=kind,
        phases_24h=dict.fromkeys(PHASES) if availability is None else PHASES_24H,
    )


class FakeView:
    """What the server reads of a running monitor (the MonitorView interface)."""

    def __init__(self, *statuses: TargetStatus, store_path: str | None = None) -> None:
        self.statuses = {s.name: s for s in statuses}
        self.store_path = store_path
        self.state_dir: Path | None = None  # where browser artifacts are
        self.healthy = HEALTHY
        self.broken = False  # targets() raises: a bug in a handler's path
        self.groups: tuple[list[Group], list[str]] = ([], [])  # outage_groups()

    def targets(self) -> list[TargetStatus]:
        if self.broken:
            raise RuntimeError("a bug with a secret in its message")
        return list(self.statuses.values())

    def target(self, name: str) -> TargetStatus | None:
        return self.statuses.get(name)

    def health(self) -> Health:
        return self.healthy

    def outage_groups(self) -> tuple[list[Group], list[str]]:
        return self.groups

    def cluster(self) -> dict | None:
        return None


def fake_page() -> str:
    return "<!doctype html><title>status</title><p>the page</p>"


def badge_of(svg: str) -> tuple[str, str, str]:
    """A served badge's (label, message, message colour)."""
    root = ET.fromstring(svg)
    label, message = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("aria-hidden") is None]
    _, _, fill, _ = [r.get("fill") or "" for r in root.iter(f"{SVG}rect")]
    return label, message, fill


# --- history ---------------------------------------------------------------------------


def probe_at(ts: float, target: str = "api", ok: bool = True) -> ProbeResult:
    return probe_result(
        target,
        ts=ts,
        ok=ok,
        status=200 if ok else 503,
        latency_ms=10.0 + ts % 7 if ok else 80.0,
        error=None if ok else ErrorKind.STATUS,
    )


async def write_history(path: str, records: list) -> None:
    send, receive = trio.open_memory_channel(math.inf)
    for record in records:
        send.send_nowait(record)
    send.close()
    with trio.fail_after(WAIT):
        await StoreWriter(path, StorageSection(), StoreStats()).serve(receive)


def history_records(now: float) -> list:
    """api: a probe every 20 minutes for 30 hours (failures 4-5 h ago), one outage
    5-4 h ago and one still open since 30 min ago; web: an outage two days ago."""
    records: list = []
    for i in range(90, 0, -1):
        ts = now - i * 1200
        records.append(probe_at(ts, ok=not 4 * HOUR <= now - ts <= 5 * HOUR))
    outages = [
        ("api", "down", now - 5 * HOUR + 1, now - 5 * HOUR, "status"),
        ("api", "up", now - 4 * HOUR, None, None),
        ("api", "down", now - 1800 + 1, now - 1800, "status"),
        ("web", "down", now - 48 * HOUR, now - 48 * HOUR, "timeout"),
        ("web", "up", now - 47 * HOUR, None, None),
    ]
    for target, event, ts, since, reason in outages:
        records.append(alert_event(event, target, ts=ts, reason=reason, since=since))
    return records


@pytest.fixture
async def history(tmp_path) -> tuple[str, float]:
    path = str(tmp_path / "history.db")
    now = time.time()
    await write_history(path, history_records(now))
    return path, now


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logs():
    """Records of the "trio_monitor" loggers, whatever the CLI's setup left behind."""
    handler, logger = _Collect(), logging.getLogger("trio_monitor")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# --- checking responses against the served OpenAPI document -------------------------------


def _strict(node: Any) -> Any:
    """Every documented object closed: a field the document does not name fails."""
    if isinstance(node, dict):
        out = {key: _strict(value) for key, value in node.items()}
        if "properties" in out and isinstance(out["properties"], dict):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_strict(value) for value in node]
    return node


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile(
        "^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$"
    )


class SpecChecker:
    """Validates real responses against an OpenAPI 3.1 document; records what it saw."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.components = _strict(spec["components"])
        self.routes = [(_template_pattern(t), t) for t in spec["paths"]]
        self.seen: set[tuple[str, str]] = set()  # (path template, status)

    def schema_for(self, schema: dict) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(
            {**_strict(schema), "components": self.components},
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )

    def check(self, response: httpx.Response) -> None:
        request = response.request
        raw_path = request.url.raw_path.decode().split("?", 1)[0]
        status = response.status_code
        media = response.headers.get("content-type", "").split(";")[0].strip()
        template = next((t for pattern, t in self.routes if pattern.match(raw_path)), None)
        method = "get" if request.method == "HEAD" else request.method.lower()
        operation = None if template is None else self.spec["paths"][template].get(method)
        if operation is None:  # unknown path or method: only the generic JSON errors
            assert status in (401, 404, 405, 421), (request.method, raw_path, status)
            documented = {
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            }
        elif str(status) in operation["responses"]:
            documented = operation["responses"][str(status)]
            self.seen.add((template, str(status)))
        else:
            assert status in (405, 500), f"undocumented {status} for {request.method} {template}"
            documented = operation["responses"]["default"]
            self.seen.add((template, "default"))
        if "content" not in documented:  # a redirect: nothing but its headers
            assert response.content == b"", (request.method, raw_path, status)
            for header in documented.get("headers", {}):
                assert header.lower() in response.headers, (raw_path, status, header)
            return
        content = documented["content"]
        assert media in content, f"{request.method} {raw_path} {status}: {media} not documented"
        if status == 401 and media == "application/json":  # the API's, not the login form's
            assert response.headers["www-authenticate"].startswith("Bearer")
        if request.method == "HEAD":
            return
        if media == "application/json":
            self.schema_for(content[media]["schema"]).validate(response.json())
        else:
            assert isinstance(response.text, str)

    async def hook(self, response: httpx.Response) -> None:
        await response.aread()
        self.check(response)


# --- a served app --------------------------------------------------------------------------


class Served:
    def __init__(self, section: ServerSection, app) -> None:
        self.section, self.app = section, app
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.port = 0
        self.checker: SpecChecker | None = None

    async def run(self, grace: float, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with self.scope:
            await serve_http(self.app, self.section, grace=grace, task_status=task_status)
        self.done.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = None, **options: Any) -> httpx.AsyncClient:
        headers = {} if token is None else {"authorization": f"Bearer {token}"}
        hooks = {"response": [self.checker.hook]} if self.checker else {}
        return httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            event_hooks=hooks,
            trust_env=False,
            timeout=WAIT,
            **options,
        )

    async def stop(self) -> float:
        """Cancel the server task; -> seconds until it had shut down."""
        start = trio.current_time()
        self.scope.cancel()
        await self.done.wait()
        return trio.current_time() - start


@asynccontextmanager
async def serving(
    view: FakeView,
    *,
    token: str | None = None,
    public: bool = False,
    allowed_hosts: tuple[str, ...] = (),
    metrics: Metrics | None = None,
    grace: float = 2.0,
    **app_options: Any,
):
    section = ServerSection(
        listen=("127.0.0.1", 0),
        token=token,
        public_status_page=public,
        allowed_hosts=allowed_hosts,
    )
    options = {"page": fake_page, "silences": silence_desk()} | app_options
    app = build_app(view, section, metrics or Metrics(), **options)
    served = Served(section, app)
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            host, served.port = await nursery.start(served.run, grace)
            assert host == "127.0.0.1"
            assert served.port > 0
            async with served.client(token) as client:
                spec = (await client.get("/api/v1/openapi.json")).json()
            served.checker = SpecChecker(spec)
            yield served
            await served.stop()


# --- the API -----------------------------------------------------------------------------


def target_json(s: TargetStatus) -> dict:
    return {
        "name": s.name,
        "url": s.url,
        "kind": s.kind,
        "group": s.group,
        "labels": dict(s.labels),
        "state": s.state,
        "suppressed_by": list(s.suppressed_by) or None,
        "since": None if s.since is None else rfc3339(s.since),
        "last": None if s.last is None else to_dict(s.last, s.labels),
        "interval_s": s.interval_s,
        "checks_24h": s.checks_24h,
        "availability_24h_pct": s.availability_24h_pct,
        "p95_24h_ms": s.p95_24h_ms,
        "tls": None if s.tls is None else tls_dict(s.tls),
        "phases_24h_ms": {
            phase: None if p is None else {"p50": p.p50, "p95": p.p95, "count": p.count}
            for phase, p in s.phases_24h.items()
        },
        "maintenance": None,
        "degrading": None,
    }


async def test_targets_lists_every_target_with_its_state_and_last_probe():
    statuses = [
        target_status("api"),
        target_status("db", "DOWN", availability=12.25),
        target_status("new", "UNKNOWN", availability=None, with_probe=False),
    ]
    async with serving(FakeView(*statuses)) as served, served.client() as client:
        response = await client.get("/api/v1/targets")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body == [target_json(s) for s in statuses]
    down = body[1]
    assert down["last"]["error"] == "connect"
    assert down["last"]["status"] is None
    assert body[2]["since"] is None
    assert body[2]["last"] is None
    assert body[0]["phases_24h_ms"]["connect"] == {"p50": 1.05, "p95": 2.0, "count": 2880}
    assert body[0]["phases_24h_ms"]["tls"] is None
    assert body[2]["phases_24h_ms"] == dict.fromkeys(PHASES)


def labelled(status: TargetStatus, **labels: str) -> TargetStatus:
    return attrs.evolve(status, labels=Labels(labels))


async def test_targets_carry_their_labels_and_filter_by_them():
    statuses = [
        labelled(target_status("pay-api"), team="payments", env="prod"),
        labelled(target_status("pay-db", "DOWN"), team="payments", env="staging"),
        target_status("web"),
    ]

    async def names(client: httpx.AsyncClient, *labels: str) -> list[str]:
        response = await client.get("/api/v1/targets", params=[("label", x) for x in labels])
        assert response.status_code == 200
        return [t["name"] for t in response.json()]

    async with serving(FakeView(*statuses)) as served, served.client() as client:
        body = (await client.get("/api/v1/targets")).json()
        assert await names(client, "team=payments") == ["pay-api", "pay-db"]
        assert await names(client, "team=payments", "env=prod") == ["pay-api"]  # all match
        assert await names(client, "team=payments", "team=web") == []
        assert await names(client, "env=") == []  # an empty value is a value
        assert await names(client, "owner=nobody") == []
        refused = [
            await client.get("/api/v1/targets", params={"label": text})
            for text in ("team", "=payments", "bad-name=x", "9team=x")
        ]
    assert {t["name"]: t["labels"] for t in body} == {
        "pay-api": {"team": "payments", "env": "prod"},
        "pay-db": {"team": "payments", "env": "staging"},
        "web": {},
    }
    # `last` is the probe line as written: with the target's labels, null without any
    assert body[0]["last"]["labels"] == {"team": "payments", "env": "prod"}
    assert body[2]["last"]["labels"] is None
    for response in refused:
        assert response.status_code == 400
        assert "use NAME=VALUE like team=payments" in response.json()["error"]


async def test_a_degrading_target_shows_its_open_warning_with_the_evidence():
    warned = attrs.evolve(
        target_status("slowing"),
        degrading=alert_event(
            "degrading", target="slowing", ts=T0, since=T0 - 600, signal="latency",
            baseline=96.0, current=412.5, score=1.25, detail="latency 412 ms vs 96 ms baseline",
        ),
    )  # fmt: skip
    async with serving(FakeView(warned, target_status("fine"))) as served, served.client() as c:
        listed = (await c.get("/api/v1/targets")).json()
        detail = (await c.get("/api/v1/targets/slowing")).json()
    assert listed[1]["degrading"] is None
    assert (
        listed[0]["degrading"]
        == detail["degrading"]
        == {
            "ts": rfc3339(T0),
            "since": rfc3339(T0 - 600),
            "signal": "latency",
            "baseline": 96.0,
            "current": 412.5,
            "score": 1.25,
            "detail": "latency 412 ms vs 96 ms baseline",
        }
    )


async def test_targets_carry_their_latest_certificate():
    expires = time.time() + 9 * 86400
    secure = attrs.evolve(target_status("secure"), tls=tls_details(expires, subject="CN=api"))
    view = FakeView(secure, target_status("plain"))
    async with serving(view) as served, served.client() as client:
        listed = (await client.get("/api/v1/targets")).json()
        detail = (await client.get("/api/v1/targets/secure")).json()
    assert listed[1]["tls"] is None
    assert listed[0]["tls"] == detail["tls"] == tls_dict(secure.tls)
    assert listed[0]["tls"]["subject"] == "CN=api"
    assert listed[0]["tls"]["not_after"] == rfc3339(expires)


async def test_targets_of_other_kinds_say_their_kind_and_have_no_http_status():
    statuses = [target_status("api"), target_status("tcp-db", kind="tcp")]
    async with serving(FakeView(*statuses)) as served, served.client() as client:
        listed = (await client.get("/api/v1/targets")).json()
        detail = (await client.get("/api/v1/targets/tcp-db")).json()
    assert [(t["name"], t["kind"], t["last"]["kind"]) for t in listed] == [
        ("api", "http", "http"),
        ("tcp-db", "tcp", "tcp"),
    ]
    assert listed[0]["last"]["status"] == 200
    assert listed[1]["last"]["status"] is None
    assert detail["kind"] == "tcp"
    assert listed == [target_json(s) for s in statuses]


async def test_a_dns_targets_last_probe_has_its_answer():
    zone = target_status("zone", kind="dns")
    answer = DnsAnswer("MX", "NOERROR", ("10 mx.test.",), "127.0.0.1:53", False)
    zone = attrs.evolve(zone, last=attrs.evolve(zone.last, dns=answer))
    async with serving(FakeView(zone)) as served, served.client() as client:
        detail = (await client.get("/api/v1/targets/zone")).json()  # checked by the schema
    assert detail["last"]["dns"] == {
        "record_type": "MX",
        "rcode": "NOERROR",
        "answers": ["10 mx.test."],
        "server": "127.0.0.1:53",
        "tcp": False,
        "authority_rrs": 0,
        "additional_rrs": 0,
    }


async def test_one_target_has_its_last_probes_from_history(history):
    path, now = history
    view = FakeView(target_status("api"), target_status("web"), store_path=path)
    async with serving(view) as served, served.client() as client:
        api = (await client.get("/api/v1/targets/api")).json()
        web = (await client.get("/api/v1/targets/web")).json()
    assert {k: v for k, v in api.items() if k != "recent"} == target_json(view.statuses["api"])
    assert len(api["recent"]) == RECENT
    times = [s["ts"] for s in api["recent"]]
    assert times == sorted(times)
    assert times[-1] == rfc3339(now - 1200)  # the newest probe last
    assert api["recent"][-1] == {
        "ts": rfc3339(now - 1200),
        "ok": True,
        "status": 200,
        "latency_ms": pytest.approx(10.0 + (now - 1200) % 7),
        "error": None,
    }
    assert web["recent"] == []  # in history only with incidents


async def test_without_history_recent_is_null_and_history_endpoints_say_so():
    async with serving(FakeView(target_status("api"))) as served, served.client() as client:
        detail = await client.get("/api/v1/targets/api")
        samples = await client.get("/api/v1/targets/api/history")
        incidents = await client.get("/api/v1/incidents")
    assert detail.status_code == 200
    assert detail.json()["recent"] is None
    for response in (samples, incidents):
        assert response.status_code == 404
        assert response.json() == {"error": "history is disabled ([storage] enabled = false)"}


async def test_history_of_a_range(history):
    path, now = history
    view = FakeView(target_status("api"), store_path=path)
    async with serving(view) as served, served.client() as client:
        day = (await client.get("/api/v1/targets/api/history")).json()
        recent = (await client.get("/api/v1/targets/api/history", params={"since": "2h"})).json()
        window = await client.get(
            "/api/v1/targets/api/history",
            params={"since": rfc3339(now - 5 * HOUR - 1), "until": rfc3339(now - 4 * HOUR + 1)},
        )
        capped = (
            await client.get("/api/v1/targets/api/history", params={"since": "7d", "limit": 10})
        ).json()
    assert day["target"] == "api"
    assert day["truncated"] is False
    # every 20 minutes for 24 hours, the oldest just outside (the range ends now)
    assert len(day["samples"]) == 71
    assert [s["ts"] for s in recent["samples"]] == [
        rfc3339(now - i * 1200) for i in range(5, 0, -1)
    ]
    assert window.status_code == 200
    failures = [s for s in window.json()["samples"] if not s["ok"]]
    assert len(failures) == 4
    assert len(window.json()["samples"]) == 4
    assert failures[0] == {
        "ts": rfc3339(now - 15 * 1200),
        "ok": False,
        "status": 503,
        "latency_ms": 80.0,
        "error": "status",
    }
    assert capped["truncated"] is True
    assert len(capped["samples"]) == 10
    # the newest ten, oldest first
    assert [s["ts"] for s in capped["samples"]] == [
        rfc3339(now - i * 1200) for i in range(10, 0, -1)
    ]


async def test_history_and_incidents_are_capped_to_the_newest(history, monkeypatch):
    path, now = history
    monkeypatch.setattr(server_module, "MAX_ROWS", 25)
    view = FakeView(target_status("api"), store_path=path)
    async with serving(view) as served, served.client() as client:
        body = (await client.get("/api/v1/targets/api/history", params={"since": "7d"})).json()
        incidents = (await client.get("/api/v1/incidents", params={"since": "7d"})).json()
        two = (await client.get("/api/v1/incidents", params={"since": "7d", "limit": 2})).json()
    assert len(body["samples"]) == 25
    assert body["truncated"] is True
    assert body["samples"][-1]["ts"] == rfc3339(now - 1200)
    assert len(incidents["incidents"]) == 3
    assert incidents["truncated"] is False
    assert two["truncated"] is True
    assert [i["start"] for i in two["incidents"]] == [
        rfc3339(now - 5 * HOUR),
        rfc3339(now - 1800),
    ]
    assert MAX_ROWS == 10_000


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            {"since": "yesterday"},
            "invalid since 'yesterday': use a duration back from now like 24h",
        ),
        ({"until": "10 sec"}, "invalid until '10 sec'"),
        ({"since": "2026-13-45T00:00:00Z"}, "invalid since '2026-13-45T00:00:00Z'"),
        ({"since": "99999999999999d"}, "invalid since '99999999999999d': out of range"),
        ({"since": "1h", "until": "2h"}, "empty range: since "),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01"}, "empty range: since 2026-01-02"),
        ({"limit": "0"}, "invalid limit '0': use a whole number from 1 to 10000"),
        ({"limit": "ten"}, "invalid limit 'ten'"),
        ({"limit": "10001"}, "invalid limit '10001'"),
    ],
)
async def test_bad_range_or_limit_is_400(history, query, message):
    path, _ = history
    view = FakeView(target_status("api"), store_path=path)
    async with serving(view) as served, served.client() as client:
        for url in ("/api/v1/targets/api/history", "/api/v1/incidents"):
            response = await client.get(url, params=query)
            assert response.status_code == 400
            assert response.json()["error"].startswith(message)


async def test_history_that_cannot_be_read_is_503(tmp_path):
    garbage = tmp_path / "not-a-history.db"
    garbage.write_bytes(b"this is no SQLite file" * 100)
    view = FakeView(target_status("api"), store_path=str(garbage))
    async with serving(view) as served, served.client() as client:
        samples = await client.get("/api/v1/targets/api/history")
        incidents = await client.get("/api/v1/incidents")
        detail = await client.get("/api/v1/targets/api")
    for response in (samples, incidents):
        assert response.status_code == 503
        assert response.json()["error"].startswith("history unavailable: ")
    assert detail.status_code == 200
    assert detail.json()["recent"] is None


async def test_incidents_overlapping_the_range(history):
    path, now = history
    view = FakeView(target_status("api"), store_path=path)
    async with serving(view) as served, served.client() as client:
        day = (await client.get("/api/v1/incidents")).json()
        week = (await client.get("/api/v1/incidents", params={"since": "7d"})).json()
        web = (
            await client.get("/api/v1/incidents", params={"since": "7d", "target": "web"})
        ).json()
    assert day["truncated"] is False
    closed, ongoing = day["incidents"]
    assert closed == {
        "target": "api",
        "start": rfc3339(now - 5 * HOUR),
        "end": rfc3339(now - 4 * HOUR),
        "duration_s": 3600.0,
        "error": "status",
        "end_reason": "up",
        "last_seen": None,
        "suppressed_by": None,
        "paged": rfc3339(now - 5 * HOUR + 1),  # its `down` was delivered
        "unobserved": False,
    }
    assert ongoing["target"] == "api"
    assert ongoing["end"] is None
    assert ongoing["start"] == rfc3339(now - 1800)
    assert 1800 <= ongoing["duration_s"] < 1800 + WAIT  # open: up to now
    assert [i["target"] for i in week["incidents"]] == ["web", "api", "api"]
    assert web["incidents"] == [week["incidents"][0]]
    assert web["incidents"][0]["error"] == "timeout"


async def test_incidents_come_with_the_down_targets_grouped_by_cause(history):
    path, _ = history
    view = FakeView(target_status("api"), store_path=path)
    refused = "connect: connection refused"
    view.groups = ([Group("network", "10.1.2.0/24", ("a", "b", "c"), refused)], ["api"])
    async with serving(view) as served, served.client() as client:
        answer = (await client.get("/api/v1/incidents")).json()
    assert answer["groups"] == [
        {
            "cause": "network 10.1.2.0/24",
            "detail": f"3 targets on 10.1.2.0/24 failing with {refused}",
            "count": 3,
            "members": ["a", "b", "c"],
        }
    ]


async def test_a_removed_targets_incident_has_ended(tmp_path):
    path, now = str(tmp_path / "history.db"), time.time()
    await write_history(
        path,
        [
            alert_event("down", "old", ts=now - 3000, reason="dns", since=now - 3000),
            TargetRemoved(now - 1000, "old", "http://old.test/", now - 3000),
        ],
    )
    view = FakeView(target_status("api"), store_path=path)
    async with serving(view) as served, served.client() as client:
        (incident,) = (await client.get("/api/v1/incidents")).json()["incidents"]
    assert incident["end"] == rfc3339(now - 1000)
    assert incident["end_reason"] == "removed"
    assert incident["duration_s"] == 2000.0  # not growing after the removal


async def test_an_open_incident_of_an_unprobed_target_stops_at_its_last_probe(tmp_path):
    """ "api" is monitored: its outage runs until now. "old" is not probed any more (an
    older monitor kept it open): no data since its last probe, and no growing."""
    path, now = str(tmp_path / "history.db"), time.time()
    await write_history(
        path,
        [
            alert_event("down", "api", ts=now - 600, reason="dns", since=now - 600),
            probe_at(now - 600, ok=False),
            alert_event("down", "old", ts=now - 5400, reason="dns", since=now - 5400),
            probe_result("old", ts=now - 5000, ok=False, error=ErrorKind.DNS),
        ],
    )
    view = FakeView(target_status("api"), store_path=path)
    async with serving(view) as served, served.client() as client:
        old, api = (await client.get("/api/v1/incidents")).json()["incidents"]
    assert (old["target"], old["end"], old["unobserved"]) == ("old", None, True)
    assert old["last_seen"] == rfc3339(now - 5000)
    assert old["duration_s"] == 400.0
    assert (api["target"], api["unobserved"]) == ("api", False)
    assert 600 <= api["duration_s"] < 600 + WAIT


async def test_unknown_target_is_404():
    view = FakeView(target_status("api"), store_path="/nonexistent/history.db")
    async with serving(view) as served, served.client() as client:
        for url in (
            "/api/v1/targets/nope",
            "/api/v1/targets/nope/history",
            "/api/v1/badges/nope/status.svg",
            "/api/v1/badges/nope/uptime.svg",
        ):
            response = await client.get(url)
            assert response.status_code == 404, url
            assert response.json() == {"error": "unknown target 'nope'"}


async def test_target_names_with_slashes_and_odd_characters():
    """Names default to the URL: a name is one percent-encoded path segment."""
    name = "https://example.test/a b?c=d%"
    view = FakeView(target_status(name), store_path=None)
    encoded = quote(name, safe="")
    async with serving(view) as served, served.client() as client:
        detail = await client.get(f"/api/v1/targets/{encoded}")
        badge = await client.get(f"/api/v1/badges/{encoded}/status.svg")
        history = await client.get(f"/api/v1/targets/{encoded}/history")
    # a client that leaves the slashes alone still finds an exact name (the path no
    # longer fits the documented template, so this one is not checked against it)
    async with serving(view) as served, httpx.AsyncClient(trust_env=False) as plain:
        loose = await plain.get(f"{served.url}/api/v1/targets/" + quote(name, safe="/:"))
    assert detail.status_code == 200
    assert detail.json()["name"] == name
    assert badge_of(badge.text) == (name, "up", OK)
    assert history.status_code == 404  # the target was found; history is off
    assert history.json()["error"].startswith("history is disabled")
    assert loose.status_code == 200
    assert loose.json()["name"] == name


async def test_unknown_paths_and_methods_are_json_errors():
    async with serving(FakeView(target_status("api"))) as served, served.client() as client:
        missing = await client.get("/nothing/here")
        deeper = await client.get("/api/v1/targets/api/nothing")
        post = await client.post("/api/v1/targets", json={})
        delete = await client.delete("/healthz")
        head = await client.head("/api/v1/targets")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no such path: /nothing/here"}
    assert deeper.status_code == 404
    assert post.status_code == 405
    assert post.json() == {"error": "method POST not allowed on /api/v1/targets"}
    assert set(post.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    assert delete.status_code == 405
    assert head.status_code == 200
    assert head.content == b""


async def test_a_handler_bug_is_a_json_500_logged_on_the_server(logs):
    view = FakeView(target_status("api"))
    async with serving(view) as served, served.client() as client:
        view.broken = True
        response = await client.get("/api/v1/targets")
        view.broken = False
        after = await client.get("/api/v1/targets")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (logged on the server's stderr)"}
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert after.status_code == 200  # the server goes on
    [record] = [r for r in logs if r.levelno >= logging.ERROR]
    assert record.getMessage().startswith("HTTP GET '/api/v1/targets' failed: RuntimeError")
    assert record.exc_info is not None


# --- page, badges, health, metrics -------------------------------------------------------


async def test_status_page():
    async with serving(FakeView()) as served, served.client() as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == fake_page()


@pytest.mark.parametrize(
    ("state", "availability", "status_badge", "uptime_badge"),
    [
        ("UP", 100.0, ("up", OK), ("100%", OK)),
        ("UP", 99.95, ("up", OK), ("99.95%", OK)),
        ("UP", 99.999, ("up", OK), ("99.99%", OK)),  # never rounded up to 100%
        ("UP", 99.9, ("up", OK), ("99.9%", OK)),  # the palette's OK_FROM
        ("DOWN", 99.89, ("down", BAD), ("99.89%", WARN)),
        ("DOWN", 99.5, ("down", BAD), ("99.5%", WARN)),
        ("DOWN", 96.0, ("down", BAD), ("96%", WARN)),
        ("DOWN", 95.0, ("down", BAD), ("95%", WARN)),  # the palette's WARN_FROM
        ("UP", 94.99, ("up", OK), ("94.99%", BAD)),
        ("UP", 91.25, ("up", OK), ("91.25%", BAD)),  # once orange; below 95: bad
        ("DOWN", 12.5, ("down", BAD), ("12.5%", BAD)),
        ("UNKNOWN", None, ("unknown", NODATA_FILL), ("n/a", NODATA_FILL)),
    ],
)
async def test_badges(state, availability, status_badge, uptime_badge):
    view = FakeView(target_status("api", state, availability=availability))
    async with serving(view) as served, served.client() as client:
        status = await client.get("/api/v1/badges/api/status.svg")
        uptime = await client.get("/api/v1/badges/api/uptime.svg")
    for response in (status, uptime):
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/svg+xml; charset=utf-8"
        assert "no-cache" in response.headers["cache-control"]
    assert badge_of(status.text) == ("api", *status_badge)
    assert badge_of(uptime.text) == ("api", *uptime_badge)


async def test_healthz():
    view = FakeView(target_status("api"))
    async with serving(view) as served, served.client() as client:
        healthy = await client.get("/healthz")
        view.healthy = UNHEALTHY
        unhealthy = await client.get("/healthz")
        view.healthy = LATE
        late = await client.get("/healthz")
    assert healthy.status_code == 200
    assert healthy.json() == {
        "status": "ok",
        "reason": "ok",
        "last_round_age_s": 2.5,
        "max_age_s": 60.0,
        "start_lag_p50_s": None,
        "start_lag_max_s": None,
    }
    assert late.json()["start_lag_p50_s"] == 6.0
    assert late.json()["start_lag_max_s"] == 9.0
    assert unhealthy.status_code == 503
    assert unhealthy.json() == {
        "status": "unhealthy",
        "reason": "no round for 95 s (limit 60 s)",
        "last_round_age_s": 95.0,
        "max_age_s": 60.0,
        "start_lag_p50_s": None,
        "start_lag_max_s": None,
    }


async def test_metrics_endpoint_serves_what_was_observed():
    metrics = Metrics()
    metrics.retain(["api", "db"])
    metrics.observe(probe_at(time.time(), "api"))
    metrics.observe(
        probe_result("db", ts=time.time(), ok=False, error=ErrorKind.TIMEOUT, attempts=2, round=3)
    )
    metrics.observe(
        round_summary(
            ts=time.time(),
            round=3,
            targets=2,
            ok=1,
            failed=1,
            duration_ms=1250.0,
            concurrency=200,
            dropped=3,
            unstored=0,
        )
    )
    metrics.observe(alert_event("down", "db", ts=time.time()))
    async with serving(FakeView(), metrics=metrics) as served, served.client() as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert values[("probe_success", (("target", "api"),))] == 1
    assert values[("probe_success", (("target", "db"),))] == 0
    assert values[("probe_http_status_code", (("target", "api"),))] == 200
    assert values[("probe_http_status_code", (("target", "db"),))] == 0
    assert math.isnan(values[("probe_duration_seconds", (("target", "db"),))])
    assert values[("trio_monitor_targets", ())] == 2
    assert values[("trio_monitor_round_duration_seconds", ())] == 1.25
    assert values[("trio_monitor_concurrency_limit", ())] == 200
    assert values[("trio_monitor_probes_total", (("result", "ok"),))] == 1
    assert values[("trio_monitor_probes_total", (("result", "timeout"),))] == 1
    assert values[("trio_monitor_alerts_total", (("event", "down"),))] == 1
    assert values[("trio_monitor_dropped_lines_total", ())] == 3
    assert values[("trio_monitor_unstored_results_total", ())] == 0


async def test_the_real_page_with_its_csp():
    view = FakeView(target_status("api"))
    async with serving(view, page=None) as served, served.client() as client:
        index = await client.get("/")
    assert index.status_code == 200
    assert index.text == status_page_html()
    assert "api/v1/targets" in index.text
    assert index.headers["content-security-policy"] == status_page_csp()
    assert "script-src 'sha256-" in index.headers["content-security-policy"]


# --- auth --------------------------------------------------------------------------------

PRIVATE = ["/metrics", "/api/v1/targets", "/api/v1/targets/api", "/api/v1/openapi.json"]
PAGE = ["/", "/api/v1/badges/api/status.svg", "/api/v1/badges/api/uptime.svg"]


async def test_without_a_token_everything_is_open():
    async with serving(FakeView(target_status("api"))) as served, served.client() as client:
        for url in [*PRIVATE, *PAGE, "/healthz"]:
            assert (await client.get(url)).status_code == 200, url


async def test_with_a_token_every_path_but_healthz_needs_it():
    async with serving(FakeView(target_status("api")), token=TOKEN) as served:
        async with served.client() as anonymous, served.client("wrong") as wrong:
            for url in [*PRIVATE, *PAGE, "/nothing/here"]:
                response = await anonymous.get(url)
                assert response.status_code == 401, url
                assert response.headers["www-authenticate"] == 'Bearer realm="trio-monitor"'
                assert response.json()["error"].startswith("authentication required")
                response = await wrong.get(url)
                assert response.status_code == 401, url
                assert 'error="invalid_token"' in response.headers["www-authenticate"]
                assert response.json() == {"error": "invalid bearer token"}
            assert (await anonymous.get("/healthz")).status_code == 200
            basic = await anonymous.get(
                "/api/v1/targets", headers={"authorization": f"Basic {TOKEN}"}
            )
            assert basic.status_code == 401
        async with served.client(TOKEN) as client:
            for url in [*PRIVATE, *PAGE, "/healthz"]:
                assert (await client.get(url)).status_code == 200, url
            assert (await client.get("/nothing/here")).status_code == 404


async def test_a_public_status_page_keeps_the_api_private():
    async with serving(FakeView(target_status("api")), token=TOKEN, public=True) as served:
        async with served.client() as anonymous:
            for url in [*PAGE, "/healthz"]:
                assert (await anonymous.get(url)).status_code == 200, url
            for url in PRIVATE:
                assert (await anonymous.get(url)).status_code == 401, url
        spec = served.checker.spec
        assert spec["paths"]["/"]["get"]["security"] == []
        assert "401" not in spec["paths"]["/"]["get"]["responses"]
        assert "401" in spec["paths"]["/api/v1/targets"]["get"]["responses"]


SERVED_HOSTS = ["127.0.0.1", "127.0.0.1:9", "LOCALHOST:9180", "[::1]:9180", "10.1.2.3", "ok.test"]
FOREIGN_HOSTS = ["evil.example", "evil.example:9180", "localhost.evil.example", "127.0.0.1.nip.io"]


async def test_without_a_token_only_hosts_that_name_the_server_are_answered():
    # a DNS-rebinding page reaches 127.0.0.1 under its own name, and sends that as Host
    view = FakeView(target_status("api"))
    async with serving(view, allowed_hosts=("ok.test",)) as served, served.client() as client:
        for host in SERVED_HOSTS:
            for url in [*PRIVATE, *PAGE]:
                response = await client.get(url, headers={"host": host})
                assert response.status_code == 200, (host, url)
        for host in FOREIGN_HOSTS:
            for url in [*PRIVATE, *PAGE, "/nothing/here"]:
                response = await client.get(url, headers={"host": host})
                assert response.status_code == 421, (host, url)
                (line,) = response.json()["error"].splitlines()
                assert "allowed_hosts" in line
            assert (await client.get("/healthz", headers={"host": host})).status_code == 200


async def test_with_a_token_any_host_is_answered():
    view = FakeView(target_status("api"))
    async with serving(view, token=TOKEN) as served, served.client(TOKEN) as client:
        for url in [*PRIVATE, *PAGE]:
            response = await client.get(url, headers={"host": "evil.example"})
            assert response.status_code == 200, url


async def test_token_is_compared_in_constant_time(monkeypatch):
    calls = []
    real = auth.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    async with serving(FakeView(), token=TOKEN) as served, served.client("nope") as client:
        assert (await client.get("/api/v1/targets")).status_code == 401
    assert (b"nope", TOKEN.encode()) in calls


# --- login ------------------------------------------------------------------------------

BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def session_of(response: httpx.Response) -> str:
    """The session cookie a login answer sets, checked for its attributes."""
    header = response.headers["set-cookie"]
    name_value, *attributes = [part.strip() for part in header.split(";")]
    name, _, value = name_value.partition("=")
    assert name == login.COOKIE
    assert {a.lower() for a in attributes} == {
        "httponly",
        "max-age=43200",
        "path=/",
        "samesite=strict",
    }, header  # no Secure: plain http on loopback
    return value


async def log_in(client: httpx.AsyncClient, token: str = TOKEN, **headers: str):
    return await client.post("/login", data={"token": token}, headers=headers)


async def tour_login(served: Served, anonymous: httpx.AsyncClient) -> None:
    """Every documented answer of the login paths (for test_openapi_tour)."""
    assert (await anonymous.get("/", headers=BROWSER)).status_code == 303
    assert (await anonymous.get("/login")).status_code == 200
    assert (await log_in(anonymous, "wrong")).status_code == 401
    assert (await log_in(anonymous, origin="http://evil.example")).status_code == 403
    too_big = await anonymous.post("/login", content=b"token=" + b"x" * 5000)
    assert too_big.status_code == 413
    assert (await log_in(anonymous)).status_code == 303
    assert (await anonymous.post("/logout", headers={"origin": "null"})).status_code == 403
    assert (await anonymous.post("/logout")).status_code == 303


async def test_a_browser_logs_in_with_the_token_and_gets_a_session():
    view = FakeView(target_status("api"))
    async with serving(view, token=TOKEN) as served, served.client() as browser:
        to_login = await browser.get("/", headers=BROWSER)
        assert (to_login.status_code, to_login.headers["location"]) == (303, "login")
        form = await browser.get("/login")
        assert form.status_code == 200
        assert '<form method="post" action="login">' in form.text
        assert 'name="token"' in form.text
        assert "form-action 'self'" in form.headers["content-security-policy"]
        assert "script-src" not in form.headers["content-security-policy"]  # no script

        refused = await log_in(browser, "not-the-token", origin=served.url)
        assert refused.status_code == 401
        assert "That token is not right." in refused.text
        assert "set-cookie" not in refused.headers

        accepted = await log_in(browser, origin=served.url)
        assert (accepted.status_code, accepted.headers["location"]) == (303, "./")
        session = session_of(accepted)
        cookies = {"cookie": f"{login.COOKIE}={session}"}
        for url in [*PRIVATE, *PAGE]:
            assert (await browser.get(url, headers=cookies)).status_code == 200, url
        assert "the page" in (await browser.get("/", headers={**BROWSER, **cookies})).text

        out = await browser.post("/logout", headers={**cookies, "origin": served.url})
        assert (out.status_code, out.headers["location"]) == (303, "login")
        assert f'{login.COOKIE}=""' in out.headers["set-cookie"]
        assert "max-age=0" in out.headers["set-cookie"].lower()


async def test_sessions_end_when_they_expire_or_the_token_changes():
    long_ago = login.Sessions(TOKEN, clock=lambda: time.time() - 13 * HOUR).issue()
    other_token = login.Sessions("another-token").issue()
    valid = login.Sessions(TOKEN).issue()
    expires, _, mac = valid.partition(".")
    forged = [f"{int(expires) + 3600}.{mac}", f"{expires}.{mac[:-1]}", f"{expires}.", "x", ""]
    async with serving(FakeView(), token=TOKEN) as served, served.client() as client:
        for value in (long_ago, other_token, *forged):
            cookies = {"cookie": f"{login.COOKIE}={value}"}
            assert (await client.get("/api/v1/targets", headers=cookies)).status_code == 401
        cookies = {"cookie": f"other=1; {login.COOKIE}={valid}"}
        assert (await client.get("/api/v1/targets", headers=cookies)).status_code == 200


async def test_login_from_another_site_is_refused():
    async with serving(FakeView(), token=TOKEN) as served, served.client() as client:
        for origin in ["http://evil.example", "null", f"http://127.0.0.1:{served.port + 1}"]:
            response = await log_in(client, origin=origin)
            assert response.status_code == 403, origin
            assert "set-cookie" not in response.headers
        assert (await log_in(client)).status_code == 303  # no Origin: not a browser's post


async def test_the_token_is_compared_in_constant_time_at_login(monkeypatch):
    calls = []
    real = login.hmac.compare_digest
    monkeypatch.setattr(
        login.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b)
    )
    async with serving(FakeView(), token=TOKEN) as served, served.client() as client:
        assert (await log_in(client, "nope")).status_code == 401
    assert (b"nope", TOKEN.encode()) in calls


async def test_behind_https_the_session_cookie_is_secure():
    async with serving(FakeView(), token=TOKEN) as served, served.client() as client:
        origin = f"https://127.0.0.1:{served.port}"
        response = await log_in(client, origin=origin, host=f"127.0.0.1:{served.port}")
        assert response.status_code == 303
        assert "secure" in response.headers["set-cookie"].lower()


async def test_without_a_token_there_is_no_login():
    async with serving(FakeView()) as served, served.client() as client:
        assert (await client.get("/login")).status_code == 404
        assert (await log_in(client)).status_code == 404


@pytest.mark.browser
def test_a_browser_logs_in_and_sees_the_targets(browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def until(what: str, condition) -> Any:
        # a form post replaces the document: an element found just before is stale then
        wait = WebDriverWait(
            browser, WAIT, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
        )
        return wait.until(condition, message=what)

    view = FakeView(target_status("api"), target_status("db", "DOWN"))
    with serving_in_thread(view, token=TOKEN, page=None) as base:
        try:
            browser.get(base + "/")
            until("the login form", lambda d: d.current_url == base + "/login")
            assert "form-action" in browser.execute_script(
                "return document.querySelector('meta[http-equiv]').content"
            )
            browser.find_element(By.ID, "token").send_keys("wrong")
            browser.find_element(By.ID, "login").click()
            until("the refusal", lambda d: d.find_element(By.ID, "problem").is_displayed())
            browser.find_element(By.ID, "token").send_keys(TOKEN)
            browser.find_element(By.ID, "login").click()
            until("the status page", lambda d: d.current_url == base + "/")
            names = until(
                "the target cards",
                lambda d: d.execute_script(
                    "const c = document.querySelectorAll('#targets .card');"
                    "return c.length === 2 && [...c].map((e) => e.dataset.name).sort();"
                ),
            )
            assert names == ["api", "db"]
            assert browser.execute_script("return document.getElementById('banner').hidden")
            (cookie,) = browser.get_cookies()
            assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (
                login.COOKIE,
                True,
                "Strict",
            )
            assert browser.execute_script("return document.cookie") == ""  # HttpOnly
        finally:
            browser.delete_all_cookies()


# --- OpenAPI -----------------------------------------------------------------------------


def test_openapi_document_is_well_formed():
    for section in (
        ServerSection(),
        ServerSection(token=TOKEN),
        ServerSection(token=TOKEN, public_status_page=True),
    ):
        spec = openapi_document(section)
        assert spec["openapi"] == "3.1.0"
        for name, schema in spec["components"]["schemas"].items():
            jsonschema.Draft202012Validator.check_schema(schema)
            assert schema["type"] == ("array" if name == "TargetList" else "object"), name
        refs = set(re.findall(r'"#/components/schemas/(\w+)"', str(spec).replace("'", '"')))
        assert refs <= set(spec["components"]["schemas"])
        for path, item in spec["paths"].items():
            # read-only but for logging in and out (only with a token), the push
            # targets' pings and silences
            posts = {
                "/login": {"get", "post"},
                "/logout": {"post"},
                "/api/v1/push/{token}": {"get", "post"},
                "/api/v1/push/{token}/{event}": {"get", "post"},
                "/api/v1/silences": {"get", "post"},
                "/api/v1/silences/{id}": {"delete"},
            }
            assert set(item) == posts.get(path, {"get"}), path
            assert path not in ("/login", "/logout") or section.token is not None
            for operation in item.values():
                assert "default" in operation["responses"]
                for param in re.findall(r"\{(\w+)\}", path):
                    assert any(
                        p["name"] == param and p["in"] == "path" for p in operation["parameters"]
                    )
        assert ("security" in spec) == (section.token is not None)


async def test_openapi_tour(history, tmp_path):
    """Every response the document describes, produced for real and validated."""
    path, _ = history
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"x" * 4096)
    view = FakeView(target_status("api"), store_path=path)
    pushed = "a-push-token-0123"  # a push target's: no bearer token needed
    desk = silence_desk()
    async with (
        serving(view, token=TOKEN, push=lambda token, *_: token == pushed, silences=desk) as served,
        served.client(TOKEN) as client,
        served.client() as anonymous,
    ):
        for method, url, status in [
            ("GET", f"/api/v1/push/{pushed}", 200),
            ("POST", f"/api/v1/push/{pushed}/start", 200),
            ("POST", f"/api/v1/push/{pushed}/7", 200),
            ("GET", "/api/v1/push/not-a-push-token", 404),
            ("POST", f"/api/v1/push/{pushed}/256", 404),
        ]:
            assert (await anonymous.request(method, url)).status_code == status, url
        too_big = b"x" * ((1 << 20) + 1)  # read whole (the limit, and one byte more)
        for url in (f"/api/v1/push/{pushed}", f"/api/v1/push/{pushed}/start"):
            assert (await anonymous.post(url, content=too_big)).status_code == 413
        for url in [
            "/",
            "/healthz",
            "/metrics",
            "/api/v1/targets",
            "/api/v1/targets/api",
            "/api/v1/targets/api/history",
            "/api/v1/incidents",
            "/api/v1/badges/api/status.svg",
            "/api/v1/badges/api/uptime.svg",
            "/api/v1/openapi.json",
            "/api/v1/cluster",  # null: not a cluster node (test_cluster_node.py: one)
        ]:
            assert (await client.get(url)).status_code == 200, url
            await anonymous.get(url)  # 401, except /healthz
        # a failed browser probe's artifacts (probes/browser/artifacts.py)
        from trio_monitor.probes.browser.artifacts import ArtifactStore

        view.state_dir = tmp_path
        shot, log = ArtifactStore._save(tmp_path, 20, "api", 1_700_000_000.0, b"\x89PNG", "x\n")
        for kept in (shot, log):
            url = f"/api/v1/targets/api/artifacts/{Path(kept).name}"  # type: ignore[arg-type]
            assert (await client.get(url)).status_code == 200, url
            await anonymous.get(url)  # 401
        for url in [
            "/api/v1/targets/api/artifacts/20231114T221320.000Z-1.png",
            "/api/v1/targets/nope",
            "/api/v1/targets/nope/history",
            "/api/v1/badges/nope/status.svg",
            "/api/v1/badges/nope/uptime.svg",
        ]:
            assert (await client.get(url)).status_code == 404, url
        for url in ["/api/v1/targets/api/history", "/api/v1/incidents"]:
            assert (await client.get(url, params={"since": "x"})).status_code == 400
        assert (await client.get("/api/v1/targets?label=team")).status_code == 400
        assert (await client.get("/api/v1/targets?label=team=x&label=env=y")).status_code == 200
        view.store_path = str(garbage)
        for url in ["/api/v1/targets/api/history", "/api/v1/incidents"]:
            assert (await client.get(url)).status_code == 503
        view.store_path = None
        assert (await client.get("/api/v1/incidents")).status_code == 404
        view.healthy = UNHEALTHY
        assert (await client.get("/healthz")).status_code == 503
        for url in served.checker.spec["paths"]:
            if "{" not in url and url not in ("/login", "/logout", "/api/v1/silences"):
                assert (await client.post(url)).status_code == 405
        await tour_login(served, anonymous)
        view.broken = True
        assert (await client.get("/api/v1/targets")).status_code == 500
        assert (await client.get("/no/such/path")).status_code == 404
        # silences (server/silences.py)
        silences = "/api/v1/silences"
        added = await client.post(silences, json={"targets": ["api"], "duration": "1h"})
        assert added.status_code == 201
        assert (await client.get(silences)).status_code == 200
        assert (await client.get("/api/v1/maintenance")).status_code == 200
        assert (await client.post(silences, json={"duration": "1h"})).status_code == 400
        assert (await client.post(silences, content=b" " * 70_000)).status_code == 413
        assert (await client.delete(f"{silences}/{added.json()['id']}")).status_code == 200
        assert (await client.delete(f"{silences}/{added.json()['id']}")).status_code == 404
        again = await client.post(silences, json={"match": {}, "duration": "1h"})
        desk.box.value = attrs.evolve(desk.box.value, store_path=str(garbage))
        assert (
            await client.post(silences, json={"match": {}, "duration": "1h"})
        ).status_code == 503
        assert (await client.delete(f"{silences}/{again.json()['id']}")).status_code == 503
        for method, url in [
            ("GET", silences),
            ("POST", silences),
            ("DELETE", f"{silences}/{again.json()['id']}"),
            ("GET", "/api/v1/maintenance"),
        ]:
            assert (await anonymous.request(method, url)).status_code == 401
    spec = served.checker.spec
    documented = {
        (template, status)
        for template, item in spec["paths"].items()
        for operation in item.values()
        for status in operation["responses"]
        if status != "default"
    }
    assert documented - served.checker.seen == set()


# --- serving and shutting down -------------------------------------------------------------


async def read_response(stream: trio.SocketStream) -> bytes:
    """One HTTP/1.1 response with a Content-Length, read off a raw connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(body) < length:
        body += await stream.receive_some(65536)
    return head + b"\r\n\r\n" + body


async def closed_by_peer(stream: trio.SocketStream) -> bool:
    try:
        return await stream.receive_some(1024) == b""
    except trio.BrokenResourceError:
        return True


async def test_listens_on_an_os_chosen_port_and_stops_quickly_when_idle():
    view = FakeView(target_status("api"))
    async with serving(view) as served, served.client() as client:
        assert (await client.get("/healthz")).status_code == 200
    with pytest.raises(httpx.ConnectError):  # nothing listens any more
        async with httpx.AsyncClient(trust_env=False) as after:
            await after.get(f"{served.url}/healthz")


async def test_shutdown_closes_idle_and_half_sent_connections_without_waiting():
    """Keep-alive connections between requests and a request whose headers never
    finish do not hold the server open: shutdown does not wait for the grace period."""
    grace = 5.0
    section = ServerSection(listen=("127.0.0.1", 0))
    served = Served(section, build_app(FakeView(target_status("api")), section, Metrics()))
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            _, served.port = await nursery.start(served.run, grace)
            keep_alive = await trio.open_tcp_stream("127.0.0.1", served.port)
            await keep_alive.send_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            assert (await read_response(keep_alive)).startswith(b"HTTP/1.1 200")
            half_sent = await trio.open_tcp_stream("127.0.0.1", served.port)
            await half_sent.send_all(b"GET /api/v1/targets HTTP/1.1\r\nHost: te")
            async with served.client() as pooled:
                assert (await pooled.get("/healthz")).status_code == 200
                elapsed = await served.stop()
            assert elapsed < grace / 2  # at once, not after the grace (slack for a loaded CI)
            assert await closed_by_peer(keep_alive)
            assert await closed_by_peer(half_sent)
            await keep_alive.aclose()
            await half_sent.aclose()


def blocking_history(monkeypatch) -> tuple[trio.Event, threading.Event]:
    """History reads that block their worker thread until `release` is set (bounded)."""
    entered, release = trio.Event(), threading.Event()

    def slow_read(path, fn):
        trio.from_thread.run_sync(entered.set)
        release.wait(WAIT)
        return []

    monkeypatch.setattr(server_module, "_read", slow_read)
    return entered, release


async def test_a_request_in_progress_may_finish_during_shutdown(monkeypatch):
    entered, release = blocking_history(monkeypatch)
    section = ServerSection(listen=("127.0.0.1", 0))
    view = FakeView(target_status("api"), store_path="unused")
    served = Served(section, build_app(view, section, Metrics()))
    responses = []

    async def ask():
        async with served.client() as client:
            responses.append(await client.get("/api/v1/incidents"))

    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            _, served.port = await nursery.start(served.run, 5.0)
            nursery.start_soon(ask)
            await entered.wait()
            served.scope.cancel()  # shutting down, with the request in progress
            await trio.testing.wait_all_tasks_blocked()
            assert not served.done.is_set()
            release.set()
            await served.done.wait()
    [response] = responses
    assert response.status_code == 200
    assert response.json()["incidents"] == []


async def test_shutdown_is_bounded_whatever_requests_in_progress_do(monkeypatch):
    entered, release = blocking_history(monkeypatch)
    grace = 0.5
    section = ServerSection(listen=("127.0.0.1", 0))
    view = FakeView(target_status("api"), store_path="unused")
    served = Served(section, build_app(view, section, Metrics()))
    errors = []

    async def ask():
        async with served.client() as client:
            try:
                await client.get("/api/v1/targets/api/history")
            except httpx.TransportError as exc:
                errors.append(exc)

    try:
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                _, served.port = await nursery.start(served.run, grace)
                nursery.start_soon(ask)
                await entered.wait()
                elapsed = await served.stop()
    finally:
        release.set()  # the abandoned worker thread ends too
    assert grace <= elapsed < grace + 3.0
    assert len(errors) == 1  # the connection was closed without an answer


async def test_shutdown_is_bounded_when_a_client_stops_reading(logs):
    """hypercorn writes inside a shielded scope: a client that stops reading a big
    response would hold the shutdown forever if the server did not close it."""
    grace = 0.5
    section = ServerSection(listen=("127.0.0.1", 0))
    huge = "<!doctype html>" + "x" * 32_000_000  # far more than the sockets buffer
    app = build_app(FakeView(), section, Metrics(), page=lambda: huge)
    served = Served(section, app)
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            _, served.port = await nursery.start(served.run, grace)
            sock = trio.socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await sock.connect(("127.0.0.1", served.port))
            stalled = trio.SocketStream(sock)
            await stalled.send_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert (await stalled.receive_some(100)).startswith(b"HTTP/1.1 200")
            await trio.testing.wait_all_tasks_blocked()  # the server is stuck writing
            elapsed = await served.stop()
            with contextlib.suppress(trio.BrokenResourceError):
                while await stalled.receive_some(1 << 20):  # what was sent, then the end
                    pass
            await stalled.aclose()
    assert grace <= elapsed < grace + 3.0
    warnings = [r.getMessage() for r in logs if r.levelno == logging.WARNING]
    assert warnings == ["HTTP server: closed 1 connection(s) whose client stopped reading"]


async def test_access_log_is_off_by_default_and_never_shows_the_token(logs):
    for access_log in (False, True):
        logs.clear()
        section = ServerSection(listen=("127.0.0.1", 0), token=TOKEN)
        served = Served(section, build_app(FakeView(target_status("api")), section, Metrics()))
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                _, served.port = await nursery.start(
                    partial(serve_http, served.app, section, access_log=access_log)
                )
                async with served.client(TOKEN) as client:
                    assert (await client.get("/api/v1/targets?x=1")).status_code == 200
                async with served.client("wrong-token") as client:
                    assert (await client.get("/api/v1/targets")).status_code == 401
                nursery.cancel_scope.cancel()
        access = [r.getMessage() for r in logs if r.name == "trio_monitor.access"]
        assert len(access) == (2 if access_log else 0)
        for record in logs:
            assert TOKEN not in record.getMessage()
            assert "wrong-token" not in record.getMessage()
    assert '"GET /api/v1/targets?x=1 HTTP/1.1" 200 ' in access[0]
    assert '"GET /api/v1/targets HTTP/1.1" 401 ' in access[1]


async def test_serves_on_ipv6_loopback_too():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    section = ServerSection(listen=("::1", 0))
    app = build_app(FakeView(), section, Metrics())
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(serve_http, app, section)
            assert host == "::1"
            async with httpx.AsyncClient(trust_env=False) as client:
                response = await client.get(f"http://[::1]:{port}/healthz")
            assert response.status_code == 200
            nursery.cancel_scope.cancel()


async def test_a_port_in_use_is_a_one_line_error():
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    section = ServerSection(listen=("127.0.0.1", port))
    app = build_app(FakeView(), section, Metrics())
    try:
        with trio.fail_after(WAIT), pytest.raises(ServerError) as caught:
            await serve_http(app, section)
    finally:
        await listener.aclose()
    assert str(caught.value) == (
        f"cannot listen on 127.0.0.1:{port} ([server] listen): Address already in use"
    )
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# --- `trio-monitor health` ------------------------------------------------------------------


async def health_command(tmp_path, server_toml: str | None, *options: str):
    config = tmp_path / "monitor.toml"
    config.write_text("" if server_toml is None else f"[server]\n{server_toml}\n")
    with trio.fail_after(WAIT):
        proc = await trio.run_process(
            [sys.executable, "-m", "trio_monitor", "health", "-c", str(config), *options],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
    assert "Traceback" not in stderr
    return proc.returncode, stdout, stderr


@pytest.mark.subprocess
async def test_health_command_against_a_running_server(tmp_path):
    view = FakeView(target_status("api"))
    async with serving(view, token=TOKEN) as served:
        listen = f'listen = "127.0.0.1:{served.port}"\ntoken = "{TOKEN}"'
        healthy = await health_command(tmp_path, listen)
        view.healthy = UNHEALTHY
        unhealthy = await health_command(tmp_path, listen)
    assert healthy == (0, "healthy: ok\n", "")
    assert unhealthy == (1, "", "trio-monitor: unhealthy: no round for 95 s (limit 60 s)\n")


@pytest.mark.subprocess
async def test_health_command_with_nothing_listening(tmp_path):
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # a port that was just free
    code, stdout, stderr = await health_command(tmp_path, f'listen = "127.0.0.1:{port}"')
    assert code == 1
    assert stdout == ""
    assert (
        stderr
        == f"trio-monitor: http://127.0.0.1:{port}/healthz: cannot connect: Connection refused\n"
    )


@pytest.mark.subprocess
async def test_health_command_against_a_server_that_never_answers(tmp_path):
    async def hang(stream):
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, hang, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        result = await health_command(
            tmp_path, f'listen = "127.0.0.1:{port}"', "--timeout", "300ms"
        )
        nursery.cancel_scope.cancel()
    assert result == (
        1,
        "",
        f"trio-monitor: http://127.0.0.1:{port}/healthz: no answer within 0.3 s\n",
    )


@pytest.mark.subprocess
async def test_health_command_without_a_server_section(tmp_path):
    code, stdout, stderr = await health_command(tmp_path, None)
    assert code == 2
    assert stdout == ""
    assert stderr.endswith("monitor.toml: no [server] section: there is no server to ask\n")
    assert stderr.count("\n") == 1


async def test_health_check_of_a_server_that_is_not_ours():
    async def not_found(stream):
        await stream.send_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await stream.aclose()

    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            [listener] = await nursery.start(
                partial(trio.serve_tcp, not_found, 0, host="127.0.0.1")
            )
            port = listener.socket.getsockname()[1]
            section = ServerSection(listen=("127.0.0.1", port))
            result = await trio.to_thread.run_sync(health.check_health, section)
            nursery.cancel_scope.cancel()
    assert result == (False, f"http://127.0.0.1:{port}/healthz: unexpected HTTP status 404")


def test_health_check_asks_loopback_for_a_wildcard_listen(monkeypatch):
    asked = []

    def get(self, url, **kwargs):
        asked.append(url)
        raise httpx.ConnectError("refused")

    monkeypatch.setattr(httpx.Client, "get", get)
    for host, url in (("0.0.0.0", "127.0.0.1"), ("::", "[::1]"), ("::1", "[::1]")):
        health.check_health(ServerSection(listen=(host, 9180)))
        assert asked.pop() == f"http://{url}:9180/healthz"


# --- schemathesis: property-based requests from the served document -----------------------


@contextmanager
def serving_in_thread(
    view: FakeView, *, token: str | None = None, page: Any = fake_page
) -> Iterator[str]:
    """The server in a trio run of its own, in a thread: schemathesis' and selenium's
    requests are synchronous, so they cannot share the test's event loop. -> its base URL.
    `page=None`: the real status page."""
    section = ServerSection(listen=("127.0.0.1", 0), token=token)
    app = build_app(view, section, Metrics(), page=page, silences=silence_desk())
    started = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        state["token"] = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            state["scope"] = scope
            async with trio.open_nursery() as nursery:
                _, state["port"] = await nursery.start(serve_http, app, section)
                started.set()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:
            state["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=run, name="trio-monitor test server")
    thread.start()
    try:
        assert started.wait(WAIT), "the server did not start"
        assert "error" not in state, state.get("error")
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        if "scope" in state:
            trio.from_thread.run_sync(state["scope"].cancel, trio_token=state["token"])
        thread.join(WAIT)
        assert not thread.is_alive(), "the server did not stop"
    assert "error" not in state, state.get("error")


@pytest.mark.fuzz
def test_schemathesis_fuzzes_every_operation_against_the_served_document(
    tmp_path, monkeypatch, request
):
    """Schemathesis generates requests from the served OpenAPI document (valid and
    invalid parameters, with and without the token) and checks each answer against it:
    never a 5xx, only documented statuses, content types, headers and schemas, invalid
    input rejected, a missing or wrong token refused where the document says so.

    Its pytest integration (`from_fixture`) does not work with pytest 9, so the test
    drives its Python API with Hypothesis directly. `since` and `until` depend on each
    other (since before until), which no schema can say: a 400 for a schema-valid pair
    is expected, and checked by the tests above instead."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, configuration, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.config import SchemathesisConfig
    from schemathesis.generation import GenerationMode

    # Hypothesis caches under ./.hypothesis unless told otherwise: not in the work tree
    configuration.set_hypothesis_home_dir(tmp_path / "hypothesis")
    request.addfinalizer(lambda: configuration.set_hypothesis_home_dir(None))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):  # requests honours these
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    path = str(tmp_path / "history.db")
    trio.run(write_history, path, history_records(time.time()))
    view = FakeView(target_status("api"), target_status("db", "DOWN"), store_path=path)
    config = SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {"bearerAuth": {"bearer": TOKEN}}},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404", "503"]}
            },
            # a schema-valid token is still a wrong one: the form comes back with a 401
            "operations": [
                {
                    "include-name": "POST /login",
                    "checks": {"positive_data_acceptance": {"expected-statuses": ["303", "401"]}},
                },
                {
                    "include-name": "POST /logout",
                    "checks": {"positive_data_acceptance": {"expected-statuses": ["303"]}},
                },
            ],
        }
    )
    failures = []
    with serving_in_thread(view, token=TOKEN) as url:
        schema = schemathesis.openapi.from_url(
            f"{url}/api/v1/openapi.json",
            headers={"authorization": f"Bearer {TOKEN}"},
            config=config,
            timeout=WAIT,
        )
        operations = [result.ok() for result in schema.get_all_operations()]
        documented = set(openapi_document(ServerSection(token=TOKEN))["paths"])
        # every operation but the document itself, which schemathesis leaves out
        assert {o.path for o in operations} == documented - {"/api/v1/openapi.json"}
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(
                    max_examples=30,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(mode))
                def check(case):
                    case.call_and_validate(timeout=WAIT)

                try:
                    check()
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # nothing to get wrong
                except Exception as exc:
                    failures.append(f"{operation.label} ({mode} data): {exc}")
    assert not failures, "\n\n".join(failures)
