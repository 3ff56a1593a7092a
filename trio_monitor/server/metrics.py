"""Prometheus metrics of a running monitor, served as `GET /metrics` in the text format.

`Metrics.observe(record)` is called inline for every record the monitor emits (probe
results, round summaries, alerts): synchronous and O(1), it only sets gauges and bumps
counters in a registry of our own (never prometheus_client's global one). `render()`
produces the exposition text; it takes time in proportion to the number of targets, so
the server calls it in a worker thread (prometheus_client guards its values with locks).
The per-target series are not prometheus_client children (four gauges with a lock each,
~2.5 KB a target): each target's latest result is kept, and the series are built from a
copy of that map when scraped.

Per target (label `target`), from its latest probe, named like the Blackbox exporter's:

    probe_success                  1 ok, 0 failed
    probe_duration_seconds         latency of the last attempt; NaN without a response
    probe_http_status_code         final status; 0 without a response (http, and browser:
                                   the page's)
    probe_content_length_bytes     body bytes read (after decoding, at most max_body)
    probe_ssl_earliest_cert_expiry the earliest not_after (unix seconds) in the chain
                                   the server presented; only when the last probe got one
    probe_tls_version_info{version}
                                   1, with the TLS version as blackbox writes it ("TLS 1.3")
    probe_http_duration_seconds{phase}
                                   where the last attempt's time went (HTTP targets):
                                   "resolve", "connect", "tls", "processing" (request
                                   sent to response head), "transfer" (phases_ms's dns,
                                   connect, tls, ttfb, transfer); every phase always
                                   exported, 0 for one that did not happen (tls on http,
                                   all of them without a connection), as blackbox does
    probe_icmp_duration_seconds{phase}
                                   icmp:// targets with an address: "resolve" (0 for an
                                   IP), "setup" (the socket), "rtt" (the average round
                                   trip; 0 without a reply)
    probe_icmp_reply_hop_limit     the last reply's TTL (IPv4) or hop limit (IPv6)
    probe_dns_lookup_time_seconds  the time resolving the target's host name took (phases_ms
                                   "dns"); only when the last probe resolved one
    probe_dns_query_succeeded      dns:// targets: 1 when the nameserver answered (any
                                   rcode), 0 when it did not
    probe_dns_answer_rrs           dns:// targets: records in the answer section,
    probe_dns_authority_rrs        in the authority section and in the additional section
    probe_dns_additional_rrs       (the EDNS OPT record excluded); only with an answer
    probe_failed_due_to_regex      tcp:// and tls:// targets: 1 when `expect` did not
                                   match (error `content`), else 0
    trio_monitor_push_last_ping_timestamp_seconds
                                   a push target's last end signal (ping, fail, exit
                                   code), unix seconds; none before its first
    probe_browser_dom_content_loaded_seconds, probe_browser_load_seconds,
    probe_browser_lcp_seconds      browser targets: DOMContentLoaded, the load event and
                                   the largest contentful paint of the last probe (since
                                   navigation start); only when it got that far
    probe_browser_requests, probe_browser_failed_requests, probe_browser_console_errors,
    probe_browser_transfer_bytes   browser targets: the last probe's requests, failed
                                   sub-requests, uncaught script errors, bytes received
    trio_monitor_target_labels{target, <its labels>}
                                   1 for every configured target, with its labels
                                   (`prometheus_labels`): an info series, joined to the
                                   others with `* on(target) group_left(team)`. The
                                   labels are there only, not on every series: targets
                                   have different label sets, and a series per label set
                                   on each of a dozen families would multiply them

Process-wide:

    trio_monitor_round_duration_seconds    the last finished round
    trio_monitor_schedule_lag_seconds{quantile}
                                           how late the last round's probes started
                                           (due time until they held both limits):
                                           "0.5" the median, "1" the worst
    trio_monitor_concurrency_limit         the probe limit in force
    trio_monitor_targets                   targets configured (see `retain`)
    trio_monitor_rounds_total              rounds finished
    trio_monitor_skipped_probes_total      due probes skipped: the previous one still ran
    trio_monitor_confirm_probes_total      confirmation probes started (confirm_interval,
                                           recover_interval): the extra load of failures
    trio_monitor_probes_total{result}      "ok" or the error kind
    trio_monitor_alerts_total{event}       down, up, slow, content_changed, ...
    trio_monitor_dropped_lines_total       output lines a full queue had to drop
    trio_monitor_unstored_results_total    results the history store could not keep
    trio_monitor_consumer_dropped_total{consumer}
                                           per consumer (output, history, webhook[0],
                                           exec[0], ...): records it did not handle
    trio_monitor_alerts_sent_total{notifier}
                                           alerts a notifier delivered
    trio_monitor_alerts_given_up_total{notifier}
                                           alerts a notifier gave up on after its retries
                                           (its failed ones; its dropped ones are
                                           consumer_dropped_total{consumer=NOTIFIER})
    trio_monitor_browser_restarts_total{reason}
                                           Chromium killed and started again for the next
                                           probe: "crash" (it exited, or its DevTools
                                           connection closed), "hang" (a browser command
                                           unanswered), "memory" (over browser_memory),
                                           "reload" (a new executable or memory cap)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .._config import EVENTS, Config, Target
from .._errors import ErrorKind
from .._records import PHASES, AlertEvent, BrowserDetails, ProbeResult, Record, RoundSummary

Score = tuple[str, str, float]  # (target, signal, score)

__all__ = ["CONTENT_TYPE", "Metrics"]

# The classic text format, which every Prometheus version reads (what generate_latest
# writes for our plain metric names is the same in its "1.0.0" variant).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# kinds with an HTTP status (probe_http_status_code): browser targets, the page's
STATUS_KINDS = frozenset({"http", "browser"})
# kinds whose `expect` regex can fail a probe (probe_failed_due_to_regex)
REGEX_KINDS = frozenset({"tcp", "tls"})

# Label names of ours (and Prometheus's: job and instance come with every scraped series;
# le and quantile belong to histograms and summaries): a target's label of that name is
# exported as LABEL_PREFIX + name, so that joining its labels onto our series
# (group_left) never overwrites one of ours. Names starting with "__" are Prometheus's
# own and get it too.
RESERVED_LABELS = frozenset(
    {
        "target",
        "kind",
        "phase",
        "version",
        "quantile",
        "le",
        "result",
        "event",
        "consumer",
        "notifier",
        "signal",
        "reason",
        "job",
        "instance",
    }
)
LABEL_PREFIX = "label_"


def prometheus_labels(target: Target) -> dict[str, str]:
    """The target's info series' labels: `target`, then its labels, a name that is
    reserved (RESERVED_LABELS, "__...") prefixed with LABEL_PREFIX (again, while that
    is another label's name). Values are any text: the exposition escapes them."""
    out = {"target": target.name}
    for name, value in target.labels.items():
        exported = name
        while _reserved(exported) or (exported != name and exported in target.labels):
            exported = LABEL_PREFIX + exported
        out[exported] = value
    return out


def _reserved(name: str) -> bool:
    return name in RESERVED_LABELS or name.startswith("__")


# phases_ms's keys -> blackbox_exporter's `phase` label values, so its dashboards work
PHASE_LABELS = dict(
    zip(PHASES, ("resolve", "connect", "tls", "processing", "transfer"), strict=True)
)


class Metrics:
    """The monitor's Prometheus metrics, in a registry of their own."""

    def __init__(
        self,
        anomaly_scores: Callable[[], Iterable[Score]] | None = None,
        browser_restarts: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self._targets_series = _TargetSeries()
        registry.register(self._targets_series)
        if anomaly_scores is not None:
            registry.register(_AnomalyScores(anomaly_scores))
        if browser_restarts is not None:
            registry.register(_BrowserRestarts(browser_restarts))
        self._round_duration = Gauge(
            "trio_monitor_round_duration_seconds",
            "Duration of the last finished round",
            registry=registry,
        )
        self._schedule_lag = Gauge(
            "trio_monitor_schedule_lag_seconds",
            "How late the last round's probes started after their due time (quantile 0.5, 1)",
            ("quantile",),
            registry=registry,
        )
        self._concurrency = Gauge(
            "trio_monitor_concurrency_limit", "Probes allowed in flight at once", registry=registry
        )
        self._targets = Gauge("trio_monitor_targets", "Targets configured", registry=registry)
        self._rounds = Counter("trio_monitor_rounds", "Rounds finished", registry=registry)
        self._skipped = Counter(
            "trio_monitor_skipped_probes",
            "Due probes not started because the target's previous probe was still running",
            registry=registry,
        )
        self._confirm = Counter(
            "trio_monitor_confirm_probes",
            "Confirmation probes started between due times (confirm_interval, recover_interval)",
            registry=registry,
        )
        self._probes = Counter(
            "trio_monitor_probes",
            'Probes finished, by result: "ok" or the error kind',
            ("result",),
            registry=registry,
        )
        self._alerts = Counter(
            "trio_monitor_alerts", "Alerts fired, by event", ("event",), registry=registry
        )
        self._dropped = Counter(
            "trio_monitor_dropped_lines",
            "JSON lines a full output queue had to drop",
            registry=registry,
        )
        self._unstored = Counter(
            "trio_monitor_unstored_results",
            "Results the history store could not keep",
            registry=registry,
        )
        self._consumer_dropped = Counter(
            "trio_monitor_consumer_dropped",
            "Records a consumer (output, history, a notifier) had to drop or could not keep",
            ("consumer",),
            registry=registry,
        )
        self._consumer_seen: dict[str, int] = {}
        self._given_up = Counter(
            "trio_monitor_alerts_given_up",
            "Alerts a notifier gave up on after its retries",
            ("notifier",),
            registry=registry,
        )
        self._sent = Counter(
            "trio_monitor_alerts_sent",
            "Alerts a notifier delivered",
            ("notifier",),
            registry=registry,
        )
        # round lines carry totals since start: what each counter has followed so far
        self._given_up_seen: dict[str, int] = {}
        self._sent_seen: dict[str, int] = {}
        # Every result and event is exported from the start (at 0), so rate() and
        # increase() see the first one.
        self._probe_children = {
            result: self._probes.labels(result) for result in ("ok", *map(str, ErrorKind))
        }
        self._alert_children: dict[str, Counter] = {e: self._alerts.labels(e) for e in EVENTS}
        # Round lines carry totals since start, and rounds overlap, so their lines can
        # arrive out of order: the counters follow the highest total seen.
        self._dropped_seen = 0
        self._unstored_seen = 0

    # --- recording (sync, O(1)) ---------------------------------------------------

    def observe(self, record: Record) -> None:
        if isinstance(record, ProbeResult):
            self._probe(record)
        elif isinstance(record, RoundSummary):
            self._round(record)
        elif isinstance(record, AlertEvent):
            child = self._alert_children.get(record.event)
            if child is None:
                child = self._alert_children[record.event] = self._alerts.labels(record.event)
            child.inc()

    def _probe(self, r: ProbeResult) -> None:
        self._targets_series.latest[r.target] = r
        result = "ok" if r.ok else str(r.error or "failed")
        child = self._probe_children.get(result)
        if child is None:
            child = self._probe_children[result] = self._probes.labels(result)
        child.inc()

    def _round(self, s: RoundSummary) -> None:
        self._round_duration.set(_seconds(s.duration_ms))
        if s.lag_p50_ms is not None and s.lag_max_ms is not None:
            self._schedule_lag.labels("0.5").set(_seconds(s.lag_p50_ms))
            self._schedule_lag.labels("1").set(_seconds(s.lag_max_ms))
        if s.concurrency:
            self._concurrency.set(s.concurrency)
        self._rounds.inc()
        if s.skipped:
            self._skipped.inc(s.skipped)
        if s.confirm:
            self._confirm.inc(s.confirm)
        if s.dropped > self._dropped_seen:
            self._dropped.inc(s.dropped - self._dropped_seen)
            self._dropped_seen = s.dropped
        if s.unstored > self._unstored_seen:
            self._unstored.inc(s.unstored - self._unstored_seen)
            self._unstored_seen = s.unstored
        _follow(self._given_up, self._given_up_seen, s.given_up)
        _follow(self._sent, self._sent_seen, s.sent)
        for consumer, total in s.drops.items():
            seen = self._consumer_seen.get(consumer)
            if seen is None:  # exported from the first round on, at 0 if nothing was lost
                seen = self._consumer_seen[consumer] = 0
                self._consumer_dropped.labels(consumer)
            if total > seen:
                self._consumer_dropped.labels(consumer).inc(total - seen)
                self._consumer_seen[consumer] = total

    # --- configuration --------------------------------------------------------------

    def set_concurrency(self, limit: int) -> None:
        """The probe limit in force, before the first round reports it."""
        self._concurrency.set(limit)

    def configure(self, config: Config) -> None:
        """The configured targets (at start and after each reload): `retain` them, and
        their labels' info series."""
        self.retain(t.name for t in config.targets)
        self._targets_series.labels = [prometheus_labels(t) for t in config.targets]

    def retain(self, names: Iterable[str]) -> None:
        """The configured targets (at start and after each reload): sets
        `trio_monitor_targets` and drops the series of every other target."""
        keep = set(names)
        self._targets.set(len(keep))
        self.forget([name for name in self._targets_series.latest if name not in keep])

    async def reconfigure(self, old: Config, new: Config) -> None:
        kinds = {t.name: t.kind for t in old.targets}
        self.forget([t.name for t in new.targets if kinds.get(t.name, t.kind) != t.kind])
        self.configure(new)

    def forget(self, names: Iterable[str]) -> None:
        """Drop the per-target series of targets a reload removed."""
        for name in names:
            self._targets_series.latest.pop(name, None)

    # --- exposition -----------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text format (CONTENT_TYPE). Any thread."""
        return generate_latest(self.registry)


class _AnomalyScores(Collector):
    """Early warning's scores (trio_monitor/early/), read when scraped."""

    def __init__(self, scores: Callable[[], Iterable[Score]]) -> None:
        self.scores = scores

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "probe_anomaly_score",
            "Early warning: how far a target's signal is from its learned baseline"
            " (1: a `degrading` warning)",
            labels=["target", "signal"],
        )
        for target, signal, score in self.scores():
            family.add_metric([target, signal], score)
        yield family


class _BrowserRestarts(Collector):
    """Chromium's restarts by reason (the browser prober's counts, read when scraped)."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "trio_monitor_browser_restarts",
            "Chromium killed and started again for the next probe, by reason",
            labels=["reason"],
        )
        for reason, count in dict(self.counts()).items():
            family.add_metric([reason], count)
        yield family


class _TargetSeries(Collector):
    """The per-target series, from each target's latest result (the monitor's state keeps
    the same record, so this costs a dict entry a target)."""

    def __init__(self) -> None:
        self.latest: dict[str, ProbeResult] = {}
        self.labels: list[dict[str, str]] = []  # each target's info series (replaced whole)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        latest = self.latest.copy()  # render() runs in a worker thread; copy() holds the GIL
        yield _info_family(self.labels)
        label = ["target"]
        success = GaugeMetricFamily(
            "probe_success", "1 if the target's last probe succeeded, else 0", labels=label
        )
        duration = GaugeMetricFamily(
            "probe_duration_seconds",
            "Latency of the target's last probe (request start to body read; NaN without a response)",
            labels=label,
        )
        status = GaugeMetricFamily(
            "probe_http_status_code",
            "Final HTTP status of the target's last probe (0 without a response)",
            labels=label,
        )
        size = GaugeMetricFamily(
            "probe_content_length_bytes",
            "Body bytes read by the target's last probe (decoded, at most max_body)",
            labels=label,
        )
        expiry = GaugeMetricFamily(
            "probe_ssl_earliest_cert_expiry",
            "Earliest not_after (unix seconds) of the certificate chain of the target's last probe",
            labels=label,
        )
        tls_version = GaugeMetricFamily(
            "probe_tls_version_info",
            "TLS version of the target's last probe (1; the version as a label)",
            labels=["target", "version"],
        )
        phases = GaugeMetricFamily(
            "probe_http_duration_seconds",
            "Duration of the target's last HTTP probe by phase (last attempt, redirects "
            "summed; 0 for a phase that did not happen)",
            labels=["target", "phase"],
        )
        icmp_phases = GaugeMetricFamily(
            "probe_icmp_duration_seconds",
            "Duration of the target's last ICMP probe by phase (rtt: the average round trip)",
            labels=["target", "phase"],
        )
        hop_limit = GaugeMetricFamily(
            "probe_icmp_reply_hop_limit",
            "Hop limit (TTL for IPv4) of the last reply of the target's last ICMP probe",
            labels=label,
        )
        lookup = GaugeMetricFamily(
            "probe_dns_lookup_time_seconds",
            "Time the target's last probe took to resolve its host name",
            labels=label,
        )
        regex = GaugeMetricFamily(
            "probe_failed_due_to_regex",
            "1 if the target's last probe failed because `expect` did not match, else 0",
            labels=label,
        )
        last_ping = GaugeMetricFamily(
            "trio_monitor_push_last_ping_timestamp_seconds",
            "When a push target's job last signalled the end of a run (unix seconds)",
            labels=label,
        )
        dns_families = _DnsFamilies(label)
        browser_families = _BrowserFamilies(label)
        for name, r in latest.items():
            success.add_metric([name], 1 if r.ok else 0)
            if r.phases_ms is not None and (dns_ms := r.phases_ms.get("dns")) is not None:
                lookup.add_metric([name], _seconds(dns_ms))
            if r.kind == "dns":
                dns_families.add(name, r)
            if r.browser is not None:
                browser_families.add(name, r.browser)
            if r.kind in REGEX_KINDS:
                regex.add_metric([name], 1 if r.error == ErrorKind.CONTENT else 0)
            if r.push is not None and r.push.last_ping is not None:
                last_ping.add_metric([name], r.push.last_ping)
            duration.add_metric(
                [name], math.nan if r.latency_ms is None else _seconds(r.latency_ms)
            )
            size.add_metric([name], r.bytes)
            if r.kind in STATUS_KINDS:  # the HTTP status only for kinds that have one
                status.add_metric([name], r.status or 0)
            if r.kind == "http":
                # blackbox_exporter creates every phase at 0 and adds the ones that
                # happened: a phase that did not happen is 0, never missing
                measured = r.phases_ms or {}
                for key, phase in PHASE_LABELS.items():
                    ms = measured.get(key)
                    phases.add_metric([name, phase], 0.0 if ms is None else _seconds(ms))
            if r.icmp is not None:
                _icmp_series(name, r, icmp_phases, hop_limit)
            if r.tls is not None:
                expiry.add_metric([name], r.tls.earliest_not_after)
                if r.tls.version:
                    tls_version.add_metric([name, _blackbox_version(r.tls.version)], 1)
        yield from (
            success,
            duration,
            status,
            size,
            expiry,
            tls_version,
            phases,
            lookup,
            regex,
            last_ping,
            icmp_phases,
            hop_limit,
        )
        yield from dns_families.families()
        yield from browser_families.families()


def _info_family(labels: list[dict[str, str]]) -> GaugeMetricFamily:
    """trio_monitor_target_labels: one sample a target, each with its own label set."""
    name = "trio_monitor_target_labels"
    family = GaugeMetricFamily(
        name,
        "1 for each configured target, with its labels (join: * on(target) group_left(...))",
    )
    for sample in labels:
        family.add_sample(name, sample, 1)
    return family


class _DnsFamilies:
    """blackbox_exporter's series of its DNS prober, for dns:// targets."""

    def __init__(self, label: list[str]) -> None:
        self.succeeded = GaugeMetricFamily(
            "probe_dns_query_succeeded",
            "1 if the nameserver answered the target's last probe (any rcode), else 0",
            labels=label,
        )
        self.sections = [
            GaugeMetricFamily(
                f"probe_dns_{section}_rrs",
                f"Records in the {section} section of the target's last answer",
                labels=label,
            )
            for section in ("answer", "authority", "additional")
        ]

    def add(self, name: str, r: ProbeResult) -> None:
        answer = r.dns
        self.succeeded.add_metric([name], 0 if answer is None else 1)
        if answer is not None:
            counts = (len(answer.answers), answer.authority_rrs, answer.additional_rrs)
            for family, count in zip(self.sections, counts, strict=True):
                family.add_metric([name], count)

    def families(self) -> Iterator[GaugeMetricFamily]:
        yield self.succeeded
        yield from self.sections


