"""Early warning's arithmetic, bit for bit: the findings and the persisted baselines of a
long, varied stream of probes are exactly those of the implementation before its hot
path was made cheaper (issue 10). A digest of repr()s: any change to the order of a
float operation, to when a baseline learns or to what a warning says changes it."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from typing import Any

import trio
from factories import T0, make_target, probe_result, tls_details

from trio_monitor._config import AlertsSection, EarlyWarningSection, Positive
from trio_monitor._records import PHASES, ProbeResult
from trio_monitor.early import EarlyWarning
from trio_monitor.early.baselines import season_slot
from trio_monitor.early.detectors import encode
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.net.certs import DAY

STEP = 61.0  # seconds between probes: not a divisor of an hour, so slots interleave
PROBES = 6000  # about four days: weekday and weekend slots, renewals, several episodes
# the digest the implementation gave before (git show 40aa5f4: trio_monitor/early/)
EXPECTED = "9fc90819b592c575388b83b06823644b8af90e2f18d75862df005069b0a344f9"


def _stream(name: str, seed: int, rng_phases: bool, tls: bool) -> Iterator[dict[str, Any]]:
    """A target's probes: diurnal latency with noise, a slow-down, failures in bursts
    (some long enough to be an outage), size changes, content changes, phases that come
    and go (a reused connection has no connect), a certificate renewed late."""
    rng = random.Random(seed)
    not_after = T0 + 20 * DAY
    for i in range(PROBES):
        ts = T0 + i * STEP + rng.random()
        fields: dict[str, Any] = {"ts": ts}
        if 2000 <= i < 2004 or 4000 <= i < 4010 or rng.random() < 0.01:
            fields["ok"] = False
        else:
            day = 2 * math.pi * (i * STEP) / 86400
            slower = 3.0 if 3000 <= i < 3300 else 1.0
            latency = 40.0 * slower * math.exp(0.3 * math.sin(day) + rng.gauss(0, 0.2))
            fields["latency_ms"] = latency
            fields["bytes"] = 0 if name == "bodiless" else (1000 if i < 5000 else 5000)
            fields["content_changed"] = i > 5500 and rng.random() < 0.5
            if rng_phases:
                reused = rng.random() < 0.7
                fields["phases_ms"] = {
                    "dns": None,
                    "connect": None if reused else latency * 0.1,
                    "tls": None,
                    "ttfb": latency * 0.8,
                    "transfer": latency * 0.1 if rng.random() < 0.9 else 0.0,
                }
        if tls:
            if i == 4500:  # renewed late (20 days, then 5 left): the next one is overdue
                not_after = ts + 60 * DAY
            fields["tls"] = tls_details(not_after, ts=ts)
        yield fields


def _replay() -> str:
    params = EarlyWarningSection(warmup=Positive(100))
    states = MemoryStateStore(AlertsSection())
    early = EarlyWarning(params, states)
    targets = [
        make_target(name="phased", url="http://phased.test/"),
        make_target(name="plain", url="http://plain.test/"),
        make_target(name="secure", url="https://secure.test/", cert_expiry="7d"),
        make_target(name="bodiless", url="http://bodiless.test/"),
    ]
    streams = [
        _stream("phased", 1, True, False),
        _stream("plain", 2, False, False),
        _stream("secure", 3, True, True),
        _stream("bodiless", 4, False, False),
    ]
    digest = hashlib.sha256()
    for points in zip(*streams, strict=True):
        for target, fields in zip(targets, points, strict=True):
            r: ProbeResult = probe_result(target.name, url=target.url, **fields)
            r, alerts = states.observe(target, r, r.ts - T0)
            alerts += early.observe(target, r, r.ts - T0)
            digest.update(repr(alerts).encode())
        digest.update(repr(sorted(early.scores())).encode())
    for name, state in trio.run(early.snapshot):
        digest.update(f"{name}: {encode(state)!r}".encode())
    return digest.hexdigest()


def test_findings_and_baselines_are_the_reference_implementations():
    assert _replay() == EXPECTED


def test_the_stream_exercises_every_signal():
    """The digest covers what it should: each signal warned at least once."""
    params = EarlyWarningSection(warmup=Positive(100))
    states = MemoryStateStore(AlertsSection())
    early = EarlyWarning(params, states)
    target = make_target(name="secure", url="https://secure.test/", cert_expiry="7d")
    signals = set()
    for fields in _stream("secure", 3, True, True):
        r, _ = states.observe(target, probe_result("secure", url=target.url, **fields), 0.0)
        signals |= {a.signal for a in early.observe(target, r, 0.0)}
    assert signals >= {"latency", "errors", "size", "churn", "cert"}
    assert set(PHASES) >= {"connect", "ttfb", "transfer"}


def test_season_slot_is_the_hour_of_the_week():
    """Every hour of a week, at its edges and inside it, in any order (its cache)."""
    rng = random.Random(5)
    times = [T0 + h * 3600.0 + d for h in range(-200, 200) for d in (-0.5, 0.0, 0.5, 3599.9)]
    rng.shuffle(times)
    for ts in times + sorted(times) + [-0.5, -3600.5, 0.0, 3599.999]:
        days, into = divmod(int(ts), 86400)
        weekend = (days + 3) % 7 >= 5
        assert season_slot(ts) == into // 3600 + (24 if weekend else 0), ts
