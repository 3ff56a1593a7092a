"""How each probe kind shows up outside the probe line: the common `group` key (config,
API, OpenAPI), the kind-specific fields of `last` in the API (validated against the
served OpenAPI document), and reports of mixed kinds in every format (a kind column,
latency that says what it measures, failures by error kind, no HTTP-only numbers for
other kinds). The status page's side is tests/test_page_kinds.py.
"""

from __future__ import annotations

import io
import json
import time

import attrs
import pytest
from factories import probe_result
from test_config import only_target, problems
from test_report import T0, FakeReader, _config, _fail, _inject, _ok
from test_server import FakeView, serving, target_status

from trio_monitor._config import MAX_GROUP
from trio_monitor._records import (
    ConditionResult,
    DnsAnswer,
    IcmpDetails,
    PushDetails,
    to_line,
)
from trio_monitor.cli.main import main
from trio_monitor.report import (
    Aggregator,
    build_report,
    feed_jsonl,
    render_html,
    render_json,
    render_text,
)

URL = "https://example.test/health"

# --- the group key --------------------------------------------------------------------


def test_group_is_read_stripped_and_optional():
    assert only_target({"targets": [{"url": URL, "group": "  Web  "}]}).group == "Web"
    assert only_target({"targets": [{"url": URL}]}).group is None
    assert only_target({"targets": [{"url": URL, "group": "é" * MAX_GROUP}]}).group == "é" * 100


def test_a_bad_group_is_one_line_each():
    data = {
        "targets": [
            {"url": URL, "name": "a", "group": "  "},
            {"url": URL, "name": "b", "group": "Web\nDB"},
            {"url": URL, "name": "c", "group": "x" * (MAX_GROUP + 1)},
            {"url": URL, "name": "e", "group": "\x1b[31mred"},
        ]
    }
    assert problems({"targets": [{"url": URL, "group": 7}]}) == [
        "m.toml: targets[0].group: expected a string, got 7"
    ]
    assert problems(data) == [
        "m.toml: targets[0].group: must not be empty (leave it out for no group)",
        "m.toml: targets[1].group: must not contain control characters, got 'Web\\nDB'",
        "m.toml: targets[2].group: at most 100 characters, got 101",
        "m.toml: targets[3].group: must not contain control characters, got '\\x1b[31mred'",
    ]


# --- the API: group, kind and the kind-specific fields of `last` ----------------------


def _kind_status(name: str, kind: str, **fields):
    base = target_status(name, kind=kind)
    assert base.last is not None
    return attrs.evolve(base, last=attrs.evolve(base.last, **fields), group=fields.get("group"))


async def test_api_targets_carry_group_and_every_kinds_fields_as_documented():
    now = time.time()
    statuses = [
        attrs.evolve(target_status("web"), group="Web"),
        _kind_status("smtp", "tcp", received="220 mail.example ESMTP\r\n"),
        _kind_status(
            "dns-a",
            "dns",
            dns=DnsAnswer("MX", "NOERROR", ("10 mx.example.",), "127.0.0.1:5353", True),
        ),
        _kind_status(
            "ping", "icmp", icmp=IcmpDetails(3, 0, 100.0, None, None, None, "127.0.0.1", "raw")
        ),
        _kind_status("job", "push", push=PushDetails(now - 60, "exit", 2, 950.0, now + 240)),
        _kind_status("no-ping", "push", push=PushDetails(None, None, None, None, None)),
        _kind_status(
            "cond",
            "http",
            conditions=(
                ConditionResult("[STATUS] == 200", True, "200"),
                ConditionResult("[BODY].status == UP", False, None),
            ),
        ),
    ]
    # every response is checked against the served OpenAPI document (closed objects:
    # a field it does not describe fails), by the `serving` client's hook
    async with serving(FakeView(*statuses)) as served, served.client() as client:
        listed = (await client.get("/api/v1/targets")).json()
        detail = (await client.get("/api/v1/targets/job")).json()
    by = {t["name"]: t for t in listed}
    assert by["web"]["group"] == "Web"
    assert by["smtp"]["group"] is None
    assert by["smtp"]["last"]["received"] == "220 mail.example ESMTP\r\n"
    assert by["dns-a"]["last"]["dns"] == {
        "record_type": "MX",
        "rcode": "NOERROR",
        "answers": ["10 mx.example."],
        "server": "127.0.0.1:5353",
        "tcp": True,
        "authority_rrs": 0,
        "additional_rrs": 0,
    }
    assert by["ping"]["last"]["icmp"]["rtt_avg_ms"] is None
    assert by["ping"]["last"]["icmp"]["loss_pct"] == 100.0
    push = detail["last"]["push"]
    assert push["last_event"] == "exit"
    assert push["last_ping"].endswith("Z")  # RFC 3339, as every time in the API
    assert push["next_due"].endswith("Z")
    assert by["no-ping"]["last"]["push"]["last_ping"] is None
    assert by["cond"]["last"]["conditions"] == [
        {"condition": "[STATUS] == 200", "ok": True, "actual": "200"},
        {"condition": "[BODY].status == UP", "ok": False, "actual": None},
    ]
    for t in listed:  # kinds without them: null
        for key in ("conditions", "received", "dns", "icmp", "push"):
            assert key in t["last"]
    assert by["web"]["last"]["dns"] is None


