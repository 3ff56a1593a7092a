"""The detectors: per target, its baselines and one CUSUM per signal.

Every probe updates each signal it carries in O(1). A signal warns once per episode:
its CUSUM statistic S crosses the threshold h; the episode ends (and the signal is
re-armed) when S is back at 0, i.e. after the signal returned to its baseline.

- latency: z = (log latency - (level + hour-of-week offset)) / scale, clipped to
  [-ZMAX, ZMAX] so a single spike adds at most ZMAX - k; S = max(0, S + z - k).
- errors: Bernoulli CUSUM of failures against the baseline rate p0 (at least
  errors_floor), for a rise to p1 = min(0.5, max(errors_ratio * p0, p0 + 0.02)):
  S += log(p1/p0) for a failure, log((1-p1)/(1-p0)) for a success.
- size: two CUSUMs (up, down) of the log body size's z, as for latency.
- churn: the Bernoulli CUSUM of content changes among ok probes, for pages that were
  stable (a baseline change rate under CHURN_STABLE).
- cert: the leaf's days left against when it is expected to be renewed: the days left
  at the last renewal seen, else min(lifetime / 3, 30 days); a renewal is overdue once
  days left < expected - cert_margin, warned while more than cert_expiry is left (below
  it, `cert_expiring` is the alert).
"""

from __future__ import annotations

import math
from typing import Any

from attrs import frozen

from .._config import EarlyWarningSection
from .._records import PHASES, ProbeResult
from .baselines import DAY, Level, Rate, Seasonal, season_slot

ZMAX = 4.0  # a probe's z is clipped to this: one spike cannot make an episode
LATENCY_FLOOR = 0.05  # log scale floor: +-5 % is noise whatever the target's jitter
SIZE_FLOOR = 0.05
ERRORS_STEP = 0.02  # p1 is at least p0 + this
CHURN_STABLE = 0.2  # a page changing more often than this is not watched for churn
FAST = 0.2  # EW rate of the "current" value shown in a warning
EXCURSION = 10.0  # how much slower the failure rate learns while its CUSUM is above 0
SIGNALS = ("latency", "errors", "size", "churn", "cert")


@frozen
class Finding:
    """A signal's warning, before it becomes an AlertEvent."""

    signal: str
    baseline: float
    current: float
    score: float
    since: float
    detail: str


class Cusum:
    """One-sided CUSUM: S = max(0, S + x); fires once when S reaches h, re-armed when
    S is back at 0."""

    __slots__ = ("alarmed", "s", "start")

    def __init__(self) -> None:
        self.s = 0.0
        self.start = 0.0  # when the current excursion began (ts); 0.0: none
        self.alarmed = False

    def step(self, x: float, ts: float, h: float) -> bool:
        before = self.s
        s = before + x
        if s <= 0.0:
            if before != 0.0 or self.alarmed:  # most steps: already at rest
                self.s, self.start, self.alarmed = 0.0, 0.0, False
            return False
        if before == 0.0:
            self.start = ts
        # capped, so an episode ends soon after the signal is back to normal
        self.s = s if s < 2 * h else 2 * h
        if s >= h and not self.alarmed:
            self.alarmed = True
            return True
        return False

    def reset(self) -> None:
        self.s, self.start, self.alarmed = 0.0, 0.0, False


def _bernoulli(rate: float, hit: bool, p: EarlyWarningSection) -> tuple[float, float, float]:
    """A Bernoulli CUSUM's baseline p0 (`rate`, at least errors_floor), the rate p1 it
    watches for, and this probe's step: the log-likelihood ratio of p1 against p0."""
    floor, ratio = p.errors_floor, p.errors_ratio
    if rate > floor:
        return _llr(rate, ratio, hit)
    # at the floor (a target that never fails, a page that never changes: most probes)
    # all three are constants of the settings, computed once (a handful of keys)
    key = (floor, ratio, hit)
    step = _AT_FLOOR.get(key)
    if step is None:
        step = _AT_FLOOR[key] = _llr(floor, ratio, hit)
    return step


def _llr(p0: float, ratio: float, hit: bool) -> tuple[float, float, float]:
    p1 = min(0.5, max(ratio * p0, p0 + ERRORS_STEP))
    return p0, p1, math.log(p1 / p0) if hit else math.log((1 - p1) / (1 - p0))


_AT_FLOOR: dict[tuple[float, float, bool], tuple[float, float, float]] = {}


def _clip(z: float) -> float:
    return ZMAX if z > ZMAX else -ZMAX if z < -ZMAX else z


def _ms(x: float) -> str:
    return f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


