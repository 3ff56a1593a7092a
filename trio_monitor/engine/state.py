"""Per-target state (UNKNOWN -> UP/DOWN) and the alert decisions.

`StateStore` is the seam where target state lives: `MemoryStateStore` keeps it in
this process; a cluster keeps it in Redis behind the same protocol. `observe` is
synchronous and O(1) per result, so it runs inline in the probe task and the order of
a target's results is the order of its alerts.

Flapping: the `flap_threshold`-th UP/DOWN change within `flap_window` (trio's clock)
marks a target flapping. That change raises one `flapping` alert instead of its
`down`/`up`; later changes are held (the state still follows the probes, no alert).
Once the target has kept one state for `flap_window`, one `flap_end` alert says which
(`state`, `since`), and alerts work as before.

Certificates: `cert_expiring` once when the time left on the leaf certificate first drops
below the target's `cert_expiry`, and again below each shorter step (a certificate first
seen below several thresholds raises one alert, for the shortest); `cert_renewed` once
when a certificate with a later `not_after` appears after a `cert_expiring`. Every probe
that saw a certificate counts, failed or not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import attrs

from .._config import AlertsSection, Config, Target
from .._records import AlertEvent, ProbeResult
from ..net.certs import DAY, TlsDetails, describe_expiry
from ..probes import base as probe_kinds

UNKNOWN, UP, DOWN = "UNKNOWN", "UP", "DOWN"
# how a target's next probes are paced (`StateStore.pace`); None: its normal due times
CONFIRM, RECOVER = "confirm", "recover"


@attrs.define
class TargetState:
    state: str = UNKNOWN
    since: float | None = None  # wall time the current state began
    failures: int = 0  # consecutive failed probes
    successes: int = 0  # consecutive ok probes
    streak_start: float | None = None  # wall time of the first failure of the current streak
    streak_clock: float | None = None  # the same, on trio's clock, for downtime
    slow_streak: int = 0
    fast_streak: int = 0
    slow_alerted: bool = False
    content_hash: str | None = None  # of the last ok probe
    last: ProbeResult | None = None
    # trio-clock times of the recent UP/DOWN changes (while flapping: the last one); at
    # most flap_threshold of them: a list (an empty deque is ~600 B, per target)
    changes: list[float] = attrs.field(factory=list)
    flapping: bool = False
    flap_changes: int = 0  # UP/DOWN changes since flapping began
    cert_not_after: float | None = None  # of the leaf certificate last seen
    # the shortest cert_expiry window (seconds) a `cert_expiring` was sent for, for
    # that certificate; None: none sent. A window, not a step's index, so it keeps its
    # meaning when a reload changes the steps.
    cert_alerted: float | None = None


class StateView(Protocol):
    """What the alert policy reads of targets' states (policy/): a StateStore, or a
    cluster's verdicts (cluster/policy.py)."""

    def get(self, name: str) -> TargetState | None: ...


class StateStore(StateView, Protocol):
    def observe(
        self, target: Target, result: ProbeResult, now: float
    ) -> tuple[ProbeResult, list[AlertEvent]]:
        """Fold one result into the target's state. -> (result with content_changed, alerts)."""
        ...

    def restore_down(self, target: str, since: float, now: float, wall_now: float) -> None:
        """Resume an outage that began before this process (an open incident in history)."""
        ...

    def pace(self, name: str) -> str | None:
        """CONFIRM while a failure streak is undecided, RECOVER while DOWN, else None."""
        ...

    async def reconfigure(self, old: Config, new: Config) -> None: ...


def _requests_differ(old: Target | None, new: Target) -> bool:
    return old is None or (old.url, old.kind, old.spec) != (new.url, new.kind, new.spec)


def _chain_note(tls: TlsDetails, ts: float) -> str:
    """The chain certificate that expires before the leaf, if one does."""
    if tls.earliest_not_after >= tls.not_after:
        return ""
    when = describe_expiry(tls.earliest_not_after, ts)
    return f"; chain certificate {tls.earliest_subject} {when}"


