"""Runtime silences: the POST body's parser (one line per problem, fuzzed), the API's
write rules (a token), the history store (kept across restarts, pruned), and what
the API says of a held target."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time

import attrs
import pytest
from factories import config_doc, make_config
from fakes import silence_desk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server import TOKEN, FakeView, serving, target_status

from trio_monitor._config import StorageSection
from trio_monitor.policy import Silence
from trio_monitor.server.silences import BadSilence, parse_silence
from trio_monitor.store import StoreStats, open_store
from trio_monitor.store.maintenance import StoreMaintenance
from trio_monitor.store.reader import HistoryReader
from trio_monitor.store.silences import active_silences, save_silence

NOW = 1_800_000_000.0
KNOWN = {"api", "db"}


def parsed(body: object) -> dict:
    return parse_silence(json.dumps(body).encode(), NOW, KNOWN)


def problem(body: object | bytes) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(BadSilence) as caught:
        parse_silence(raw, NOW, KNOWN)
    return str(caught.value)


def test_a_good_body():
    assert parsed(
        {"targets": ["api", "api"], "duration": "2h", "comment": " upgrade ", "author": "ops"}
    ) == {
        "until": NOW + 7200,
        "match": None,
        "targets": ("api",),
        "comment": "upgrade",
        "author": "ops",
    }
    labelled = parsed({"match": {"team": "pay"}, "until": "2027-01-15T10:00:00Z"})
    assert (labelled["match"], labelled["until"], labelled["targets"]) == (
        {"team": "pay"}, NOW + 7200, (),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b"{", 'the body is not JSON: send an object like {"targets": ["api"], "duration": "2h"}'),
        ([], "the body must be a JSON object"),
        ({"targets": ["api"], "duration": "1h", "x": 1}, "unknown key 'x' (use author, comment, duration, match, targets, until)"),
        ({"duration": "1h"}, "set match (labels; {} for every target) or targets (names)"),
        ({"targets": "api", "duration": "1h"}, 'targets: expected a list of target names like ["api"]'),
        ({"targets": ["nope"], "duration": "1h"}, "targets: no target named 'nope'"),
        ({"match": {"bad name": "x"}, "duration": "1h"}, "match: label name 'bad name': letters, digits and _ (not a digit first), at most 64"),
        ({"targets": ["api"]}, 'set until (an RFC 3339 time) or duration (like "2h"), one of them'),
        ({"targets": ["api"], "duration": "1h", "until": "2027-01-15T10:00:00Z"}, 'set until (an RFC 3339 time) or duration (like "2h"), one of them'),
        ({"targets": ["api"], "duration": "soon"}, "duration: invalid duration 'soon' (use e.g. \"500ms\", \"10s\", \"5m\", \"1h30m\")"),
        ({"targets": ["api"], "duration": "400d"}, "a silence lasts a year at most"),
        ({"targets": ["api"], "until": "2027-01-15T07:00:00Z"}, "until: 2027-01-15T07:00:00Z is not in the future"),
        ({"targets": ["api"], "until": "2027-01-15T10:00:00"}, "until: expected an RFC 3339 time like 2026-12-01T02:00:00Z, got '2027-01-15T10:00:00'"),
        ({"targets": ["api"], "until": 5}, "until: expected an RFC 3339 time like 2026-12-01T02:00:00Z, got 5"),
        ({"targets": ["api"], "duration": "1h", "comment": 3}, "comment: expected text of 1000 characters at most"),
    ],
)  # fmt: skip
def test_each_bad_body_is_one_line(body, line):
    assert problem(body) == line


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
BODIES = st.fixed_dictionaries(
    {},
    optional={
        "match": st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3) | JSON_VALUES,
        "targets": st.lists(st.sampled_from(["api", "db", "x"]) | st.text(max_size=5)) | JSON_VALUES,
        "until": st.datetimes().map(lambda d: d.isoformat() + "Z") | st.text(max_size=30) | JSON_VALUES,
        "duration": st.sampled_from(["1h", "0s", "1ms", "9999d", "1h30m"]) | st.text(max_size=8) | JSON_VALUES,
        "comment": JSON_VALUES,
        "author": JSON_VALUES,
    },
)  # fmt: skip


@pytest.mark.fuzz
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES | JSON_VALUES)
def test_any_json_body_is_a_silence_or_one_line(body):
    try:
        fields = parse_silence(json.dumps(body).encode(), NOW, KNOWN)
    except BadSilence as exc:
        line = str(exc)
    else:
        line = None
        assert NOW < fields["until"] <= NOW + 366 * 86400
        assert set(fields["targets"]) <= KNOWN
        assert fields["match"] is not None or fields["targets"]
    assert line is None or (line and "\n" not in line)


@pytest.mark.fuzz
@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_bytes_are_a_silence_or_one_line(raw):
    line = ""
    try:
        parse_silence(raw, NOW, KNOWN)
    except BadSilence as exc:
        line = str(exc)
    assert "\n" not in line


# --- the API --------------------------------------------------------------------------


async def test_without_a_token_silences_can_be_read_but_not_written():
    async with serving(FakeView(target_status("api"))) as served, served.client() as client:
        assert (await client.get("/api/v1/silences")).json() == {"silences": []}
        refused = await client.post("/api/v1/silences", json={"targets": ["api"], "duration": "1h"})
        assert refused.status_code == 403
        assert refused.json()["error"].startswith("managing silences needs [server] token")
        assert (await client.delete("/api/v1/silences/x")).status_code == 403


async def test_a_silenced_target_says_so_in_the_api():
    desk = silence_desk()
    view = FakeView(target_status("api"), target_status("db"))
    async with (
        serving(view, token=TOKEN, silences=desk) as served,
        served.client(TOKEN) as client,
    ):
        added = (
            await client.post(
                "/api/v1/silences",
                json={"match": {"team": "pay"}, "duration": "1h", "comment": "c", "author": "a"},
            )
        ).json()
        targets = {t["name"]: t for t in (await client.get("/api/v1/targets")).json()}
        assert targets["api"]["maintenance"] == f"silence:{added['id']}"
        assert targets["db"]["maintenance"] is None
        one = (await client.get("/api/v1/targets/api")).json()
        assert one["maintenance"] == f"silence:{added['id']}"
        shown = (await client.get("/api/v1/maintenance")).json()
        assert shown == {"windows": [], "silences": [added]}
        ended = (await client.delete(f"/api/v1/silences/{added['id']}")).json()
        assert ended["active"] is False
        targets = {t["name"]: t for t in (await client.get("/api/v1/targets")).json()}
        assert targets["api"]["maintenance"] is None
        assert (await client.get("/api/v1/silences")).json() == {"silences": []}


async def test_windows_holding_now_or_soon_are_shown_with_their_targets():
    now = time.time()
    doc = config_doc(
        {"name": "api", "url": "http://127.0.0.1/", "labels": {"team": "pay"}},
        {"name": "db", "url": "http://127.0.0.2/"},
    )
    rfc = lambda ts: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))  # noqa: E731
    doc["maintenance"] = [
        {"name": "now", "match": {"team": "pay"}, "start": rfc(now - 60), "end": rfc(now + 600)},
        {"name": "soon", "targets": ["db"], "start": rfc(now + 3600), "end": rfc(now + 7200)},
        {"name": "later", "targets": ["db"], "start": rfc(now + 8 * 86400), "end": rfc(now + 9 * 86400)},
        {"name": "past", "targets": ["db"], "start": rfc(now - 7200), "end": rfc(now - 3600)},
    ]  # fmt: skip
    desk = silence_desk(make_config(doc))
    async with (
        serving(FakeView(target_status("api")), silences=desk) as served,
        served.client() as client,
    ):
        shown = (await client.get("/api/v1/maintenance")).json()
        (api,) = (await client.get("/api/v1/targets")).json()
    assert [(w["name"], w["active"], w["targets"]) for w in shown["windows"]] == [
        ("now", True, ["api"]),
        ("soon", False, ["db"]),
    ]
    assert api["maintenance"] == "maintenance:now"


# --- the store ------------------------------------------------------------------------


def test_silences_are_kept_in_history_and_read_back(tmp_path):
    path = str(tmp_path / "h.db")
    kept = Silence("a1", NOW, NOW + 3600, match={"team": "pay"}, comment="c", author="ops")
    by_name = Silence("b2", NOW + 10, NOW + 60, targets=("api", "db"))
    save_silence(path, kept)
    save_silence(path, by_name)
    assert active_silences(path, NOW + 30) == [kept, by_name]
    save_silence(path, attrs.evolve(by_name, until=NOW + 20))  # expired early
    assert active_silences(path, NOW + 30) == [kept]
    with HistoryReader(path) as reader:
        assert reader.silences(NOW + 15, NOW + 16) == [kept, attrs.evolve(by_name, until=NOW + 20)]
        assert reader.silences(NOW + 3600, NOW + 7200) == []


async def test_silences_over_for_longer_than_rollups_are_kept_are_pruned(tmp_path):
    path = str(tmp_path / "h.db")
    open_store(path).close()
    storage = StorageSection(raw_retention=3600.0, rollup_retention=86400.0)
    save_silence(path, Silence("old", NOW - 3 * 86400, NOW - 2 * 86400, match={}))
    save_silence(path, Silence("recent", NOW - 3600, NOW - 60, match={}))
    maintenance = StoreMaintenance(path, storage, StoreStats(), now=lambda: NOW)
    try:
        assert await maintenance.run_once()
    finally:
        await maintenance.aclose()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM silences")] == ["recent"]
