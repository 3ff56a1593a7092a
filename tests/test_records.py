"""The per-probe encodings' fast paths give exactly what the plain ones did: the records'
JSON form (datetime's formatting, cattrs' default unstructuring), latency buckets and
phase codes (store/records.py)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import cattrs
import orjson
import pytest
from cattrs.gen import make_dict_unstructure_fn, override
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trio_monitor import _records
from trio_monitor._records import (
    PHASES,
    SCHEMA,
    TS_MAX,
    TS_MIN,
    AlertEvent,
    ProbeResult,
    PushDetails,
    Record,
    RoundSummary,
    TargetRemoved,
    rfc3339,
    to_dict,
    to_json,
)
from trio_monitor.net.certs import TlsDetails
from trio_monitor.store.records import (
    BASE,
    FLOOR_MS,
    MAX_BUCKET,
    PhaseHistograms,
    bucket_of,
    encode_phases,
)

EXAMPLES = settings(max_examples=2000, deadline=None, database=None)


def _datetime_rfc3339(ts: float) -> str:
    """What rfc3339 was: datetime's formatting of the time."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _edges(second: int) -> list[float]:
    """Times around a second's edges, where rounding to microseconds carries over."""
    out = []
    for base in (float(second), second + 1.0):
        x = base
        for _ in range(3):
            x = math.nextafter(x, -math.inf)
            out.append(x)
        out += [base, math.nextafter(base, math.inf), base - 5e-7, base + 5e-7]
    return out


@pytest.mark.fuzz
@EXAMPLES
@given(
    second=st.integers(int(TS_MIN), int(TS_MAX)),
    fracs=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=4),
    neighbour=st.floats(TS_MIN, TS_MAX),
)
@example(second=0, fracs=[0.0], neighbour=-0.0)
@example(second=-1, fracs=[0.9999995, 0.0009995], neighbour=-0.0005)
@example(second=1_800_000_000, fracs=[0.9995, 0.0005], neighbour=1_799_999_999.9999996)
def test_rfc3339_is_datetimes_formatting(second: int, fracs: list[float], neighbour: float):
    """Any time in range, and runs of times in one second (the cache's case), negative
    ones and those that round into the next second included."""
    times = [second + f for f in fracs] + _edges(second) + [neighbour, -neighbour]
    for ts in times:
        if TS_MIN <= ts <= TS_MAX:
            assert rfc3339(ts) == _datetime_rfc3339(ts), repr(ts)


@pytest.mark.parametrize("ts", [math.nan, math.inf, -math.inf, TS_MAX + 1, TS_MIN - 1, 1e20])
def test_rfc3339_out_of_range_raises_as_datetime_does(ts: float):
    rfc3339(1_800_000_000.5)  # a second in the cache
    with pytest.raises((ValueError, OverflowError)) as expected:
        _datetime_rfc3339(ts)
    with pytest.raises(expected.type, match=re.escape(str(expected.value))):
        rfc3339(ts)


def test_rfc3339_formats_a_second_once(monkeypatch: pytest.MonkeyPatch):
    """A second's text is formatted once, then reused for every time in that second,
    also after other seconds (an HTTPS line's certificate times) came between."""
    seconds: dict[float, str] = {}
    monkeypatch.setattr(_records, "_seconds", seconds)
    assert rfc3339(1_800_000_000.25) == "2027-01-15T08:00:00.250Z"
    assert rfc3339(1_900_000_000.0) == "2030-03-17T17:46:40.000Z"
    assert seconds == {
        1_800_000_000.0: "2027-01-15T08:00:00",
        1_900_000_000.0: "2030-03-17T17:46:40",
    }
    seconds[1_800_000_000.0] = "cached"
    assert rfc3339(1_800_000_000.9999) == "cached.999Z"
    assert rfc3339(1_800_000_000.9999996) == "2027-01-15T08:00:01.000Z"  # rounds over
    monkeypatch.setattr(_records, "_SECONDS_KEPT", 2)
    assert rfc3339(2_000_000_000.5) == "2033-05-18T03:33:20.500Z"
    assert seconds == {2_000_000_000.0: "2033-05-18T03:33:20"}  # full: emptied first


# --- to_dict / to_json: what the converter's default unstructuring gave -------------