class MemoryStateStore:
    def __init__(self, alerts: AlertsSection) -> None:
        self._states: dict[str, TargetState] = {}
        self.configure(alerts)

    def configure(self, alerts: AlertsSection) -> None:
        self.failure_threshold = alerts.failure_threshold  # an outage resumed at start-up
        self.flap_threshold = alerts.flap_threshold
        self.flap_window = alerts.flap_window

    def get(self, name: str) -> TargetState | None:
        return self._states.get(name)

    def pace(self, name: str) -> str | None:
        """How the scheduler paces the target's next probes: CONFIRM while failures are
        counted but have not made it DOWN (until failure_threshold of them do, or
        success_threshold successes end the streak), RECOVER while DOWN, None when
        settled (UP or UNKNOWN without failures: its normal due times)."""
        st = self._states.get(name)
        if st is None:
            return None
        if st.state == DOWN:
            return RECOVER
        return CONFIRM if st.failures else None

    def restore_down(self, target: str, since: float, now: float, wall_now: float) -> None:
        """Resume an outage that began before this process (an open incident in history).

        The target starts DOWN, so a restart neither pages again while it stays down nor
        loses the outage: its recovery fires `up` with the downtime since `since`.
        """
        self._states[target] = TargetState(
            state=DOWN,
            since=since,
            failures=self.failure_threshold,
            streak_start=since,
            streak_clock=now - (wall_now - since),
        )

    async def reconfigure(self, old: Config, new: Config) -> None:
        """A target is its name: one still configured keeps its state (UP/DOWN, counts,
        its outage's start) whatever settings changed, so the next probe with the new
        settings decides transitions as usual: no second `down`, one `up` on recovery.
        Only the content baseline goes when what is requested changed."""
        self.retain(t.name for t in new.targets)
        before = {t.name: t for t in old.targets}
        for target in new.targets:
            st = self._states.get(target.name)
            if st is not None and _requests_differ(before.get(target.name), target):
                st.content_hash = None  # another resource's body is no `content_changed`
        self.configure(new.alerts)

    def retain(self, names: Iterable[str]) -> None:
        """Keep the state of these targets only (the ones still configured)."""
        keep = set(names)
        for name in [n for n in self._states if n not in keep]:
            del self._states[name]

    def observe(
        self, target: Target, result: ProbeResult, now: float
    ) -> tuple[ProbeResult, list[AlertEvent]]:
        """Fold one result into the target's state. -> (result with content_changed, alerts)."""
        st = self._states.get(target.name)
        if st is None:
            st = self._states[target.name] = TargetState()
        alerts: list[AlertEvent] = []

        def alert(event: str, **fields) -> None:
            alerts.append(
                AlertEvent(
                    ts=result.ts,
                    target=target.name,
                    url=target.url,
                    event=event,
                    labels=dict(target.labels) or None,
                    **fields,
                )
            )

        if result.ok:
            st.successes += 1
            if st.state != UP and st.successes >= target.success_threshold:
                if st.state == DOWN and self._announce(st, UP, now, alert):
                    alert(
                        "up",
                        since=st.streak_start,
                        downtime_s=None
                        if st.streak_clock is None
                        else round(now - st.streak_clock, 3),
                        detail=probe_kinds.describe(result),
                    )
                st.state, st.since = UP, result.ts
            if st.successes >= target.success_threshold:
                st.failures, st.streak_start, st.streak_clock = 0, None, None
            if st.content_hash is not None and result.content_hash != st.content_hash:
                result = attrs.evolve(result, content_changed=True)
                if target.content_alert:
                    alert(
                        "content_changed",
                        content_hash=result.content_hash,
                        previous_hash=st.content_hash,
                    )
            st.content_hash = result.content_hash
            self._observe_speed(st, target, result, alert)
        else:
            st.successes = 0
            st.failures += 1
            if st.failures == 1 or st.streak_start is None:
                st.streak_start, st.streak_clock = result.ts, now
            if st.state != DOWN and st.failures >= target.failure_threshold:
                if self._announce(st, DOWN, now, alert):
                    alert(
                        "down",
                        reason=str(result.error),
                        detail=result.error_detail,
                        since=st.streak_start,
                        failures=st.failures,
                    )
                st.state, st.since = DOWN, st.streak_start
        if result.tls is not None:
            self._observe_certificate(st, target, result.ts, result.tls, alert)
        if self._settled(st, now):
            st.flapping = False
            alert("flap_end", state=st.state, since=st.since, changes=st.flap_changes)
        st.last = result
        return result, alerts

    def _announce(self, st: TargetState, new: str, now: float, alert) -> bool:
        """Count a change of state to `new` (UNKNOWN -> UP is none). -> alert it as usual?
        No while flapping, and not for the change that starts the flapping: that one
        raises `flapping`."""
        if not self.flap_threshold:
            return True
        st.changes.append(now)
        if st.flapping:
            st.flap_changes += 1
            del st.changes[0]  # only the last change matters now: when it settles
            return False
        while st.changes[0] <= now - self.flap_window:
            del st.changes[0]
        if len(st.changes) < self.flap_threshold:
            return True
        st.flapping, st.flap_changes = True, len(st.changes)
        del st.changes[:-1]
        alert(
            "flapping",
            state=new,
            changes=st.flap_changes,
            detail=f"{st.flap_changes} state changes within {self.flap_window:g}s",
        )
        return False

    def _settled(self, st: TargetState, now: float) -> bool:
        """Flapping, and no change of state for flap_window (or detection turned off)."""
        return st.flapping and (not self.flap_threshold or now - st.changes[-1] >= self.flap_window)

    def _observe_speed(self, st: TargetState, target: Target, result: ProbeResult, alert) -> None:
        # Slowness is debounced like outages: failure_threshold slow probes in a row
        # raise one `slow` alert; success_threshold fast ones re-arm it.
        if result.slow:
            st.slow_streak += 1
            st.fast_streak = 0
            if not st.slow_alerted and st.slow_streak >= target.failure_threshold:
                st.slow_alerted = True
                slow_ms = (target.slow or 0.0) * 1000  # a result is only slow if `slow` is set
                alert(
                    "slow",
                    reason="slow",
                    latency_ms=result.latency_ms,
                    slow_ms=slow_ms,
                    detail=f"{st.slow_streak} probes slower than {slow_ms:g} ms",
                )
        else:
            st.fast_streak += 1
            st.slow_streak = 0
            if st.fast_streak >= target.success_threshold:
                st.slow_alerted = False

    def _observe_certificate(
        self, st: TargetState, target: Target, ts: float, tls: TlsDetails, alert
    ) -> None:
        previous = st.cert_not_after
        st.cert_not_after = tls.not_after
        if previous is not None and tls.not_after > previous and st.cert_alerted is not None:
            st.cert_alerted = None
            alert(
                "cert_renewed",
                subject=tls.subject,
                not_after=tls.not_after,
                previous_not_after=previous,
                days_left=tls.days_left,
                detail=f"new certificate {tls.subject}, {describe_expiry(tls.not_after, ts)}",
            )
        left = tls.not_after - ts
        crossed = [w for w in target.cert_alerts if left < w]
        if not crossed:
            return
        window = crossed[-1]  # the shortest one it is below
        if st.cert_alerted is not None and window >= st.cert_alerted:
            return
        st.cert_alerted = window
        alert(
            "cert_expiring",
            subject=tls.subject,
            not_after=tls.not_after,
            days_left=tls.days_left,
            step_days=round(window / DAY, 3),
            detail=f"certificate {tls.subject} {describe_expiry(tls.not_after, ts)}"
            + _chain_note(tls, ts),
        )
