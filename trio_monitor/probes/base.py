"""The probe seam: what a probe kind is, and the registry that finds one.

A kind is one module that registers a `ProbeKind`: the URL schemes it answers, the
config keys of its targets (an attrs subclass of `TargetSection`: the tag of the
targets' tagged union), how those keys resolve into its frozen spec, and how to open
its `Prober` for a run. Nothing outside the kind's module knows its keys or its
protocol: the scheduler asks a prober for a plan once per target and probes the plan;
every consumer reads the `ProbeResult` it returns.

    register(ProbeKind(name="echo", schemes=frozenset({"echo"}), section=...,
                       resolver=..., open=...))
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import trio
from attrs import field, frozen

from .._errors import RETRYABLE, ProbeFailure
from .._records import PHASES, ProbeResult
from .._registry import Registry
from ..conditions import Type

if TYPE_CHECKING:
    from .._config import Config, MonitorSection, Target, TargetSection


BACKOFF_BASE = 0.1  # seconds before a kind's first retry; doubles each time
BACKOFF_CAP = 5.0


def backoff_delay(retry: int, rng: random.Random) -> float:
    """Exponential backoff with jitter: retry 0 -> 50-100 ms, 1 -> 100-200 ms, ..."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2**retry)
    return ceiling * rng.uniform(0.5, 1.0)


async def retry_after(
    failure: ProbeFailure, retry: int, retries: int, deadline: trio.CancelScope, rng: random.Random
) -> bool:
    """After attempt `retry` (0 for the first) of a probe's retry loop failed with
    `failure`: sleep the backoff and return True if another attempt follows; False if
    `failure` is the probe's: its kind is not RETRYABLE, the target's `retries` are used
    up, or the backoff would end past `deadline` (then the real error is reported, not a
    timeout).

    Only this decision is shared: each kind's loop keeps its own attempt count, its
    per-attempt record and the exception classification in its own frame, where they
    stay right when the deadline cancels an attempt midway, at no cost on the path of a
    probe whose first attempt succeeds (the HTTP kind's hot path calls nothing here)."""
    if failure.kind not in RETRYABLE or retry == retries:
        return False
    delay = backoff_delay(retry, rng)
    if trio.current_time() + delay >= deadline.deadline:
        return False
    await trio.sleep(delay)
    return True


def phases_ms(seconds: Mapping[str, float]) -> dict[str, float | None] | None:
    """An attempt's phase times (seconds, the phases that happened) as
    ProbeResult.phases_ms: every one of PHASES in ms, None where it did not happen;
    None if none did."""
    if not seconds:
        return None
    return {p: None if (s := seconds.get(p)) is None else round(s * 1000, 3) for p in PHASES}


def failed(target: Target, round_no: int, failure: ProbeFailure, ts: float) -> ProbeResult:
    """The line of a probe that got no answer at all: `failure` says why."""
    return ProbeResult(
        ts=ts,
        target=target.name,
        url=target.url,
        ok=False,
        status=None,
        latency_ms=None,
        error=failure.kind,
        error_detail=failure.detail,
        attempts=1,
        round=round_no,
        kind=target.kind,
    )


class Plan(Protocol):
    """What a prober builds once per target, so that a probe does no setup work."""

    @property
    def target(self) -> Target: ...

    @property
    def limit_key(self) -> str:
        """What `per_host` counts: probes with the same key share one limit."""
        ...


P = TypeVar("P", bound=Plan)


class Prober(Protocol[P]):
    """Probes the targets of one kind during one run of the monitor; `P` is its plan."""

    def prepare(self, target: Target) -> P: ...

    async def probe(self, plan: P, round_no: int, deadlines: set[trio.CancelScope]) -> ProbeResult:
        """Probe once within the target's timeout; never raise but Cancelled.

        The probe puts its deadline scope in `deadlines` while it runs, so that the
        scheduler can push it back by time the event loop was stalled.
        """
        ...

    async def reconfigure(self, old: Config, new: Config) -> None:
        """A reload was applied: release what no target of `new` uses any more."""
        ...


class OnFirstPrepare(Generic[P]):
    """A prober built when it prepares its first target: a kind no target uses costs a run
    nothing (for dns://, importing dnspython: a tenth of every start)."""

    def __init__(self, build: Callable[[], Prober[P]]) -> None:
        self._build = build
        self._prober: Prober[P] | None = None

    def prepare(self, target: Target) -> P:
        if self._prober is None:
            self._prober = self._build()
        return self._prober.prepare(target)

    async def probe(self, plan: P, round_no: int, deadlines: set[trio.CancelScope]) -> ProbeResult:
        assert self._prober is not None  # plans come from prepare()
        return await self._prober.probe(plan, round_no, deadlines)

    async def reconfigure(self, old: Config, new: Config) -> None:
        if self._prober is not None:
            await self._prober.reconfigure(old, new)