class TargetModel:
    """One target's baselines and detectors."""

    __slots__ = (
        "cert",
        "cert_cusum",
        "cert_not_after",
        "churn",
        "churn_cusum",
        "err_cusum",
        "errors",
        "lat_cusum",
        "lat_fast",
        "latency",
        "phases",
        "size",
        "size_down",
        "size_fast",
        "size_up",
    )

    def __init__(self) -> None:
        self.latency = Seasonal()
        self.lat_cusum = Cusum()
        self.lat_fast = 0.0  # recent log latency residual
        self.phases: dict[str, Level] = {}
        self.errors = Rate()
        self.err_cusum = Cusum()
        self.size = Level()
        self.size_up = Cusum()
        self.size_down = Cusum()
        self.size_fast = 0.0
        self.churn = Rate()
        self.churn_cusum = Cusum()
        self.cert: float | None = None  # days left when the last renewal was seen
        self.cert_not_after: float | None = None
        self.cert_cusum = Cusum()  # alarmed: an overdue renewal was warned about

    def reset(self) -> None:
        """An outage began: every episode is over (the next one warns again)."""
        for c in self._cusums():
            c.reset()

    def _cusums(self) -> tuple[Cusum, ...]:
        return (
            self.lat_cusum,
            self.err_cusum,
            self.size_up,
            self.size_down,
            self.churn_cusum,
            self.cert_cusum,
        )

    def scores(self, p: EarlyWarningSection) -> dict[str, float]:
        """Each signal's S / h (1: the warning threshold) for the signals it has seen."""
        out = {"latency": self.lat_cusum.s / p.latency_threshold}
        out["errors"] = self.err_cusum.s / p.errors_threshold
        if self.size.n:
            out["size"] = max(self.size_up.s, self.size_down.s) / p.size_threshold
            out["churn"] = self.churn_cusum.s / p.churn_threshold
        if self.cert_not_after is not None:
            out["cert"] = float(self.cert_cusum.alarmed)
        return out

    def alarmed(self, signal: str) -> bool:
        if signal == "size":
            return self.size_up.alarmed or self.size_down.alarmed
        cusum = {
            "latency": self.lat_cusum,
            "errors": self.err_cusum,
            "churn": self.churn_cusum,
            "cert": self.cert_cusum,
        }[signal]
        return cusum.alarmed

    def observe(
        self, r: ProbeResult, p: EarlyWarningSection, cert_window: float = 0.0
    ) -> list[Finding]:
        """Fold one probe in. `cert_window`: the target's `cert_expiry` (what
        `cert_expiring` covers: an overdue renewal warns only before it)."""
        found: list[Finding] = []
        ts = r.ts
        if r.ok:
            if r.latency_ms is not None and r.latency_ms > 0:
                self._latency(r, p, found)
            if r.bytes or self.size.n:  # kinds without a body have no size signal
                self._size(r, p, found)
        # errors: failures below the DOWN threshold (an outage resets everything)
        e = self.errors
        if e.n >= p.warmup:
            p0, p1, x = _bernoulli(e.p, not r.ok, p)
            if self.err_cusum.step(x, ts, p.errors_threshold):
                found.append(
                    Finding(
                        "errors",
                        round(p0, 4),
                        round(p1, 4),
                        round(self.err_cusum.s / p.errors_threshold, 2),
                        self.err_cusum.start,
                        f"failures rising: more than {p1:.1%} of probes fail"
                        f" (baseline {p0:.1%}), last: {r.error}",
                    )
                )
        # during an excursion the rate learns ten times slower: the failures being
        # counted must not become the baseline they are counted against (a permanent
        # new rate still is, eventually)
        slowed = EXCURSION if self.err_cusum.s > 0.0 else 1.0
        e.update(not r.ok, 1.0 / (p.errors_probes * slowed), slowed)
        if r.tls is not None:
            self._cert(r, p, cert_window, found)
        return found

    def _latency(self, r: ProbeResult, p: EarlyWarningSection, found: list[Finding]) -> None:
        assert r.latency_ms is not None
        ts = r.ts
        y = math.log(r.latency_ms)
        lat = self.latency
        slot = season_slot(ts)
        offset = lat.offset(slot)
        pred = lat.level + offset
        scale = lat.scale
        z = (y - pred) / (scale if scale > LATENCY_FLOOR else LATENCY_FLOOR)
        self.lat_fast += FAST * (y - pred - self.lat_fast)
        if lat.n >= p.warmup and self.lat_cusum.step(
            _clip(z) - p.latency_slack, ts, p.latency_threshold
        ):
            base, now = math.exp(pred), math.exp(pred + self.lat_fast)
            found.append(
                Finding(
                    "latency",
                    round(base, 1),
                    round(now, 1),
                    round(self.lat_cusum.s / p.latency_threshold, 2),
                    self.lat_cusum.start,
                    f"latency {_ms(now)} vs {_ms(base)} baseline{self._phase_note(r)}",
                )
            )
        alpha = 1.0 / p.baseline_probes
        lat.observe(y, ts, slot, offset, alpha, 1.0 / p.season_probes, LATENCY_FLOOR)
        phases_ms = r.phases_ms
        if phases_ms:
            levels, log = self.phases, math.log  # locals: up to five phases a probe
            for name, ms in phases_ms.items():
                if ms:
                    level = levels.get(name)
                    if level is None:
                        level = levels[name] = Level()
                    level.update(log(ms), alpha, LATENCY_FLOOR)

    def _phase_note(self, r: ProbeResult) -> str:
        """The phase that moved most, in its own scales."""
        best, worst = 0.0, ""
        for name, ms in (r.phases_ms or {}).items():
            level = self.phases.get(name)
            if ms and level is not None and level.n:
                z = level.z(math.log(ms), LATENCY_FLOOR)
                if z > best:
                    best = z
                    worst = f"; mostly {name}: {_ms(ms)} vs {_ms(math.exp(level.level))}"
        return worst

    def _size(self, r: ProbeResult, p: EarlyWarningSection, found: list[Finding]) -> None:
        y = math.log1p(r.bytes)
        size = self.size
        z = size.z(y, SIZE_FLOOR)
        self.size_fast += FAST * (y - size.level - self.size_fast)
        if size.n >= p.warmup:
            z = _clip(z)
            up = self.size_up.step(z - 1.0, r.ts, p.size_threshold)
            down = self.size_down.step(-z - 1.0, r.ts, p.size_threshold)
            if up or down:
                cusum = self.size_up if up else self.size_down
                base, now = math.expm1(size.level), math.expm1(size.level + self.size_fast)
                found.append(
                    Finding(
                        "size",
                        round(base),
                        round(now),
                        round(cusum.s / p.size_threshold, 2),
                        cusum.start,
                        f"body size {now:.0f} B vs {base:.0f} B baseline",
                    )
                )
        size.update(y, 1.0 / p.baseline_probes, SIZE_FLOOR)
        churn = self.churn
        if churn.n >= p.warmup and churn.p < CHURN_STABLE:
            p0, p1, x = _bernoulli(churn.p, r.content_changed, p)
            if self.churn_cusum.step(x, r.ts, p.churn_threshold):
                found.append(
                    Finding(
                        "churn",
                        round(p0, 4),
                        round(p1, 4),
                        round(self.churn_cusum.s / p.churn_threshold, 2),
                        self.churn_cusum.start,
                        f"content changing more often: over {p1:.1%} of probes (baseline {p0:.1%})",
                    )
                )
        churn.update(r.content_changed, 1.0 / p.errors_probes)

    def _cert(
        self, r: ProbeResult, p: EarlyWarningSection, window: float, found: list[Finding]
    ) -> None:
        tls = r.tls
        assert tls is not None
        left = tls.not_after - r.ts
        previous = self.cert_not_after
        if previous is not None and tls.not_after > previous + DAY:
            self.cert = max(0.0, previous - r.ts)  # renewed with this much left
            self.cert_cusum.reset()
        self.cert_not_after = tls.not_after
        lifetime = tls.not_after - tls.not_before
        expected = self.cert if self.cert is not None else min(lifetime / 3, 30 * DAY)
        overdue = expected - left
        if overdue > p.cert_margin and left > window and not self.cert_cusum.alarmed:
            self.cert_cusum.alarmed, self.cert_cusum.start = True, r.ts
            found.append(
                Finding(
                    "cert",
                    round(expected / DAY, 2),
                    round(left / DAY, 2),
                    round(overdue / p.cert_margin, 2),
                    r.ts - overdue,
                    f"certificate {tls.subject} not renewed: {left / DAY:.1f} days left,"
                    f" renewal expected at {expected / DAY:.1f}",
                )
            )

    # --- persistence: plain data, encoded in the store's thread ---------------------

    def state(self) -> tuple[Any, ...]:
        """A copy of the baselines, cheap to take in the event loop (encode() it later)."""
        lat = self.latency
        return (
            (
                lat.n,
                lat.level,
                lat.scale,
                lat.offsets.tobytes(),
                bytes(lat.counts),
                lat.slow,
                lat.last,
            ),
            {k: (v.n, v.level, v.scale) for k, v in self.phases.items()},
            (self.errors.n, self.errors.p),
            (self.size.n, self.size.level, self.size.scale),
            (self.churn.n, self.churn.p),
            self.cert,
        )

    def load(self, data: dict[str, Any]) -> None:
        lat = data["latency"]
        self.latency.load(lat)
        for name, v in data.get("phases", {}).items():
            if name in PHASES:
                level = self.phases[name] = Level()
                level.load(v)
        self.errors.load(data["errors"])
        self.size.load(data["size"])
        self.churn.load(data["churn"])
        cert = data.get("cert")
        self.cert = None if cert is None else float(cert)


def encode(state: tuple[Any, ...]) -> dict[str, Any]:
    """TargetModel.state() -> the JSON-able form TargetModel.load reads."""
    from array import array

    lat, phases, errors, size, churn, cert = state
    offsets = array("f")
    offsets.frombytes(lat[3])
    return {
        "v": 1,
        "latency": [*lat[:3], offsets.tolist(), list(lat[4]), *lat[5:]],
        "phases": {k: list(v) for k, v in phases.items()},
        "errors": list(errors),
        "size": list(size),
        "churn": list(churn),
        "cert": cert,
    }