def _plain_converter() -> cattrs.Converter:
    """The records' converter as it was: cattrs' defaults, times as RFC 3339 text."""
    plain = cattrs.Converter()
    for cls, times in _records._TIMES:
        hooks: dict[str, Any] = {
            name: override(unstruct_hook=lambda t: None if t is None else _datetime_rfc3339(t))
            for name in times
        }
        plain.register_unstructure_hook(cls, make_dict_unstructure_fn(cls, plain, **hooks))
    return plain


PLAIN = _plain_converter()
TIMES = st.floats(TS_MIN, TS_MAX)
LABELS = st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
TLS = st.builds(TlsDetails, not_before=TIMES, not_after=TIMES, earliest_not_after=TIMES)
PUSH = st.builds(PushDetails, last_ping=st.none() | TIMES, next_due=st.none() | TIMES)
PROBES = st.builds(
    ProbeResult,
    ts=TIMES,
    **{
        f.name: st.none() | TLS
        if f.name == "tls"
        else st.none() | PUSH
        if f.name == "push"
        else ...
        for f in attrs.fields(ProbeResult)
        if f.default is not attrs.NOTHING
    },
)
ALERTS = st.builds(
    AlertEvent,
    ts=TIMES,
    since=st.none() | TIMES,
    not_after=st.none() | TIMES,
    previous_not_after=st.none() | TIMES,
    **{
        f.name: ...
        for f in attrs.fields(AlertEvent)
        if f.default is not attrs.NOTHING
        and f.name not in {"since", "not_after", "previous_not_after"}
    },
)
OTHERS = st.one_of(
    st.builds(RoundSummary, ts=TIMES, lag_p50_ms=..., drops=..., sent=...),
    st.builds(TargetRemoved, ts=TIMES, since=st.none() | TIMES, url=..., labels=...),
)


@pytest.mark.fuzz
@settings(max_examples=300, deadline=None, database=None)
@given(record=PROBES | ALERTS | OTHERS, labels=LABELS)
def test_lines_are_the_plain_converters(record: Record, labels: dict[str, str] | None):
    """Every field, same value and same type (repr: an enum member is not its text),
    in the same order; the JSON line byte for byte."""
    expected = {"schema": SCHEMA, "type": record.type, **PLAIN.unstructure(record)}
    if isinstance(record, ProbeResult):
        expected["labels"] = dict(labels) if labels else None
    assert repr(to_dict(record, labels)) == repr(expected)
    line = _outcome(lambda: orjson.dumps(expected, option=orjson.OPT_APPEND_NEWLINE))
    assert _outcome(lambda: to_json(record, labels)) == line  # an int past 64 bits: both fail


def _outcome(encode: Callable[[], bytes]) -> bytes | type[Exception]:
    try:
        return encode()
    except Exception as exc:
        return type(exc)


# --- store/records.py: latency buckets and phase codes -----------------------------


def _reference_bucket(ms: float) -> int:
    """bucket_of as it was written first."""
    if ms < FLOOR_MS:
        return 0
    return min(MAX_BUCKET, int(math.log(ms / FLOOR_MS) / math.log(BASE)) + 1)


MS = st.floats(0.0, 1e300) | st.sampled_from([FLOOR_MS, 0.0999999, 1e30, 1e40, 5e-324])
PHASE_MS = st.dictionaries(st.sampled_from(PHASES), st.none() | MS)


@pytest.mark.fuzz
@EXAMPLES
@given(ms=MS)
def test_bucket_of_is_the_min_formula(ms: float):
    assert bucket_of(ms) == _reference_bucket(ms)


@pytest.mark.fuzz
@EXAMPLES
@given(samples=st.lists(PHASE_MS, max_size=5))
def test_phase_codes_and_their_histograms_are_the_reference_ones(
    samples: list[dict[str, float | None]],
):
    """Each phase's code is 0 (it did not happen) or its bucket + 1, the top bucket
    sharing the one below's; PhaseHistograms counts phase index * 256 + bucket, from
    the code or (add_phases, the view's way) straight from the phases."""
    histograms, direct, expected = PhaseHistograms(), PhaseHistograms(), Counter[int]()
    for phases in samples:
        code = encode_phases(phases)
        codes = [
            0 if (ms := phases.get(p)) is None else min(_reference_bucket(ms), 254) + 1
            for p in PHASES
        ]
        assert code == bytes(codes)
        assert code is not None
        histograms.add(code)
        direct.add_phases(phases)
        expected.update(i * 256 + c - 1 for i, c in enumerate(codes) if c)
    assert histograms.counts == dict(expected)
    assert direct.counts == histograms.counts  # add_phases: the same without the code
    assert encode_phases(None) is None