# Resolves one [[targets]] table of the kind (already structured as its section class)
# into its spec; `where` is the key path for problems ("targets[3]").
Resolve = Callable[[Any, str, list[str]], object]


def compile_expect(pattern: str | None, key: str, problems: list[str]) -> re.Pattern[str] | None:
    """An `expect` key (tcp, tls, ws): a Python regex compiled at config load; a bad one
    is a problem line at `key` that quotes it, saying what is wrong and where."""
    if pattern is None:
        return None
    try:
        return compile_regex(pattern)
    except ValueError as exc:
        problems.append(f"{key}: invalid regular expression {pattern!r}: {exc}")
    return None


def compile_regex(pattern: str) -> re.Pattern[str]:
    """A user's regular expression (`expect`, `match_re`), or ValueError saying why not:
    re's own error, a repeat count past its limit ("a{99999999999}"), groups nested
    too deeply for its parser, or a pattern whose meaning a future Python changes
    ("[[": a FutureWarning, which would otherwise go to stderr at every load)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        try:
            return re.compile(pattern)
        except (re.error, OverflowError, FutureWarning) as exc:
            why = str(exc)
        except RecursionError:  # re's parser recurses once per group: "((((...))))"
            why = "groups nested too deeply"
    raise ValueError(why)


@frozen
class ProbeKind:
    name: str  # the `kind` key and the results' `kind` field
    # URL schemes that choose this kind when `kind` is not set; none: its targets take
    # no `url` (push), their `name` is required and Target.url shows "KIND:NAME"
    schemes: frozenset[str]
    section: type[TargetSection]  # the keys its targets may have (a subclass)
    # once per config: the [monitor] defaults (and ${ENV}) -> a Resolve for its targets;
    # problems with the defaults themselves are appended to the list
    resolver: Callable[[MonitorSection, Mapping[str, str], list[str]], Resolve]
    open: Callable[[Config], AbstractAsyncContextManager[Prober[Any]]]
    # one short line for an ok result ("HTTP 200 in 3.2 ms"), e.g. in `up` alerts
    describe: Callable[[ProbeResult], str] = lambda r: f"ok in {r.latency_ms:g} ms"
    # the placeholders its targets' `conditions` may read (name without brackets ->
    # type; conditions.COMMON has those of every kind that connects); its probe hands
    # their values to conditions.apply
    placeholders: Mapping[str, Type] = field(factory=dict)
    # (placeholder, key) -> why a condition cannot read that key, naming it (browser:
    # the CSS selector after [SELECTOR]), None when it can; checked at load, so a key that
    # could never be read is a config problem, not a probe failing at every run
    key_problem: Callable[[str, str], str | None] = lambda name, key: None
    # why its targets need a [server] section (push: pings arrive there); "": they don't
    needs_server: str = ""
    # other kinds' schemes its URLs may have: such a target chooses it with `kind`
    # (browser: http:// and https:// pages, whose scheme chooses http)
    shared_schemes: frozenset[str] = frozenset()
    # the field of its spec that holds the target's URL, when the spec depends on a URL
    # in httpx's own form without userinfo (_config.is_normal_url) through that field
    # only: then the tables of a big config that differ only in name and such a URL
    # are resolved once (_config.py `_Sibling`); None: each is resolved on its own
    spec_url: str | None = None

    @property
    def url_schemes(self) -> frozenset[str]:
        """The schemes its targets' URLs may have (none: it takes no url)."""
        return self.schemes | self.shared_schemes


_KINDS: Registry[ProbeKind] = Registry(lambda kind: kind.name)
kinds, find, get = _KINDS.__iter__, _KINDS.find, _KINDS.get
# scheme -> its kind, and every scheme, kept with the registry: looked up once or
# twice per target of a config
_BY_SCHEME: dict[str, ProbeKind] = {}
_SCHEMES: frozenset[str] = frozenset()


def _index() -> None:
    global _BY_SCHEME, _SCHEMES
    _BY_SCHEME = {s: k for k in _KINDS for s in k.schemes}
    _SCHEMES = frozenset(_BY_SCHEME)


def register(kind: ProbeKind) -> None:
    """Make a kind available to configs parsed from now on; a scheme has one kind."""
    taken = {s for k in _KINDS if k.name != kind.name for s in k.schemes}
    if kind.schemes & taken:
        raise ValueError(f"scheme {sorted(kind.schemes & taken)[0]!r} already has a kind")
    _KINDS.register(kind)
    _index()


def unregister(name: str) -> None:
    _KINDS.unregister(name)
    _index()


def for_scheme(scheme: str) -> ProbeKind | None:
    return _BY_SCHEME.get(scheme)


def schemes() -> frozenset[str]:
    """Every registered kind's URL schemes."""
    return _SCHEMES


def describe(result: ProbeResult) -> str:
    kind = _KINDS.find(result.kind)
    return kind.describe(result) if kind is not None else f"ok in {result.latency_ms} ms"
