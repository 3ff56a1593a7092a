"""Prometheus metrics: what each record does to them, read back through
prometheus_client's own parser of the text format the server serves."""

from __future__ import annotations

import math

import attrs
from factories import (
    alert_event,
    config_doc,
    make_config,
    probe_result,
    round_summary,
    tls_details,
)
from prometheus_client.parser import text_string_to_metric_families

from trio_monitor import ErrorKind
from trio_monitor._records import BrowserDetails, DnsAnswer
from trio_monitor.probes.browser import RESTART_REASONS
from trio_monitor.server.metrics import CONTENT_TYPE, RESERVED_LABELS, Metrics

T0 = 1_800_000_000.0


def probe(target="api", ok=True, *, status=200, latency=12.5, error=None, size=512):
    return probe_result(target, ok=ok, status=status, latency_ms=latency, error=error, bytes=size)


def round_line(**fields):
    base = {"ts": T0, "round": 1, "targets": 2, "ok": 2, "failed": 0, "duration_ms": 250.0}
    return round_summary(**(base | fields))


def samples(metrics: Metrics) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} of everything exported, as a scraper reads it."""
    text = metrics.render().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def test_probe_results_set_the_per_target_gauges():
    m = Metrics()
    m.observe(probe("api", status=204, latency=12.5, size=512))
    m.observe(probe("web", ok=False, status=503, latency=80.0, error=ErrorKind.STATUS, size=30))
    assert value(m, "probe_success", target="api") == 1
    assert value(m, "probe_duration_seconds", target="api") == 0.0125
    assert value(m, "probe_http_status_code", target="api") == 204
    assert value(m, "probe_content_length_bytes", target="api") == 512
    assert value(m, "probe_success", target="web") == 0
    assert value(m, "probe_http_status_code", target="web") == 503
    assert value(m, "probe_duration_seconds", target="web") == 0.08
    assert value(m, "probe_content_length_bytes", target="web") == 30


def test_a_probe_without_a_response_has_status_0_and_no_duration():
    m = Metrics()
    m.observe(probe("api"))
    m.observe(probe("api", ok=False, status=None, latency=None, error=ErrorKind.CONNECT, size=0))
    assert value(m, "probe_success", target="api") == 0
    assert value(m, "probe_http_status_code", target="api") == 0
    assert math.isnan(value(m, "probe_duration_seconds", target="api"))
    assert value(m, "probe_content_length_bytes", target="api") == 0


def test_the_lookup_time_for_a_result_that_resolved_a_name():
    m = Metrics()
    phases = {"dns": 1.5, "connect": 0.2, "tls": None, "ttfb": 3.0, "transfer": 0.1}
    m.observe(probe_result("named", phases_ms=phases))
    m.observe(probe_result("literal", phases_ms=phases | {"dns": None}))
    m.observe(probe_result("refused", ok=False))  # no phases at all
    assert value(m, "probe_dns_lookup_time_seconds", target="named") == 0.0015
    assert value(m, "probe_dns_lookup_time_seconds", target="literal") is None
    assert value(m, "probe_dns_lookup_time_seconds", target="refused") is None


def test_dns_targets_have_blackbox_dns_series():
    m = Metrics()
    answer = DnsAnswer("MX", "NOERROR", ("10 a.test.", "20 b.test."), "127.0.0.1:53", False, 1, 3)
    m.observe(probe_result("mx", kind="dns", status=None, dns=answer))
    m.observe(probe_result("silent", kind="dns", ok=False, error=ErrorKind.TIMEOUT))
    m.observe(probe_result("web"))
    assert value(m, "probe_dns_query_succeeded", target="mx") == 1
    assert value(m, "probe_dns_answer_rrs", target="mx") == 2
    assert value(m, "probe_dns_authority_rrs", target="mx") == 1
    assert value(m, "probe_dns_additional_rrs", target="mx") == 3
    assert value(m, "probe_dns_query_succeeded", target="silent") == 0
    assert value(m, "probe_dns_answer_rrs", target="silent") is None
    assert value(m, "probe_dns_query_succeeded", target="web") is None  # not a dns target
    assert value(m, "probe_http_status_code", target="mx") is None


def test_probes_are_counted_by_result_every_result_exported_from_the_start():
    m = Metrics()
    for kind in ("ok", *map(str, ErrorKind)):
        assert value(m, "trio_monitor_probes_total", result=kind) == 0
    m.observe(probe())
    m.observe(probe())
    m.observe(probe(ok=False, status=None, latency=None, error=ErrorKind.TIMEOUT))
    assert value(m, "trio_monitor_probes_total", result="ok") == 2
    assert value(m, "trio_monitor_probes_total", result="timeout") == 1
    assert value(m, "trio_monitor_probes_total", result="dns") == 0


def test_alerts_are_counted_by_event():
    m = Metrics()
    assert value(m, "trio_monitor_alerts_total", event="down") == 0
    for event in ("down", "up", "down", "content_changed"):
        m.observe(alert_event(event, "api", ts=T0))
    assert value(m, "trio_monitor_alerts_total", event="down") == 2
    assert value(m, "trio_monitor_alerts_total", event="up") == 1
    assert value(m, "trio_monitor_alerts_total", event="slow") == 0
    assert value(m, "trio_monitor_alerts_total", event="content_changed") == 1


def test_round_lines_set_the_process_metrics():
    m = Metrics()
    m.set_concurrency(200)
    assert value(m, "trio_monitor_concurrency_limit") == 200
    assert value(m, "trio_monitor_confirm_probes_total") == 0
    m.observe(round_line(round=1, duration_ms=250.0, concurrency=150, skipped=2, confirm=4))
    m.observe(round_line(round=2, duration_ms=1500.0, concurrency=180, skipped=1, confirm=1))
    assert value(m, "trio_monitor_round_duration_seconds") == 1.5
    assert value(m, "trio_monitor_concurrency_limit") == 180
    assert value(m, "trio_monitor_rounds_total") == 2
    assert value(m, "trio_monitor_skipped_probes_total") == 3
    assert value(m, "trio_monitor_confirm_probes_total") == 5


def test_round_lines_set_the_schedule_lag():
    m = Metrics()
    m.observe(round_line(round=1, lag_p50_ms=4400.0, lag_max_ms=9000.0))
    assert value(m, "trio_monitor_schedule_lag_seconds", quantile="0.5") == 4.4
    assert value(m, "trio_monitor_schedule_lag_seconds", quantile="1") == 9.0
    m.observe(round_line(round=2, targets=0, skipped=2))  # no probe started: kept
    assert value(m, "trio_monitor_schedule_lag_seconds", quantile="1") == 9.0


def test_dropped_and_unstored_follow_the_highest_total_even_out_of_order():
    """Round lines carry totals since start; overlapping rounds report out of order."""
    m = Metrics()
    assert value(m, "trio_monitor_dropped_lines_total") == 0
    m.observe(round_line(round=1, dropped=5, unstored=1))
    m.observe(round_line(round=3, dropped=12, unstored=4))
    m.observe(round_line(round=2, dropped=9, unstored=2))  # a slow round's late line
    assert value(m, "trio_monitor_dropped_lines_total") == 12
    assert value(m, "trio_monitor_unstored_results_total") == 4


def test_retain_counts_targets_and_forgets_removed_ones():
    m = Metrics()
    for name in ("api", "web", "old"):
        m.observe(probe(name))
    m.retain(["api", "web", "new"])
    assert value(m, "trio_monitor_targets") == 3
    assert value(m, "probe_success", target="old") is None
    assert value(m, "probe_success", target="api") == 1
    m.forget(["web", "never-seen"])
    exported = {
        dict(labels)["target"] for (name, labels) in samples(m) if name.startswith("probe_")
    }
    assert exported == {"api"}
    m.observe(probe("web"))  # a target that comes back gets its series again
    assert value(m, "probe_success", target="web") == 1


def phases(m: Metrics, target: str) -> dict[str, float | None]:
    """probe_http_duration_seconds of `target` by phase, as scraped."""
    return {
        phase: value(m, "probe_http_duration_seconds", target=target, phase=phase)
        for phase in ("resolve", "connect", "tls", "processing", "transfer")
    }


def test_phases_over_http_tls_did_not_happen_and_is_0():
    m = Metrics()
    timed = {"dns": 1.5, "connect": 2.0, "tls": None, "ttfb": 40.0, "transfer": 3.0}
    m.observe(probe_result("api", phases_ms=timed))
    assert phases(m, "api") == {
        "resolve": 0.0015,
        "connect": 0.002,
        "tls": 0.0,
        "processing": 0.04,
        "transfer": 0.003,
    }


def test_seconds_carry_no_float_noise():
    # ms with 3 decimals, divided by 1000, would read 0.00010899999999999999 s
    m = Metrics()
    timed = {"dns": None, "connect": 0.109, "tls": None, "ttfb": 0.7, "transfer": 0.109}
    m.observe(probe_result("api", latency_ms=1.009, phases_ms=timed))
    text = m.render().decode()
    assert 'probe_http_duration_seconds{phase="transfer",target="api"} 0.000109\n' in text
    assert 'probe_duration_seconds{target="api"} 0.001009\n' in text
    assert "99999" not in text


def test_phases_over_https():
    m = Metrics()
    timed = {"dns": None, "connect": 1.0, "tls": 8.0, "ttfb": 20.0, "transfer": 0.5}
    m.observe(probe_result("web", url="https://web.test/", phases_ms=timed))
    assert phases(m, "web") == {
        "resolve": 0.0,
        "connect": 0.001,
        "tls": 0.008,
        "processing": 0.02,
        "transfer": 0.0005,
    }


def test_phases_of_a_reused_connection_and_of_no_connection_are_0():
    m = Metrics()
    reused = {"dns": None, "connect": None, "tls": None, "ttfb": 4.0, "transfer": 1.0}
    m.observe(probe_result("api", phases_ms=reused))
    assert phases(m, "api") == {
        "resolve": 0.0,
        "connect": 0.0,
        "tls": 0.0,
        "processing": 0.004,
        "transfer": 0.001,
    }
    # refused: no connection, phases_ms null; the series stay, at 0, like blackbox's
    m.observe(probe_result("api", ok=False, phases_ms=None))
    assert set(phases(m, "api").values()) == {0.0}


def test_phases_only_for_http_targets():
    m = Metrics()
    m.observe(probe_result("line", kind="line", status=None))
    assert phases(m, "line") == dict.fromkeys(phases(m, "line"))  # none exported


def test_label_values_are_escaped():
    m = Metrics()
    name = 'a "quoted" \\ name\nwith a newline'
    m.observe(probe(name))
    assert value(m, "probe_success", target=name) == 1


def test_render_is_the_classic_text_format():
    m = Metrics()
    m.observe(probe())
    text = m.render().decode()
    assert "# TYPE probe_success gauge" in text
    assert "# TYPE trio_monitor_probes_total counter" in text
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_each_metrics_has_its_own_registry():
    a, b = Metrics(), Metrics()  # the global registry would refuse the second
    a.observe(probe("api"))
    assert value(b, "probe_success", target="api") is None


def test_alerts_given_up_are_counted_per_notifier_from_round_lines():
    m = Metrics()
    m.observe(round_line(given_up={"webhook[0]": 2}))
    m.observe(round_line(round=3, given_up={"webhook[0]": 5, "exec[0]": 1}))
    m.observe(round_line(round=2, given_up={"webhook[0]": 3}))  # overlapping rounds: late line
    assert value(m, "trio_monitor_alerts_given_up_total", notifier="webhook[0]") == 5
    assert value(m, "trio_monitor_alerts_given_up_total", notifier="exec[0]") == 1


def test_alerts_sent_are_counted_per_notifier_from_round_lines():
    m = Metrics()
    m.observe(round_line(sent={"apprise[0]": 2}))
    m.observe(round_line(round=3, sent={"apprise[0]": 4, "webhook[0]": 1}))
    m.observe(round_line(round=2, sent={"apprise[0]": 3}))  # overlapping rounds: late line
    assert value(m, "trio_monitor_alerts_sent_total", notifier="apprise[0]") == 4
    assert value(m, "trio_monitor_alerts_sent_total", notifier="webhook[0]") == 1


def test_tls_probes_export_the_chain_expiry_and_version_like_blackbox():
    m = Metrics()
    tls = tls_details(T0 + 30 * 86400, earliest_not_after=T0 + 2 * 86400)
    m.observe(probe_result("secure", tls=tls))
    m.observe(probe("plain"))
    assert value(m, "probe_ssl_earliest_cert_expiry", target="secure") == T0 + 2 * 86400
    assert value(m, "probe_tls_version_info", target="secure", version="TLS 1.3") == 1
    assert value(m, "probe_ssl_earliest_cert_expiry", target="plain") is None
    assert not [
        k for k in samples(m) if k[0] == "probe_tls_version_info" and ("target", "plain") in k[1]
    ]
    # a later probe without a handshake (refused): no certificate to speak of
    m.observe(probe_result("secure", ok=False))
    assert value(m, "probe_ssl_earliest_cert_expiry", target="secure") is None


def info(m: Metrics) -> dict[str, dict[str, str]]:
    """trio_monitor_target_labels as scraped: target -> its labels (all of them, 1 each)."""
    series = {}
    for (name, labels), v in samples(m).items():
        if name == "trio_monitor_target_labels":
            assert v == 1
            series[dict(labels)["target"]] = dict(labels)
    return series


def test_each_target_has_an_info_series_with_its_labels():
    config = make_config(
        config_doc(
            {"url": "http://api.test/", "name": "api", "labels": {"team": "payments"}},
            {"url": "http://web.test/", "name": "web"},
            monitor={"labels": {"env": "prod"}},
        )
    )
    m = Metrics()
    m.configure(config)
    m.observe(probe("api"))
    assert info(m) == {
        "api": {"target": "api", "env": "prod", "team": "payments"},
        "web": {"target": "web", "env": "prod"},  # every target: joins keep them all
    }
    # the other series keep their own labels only: the info series is joined onto them
    assert value(m, "probe_success", target="api") == 1
    m.configure(attrs.evolve(config, targets=config.targets[1:]))  # a reload removed api
    assert info(m) == {"web": {"target": "web", "env": "prod"}}


def test_target_labels_are_escaped_and_never_shadow_ours():
    labels = {
        "team": 'pay "ments" \\ é',
        "target": "t",  # ours: label_target
        "label_target": "taken",  # so target's becomes label_label_target
        "le": "0.5",
        "job": "j",
        "__meta": "m",  # Prometheus's own prefix
        "phase": "p",
    }
    config = make_config(config_doc({"url": "http://api.test/", "name": "api", "labels": labels}))
    m = Metrics()
    m.configure(config)
    assert info(m) == {
        "api": {
            "target": "api",
            "team": 'pay "ments" \\ é',
            "label_label_target": "t",
            "label_target": "taken",
            "label_le": "0.5",
            "label_job": "j",
            "label___meta": "m",
            "label_phase": "p",
        }
    }
    text = m.render().decode()
    assert 'team="pay \\"ments\\" \\\\ é"' in text  # the exposition's escapes


def test_every_label_name_of_ours_is_reserved_from_targets_labels():
    """A target's label of the same name as one of ours is prefixed: the list is whole."""
    timed = {"dns": 0.5, "connect": 1.0, "tls": 8.0, "ttfb": 20.0, "transfer": 0.5}
    m = Metrics(lambda: [("web", "latency", 0.5)], lambda: {"crash": 1})
    m.observe(probe_result("web", phases_ms=timed, tls=tls_details(T0 + 86400)))
    m.observe(alert_event("down", target="web"))
    m.observe(round_line(lag_p50_ms=1.0, lag_max_ms=2.0, drops={"output": 1}, given_up={"x": 1}))
    ours = {
        name
        for (sample, labels) in samples(m)
        if sample != "trio_monitor_target_labels"
        for name, _ in labels
    }
    assert {"target", "phase", "version", "quantile", "result", "event", "signal", "reason"} <= ours
    assert ours <= RESERVED_LABELS


