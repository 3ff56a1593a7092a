"""The status page with targets of every probe kind (trio_monitor/server/static/), in
real headless Chromium: each card's kind label and the fact its kind reports (icmp RTT
and loss, dns rcode and answers, push last ping and next due, tcp/ws the received
text's first line, failed conditions with their actual value, the certificate for any
kind with one), targets under their group's heading, the filter over names, groups and
kinds, and hostile values (wrong types, huge strings, HTML) shown as text or not at all.

The targets are the API's own JSON (`server/app.py` from `TargetStatus`es holding
`ProbeResult`s with the contract's fields), served by test_page's fake API.
"""

from __future__ import annotations

import re
import time

import pytest
from test_page import (
    HOSTILE,
    SETTLED,
    FakeApi,
    _no_horizontal_scroll,
    _screenshot,
    _severe_logs,
    serve,
)
from test_page import _viewport as viewport
from test_page import _wait as wait

from trio_monitor._errors import ErrorKind
from trio_monitor._records import (
    BrowserDetails,
    ConditionResult,
    DnsAnswer,
    IcmpDetails,
    ProbeResult,
    PushDetails,
)
from trio_monitor.engine.view import TargetStatus
from trio_monitor.net.certs import DAY, TlsDetails
from trio_monitor.server.app import _target_json

HUGE = "A" * 100_000


def _tls(now: float, days: float) -> TlsDetails:
    return TlsDetails(
        subject="CN=mail.example",
        issuer="CN=Example CA",
        sans=("mail.example",),
        not_before=now - 60 * DAY,
        not_after=now + days * DAY,
        days_left=days,
        version="TLSv1.3",
        cipher="TLS_AES_128_GCM_SHA256",
        earliest_not_after=now + days * DAY,
        earliest_subject="CN=mail.example",
    )


def _status(
    now: float, name: str, kind: str, url: str, group: str | None, ok: bool = True, **last
) -> TargetStatus:
    result = ProbeResult(
        ts=now - 10,
        target=name,
        url=url,
        ok=ok,
        status=last.pop("status", None),
        latency_ms=last.pop("latency_ms", 3.25 if ok else None),
        error=last.pop("error", None if ok else ErrorKind.CONNECT),
        attempts=1,
        round=3,
        kind=kind,
        **last,
    )
    return TargetStatus(
        name=name,
        url=url,
        state="UP" if ok else "DOWN",
        since=now - 3600,
        last=result,
        interval_s=60.0,
        checks_24h=1440,
        availability_24h_pct=100.0 if ok else 97.5,
        p95_24h_ms=4.5,
        kind=kind,
        tls=result.tls,
        group=group,
    )


