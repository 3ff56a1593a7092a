"""The embedded history store: probe results, hourly rollups, incidents and content
changes in one SQLite file (stdlib sqlite3, WAL, synchronous=NORMAL).

Four parts, each with its own connection:

- the writer (`writer`) consumes the records a `Fanout` channel hands it and commits
  them in batches, in a worker thread; it never raises into the monitor.
- the maintenance (`maintenance`) rolls complete hours up and prunes what is past
  retention.
- the alert outbox (`outbox`) commits every alert a notifier is to deliver before
  queueing it, marks it delivered or given up, and re-sends what is pending at start.
- `HistoryReader` (`reader`; sync, run it in a thread) reads over its own read-only
  connection.

`serve_store` (`service`) runs the writer and the maintenance in the services nursery
and ends once the writer has drained its closed channel.
`schema` owns the file format (migrations, the checks that refuse a foreign or too new
file) and `open_store`.

Raw samples are pruned on whole hours, and an hour's rollup is recomputed from its raw
rows in the transaction that deletes them. A target's history is therefore rollups for
the hours before its first raw sample (its "raw floor") and raw samples from there on:
`HistoryReader.rollups` returns only the former, so callers can combine both without
counting an hour twice (inside `HistoryReader.snapshot()` for a consistent view).
"""

from .reader import HistoryReader
from .records import ContentChange, Histogram, HourRollup, Incident, Sample
from .schema import open_store
from .service import serve_store
from .writer import StoreStats, StoreWriter

__all__ = [
    "ContentChange",
    "Histogram",
    "HistoryReader",
    "HourRollup",
    "Incident",
    "Sample",
    "StoreStats",
    "StoreWriter",
    "open_store",
    "serve_store",
]
