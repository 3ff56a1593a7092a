"""Availability, latency and incidents over a time range (`trio-monitor report`).

Data flows one way: a source (`sources`: the history store, or the monitor's own JSON
lines) feeds events (Sample, HourRollup, Incident, ContentChange from `store.records`)
into an `Aggregator` (`aggregate`); `build_report` turns it into a `Report`, which
`render_text`, `render_json` and `render_html` print. The command's options are in
`trio_monitor.cli.report`.

Rules (the README's "Reports" section says the same):

* Only data inside [since, until) counts. A sample counts if its `ts` is in the range;
  an hourly rollup counts (whole) if the middle of its hour is, and is spread over the
  slots its hour overlaps in proportion to the overlap.
* Latency percentiles (p50/p95/p99) are read from the log-bucket histogram: their
  relative error is at most `store.records.ERROR_BOUND` (sqrt(1.1) - 1, about 4.9%)
  for latencies of at least `FLOOR_MS` (0.1 ms). They cover ok probes only.
* Phase percentiles (p50/p95 of each of `phases_ms`'s phases) use the same buckets and
  the same ok probes, each over the probes where that phase happened (`count`); a phase
  that never did (tls on http) is null, and a target without phases has no row.
* An incident counts if it overlaps the range. `downtime_s` is the time inside the range
  covered by incidents (overlaps merged). An incident's `duration_s`, the longest outage
  and the MTTR use whole incidents (an open one up to `until`): an outage that began
  before the range still took that long. MTTR is the mean duration of closed incidents.
* Unobserved time is no downtime: an open incident ends, for these sums, at its
  target's last probe plus one interval (`Incident.observed_end`); with no probe for
  over two intervals before `until` it is `unobserved` ("no data since"), not ongoing.
"""

from .aggregate import (
    DEFAULT_SLOWEST,
    SLOTS,
    Aggregator,
    IncidentView,
    Report,
    SlotView,
    TargetReport,
    build_report,
)
from .html import render_html
from .json import render_json, report_dict
from .sources import HistorySource, feed_jsonl, feed_store, open_history
from .text import render_text

__all__ = [
    "DEFAULT_SLOWEST",
    "SLOTS",
    "Aggregator",
    "HistorySource",
    "IncidentView",
    "Report",
    "SlotView",
    "TargetReport",
    "build_report",
    "feed_jsonl",
    "feed_store",
    "open_history",
    "render_html",
    "render_json",
    "render_text",
    "report_dict",
]