def test_browser_targets_export_their_page_loads_timings_and_counts():
    m = Metrics()
    page = BrowserDetails(185.1, 188.0, 180.0, 3, 1, 2, 2780)
    m.observe(probe_result("shop", kind="browser", status=200, latency_ms=248.4, browser=page))
    unpainted = BrowserDetails(90.0, None, None, 1, 0, 0, 300)
    m.observe(probe_result("blank", kind="browser", status=503, browser=unpainted, ok=False))
    m.observe(probe_result("api"))
    assert value(m, "probe_browser_dom_content_loaded_seconds", target="shop") == 0.1851
    assert value(m, "probe_browser_load_seconds", target="shop") == 0.188
    assert value(m, "probe_browser_lcp_seconds", target="shop") == 0.18
    assert value(m, "probe_browser_requests", target="shop") == 3
    assert value(m, "probe_browser_failed_requests", target="shop") == 1
    assert value(m, "probe_browser_console_errors", target="shop") == 2
    assert value(m, "probe_browser_transfer_bytes", target="shop") == 2780
    assert value(m, "probe_http_status_code", target="shop") == 200  # the page's
    assert value(m, "probe_duration_seconds", target="shop") == 0.2484
    # what the page did not reach is missing, not 0
    assert value(m, "probe_browser_dom_content_loaded_seconds", target="blank") == 0.09
    assert value(m, "probe_browser_load_seconds", target="blank") is None
    assert value(m, "probe_browser_lcp_seconds", target="blank") is None
    assert value(m, "probe_http_status_code", target="blank") == 503
    assert value(m, "probe_browser_requests", target="api") is None  # not a browser target
    assert value(m, "probe_http_duration_seconds", target="shop", phase="connect") is None


def test_chromium_restarts_are_counted_by_reason_from_the_browser_prober():
    counts = dict.fromkeys(RESTART_REASONS, 0)
    m = Metrics(browser_restarts=lambda: counts)
    assert {r: value(m, "trio_monitor_browser_restarts_total", reason=r) for r in counts} == {
        "crash": 0,
        "hang": 0,
        "memory": 0,
        "reload": 0,
    }
    counts["memory"] += 2
    counts["crash"] += 1
    assert value(m, "trio_monitor_browser_restarts_total", reason="memory") == 2
    assert value(m, "trio_monitor_browser_restarts_total", reason="crash") == 1
    assert value(Metrics(), "trio_monitor_browser_restarts_total", reason="crash") is None
