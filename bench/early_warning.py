"""Early warning's evaluation: labeled incidents replayed through the live code.

Two sets, both replayed through the SAME code the monitor runs (MemoryStateStore, then
trio_monitor.early.EarlyWarning, on virtual time; no second implementation):

  synthetic   a week of probes at a 30 s interval per target, generated with the
              patterns real services show: a diurnal latency curve (peak/trough 1.5-3x,
              quieter weekends), log-normal noise, bursts of a few slow probes, deploy
              spikes that recover (a few minutes 2-4x slower, sometimes a failed probe),
              rare isolated failures; and on the incident targets, one labeled outage a
              day preceded by a slow latency ramp, a growth of intermittent 5xx, a step
              in body size, or nothing at all (sudden outages: no detector can see
              them, and they count in the overall recall). Certificates: 120 days
              probed hourly, renewed at 30 days left, or renewed late, or never (the
              outage: expiry).
  recorded    a history file written by a real monitor run (`--record`: a few minutes
              of `trio-monitor run` against bench/farm.py's loopback targets, some of
              which ramp and then fail), replayed from its stored samples.

A `degrading` warning is a true positive when it comes before the DOWN alert of an
outage of its target, at most HORIZON before the outage begins; its lead time is the
DOWN alert's time minus the warning's. Any other warning is a false one. The static
baseline is the `slow` alert with a threshold of 3x the target's normal latency.

    python bench/early_warning.py                 # both tables (synthetic, recorded)
    python bench/early_warning.py --sweep         # the parameter grid behind the defaults
    python bench/early_warning.py --record h.db   # make the recorded set (9 minutes)
    python bench/early_warning.py --cpu 10000     # dispatch CPU per probe, on vs off
    python bench/early_warning.py --cpu-run 10000 # the whole monitor's CPU per probe
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import attrs

from trio_monitor import ErrorKind, Target, parse_config
from trio_monitor._config import EarlyWarningSection
from trio_monitor._records import AlertEvent, ProbeResult
from trio_monitor.early import EarlyWarning
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.net.certs import TlsDetails
from trio_monitor.store import HistoryReader

STEP = 30.0
DAY = 86400.0
WEEK = 7 * DAY
HORIZON = 3600.0  # a warning this long before an outage at most is about it
CERT_HORIZON = 30 * DAY  # ... and for a certificate's renewal (it warns weeks ahead)
T0 = 1_800_000_000.0 - 8 * 3600  # a Friday, 00:00 UTC
KINDS = ("ramp", "errors", "size", "sudden")  # what precedes an incident target's outages
SIGNAL_OF = {"ramp": "latency", "errors": "errors", "size": "size", "cert": "cert"}


@attrs.define
class Outage:
    target: str
    kind: str  # ramp | errors | size | sudden | cert
    start: float  # first failed probe
    end: float
    down_at: float | None = None  # the DOWN alert, once replayed


@attrs.define
class Series:
    """One target's probes and the outages they contain."""

    target: Target
    results: list[ProbeResult]
    outages: list[Outage]
    weeks: float


def _config_targets(names: list[str], slow: dict[str, float]) -> dict[str, Target]:
    doc = {
        "targets": [
            {"name": n, "url": f"http://{n}.test/", "slow": f"{slow[n]:.0f}ms"} for n in names
        ]
    }
    return {t.name: t for t in parse_config(doc, env={}).targets}


def _probe(
    name: str, ts: float, ok: bool, latency: float | None, slow: float | None = None, **fields
) -> ProbeResult:
    """A probe line as the prober makes it (`slow` set against the target's threshold)."""
    error = fields.pop("error", ErrorKind.STATUS)
    return ProbeResult(
        ts=ts,
        target=name,
        url=f"http://{name}.test/",
        ok=ok,
        status=200 if ok else 503,
        latency_ms=latency,
        error=None if ok else error,
        attempts=1,
        round=0,
        slow=ok and slow is not None and latency is not None and latency > slow * 1000,
        **fields,
    )


