"""Look-alike [[targets]] tables (_config.py `_Sibling`): a table like an earlier one but
for its name and URL is neither structured nor resolved again. What it loads into, and
every problem line, must be what the generic path (each table structured by cattrs and
resolved on its own) makes of it."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_monitor import ConfigError, _config, parse_config
from trio_monitor._config import ConfigFile, _Sibling, converter

ENV = {"TOKEN": "s3cret"}
MONITOR = {"interval": "30s"}
SERVER = {"listen": "127.0.0.1:0"}


def _doc(rest: dict[str, Any], *tables: dict[str, Any]) -> dict[str, Any]:
    """A first table with `rest`, then `tables`, each with `rest` too."""
    first = {"name": "t0", "url": "http://127.0.0.1:1/", **rest}
    return {
        "monitor": MONITOR,
        "server": SERVER,
        "alerts": {"webhook": [{"name": "ops", "url": "http://127.0.0.1:2/"}]},
        "targets": [first, *({**rest, **table} for table in tables)],
    }


def _outcome(doc: dict[str, Any]) -> object:
    """The Targets a document loads into, or its problem lines."""
    try:
        return parse_config(doc, env=ENV).targets
    except ConfigError as exc:
        return exc.problems


def _both(doc: dict[str, Any]) -> tuple[object, object]:
    """(with siblings, the generic path): each table structured and resolved alone."""
    fast = _outcome(doc)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_config, "_alike_key", lambda table, kind: None)
        generic = _outcome(doc)
    return fast, generic


SIBLINGS = [  # (rest, the sibling's own keys): siblings of a first table with `rest`
    ({}, {"name": "t1", "url": "http://127.0.0.1:1/x?q=1"}),
    ({}, {"url": "https://[::1]:8443/a%2Fb"}),  # no name: the URL names it
    ({}, {"name": "  padded  ", "url": "http://a.test/"}),
    (
        {"interval": "10s", "timeout": "2s", "retries": 2, "expect_status": [200, "3xx"]},
        {"name": "t1", "url": "http://127.0.0.1:3/"},
    ),
    (
        {"headers": {"X-Token": "${TOKEN}", "Accept": "text/plain"}, "contains": "ok"},
        {"name": "t1", "url": "http://127.0.0.1:3/"},
    ),
    (
        {"labels": {"team": "a"}, "group": "Web", "alerts": {"notify": ["ops"]}},
        {"name": "t1", "url": "http://127.0.0.1:3/"},
    ),
    ({"conditions": ["[STATUS] == 200"], "kind": "http"}, {"name": "t1", "url": "http://b.test/"}),
    ({"method": "POST", "json": {"a": [1, 2.5]}}, {"name": "t1", "url": "http://b.test/"}),
    ({"bearer_token": "${TOKEN}"}, {"name": "t1", "url": "http://b.test/"}),
]

PROBLEMS = [  # siblings whose tables have problems of each kind
    ({}, {"name": "t0", "url": "http://127.0.0.1:1/"}),  # a duplicate name
    ({}, {"name": "", "url": "http://127.0.0.1:1/"}),
    ({}, {"name": "a\nb", "url": "http://127.0.0.1:1/"}),
    ({}, {"name": 7, "url": "http://127.0.0.1:1/"}),  # no string: the generic path says so
    ({}, {"name": "t1", "url": "http://user:pw@127.0.0.1:1/"}),  # userinfo: no sibling
    ({}, {"name": "t1", "url": "HTTP://127.0.0.1:1/"}),
    ({}, {"name": "t1", "url": "http://127.0.0.1:80/"}),
    ({}, {"name": "t1", "url": "http://127.0.0.1:99999/"}),
    ({}, {"name": "t1", "url": "ftp://127.0.0.1/"}),
    ({}, {"name": "t1", "url": "tcp://127.0.0.1:1"}),  # another kind
    ({}, {"name": "t1", "url": ["http://127.0.0.1:1/"]}),
    ({}, {"name": "t1"}),  # no url
    ({"interval": "0s"}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
    ({"retries": True}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
    ({"bogus": 1}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
    ({"expect_status": ["9xx"]}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
    ({"headers": {"Content-Length": "1"}}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
    ({"headers": {"X-A": "${NOPE}"}}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
    ({"min_addresses_ok": 1}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
    ({"confirm_interval": "5m"}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
    ({"depends_on": ["nope"]}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
    ({"depends_on": ["t0"]}, {"name": "t1", "url": "http://127.0.0.1:1/"}),  # t0 on itself
    ({"alerts": {"notify": ["nobody"]}}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
    ({"conditions": ["[NOPE] == 1"]}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
    ({"kind": "browser"}, {"name": "t1", "url": "http://127.0.0.1:1/"}),  # kind without spec_url
    ({"ca_file": "/nonexistent/ca.pem"}, {"name": "t1", "url": "https://127.0.0.1:1/"}),
    ({"group": " "}, {"name": "t1", "url": "http://127.0.0.1:1/"}),
]


@pytest.mark.parametrize(("rest", "own"), SIBLINGS)
def test_a_sibling_loads_into_what_the_generic_path_makes(rest, own):
    doc = _doc(rest, own, {**own, "name": "t2"})
    fast, generic = _both(doc)
    assert isinstance(fast, tuple), fast
    assert fast == generic
    # ... and it was one: not structured again
    assert [type(t) for t in converter.structure(doc, ConfigFile).targets][1:] == [_Sibling] * 2


@pytest.mark.parametrize(("rest", "own"), PROBLEMS)
def test_a_table_with_a_problem_says_what_the_generic_path_says(rest, own):
    # the first sibling's problem, then the same table again (its resolution cached or not)
    fast, generic = _both(_doc(rest, own, own))
    assert isinstance(fast, list), fast
    assert fast == generic


def test_a_value_nested_past_the_stack_loads_as_the_generic_path_loads_it():
    """No key for it (a RecursionError): its table is structured alone, and says the one
    line the generic path says (a document built in Python: TOML nests far less)."""
    deep: list[Any] = []
    for _ in range(sys.getrecursionlimit()):
        deep = [deep]
    fast, generic = _both(_doc({"bogus": deep}, {"name": "t1", "url": "http://b.test/"}))
    assert fast == generic == [f"<memory>: targets[{i}].bogus: unknown key" for i in (0, 1)]


NAMES = st.one_of(st.none(), st.sampled_from(["t0", "t1", "t2", "", " t ", "a\tb", 3]), st.text())
URLS = st.one_of(
    st.sampled_from(["http://127.0.0.1:1/", "http://a.test/x?q", "https://[::1]:8443/"]),
    st.builds(
        "".join,
        st.tuples(
            st.sampled_from(["http://", "https://", "HTTP://", "tcp://", ""]),
            st.sampled_from(["127.0.0.1", "a.test", "A.test", "[::1]", "u:p@a.test", "a..b"]),
            st.sampled_from(["", ":1", ":80", ":443", ":0", ":99999"]),
            st.sampled_from(["", "/", "/x", "/%zz", "/./x", "/x?q", "#f"]),
        ),
    ),
)
VALUES = {  # a few good values of each key, and bad ones
    "interval": ["10s", "1m", "0s", 5, 1.5],
    "timeout": ["2s", "1h"],
    "retries": [0, 2, True],
    "expect_status": [[200], [200, "3xx"], ["9xx"], []],
    "headers": [
        {"X-A": "b", "Accept": "*/*"},
        {"X-A": "${TOKEN}"},
        {"Host": "h"},
        {"X-A": "${NOPE}"},
    ],
    "contains": ["ok", ""],
    "kind": ["http", "tcp"],
    "depends_on": [["t0"], ["t1"], []],
    "labels": [{"team": "a"}, {"0bad": "x"}],
    "min_addresses_ok": [1],
    "verify_tls": [False],
    "method": ["GET", "G T"],
    "bogus": [1],
}
REST = st.lists(
    st.sampled_from([(key, value) for key, values in VALUES.items() for value in values]),
    max_size=3,
).map(dict)


@pytest.mark.fuzz
@settings(max_examples=200, deadline=None, database=None)
@given(rest=REST, tables=st.lists(st.tuples(NAMES, URLS), min_size=1, max_size=4))
def test_any_tables_load_as_the_generic_path_loads_them(rest, tables):
    own = [{"url": url} if name is None else {"name": name, "url": url} for name, url in tables]
    fast, generic = _both(_doc(rest, *own))
    assert fast == generic