class _BrowserFamilies:
    """Browser targets' series: their last page load's timings and counts."""

    TIMES = (
        ("dom_content_loaded", "DOMContentLoaded"),
        ("load", "The load event"),
        ("lcp", "The largest contentful paint"),
    )
    COUNTS = (
        ("requests", "Requests the page made, the document included"),
        ("failed_requests", "Sub-requests that failed (network error, HTTP 400 and above)"),
        ("console_errors", "Uncaught script errors"),
        ("transfer_bytes", "Bytes received over the network (encoded, headers included)"),
    )

    def __init__(self, label: list[str]) -> None:
        self.times = [
            GaugeMetricFamily(
                f"probe_browser_{key}_seconds",
                f"{what} of the target's last page load, since navigation start",
                labels=label,
            )
            for key, what in self.TIMES
        ]
        self.counts = [
            GaugeMetricFamily(
                f"probe_browser_{key}", f"{what}, in the target's last page load", labels=label
            )
            for key, what in self.COUNTS
        ]

    def add(self, name: str, page: BrowserDetails) -> None:
        times = (page.dom_content_loaded_ms, page.load_ms, page.lcp_ms)
        for family, ms in zip(self.times, times, strict=True):
            if ms is not None:
                family.add_metric([name], _seconds(ms))
        counts = (page.requests, page.failed_requests, page.console_errors, page.transfer_bytes)
        for family, count in zip(self.counts, counts, strict=True):
            family.add_metric([name], count)

    def families(self) -> Iterator[GaugeMetricFamily]:
        yield from self.times
        yield from self.counts