def _targets(now: float) -> list[dict]:
    statuses = [
        _status(now, "web", "http", "https://web.example/", "Web", status=200, tls=_tls(now, 60)),
        _status(
            now,
            "api-health",
            "http",
            "https://api.example/health",
            "Web",
            ok=False,
            status=200,
            error="condition",
            error_detail="[BODY].status (DOWN) == UP",
            conditions=(
                ConditionResult("[STATUS] == 200", True, "200"),
                ConditionResult("[BODY].status == UP", False, "DOWN"),
                ConditionResult("[BODY].items[0].id == 1", False, None),
            ),
        ),
        _status(
            now,
            "smtp",
            "tcp",
            "tcp://mail.example:25",
            "Mail",
            received="\r\n220 mail.example ESMTP Postfix\r\n250 ok",
        ),
        _status(now, "smtps", "tls", "tls://mail.example:465", "Mail", tls=_tls(now, 10)),
        _status(
            now,
            "dns-a",
            "dns",
            "dns://www.example",
            "Infra",
            dns=DnsAnswer(
                "A",
                "NOERROR",
                ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"),
                "127.0.0.1:53",
                True,
            ),
        ),
        _status(
            now,
            "dns-nx",
            "dns",
            "dns://gone.example",
            "Infra",
            ok=False,
            error=ErrorKind.DNS,
            error_detail="NXDOMAIN",
            dns=DnsAnswer("A", "NXDOMAIN", (), "127.0.0.1:53", False),
        ),
        _status(  # NXDOMAIN asked for (a condition): ok, so no warning
            now,
            "dns-gone",
            "dns",
            "dns://old.example",
            "Infra",
            dns=DnsAnswer("A", "NXDOMAIN", (), "127.0.0.1:53", False),
        ),
        _status(
            now,
            "ping",
            "icmp",
            "icmp://192.0.2.7",
            "Infra",
            latency_ms=0.187,
            icmp=IcmpDetails(3, 2, 33.33, 0.126, 0.187, 0.24, "192.0.2.7", "dgram"),
        ),
        _status(now, "ws", "ws", "ws://chat.example/", "Infra", received='{"hello": "world"}'),
        _status(
            now,
            "backup",
            "push",
            "push",
            "Jobs",
            latency_ms=1500.0,
            push=PushDetails(now - 300, "ping", 0, 1500.0, now + 3330),
        ),
        _status(
            now,
            "cron",
            "push",
            "push",
            "Jobs",
            ok=False,
            error="missed",
            error_detail="no ping since 2 h",
            push=PushDetails(now - 7200, "fail", 3, None, now - 120),
        ),
        _status(now, "legacy", "http", "http://legacy.example/", None, status=204),
    ]
    targets = [_target_json(s) for s in statuses]
    # hostile: every kind-specific field of the wrong type, huge, or HTML
    hostile = _target_json(
        _status(
            now, HOSTILE, "dns", "https://evil.example/", HOSTILE, ok=False, error=ErrorKind.DNS
        )
    )
    hostile["kind"] = "<b>kind</b>" * 50
    hostile["group"] = HOSTILE + HUGE
    hostile["tls"] = {"not_after": 12, "subject": ["x"]}
    hostile["last"] |= {
        "kind": {"a": 1},
        "status": "200",
        "dns": {
            "record_type": ["A"],
            "rcode": "<script>alert(4)</script>",
            "answers": ["<img src=x onerror=alert(5)>", HUGE, 7, None, {"x": 1}] + ["z"] * 10_000,
            "server": 53,
            "tcp": "yes",
        },
        "icmp": {"sent": "3", "received": -1, "loss_pct": "NaN", "rtt_avg_ms": [1]},
        "push": {"last_ping": "yesterday", "next_due": 5, "exit_code": "1", "run_ms": "x"},
        "received": 42,
        "conditions": [
            None,
            "[STATUS] == 200",
            {"condition": HTML_CONDITION, "ok": "no", "actual": {"x": 1}},
            *[{"condition": f"[X] == {i}", "ok": False, "actual": HUGE} for i in range(50)],
        ],
    }
    odd = {**targets[-1], "name": "odd-shapes", "group": 17, "kind": None}
    odd["last"] = {**odd["last"], "dns": [], "icmp": "x", "push": None, "conditions": {"a": 1}}
    return [*targets, hostile, odd]


HTML_CONDITION = "<b>[BODY]</b> == <script>alert(6)</script>"

CARDS = """
return [...document.querySelectorAll("#targets .card")].map((c) => ({
  name: c.dataset.name,
  group: c.closest(".group").dataset.group,
  kind: c.querySelector(".kind").textContent,
  last: c.querySelector(".last").textContent,
  facts: [...c.querySelectorAll(".fact")].map((f) => [f.dataset.fact, f.textContent,
    f.className.includes("fact-warn")]),
  conds: c.querySelector(".conds").hidden ? null
    : [c.querySelector(".conds > span").textContent,
       ...[...c.querySelectorAll(".conds li")].map((l) => l.textContent)],
  cert: c.querySelector(".cert").hidden ? null : c.querySelector(".cert").textContent,
  hidden: c.hidden,
}));
"""
GROUPS = """
return [...document.querySelectorAll("#targets .group")].map((g) => [
  g.dataset.group, g.querySelector(".group-title").hidden ? null
    : g.querySelector(".group-title").textContent, g.hidden]);
"""