def test_openapi_documents_the_kind_fields_as_nullable():
    from trio_monitor._config import ServerSection
    from trio_monitor.server import openapi_document

    probe = openapi_document(ServerSection())["components"]["schemas"]["Probe"]
    for key in ("conditions", "received", "dns", "icmp", "push"):
        assert key in probe["required"], key  # every probe object has them, null or not
        schema = probe["properties"][key]
        assert "null" in schema.get("type", []) or {"type": "null"} in schema["anyOf"], key
    target = openapi_document(ServerSection())["components"]["schemas"]["Target"]
    assert target["properties"]["group"]["type"] == ["string", "null"]


# --- reports of mixed kinds ----------------------------------------------------------


def _line(target: str, minute: float, kind: str, ok: bool = True, ms: float | None = 20.0, **kw):
    return to_line(
        probe_result(
            target,
            ts=T0 + minute * 60,
            url=kw.pop("url", f"{kind}://{target}.example"),
            ok=ok,
            status=kw.pop("status", None),
            latency_ms=ms if ok else None,
            error=kw.pop("error", None if ok else "connect"),
            kind=kind,
            **kw,
        )
    )


HOSTILE_KIND = "<b>x</b>"


def _mixed_report():
    lines = []
    for m in range(10):
        lines.append(_line("web", m, "http", status=200, ms=30.0))
        lines.append(_line("smtp", m, "tcp", ms=2.0, received="220 ok"))
        lines.append(
            _line(
                "dns-a",
                m,
                "dns",
                ok=m != 3,
                ms=1.0,
                error="dns",
                dns=DnsAnswer("A", "NXDOMAIN" if m == 3 else "NOERROR", (), "127.0.0.1:53", False),
            )
        )
        lines.append(
            _line(
                "ping",
                m,
                "icmp",
                ms=0.5,
                icmp=IcmpDetails(3, 3, 0.0, 0.4, 0.5, 0.6, "127.0.0.1", "dgram"),
            )
        )
        # a job that runs 90 s: its latency is run time, not a response time
        lines.append(_line("backup", m, "push", ok=m < 8, ms=90_000.0, error="missed"))
    lines.append(_line("backup", 9.5, "push", ok=False, error="job_failed"))
    lines.append(_line("odd", 1, HOSTILE_KIND, ms=5.0))
    lines.append(json.dumps({**json.loads(_line("old", 1, "http")), "kind": None}))
    old = json.loads(_line("legacy", 1, "http", status=200))
    del old["kind"]  # a line written before kinds existed
    lines.append(json.dumps(old))
    a = Aggregator(T0, T0 + 3600)
    notes: list[str] = []
    feed_jsonl(a, io.BytesIO("\n".join(lines).encode()), "x", warn=notes.append)
    assert notes == []
    return build_report(a, {"kind": "test"})