def _icmp_series(
    name: str, r: ProbeResult, phases: GaugeMetricFamily, hop_limit: GaugeMetricFamily
) -> None:
    """blackbox_exporter's ICMP series: every phase, 0 for one that did not happen."""
    assert r.icmp is not None
    measured = {
        "resolve": (r.phases_ms or {}).get("dns"),
        "setup": r.icmp.setup_ms,
        "rtt": r.icmp.rtt_avg_ms,
    }
    for phase, ms in measured.items():
        phases.add_metric([name, phase], 0.0 if ms is None else _seconds(ms))
    if r.icmp.hop_limit is not None:
        hop_limit.add_metric([name], r.icmp.hop_limit)


def _follow(counter: Counter, seen: dict[str, int], totals: dict[str, int]) -> None:
    """Per label, bring `counter` up to the highest total since start seen so far."""
    for label, total in totals.items():
        before = seen.get(label, 0)
        if total > before:
            counter.labels(label).inc(total - before)
            seen[label] = total


def _seconds(ms: float) -> float:
    """ms (3 decimals in our records) as seconds, without float noise in the text
    (0.109 ms is 0.000109, not 0.00010899999999999999)."""
    return round(ms / 1000, 6)


def _blackbox_version(version: str) -> str:
    """ssl's "TLSv1.3" as Go's tls.VersionName writes it, like blackbox_exporter: "TLS 1.3"."""
    return version.replace("TLSv", "TLS ", 1)