@pytest.mark.browser
def test_every_kind_shows_its_facts_under_its_group(browser, tmp_path):
    now = time.time()
    api = FakeApi(now, _targets(now), {}, [])
    with serve(api) as base:
        viewport(browser, 1200, 1600, mobile=False)
        browser.get_log("browser")
        browser.get(base + "/")
        wait(browser, "the cards", SETTLED, 1, 14)
        cards = browser.execute_script(CARDS)
        by = {c["name"]: c for c in cards}

        # --- groups: by name (JavaScript's order: "<" before letters), ungrouped last
        clipped_group = (HOSTILE + HUGE)[:99] + "\u2026"
        assert [(c["group"], c["name"]) for c in cards] == [
            (clipped_group, HOSTILE),
            ("Infra", "dns-nx"),
            ("Infra", "dns-a"),
            ("Infra", "dns-gone"),
            ("Infra", "ping"),
            ("Infra", "ws"),
            ("Jobs", "cron"),
            ("Jobs", "backup"),
            ("Mail", "smtp"),
            ("Mail", "smtps"),
            ("Web", "api-health"),
            ("Web", "web"),
            ("", "legacy"),
            ("", "odd-shapes"),
        ]
        assert browser.execute_script(GROUPS) == [
            [clipped_group, clipped_group + " \u00b7 1 target, 1 down", False],
            ["Infra", "Infra \u00b7 5 targets, 1 down", False],
            ["Jobs", "Jobs \u00b7 2 targets, 1 down", False],
            ["Mail", "Mail \u00b7 2 targets", False],
            ["Web", "Web \u00b7 2 targets, 1 down", False],
            ["", "Other targets \u00b7 2 targets", False],
        ]

        # --- the kind label and the kind's fact
        assert [by[n]["kind"] for n in ("web", "smtp", "smtps", "dns-a", "ping", "ws", "cron")] == [
            "http", "tcp", "tls", "dns", "icmp", "ws", "push",
        ]  # fmt: skip
        assert by["ping"]["facts"] == [
            ["icmp", "ping: avg 0.19 ms \u00b7 loss 33.3% (2 of 3 replied)", True]
        ]
        assert by["dns-a"]["facts"] == [
            ["dns", "DNS A NOERROR: 192.0.2.1, 192.0.2.2, 192.0.2.3 (+2 more)", False]
        ]
        assert by["dns-nx"]["facts"] == [["dns", "DNS A NXDOMAIN: no answers", True]]
        assert by["dns-gone"]["facts"] == [["dns", "DNS A NXDOMAIN: no answers", False]]
        assert by["smtp"]["facts"] == [
            ["received", "received: \u201c220 mail.example ESMTP Postfix\u201d", False]
        ]
        assert by["ws"]["facts"] == [
            ["received", 'received: \u201c{"hello": "world"}\u201d', False]
        ]
        assert by["backup"]["facts"] == [
            ["push", "last ping 5 min ago (exit 0, ran 1.50 s) \u00b7 next due in 55 min", False]
        ]
        assert by["cron"]["facts"] == [
            ["push", "last ping 2 h ago (reported a failure, exit 3) \u00b7 overdue by 2 min", True]
        ]
        for name in ("web", "smtps", "legacy", "api-health"):
            assert by[name]["facts"] == [], name
        # the certificate for any kind with one: https and tls://
        assert by["web"]["cert"] == "certificate: 59 days left"
        assert by["smtps"]["cert"] == "certificate: 9 days left"
        assert by["dns-a"]["cert"] is None
        # an HTTP status only where there is one
        assert re.fullmatch(r"last check \d\d:\d\d:\d\d \u00b7 HTTP 204 \u00b7 3.3 ms \u00b7 ok",
                            by["legacy"]["last"])  # fmt: skip
        assert by["ping"]["last"].endswith("\u00b7 0.19 ms \u00b7 icmp ok")
        assert "HTTP" not in by["smtp"]["last"]
        assert by["smtp"]["last"].endswith("\u00b7 3.3 ms \u00b7 tcp ok")
        # conditions: how many passed, the failed ones with their actual value
        assert by["api-health"]["conds"] == [
            "conditions: 1 of 3 ok",
            "\u2715 [BODY].status == UP \u2014 actual: DOWN",
            "\u2715 [BODY].items[0].id == 1 \u2014 actual: missing",
        ]
        assert by["web"]["conds"] is None

        # --- hostile and odd values: text, clipped, or left out; nothing injected
        h = by[HOSTILE]
        assert h["kind"] == ("<b>kind</b>" * 2)[:15] + "\u2026"
        assert "HTTP" not in h["last"]  # "200" is not a status
        # objects with nothing usable in them say so; the strings in them are clipped
        assert h["facts"] == [
            ["icmp", "ping: no reply", True],
            [
                "dns",
                "DNS ? <script>alert(4\u2026: <img src=x onerror=alert(5)>, "
                + "A" * 59
                + "\u2026, z (+9999 more)",
                True,
            ],
            ["push", "no ping yet", False],
        ]
        assert h["conds"][0] == "conditions: 0 of 51 ok"
        assert h["conds"][1] == "\u2715 " + HTML_CONDITION + " \u2014 actual: missing"
        assert h["conds"][-1] == "\u2026 and 46 more"
        assert all(len(line) < 200 for line in h["conds"])
        assert h["cert"] is None
        odd = by["odd-shapes"]
        assert (odd["group"], odd["kind"], odd["facts"], odd["conds"]) == ("", "http", [], None)
        injected = browser.execute_script(
            "return document.querySelectorAll('#targets img, #targets script, #targets b').length"
        )
        assert injected == 0
        _no_horizontal_scroll(browser, 1200)
        _screenshot(browser, tmp_path / "kinds-1200.png")

        # --- the filter: names, URLs, groups and kinds; empty groups hidden
        def filtered(text: str) -> tuple[list[str], list[str]]:
            browser.execute_script(
                "const f = document.getElementById('filter'); f.value = arguments[0];"
                " f.dispatchEvent(new Event('input'));",
                text,
            )
            shown = [c["name"] for c in browser.execute_script(CARDS) if not c["hidden"]]
            groups = [g[0] for g in browser.execute_script(GROUPS) if not g[2]]
            return shown, groups

        assert filtered("DNS") == (["dns-nx", "dns-a", "dns-gone"], ["Infra"])  # kind and name
        assert filtered("mail") == (["smtp", "smtps"], ["Mail"])  # group and URL
        assert filtered("push") == (["cron", "backup"], ["Jobs"])
        assert filtered("nothing matches this") == ([], [])
        assert filtered("") == (
            [c["name"] for c in cards],
            [g[0] for g in browser.execute_script(GROUPS)],
        )

        # --- a phone: no horizontal scrolling, whatever the strings
        viewport(browser, 375, 812, mobile=True)
        browser.get(base + "/")
        wait(browser, "the cards at 375 px", SETTLED, 1, 14)
        _no_horizontal_scroll(browser, 375)
        _screenshot(browser, tmp_path / "kinds-phone-375.png")
        assert _severe_logs(browser) == []
    print(f"screenshots in {tmp_path}")