def synthetic(targets: int, incident_share: float, seed: int, days: float = 7.0) -> list[Series]:
    """`targets` targets for `days` days; a share of them with one outage a day."""
    rng = random.Random(seed)
    out = []
    n = int(days * DAY / STEP)
    plans = []
    for i in range(targets):
        name = f"t{i:03d}"
        base = rng.uniform(20, 300)
        plans.append((name, base, i < targets * incident_share))
    config = _config_targets([p[0] for p in plans], {p[0]: 3 * p[1] for p in plans})
    for name, base, incidents in plans:
        amp = rng.uniform(0.2, 0.55)  # log amplitude: peak/trough e^(2 amp)
        phase = rng.uniform(0, 2 * math.pi)
        noise = rng.uniform(0.06, 0.25)
        fail_rate = rng.choice((0.0, 0.0005, 0.002))
        size = rng.choice((0, 2_000, 40_000))
        # events by probe index: deploy spikes (recover), bursts
        spikes = {}
        for day in range(int(days) + 1):
            for _ in range(rng.choice((0, 1, 1, 2))):
                at = int((day * DAY + rng.uniform(0, DAY)) / STEP)
                for j in range(rng.randint(3, 8)):
                    spikes[at + j] = rng.uniform(2, 4)
        outages: list[Outage] = []
        precursor: dict[int, tuple[str, float]] = {}  # index -> (kind, progress 0..1)
        down: set[int] = set()
        if incidents:
            for day in range(1, int(days)):
                kind = rng.choice(KINDS)
                start = int((day * DAY + rng.uniform(2 * 3600, DAY - 2 * 3600)) / STEP)
                lead = int(rng.uniform(10, 40) * 60 / STEP) if kind != "sudden" else 0
                length = int(rng.uniform(5, 30) * 60 / STEP)
                for j in range(lead):
                    precursor[start - lead + j] = (kind, (j + 1) / lead)
                down.update(range(start, start + length))
                outages.append(Outage(name, kind, T0 + start * STEP, T0 + (start + length) * STEP))
        results = []
        body_hash = f"sha256:{name}"
        for k in range(n):
            ts = T0 + k * STEP
            day_angle = 2 * math.pi * ts / DAY + phase
            weekend = ((int(ts // DAY) + 3) % 7) >= 5
            y = math.log(base) + amp * math.sin(day_angle) - (0.15 if weekend else 0.0)
            y += rng.gauss(0, noise)
            if rng.random() < 0.003:  # a burst: a probe or two much slower
                y += math.log(rng.uniform(2, 8))
            if k in spikes:
                y += math.log(spikes[k])
            ok = rng.random() >= fail_rate and not (k in spikes and rng.random() < 0.05)
            bytes_ = size
            kind, progress = precursor.get(k, ("", 0.0))
            if kind == "ramp":
                y += progress * math.log(rng.uniform(4, 12))
            elif kind == "errors":
                ok = ok and rng.random() >= 0.3 * progress
            elif kind == "size":
                bytes_ = int(size * 0.3) if size else 512
            if k in down:
                results.append(_probe(name, ts, False, None, error=ErrorKind.TIMEOUT))
                continue
            latency = math.exp(y)
            results.append(
                _probe(
                    name,
                    ts,
                    ok,
                    latency if ok else None,
                    config[name].slow,
                    bytes=bytes_ if ok else 0,
                    content_hash=f"{body_hash}:{bytes_}" if ok else None,
                )
            )
        out.append(Series(config[name], results, outages, days / 7))
    return out


def certificates(targets: int, seed: int, days: int = 120) -> list[Series]:
    """Hourly probes of 90-day certificates: renewed at 30 days left (most), renewed
    late (at 12-20 days left: no outage, but a fair warning), never renewed (expiry)."""
    rng = random.Random(seed)
    names = [f"c{i:03d}" for i in range(targets)]
    config = _config_targets(names, dict.fromkeys(names, 1000.0))
    out = []
    for i, name in enumerate(names):
        fate = "never" if i % 5 == 0 else "late" if i % 5 == 1 else "on_time"
        not_after = T0 + rng.uniform(35, 85) * DAY
        renewals = 0
        results, outages = [], []
        for h in range(days * 24):
            ts = T0 + h * 3600
            left = not_after - ts
            renew_at = 30 * DAY if fate == "on_time" or renewals < 1 else rng.uniform(12, 20) * DAY
            if fate == "never" and renewals >= 1:
                renew_at = -1e18
            if left < renew_at:
                not_after, renewals = ts + 90 * DAY, renewals + 1
                left = not_after - ts
            tls = TlsDetails(
                subject=f"CN={name}",
                issuer="CN=ca",
                sans=(name,),
                not_before=not_after - 90 * DAY,
                not_after=not_after,
                days_left=left / DAY,
                version="TLSv1.3",
                cipher=None,
                earliest_not_after=not_after,
                earliest_subject=f"CN={name}",
            )
            ok = left > 0
            if not ok and not outages:
                outages.append(Outage(name, "cert", ts, ts + 30 * DAY))
            results.append(_probe(name, ts, ok, 50.0 if ok else None, tls=tls, error=ErrorKind.TLS))
        out.append(Series(config[name], results, outages, days / 7))
    return out


# --- replay ------------------------------------------------------------------------


def replay(
    series: Iterable[Series], params: EarlyWarningSection
) -> Iterator[tuple[Series, list[AlertEvent]]]:
    """Each series through MemoryStateStore and EarlyWarning (the live code)."""
    config = parse_config({}, env={})
    for s in series:
        state = MemoryStateStore(config.alerts)
        early = EarlyWarning(params, state)
        alerts: list[AlertEvent] = []
        t0 = s.results[0].ts if s.results else 0.0
        for r in s.results:
            now = r.ts - t0
            r, fired = state.observe(s.target, r, now)
            alerts += fired
            alerts += early.observe(s.target, r, now)
        for outage in s.outages:
            outage.down_at = next(
                (a.ts for a in alerts if a.event == "down" and a.ts >= outage.start), None
            )
        yield s, alerts


@attrs.define
class Score:
    warnings: int = 0
    true: int = 0
    incidents: int = 0
    caught: int = 0
    leads: list[float] = attrs.field(factory=list)
    target_weeks: float = 0.0

    @property
    def false(self) -> int:
        return self.warnings - self.true

    def row(self, name: str) -> str:
        precision = f"{self.true / self.warnings:.2f}" if self.warnings else "-"
        recall = f"{self.caught / self.incidents:.2f}" if self.incidents else "-"
        lead = "-"
        if self.leads:
            median = statistics.median(self.leads)
            lead = f"{median / 60:.1f}" if median < DAY else f"{median / DAY:.1f} days"
        per_week = self.false / self.target_weeks if self.target_weeks else 0.0
        return (
            f"| {name} | {self.warnings} | {precision} | {self.caught}/{self.incidents} "
            f"({recall}) | {lead} | {per_week:.2f} |"
        )


def score(
    results: Iterable[tuple[Series, list[AlertEvent]]], event: str = "degrading"
) -> dict[str, Score]:
    """Per signal (and "overall") for `event` warnings; per incident kind for recall."""
    scores: dict[str, Score] = defaultdict(Score)
    for s, alerts in results:
        warns = [a for a in alerts if a.event == event]
        for key in {*SIGNAL_OF.values(), "overall"}:
            scores[key].target_weeks += s.weeks
        caught_by: dict[int, list[AlertEvent]] = defaultdict(list)
        for a in warns:
            signal = a.signal or event
            hit = None
            horizon = CERT_HORIZON if signal in ("cert", "cert_expiring") else HORIZON
            for i, o in enumerate(s.outages):
                if o.down_at is not None and o.start - horizon <= a.ts <= o.down_at:
                    hit = i
                    break
            for key in (signal, "overall"):
                scores[key].warnings += 1
                scores[key].true += hit is not None
            if hit is not None:
                caught_by[hit].append(a)
        for i, o in enumerate(s.outages):
            if o.down_at is None:
                continue
            first = min((a.ts for a in caught_by[i]), default=None)
            for key in {SIGNAL_OF.get(o.kind, "sudden"), "overall"}:
                scores[key].incidents += 1
                if first is not None:
                    scores[key].caught += 1
                    scores[key].leads.append(o.down_at - first)
    return scores


HEAD = (
    "| detector | warnings | precision | incidents caught (recall) | median lead (min) |"
    " false warnings / target / week |\n|---|---|---|---|---|---|"
)


def table(
    series: list[Series],
    params: EarlyWarningSection,
    static_event: str = "slow",
    static_name: str = "static `slow` (3x normal latency)",
) -> str:
    replayed = list(replay(series, params))
    early = score(replayed)
    static = score(replayed, event=static_event)
    rows = [HEAD]
    for key in ("latency", "errors", "size", "cert", "sudden"):
        if key in early and (early[key].incidents or early[key].warnings):
            rows.append(early[key].row(f"`degrading` {key}"))
    rows.append(early["overall"].row("**`degrading` overall**"))
    rows.append(static["overall"].row(static_name))
    return "\n".join(rows)


def sweep(series: list[Series]) -> None:
    """The latency detector's grid (the others' defaults held): what chose the defaults."""
    for bp, k, h in (
        (60, 1.0, 15.0),
        (60, 1.0, 30.0),
        (60, 1.5, 20.0),
        (60, 1.5, 30.0),
        (60, 2.0, 20.0),
        (60, 2.0, 30.0),
        (120, 1.5, 30.0),
        (30, 1.5, 30.0),
    ):
        params = EarlyWarningSection(baseline_probes=bp, latency_slack=k, latency_threshold=h)
        sc = score(replay(series, params))["latency"]
        lead = statistics.median(sc.leads) / 60 if sc.leads else 0
        print(
            f"| {bp} | {k} | {h} | {sc.caught}/{sc.incidents} | {lead:.1f} |"
            f" {sc.false / sc.target_weeks:.2f} |",
            flush=True,
        )
    for eh in (4.0, 6.0, 9.0):
        params = EarlyWarningSection(errors_threshold=eh)
        sc = score(replay(series, params))["errors"]
        lead = statistics.median(sc.leads) / 60 if sc.leads else 0
        print(
            f"| errors_threshold {eh} | {sc.caught}/{sc.incidents} | {lead:.1f} |"
            f" {sc.false / sc.target_weeks:.2f} |",
            flush=True,
        )


# --- the recorded set ----------------------------------------------------------------


def recorded(path: str) -> list[Series]:
    """A history file's samples as series; its incidents are the outages."""
    with HistoryReader(path) as reader:
        names = [name for (name,) in reader._conn.execute("SELECT name FROM targets")]
        incidents = reader.incidents(0, math.inf)
        samples = {n: list(reader.samples(n, 0, math.inf)) for n in names}
        meta = (
            json.loads(Path(path + ".json").read_text()) if os.path.exists(path + ".json") else {}
        )
    config = _config_targets(names, {n: meta.get("slow", {}).get(n, 1000.0) for n in names})
    out = []
    for name in names:
        rows = samples[name]
        if not rows:
            continue
        results = [
            _probe(
                name,
                s.ts,
                s.ok,
                s.latency_ms,
                config[name].slow,
                error=ErrorKind(s.error) if s.error else ErrorKind.STATUS,
            )
            for s in rows
        ]
        span = rows[-1].ts - rows[0].ts
        outages = [
            Outage(name, meta.get("kinds", {}).get(name, "ramp"), i.start, i.end or math.inf)
            for i in incidents
            if i.target == name
        ]
        out.append(Series(config[name], results, outages, span / WEEK))
    return out


def record(path: str, minutes: float) -> None:
    """Run the monitor against farm targets for `minutes`: some steady, some ramping
    (latency x1 -> x15 over RAMP s) before a 500 outage, some with failures growing."""
    farm = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("farm.py")), "--ports", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = farm.stdout.readline() if farm.stdout else ""
        port = json.loads(line.split(" ", 1)[1])["ports"][0]
        now = time.time()
        warm = 200  # s: warm-up at a 1 s interval
        targets, kinds, slow = [], {}, {}
        for i in range(12):
            name = f"steady{i}"
            base = 20 + 10 * i
            targets.append({"name": name, "url": f"http://127.0.0.1:{port}/j/{base}"})
            slow[name] = 3 * base
        for i in range(6):
            name = f"ramp{i}"
            base = 40 + 20 * i
            ms = int((now + warm + 15 * i) * 1000)
            until = ms + (150 + 20 * i) * 1000
            url = f"http://127.0.0.1:{port}/ramp/{ms}/{until}/{base}/{base * 12}"
            targets.append({"name": name, "url": url})
            kinds[name], slow[name] = "ramp", 3 * base
        for i in range(4):
            name = f"flaky{i}"
            base = 10 + 5 * i
            ms = int((now + warm + 20 * i) * 1000)
            until = ms + (60 + 15 * i) * 1000
            targets.append(
                {"name": name, "url": f"http://127.0.0.1:{port}/flaky/{ms}/{until}/{base}"}
            )
            kinds[name], slow[name] = "errors", 3 * base
        doc = {
            "monitor": {"interval": "1s", "timeout": "3s", "retries": 0},
            "early_warning": {"warmup": 150},
            "targets": targets,
        }
        cfg = Path(path).with_suffix(".toml")
        import tomli_w

        cfg.write_text(tomli_w.dumps(doc))
        Path(path + ".json").write_text(json.dumps({"kinds": kinds, "slow": slow}))
        log = Path(path).with_suffix(".jsonl")
        with log.open("w") as out:
            mon = subprocess.Popen(
                [sys.executable, "-m", "trio_monitor", "run", "-c", str(cfg)], stdout=out
            )
            try:
                time.sleep(minutes * 60)
            finally:
                mon.send_signal(signal.SIGTERM)
                mon.wait(30)
        db = cfg.with_suffix(".db")
        if str(db) != path:
            os.replace(db, path)
        print(f"recorded {path}; the monitor's own lines in {log}")
    finally:
        farm.send_signal(signal.SIGTERM)
        farm.wait(10)


# --- CPU per probe -------------------------------------------------------------------


def cpu(targets: int, probes_per_target: int = 30) -> None:
    """CPU per probe of the dispatch point's work (state store, with and without early
    warning), over `targets` targets, a realistic HTTP probe result each."""
    series = synthetic(targets, 0.1, seed=3, days=probes_per_target * STEP / DAY)
    rounds = [[s.results[k] for s in series] for k in range(probes_per_target)]
    plan = [s.target for s in series]
    config = parse_config({}, env={})
    for early_on in (False, True, False, True):
        state = MemoryStateStore(config.alerts)
        early = EarlyWarning(EarlyWarningSection(), state)
        began = time.process_time()
        for k, results in enumerate(rounds):
            for target, r in zip(plan, results, strict=True):
                r, alerts = state.observe(target, r, k * STEP)
                if early_on:
                    alerts += early.observe(target, r, k * STEP)
        spent = time.process_time() - began
        n = targets * probes_per_target
        print(f"early warning {'on ' if early_on else 'off'}: {spent / n * 1e6:.2f} µs/probe")


def cpu_run(targets: int, seconds: float = 75.0, interval: float = 30.0) -> None:
    """The whole monitor's CPU per probe, early warning on vs off (alternated twice):
    `trio-monitor run` against the farm (100 ports, `targets` HTTP targets at
    `interval`, history on), CPU from /proc between the first interval's end and the
    run's end, over the probe lines in that window."""
    import tomli_w
    from procs import cpu_seconds

    farm = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("farm.py")), "--ports", "100"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = farm.stdout.readline() if farm.stdout else ""
        ports = json.loads(line.split(" ", 1)[1])["ports"]
        work = Path(tempfile.mkdtemp(prefix="early-cpu-"))
        for run, enabled in enumerate((False, True, False, True)):
            doc = {
                "monitor": {"interval": f"{interval:g}s", "timeout": "5s", "retries": 0},
                "early_warning": {"enabled": enabled},
                "storage": {"path": str(work / f"h{run}.db")},
                "targets": [
                    {"name": f"t{i}", "url": f"http://127.0.0.1:{ports[i % len(ports)]}/d/0?{i}"}
                    for i in range(targets)
                ],
            }
            cfg = work / f"m{run}.toml"
            cfg.write_text(tomli_w.dumps(doc))
            out = work / f"out{run}.jsonl"
            with out.open("w") as sink:
                mon = subprocess.Popen(
                    [sys.executable, "-m", "trio_monitor", "run", "-c", str(cfg)], stdout=sink
                )
                time.sleep(interval + 5)
                began, cpu0 = time.time(), cpu_seconds(mon.pid)
                time.sleep(seconds)
                ended, cpu1 = time.time(), cpu_seconds(mon.pid)
                mon.send_signal(signal.SIGTERM)
                mon.wait(60)
            probes = 0
            with out.open() as lines:
                for text in lines:
                    if text.startswith('{"schema":1,"type":"probe"'):
                        ts = json.loads(text)["ts"]
                        at = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
                        probes += began <= at < ended
            state = "on " if enabled else "off"
            print(
                f"early warning {state}: {(cpu1 - cpu0) / probes * 1e6:.0f} µs CPU/probe"
                f" ({probes} probes, {cpu1 - cpu0:.1f} s CPU in {ended - began:.0f} s)",
                flush=True,
            )
    finally:
        farm.send_signal(signal.SIGTERM)
        farm.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--record", metavar="DB")
    parser.add_argument("--minutes", type=float, default=9.0)
    parser.add_argument("--recorded", metavar="DB", help="replay this history file")
    parser.add_argument("--cpu", type=int, metavar="TARGETS")
    parser.add_argument("--cpu-run", type=int, metavar="TARGETS")
    args = parser.parse_args()
    if args.record:
        record(args.record, args.minutes)
        return
    if args.cpu:
        cpu(args.cpu)
        return
    if args.cpu_run:
        cpu_run(args.cpu_run)
        return
    series = synthetic(args.targets, 0.5, args.seed)
    if args.sweep:
        sweep(series)
        return
    params = EarlyWarningSection()
    print(f"synthetic: {args.targets} targets x 7 days at 30 s, half with daily incidents")
    print(table(series, params))
    print("\ncertificates: 20 targets x 120 days, hourly")
    print(
        table(
            certificates(20, args.seed),
            params,
            "cert_expiring",
            "static `cert_expiring` (14 days left)",
        )
    )
    if args.recorded:
        print(f"\nrecorded: {args.recorded}")
        print(table(recorded(args.recorded), params))


if __name__ == "__main__":
    main()
