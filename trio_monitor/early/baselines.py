"""Online robust baselines: what a target's signals normally look like.

Each update is O(1) plain arithmetic on a handful of floats (no library: at ~1 µs an
update it costs less than calling into one, see docs/early-warning.md). All of it is
plain data (`TargetModel.state` / `load`), kept in the history store's `baselines` table.

`Level`: an exponentially weighted Huber M-estimate of location with a mean-absolute-
deviation scale, in the caller's units (log space for latency and size):

    r = y - level                      (the residual)
    b = CLIP * max(scale, floor)       (what one sample may move it by)
    level += a * clamp(r, -b, b)
    scale += a * (min(|r|, b) - scale)
    a = max(alpha, 1 / n)              (a running mean during warm-up)

so a one-off outlier moves it by at most a*b, and a level shift is followed at rate a.

`Seasonal`: a `Level` of the deseasonalized series plus one offset per hour of the day,
separately for weekdays and weekends (48 slots, UTC). A slot's offset is the EW mean of
the residual in that slot; it is used once the slot has SEASON_MIN samples (a weekend
slot falls back to the weekday one until then), so the profile refines as data comes.

`Rate`: an exponentially weighted rate of an event (a failure, a content change), with
a floor so that a target that never failed still has a finite baseline.
"""

from __future__ import annotations

from array import array
from typing import Any

CLIP = 4.0  # a sample moves a baseline by at most CLIP scales (times its rate)
SLOTS = 48  # hour of day (UTC) x (weekday, weekend)
SEASON_MIN = 30  # samples in a slot before its offset is used
DAY = 86400.0


# [start, end) of the last hour asked about, and its slot: nearly every probe falls in
# the hour of the one before (an empty range until the first)
_hour: tuple[float, float, int] = (0.0, 0.0, 0)


def season_slot(ts: float) -> int:
    """Hour of day (UTC), + 24 on Saturdays and Sundays."""
    global _hour
    start, end, slot = _hour
    if start <= ts < end:
        return slot
    second = int(ts)
    days, into = divmod(second, 86400)
    weekend = (days + 3) % 7 >= 5  # 1970-01-01 was a Thursday: Monday is 0
    slot = into // 3600 + (24 if weekend else 0)
    if ts >= 0.0:  # int() truncates: below 0, [start, end) is not the hour's seconds
        start = float(second - into % 3600)
        _hour = (start, start + 3600.0, slot)
    return slot


class Level:
    """EW Huber location and MAD-like scale. __slots__: one per signal and target."""

    __slots__ = ("level", "n", "scale")

    def __init__(self) -> None:
        self.n = 0
        self.level = 0.0
        self.scale = 0.0

    def z(self, y: float, floor: float) -> float:
        """The residual in scales."""
        return (y - self.level) / max(self.scale, floor)

    def update(self, y: float, alpha: float, floor: float) -> None:
        n = self.n = self.n + 1
        if n == 1:
            self.level, self.scale = y, floor
            return
        a = alpha if alpha * n > 1.0 else 1.0 / n
        level, scale = self.level, self.scale  # locals: read once (a few times a probe)
        r = y - level
        b = CLIP * (scale if scale > floor else floor)
        self.level = level + a * (b if r > b else -b if r < -b else r)
        ar = -r if r < 0 else r
        self.scale = scale + a * ((b if ar > b else ar) - scale)

    def load(self, data: list[float]) -> None:
        self.n, self.level, self.scale = int(data[0]), float(data[1]), float(data[2])


class Seasonal(Level):
    """A Level of the deseasonalized series (the detectors' baseline), and the hour-of-
    week offsets, learned against a slow level (the EW mean over about a day, by time)."""

    __slots__ = ("counts", "last", "offsets", "slow")

    def __init__(self) -> None:
        super().__init__()
        self.offsets = array("f", bytes(4 * SLOTS))  # 4 bytes a slot: ~240 B a target
        self.counts = bytearray(SLOTS)  # capped at 255: only "enough yet?" matters
        self.slow = 0.0
        self.last = 0.0  # ts of the last sample

    def offset(self, slot: int) -> float:
        if self.counts[slot] >= SEASON_MIN:
            return self.offsets[slot]
        if slot >= 24 and self.counts[slot - 24] >= SEASON_MIN:
            return self.offsets[slot - 24]  # a weekend hour: the weekday's until learned
        return 0.0

    def observe(
        self,
        y: float,
        ts: float,
        slot: int,
        offset: float,
        alpha: float,
        season_alpha: float,
        floor: float,
    ) -> None:
        """Learn from y at ts in `slot`, whose `offset(slot)` the caller read z with."""
        self.update(y - offset, alpha, floor)
        n = self.n
        if n == 1:
            slow = y
        else:
            slow = self.slow
            w = (ts - self.last) / DAY  # a day's memory, whatever the interval
            slow += (y - slow) * (1.0 if w > 1.0 else w if w > 1.0 / n else 1.0 / n)
        self.slow, self.last = slow, ts
        counts, offsets = self.counts, self.offsets
        c = counts[slot]
        if c < 255:
            counts[slot] = c + 1
        a = season_alpha if season_alpha * (c + 1) > 1.0 else 1.0 / (c + 1)
        r = y - slow - offsets[slot]
        scale = self.scale
        b = CLIP * (scale if scale > floor else floor)
        offsets[slot] += a * (b if r > b else -b if r < -b else r)

    def load(self, data: list[Any]) -> None:
        super().load(data[:3])
        offsets, counts = data[3], data[4]
        self.slow, self.last = float(data[5]), float(data[6])
        if len(offsets) == SLOTS and len(counts) == SLOTS:
            self.offsets = array("f", offsets)
            self.counts = bytearray(min(255, max(0, int(c))) for c in counts)


class Rate:
    """EW rate of an event, at least `floor`."""

    __slots__ = ("n", "p")

    def __init__(self) -> None:
        self.n = 0
        self.p = 0.0

    def update(self, hit: bool, alpha: float, slower: float = 1.0) -> None:
        """`slower`: also the warm-up's 1/n rate divided by this."""
        n = self.n = self.n + 1
        a = alpha if alpha * n > 1.0 else 1.0 / (n * slower)
        self.p += a * ((1.0 if hit else 0.0) - self.p)

    def load(self, data: list[float]) -> None:
        self.n, self.p = int(data[0]), float(data[1])