FIRST = "return document.querySelector('.card[data-name=\"api-health\"]')"


@pytest.mark.browser
def test_without_groups_there_are_no_headings(browser):
    now = time.time()
    targets = [t | {"group": None} for t in _targets(now)[:4]]
    api = FakeApi(now, targets, {}, [])
    with serve(api) as base:
        viewport(browser, 1200, 1000, mobile=False)
        browser.get(base + "/")
        wait(browser, "the cards", SETTLED, 1, 4)
        assert browser.execute_script(GROUPS) == [["", None, False]]
        names = [c["name"] for c in browser.execute_script(CARDS)]
        assert names == ["api-health", "smtp", "smtps", "web"]  # DOWN first, then by name
        # a group appearing on a refresh brings headings; the cards move, not rebuilt
        first = browser.execute_script(FIRST)
        api.targets = [targets[0] | {"group": "Web"}, *targets[1:]]
        gen = browser.execute_script("return Number(document.body.dataset.generation)")
        browser.execute_script("document.getElementById('refresh').click()")
        wait(
            browser,
            "a refresh",
            "return Number(document.body.dataset.generation) > arguments[0]",
            gen,
        )
        assert browser.execute_script(GROUPS) == [
            ["Web", "Web \u00b7 1 target", False],
            ["", "Other targets \u00b7 3 targets, 1 down", False],
        ]
        assert browser.execute_script(FIRST) == first


@pytest.mark.browser
def test_a_browser_target_shows_its_page_load(browser):
    now = time.time()
    page = BrowserDetails(980.0, 1420.4, 1100.0, 23, 1, 0, 512_000)
    broken = BrowserDetails(80.0, None, None, 1, 0, 2, 900)
    targets = [
        _target_json(_status(now, "shop", "browser", "https://shop.example/", None, browser=page)),
        _target_json(
            _status(
                now,
                "spa",
                "browser",
                "https://spa.example/",
                None,
                ok=False,
                error=ErrorKind.CONTENT,
                browser=broken,
            )
        ),
    ]
    hostile = _target_json(_status(now, "odd", "browser", "https://odd.example/", None))
    hostile["last"] |= {"browser": {"load_ms": "fast", "requests": -3, "failed_requests": [1]}}
    api = FakeApi(now, [*targets, hostile], {}, [])
    with serve(api) as base:
        viewport(browser, 1200, 1000, mobile=False)
        browser.get(base + "/")
        wait(browser, "the cards", SETTLED, 1, 3)
        by = {c["name"]: c for c in browser.execute_script(CARDS)}
        assert by["shop"]["kind"] == "browser"
        assert by["shop"]["facts"] == [
            [
                "browser",
                "page: load 1.42 s \u00b7 23 requests \u00b7 1 failed \u00b7 0 errors",
                True,
            ]
        ]
        assert by["spa"]["facts"] == [
            ["browser", "page: not loaded \u00b7 1 request \u00b7 0 failed \u00b7 2 errors", True]
        ]
        assert by["odd"]["facts"] == [["browser", "page: not loaded", False]]
        title = browser.execute_script(
            "return document.querySelector('.card[data-name=\"shop\"] .fact').title"
        )
        assert title == "DOMContentLoaded 980 ms \u00b7 LCP 1.10 s \u00b7 512,000 bytes transferred"
        assert _severe_logs(browser) == []