def test_report_targets_know_their_kind_and_failures_by_error():
    report = _mixed_report()
    by = {t.target: t for t in report.targets}
    assert {name: t.kind for name, t in by.items()} == {
        "backup": "push",
        "dns-a": "dns",
        "legacy": "http",
        "odd": HOSTILE_KIND,
        "old": None,  # "kind": null says nothing
        "ping": "icmp",
        "smtp": "tcp",
        "web": "http",
    }
    assert by["backup"].errors == {"missed": 2, "job_failed": 1}
    assert by["dns-a"].errors == {"dns": 1}
    assert by["web"].errors == {}
    # ICMP's latency is its average round trip: its percentiles are RTTs
    assert by["ping"].p50 == pytest.approx(0.5, rel=0.05)
    # push latency is run time: not among the slowest, whatever its size
    assert [t.target for t in report.slowest(10)] == [
        "web",
        "legacy",
        "old",
        "odd",
        "smtp",
        "dns-a",
        "ping",
    ]
    assert report.latency_means() == {
        "http": "request to end of body",
        "icmp": "average echo round trip",
        "push": "the job's run time (/start to ping)",
    }


def test_report_latency_means_nothing_for_http_only():
    a = Aggregator(T0, T0 + 3600)
    a.target("web", kind="http")
    a.target("api")
    assert build_report(a).latency_means() == {}


def test_text_report_of_mixed_kinds():
    text = render_text(_mixed_report(), slowest=10)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    header = next(i for i, line in enumerate(lines) if line.startswith("TARGET"))
    kinds = {line.split()[0]: line.split()[1] for line in lines[header + 1 : header + 9]}
    assert kinds == {
        "backup": "push",
        "dns-a": "dns",
        "legacy": "http",
        "odd": "<b>x\u2026",
        "old": "-",
        "ping": "icmp",
        "smtp": "tcp",
        "web": "http",
    }
    assert (
        "latency, by kind:\n  http: request to end of body\n  icmp: average echo round trip\n"
        in (text)
    )
    assert "\nfailures by error (raw probes):\n  backup: missed 2, job_failed 1\n" in text
    assert "  dns-a: dns 1\n" in text
    slowest = text[text.index("slowest by p95") :]
    assert "backup" not in slowest


def test_json_report_of_mixed_kinds():
    data = json.loads(render_json(_mixed_report(), slowest=10))
    by = {t["target"]: t for t in data["targets"]}
    assert by["ping"]["kind"] == "icmp"
    assert by["old"]["kind"] is None
    assert by["backup"]["errors"] == {"missed": 2, "job_failed": 1}
    assert by["web"]["errors"] == {}
    assert "backup" not in [s["target"] for s in data["slowest"]]
    assert data["latency_means"]["push"] == "the job's run time (/start to ping)"


def test_html_report_of_mixed_kinds():
    page = render_html(_mixed_report(), slowest=10)
    assert HOSTILE_KIND not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert '<th class="name">kind</th>' in page
    row = page[page.index('<td class="name" title="dns-a">') :].split("</tr>", 1)[0]
    assert '<td class="name mono">dns</td>' in row
    assert row.endswith("<td>-</td>")  # content changes: only HTTP probes hash content
    web = page[page.index('<td class="name" title="web">') :].split("</tr>", 1)[0]
    assert web.endswith("<td>0</td>")
    assert '<h3 title="ping">ping <span class="kind mono">icmp</span></h3>' in page
    assert "<b>icmp</b> average echo round trip" in page
    assert "<h2>Failures by error" in page
    assert "missed 2, job_failed 1" in page
    # the push job's 90 s run times: an axis in seconds (in ms its labels overflowed)
    backup = page[page.index('<h3 title="backup">') :].split('<div class="target">', 1)[0]
    assert 'text-anchor="end">100 s</text>' in backup
    assert " ms</text>" not in backup
    assert 'text-anchor="end">25 ms</text>' in page  # web's 30 ms stay in ms


def test_store_report_takes_kinds_from_the_config(tmp_path, monkeypatch, capsys):
    reader = FakeReader(
        raw={
            "api": [_ok("api", T0 + 60), _fail("api", T0 + 120, "timeout")],
            "gone": [_ok("gone", T0 + 60)],
        }
    )
    _inject(monkeypatch, reader, [])
    window = ["--since", rfc(T0), "--until", rfc(T0 + 3600)]
    assert main(["report", "-c", str(_config(tmp_path)), *window, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by = {t["target"]: t for t in data["targets"]}
    assert (by["api"]["kind"], by["web"]["kind"]) == ("http", "http")
    assert by["gone"]["kind"] is None  # in history, no longer configured: not known
    assert by["api"]["errors"] == {"timeout": 1}


def rfc(ts: float) -> str:
    from trio_monitor._records import rfc3339

    return rfc3339(ts)
