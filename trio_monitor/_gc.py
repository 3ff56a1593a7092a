"""The garbage-collector policy of a monitor process: what `trio-monitor run` sets.

Two costs dominate CPython's cyclic collector in a monitor: full collections walking
every long-lived object (the config, the targets, their plans: O(targets) per walk),
and young collections every 700 allocations (a probe allocates hundreds of objects:
tasks, requests, responses), each of which promotes the probes in flight to be walked
again. So once start-up is done (config loaded, every plan prepared) `settle()` freezes
what exists into the permanent generation, which no collection walks again; and `tune()`
raises the thresholds so a young collection runs every few hundred probes, not several
times per probe.

Loading a config (every command that reads one) builds many objects and no cycles:
`paused()` keeps the collector out while it runs (15 % of `validate` at 50,000 targets).

Reference counting frees almost everything a probe allocates as soon as it ends; only
cycles wait for the collector, and they still go (every ~1M allocations for the middle
generation, ~20M for a full one): memory stays flat (docs/architecture.md has the
figures). Process-wide, so the CLI applies it, never the library: a program embedding
run_monitor keeps its own policy.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# young allocations between collections; young collections per middle one; middle
# ones per full one (CPython's defaults: 700, 10, 10)
THRESHOLDS = (50_000, 20, 20)


def tune() -> None:
    gc.set_threshold(*THRESHOLDS)


def settle() -> None:
    """Start-up is done: nothing alive now needs the collector's attention again."""
    gc.freeze()


@contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside: for work that allocates much and makes no garbage."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