LABELS = {
    "web": {"team": "web", "env": "prod"},
    "api-health": {"team": "api", "env": "prod"},
    "smtp": {"team": "mail", "env": "staging"},
}
CONTROLS = """
const value = (id) => document.getElementById(id).value;
return {
  label: value("label-filter"), groupBy: value("group-by"),
  hidden: document.getElementById("label-filter").hidden,
  search: location.search, hash: location.hash,
  shown: document.getElementById("shown").textContent,
  options: [...document.querySelectorAll("#label-filter option")].map((o) => o.textContent),
  lines: Object.fromEntries([...document.querySelectorAll("#targets .card")].map((c) =>
    [c.dataset.name, c.querySelector(".labels").hidden ? null
      : c.querySelector(".labels").textContent])),
};
"""


def _choose(browser, select: str, value: str) -> None:
    browser.execute_script(
        "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
        " s.dispatchEvent(new Event('change'));",
        select,
        value,
    )


@pytest.mark.browser
def test_filter_by_label_and_group_by_a_label_kept_in_the_address(browser):
    now = time.time()
    targets = [t | {"labels": LABELS.get(t["name"], {})} for t in _targets(now)[:4]]
    api = FakeApi(now, targets, {}, [])

    def shown() -> list[str]:
        return [c["name"] for c in browser.execute_script(CARDS) if not c["hidden"]]

    def headings() -> list[str]:
        return [g[1] for g in browser.execute_script(GROUPS) if not g[2]]

    with serve(api) as base:
        viewport(browser, 1200, 1600, mobile=False)
        browser.get_log("browser")
        browser.get(base + "/?label=env=prod#token=x")  # the fake API takes any token
        wait(browser, "the cards", SETTLED, 1, 4)
        controls = browser.execute_script(CONTROLS)
        assert shown() == ["api-health", "web"]  # DOWN first
        assert controls["label"] == '["env=prod"]'
        assert not controls["hidden"]
        assert controls["shown"] == "showing 2 of 4"
        assert controls["options"] == [
            "all labels",
            "env=prod",
            "env=staging",
            "team=api",
            "team=mail",
            "team=web",
        ]
        assert controls["lines"] == {
            "api-health": "team=api \u00b7 env=prod",
            "web": "team=web \u00b7 env=prod",
            "smtp": "team=mail \u00b7 env=staging",
            "smtps": None,  # no labels, no line
        }
        assert headings() == ["Web" + " \u00b7 2 targets, 1 down"]

        _choose(browser, "label-filter", '["team=mail"]')
        _choose(browser, "group-by", "team")
        assert shown() == ["smtp"]
        assert headings() == ["team: mail \u00b7 1 target"]
        controls = browser.execute_script(CONTROLS)
        assert controls["search"] == "?label=team=mail&group_by=team"
        assert controls["hash"] == "#token=x"  # the token stays where it was

        browser.refresh()  # kept on reload
        wait(browser, "the cards after a reload", SETTLED, 1, 4)
        controls = browser.execute_script(CONTROLS)
        assert (controls["label"], controls["groupBy"]) == ('["team=mail"]', "team")
        assert shown() == ["smtp"]

        _choose(browser, "label-filter", "")
        assert shown() == ["api-health", "smtp", "web", "smtps"]  # by heading
        assert headings() == [
            "team: api \u00b7 1 target, 1 down",
            "team: mail \u00b7 1 target",
            "team: web \u00b7 1 target",
            "No team label \u00b7 1 target",
        ]
        assert browser.execute_script("return location.search") == "?group_by=team"

        # several labels in the address: all must match, shown as one choice
        browser.get(base + "/?label=env=prod&label=team=web")
        wait(browser, "the cards", SETTLED, 1, 4)
        controls = browser.execute_script(CONTROLS)
        assert shown() == ["web"]
        assert controls["options"][-1] == "env=prod and team=web"
        _choose(browser, "group-by", "")
        assert headings() == ["Web \u00b7 2 targets, 1 down"]  # counts: the whole group
        assert _severe_logs(browser) == []
