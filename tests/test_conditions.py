"""Conditions (trio_monitor/conditions/): Gatus's syntax compiled at config load,
checked per probe by `apply`; every placeholder and function, the type checks, the
config's problem lines, and a kind (tests/line_kind.py) using them end to end."""

from __future__ import annotations

import functools
import io
import json
import socket

import line_kind
import pytest
import trio
from factories import probe_result
from hypothesis import given
from hypothesis import strategies as st

from trio_monitor import ConfigError, ErrorKind, parse_config, run_monitor
from trio_monitor._records import ConditionResult, to_dict
from trio_monitor.conditions import (
    COMMON,
    Condition,
    ConditionError,
    Type,
    apply,
    common_facts,
    compile_condition,
)
from trio_monitor.conditions._compile import Scope

# placeholders as the http kind declares them, and DNS_RCODE to have a TEXT one
KIND = {
    **COMMON,
    "STATUS": Type.NUMBER,
    "BODY": Type.BODY,
    "HEADER": Type.FIELDS,
    "CERTIFICATE_EXPIRATION": Type.DURATION,
    "DNS_RCODE": Type.TEXT,
}
BODY = b'{"status": "UP", "items": [{"id": 1}, {"id": 2}], "name": "john.doe", "age": 1, "id": 1, "nested": {"a": [10, 20]}, "count": "7", "none": null, "empty": ""}'
FACTS = {
    "STATUS": 200,
    "BODY": BODY,
    "HEADER": {"content-type": "application/json", "x-count": "12"},
    "CERTIFICATE_EXPIRATION": 30 * 86_400_000.0,
    "RESPONSE_TIME": 123.4,
    "CONNECTED": True,
    "IP": "127.0.0.1",
    "PHASE": {"dns": None, "connect": 0.4, "tls": 2.5, "ttfb": 1.0, "transfer": 0.1},
    "DNS_RCODE": "NOERROR",
}


def check(text: str, **facts: object) -> tuple[bool, str | None]:
    ok, actual, _detail = compile_condition(text, KIND).check(Scope(FACTS | facts))
    return ok, actual


def problem(text: str) -> str:
    with pytest.raises(ConditionError) as info:
        compile_condition(text, KIND, kind="http", known=[*KIND, "EXIT_CODE"])
    return str(info.value)


# --- each placeholder ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ok", "actual"),
    [
        ("[STATUS] == 200", True, "200"),
        ("[STATUS] != 200", False, "200"),
        ("[STATUS] < 300", True, "200"),
        ("[STATUS] <= 199", False, "200"),
        ("[STATUS] > 400", False, "200"),
        ("[STATUS] >= 200", True, "200"),
        ("[STATUS] == 200.0", True, "200"),
        ("[status] == 200", True, "200"),  # placeholder names as Gatus: any case
        ("200 == [STATUS]", True, "200"),
        ("300 > [STATUS]", True, "200"),
        ("[RESPONSE_TIME] < 500", True, "123.4ms"),
        ("[RESPONSE_TIME] < 100ms", False, "123.4ms"),
        ("[RESPONSE_TIME] < 1s", True, "123.4ms"),
        ("[CERTIFICATE_EXPIRATION] > 48h", True, "720h"),
        ("[CERTIFICATE_EXPIRATION] > 31d", False, "720h"),
        ("[CERTIFICATE_EXPIRATION] > 2592000001", False, "720h"),
        ("[CONNECTED] == true", True, "true"),
        ("[CONNECTED] == TRUE", True, "true"),
        ("[CONNECTED] == false", False, "true"),
        ("[IP] == 127.0.0.1", True, "127.0.0.1"),
        ("[IP] != 127.0.0.1", False, "127.0.0.1"),
        ("[DNS_RCODE] == NOERROR", True, "NOERROR"),
        ("[HEADER].content-type == application/json", True, "application/json"),
        ("[HEADER].Content-Type == application/json", True, "application/json"),
        ("[HEADER].x-count > 10", True, "12"),
        ("[HEADER].x-missing == a", False, None),
        ("[PHASE].tls < 5", True, "2.5ms"),
        ("[PHASE].tls < 2ms", False, "2.5ms"),
        ("[PHASE].dns < 5", False, None),  # the phase did not happen: missing
    ],
)
def test_each_placeholder(text, ok, actual):
    assert check(text) == (ok, actual)


@pytest.mark.parametrize(
    ("text", "ok", "actual"),
    [
        ("[BODY].status == UP", True, "UP"),
        ("[BODY].status == DOWN", False, "UP"),
        ("[BODY].items[0].id == 1", True, "1"),
        ("[BODY].items[1].id == 1", False, "2"),
        ("[BODY].nested.a[1] > 15", True, "20"),
        ("[BODY].age == [BODY].id", True, "1"),
        ("[BODY].count == 7", True, "7"),  # text that is a number equals the number
        ("[BODY].count > 5", True, "7"),
        ("[BODY].status > 5", False, "UP"),  # not a number: fails (Gatus reads it as 0)
        ("[BODY].none == null", True, "null"),
        ('[BODY].nested == {"a":[10,20]}', True, '{"a":[10,20]}'),
        ("[BODY].items[*].id == [1,2]", True, "[1,2]"),  # several matches: their list
        ("[BODY].missing == x", False, None),
        ("[BODY].missing != x", False, None),  # missing fails whatever the operator
        ("[BODY][0] == 1", False, None),  # an object has no [0]
    ],
)
def test_json_paths_on_the_body(text, ok, actual):
    assert check(text) == (ok, actual)


def test_the_whole_body_is_text_trimmed_as_gatus_does():
    assert check("[BODY] == 1", BODY=b"  1\n") == (True, "1")
    assert check("[BODY] == hello world", BODY="hello world") == (True, "hello world")
    assert check("[BODY][1] == 20", BODY=b"[10, 20]") == (True, "20")


def test_a_body_that_is_not_json_has_no_paths():
    assert check("[BODY].status == UP", BODY=b"<html>") == (False, None)
    assert check("has([BODY].status) == false", BODY=b"<html>") == (True, "false")


def test_a_missing_fact_fails_with_actual_null():
    facts = {"BODY": None, "STATUS": None, "HEADER": None}
    assert check("[STATUS] == 200", **facts) == (False, None)
    assert check("[BODY] == x", **facts) == (False, None)
    assert check("[HEADER].a == x", **facts) == (False, None)
    assert check("len([BODY]) == 0", **facts) == (False, None)


# --- each function ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ok", "actual"),
    [
        ("len([BODY].items) == 2", True, "2"),
        ("len([BODY].items) > 2", False, "2"),
        ("len([BODY].name) == 8", True, "8"),
        ("len([BODY].nested) == 13", True, "13"),  # an object: its minified JSON's length
        ("len([BODY]) > 10", True, str(len(BODY.strip()))),
        ("len([IP]) == 9", True, "9"),
        ("len([BODY].missing) == 0", False, None),
        ("has([BODY].errors) == false", True, "false"),
        ("has([BODY].items) == true", True, "true"),
        ("has([BODY].empty) == true", True, "true"),  # there, though empty
        ("has([BODY]) == true", True, "true"),
        ("has([HEADER].x-count) == true", True, "true"),
        ("has([HEADER].etag) == true", False, "false"),
        ("has([IP]) == true", True, "true"),
        ("[BODY].name == pat(john*)", True, "john.doe"),
        ("[BODY].name == pat(bob*)", False, "john.doe"),
        ("[BODY].name != pat(bob*)", True, "john.doe"),
        ('[BODY] == pat(*"status": "UP"*)', True, BODY.decode()),
        ("[IP] == pat(127.0.0.?)", True, "127.0.0.1"),
        ("[IP] == pat(192.168.*)", False, "127.0.0.1"),
        ("[STATUS] == pat(2*)", True, "200"),
        ("[STATUS] == pat([23]0?)", True, "200"),
        ("pat(*.doe) == [BODY].name", True, "john.doe"),
        ("[STATUS] == any(200, 429)", True, "200"),
        ("[STATUS] == any(201, 429)", False, "200"),
        ("[STATUS] != any(500, 503)", True, "200"),
        ("[BODY].id == any(1, 2)", True, "1"),
        ("[IP] == any(127.0.0.1, ::1)", True, "127.0.0.1"),
        ("[DNS_RCODE] == any(NXDOMAIN, SERVFAIL)", False, "NOERROR"),
        ("[CERTIFICATE_EXPIRATION] == any(720h, 1d)", True, "720h"),
    ],
)
def test_each_function(text, ok, actual):
    assert check(text) == (ok, actual)


def test_len_of_a_json_array_body_counts_its_items():
    assert check("len([BODY]) == 3", BODY=b"[1, 2, 3]") == (True, "3")


def test_pat_matches_the_whole_value_like_gatus():
    assert check("[BODY] == pat(healthy)", BODY=b"all healthy") == (False, "all healthy")
    assert check("[BODY] == pat(*healthy*)", BODY=b"all healthy\nhere") == (
        True,
        "all healthy\nhere",
    )


def test_actual_is_cut_at_200_characters():
    ok, actual = check("[BODY] == x", BODY=b"a" * 1000)
    assert (ok, actual) == (False, "a" * 200 + "…")


def test_the_detail_shows_each_placeholder_with_its_value():
    condition = compile_condition("[BODY].status == UP", KIND)
    assert condition.check(Scope({"BODY": b'{"status": "DOWN"}'})) == (
        False,
        "DOWN",
        "[BODY].status (DOWN) == UP",
    )
    pair = compile_condition("[BODY].age == [BODY].id", KIND)
    assert pair.check(Scope({"BODY": b'{"age": 3, "id": 1}'}))[2] == (
        "[BODY].age (3) == [BODY].id (1)"
    )
    missing = compile_condition("[STATUS] < 400", KIND)
    assert missing.check(Scope({}))[2] == "[STATUS] (missing) < 400"
    pattern = compile_condition("pat(2*) == [STATUS]", KIND)
    assert pattern.check(Scope({"STATUS": 503}))[2] == "pat(2*) == [STATUS] (503)"


# --- what is refused at load -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty condition (write e.g. [STATUS] == 200)"),
        ("   ", "empty condition (write e.g. [STATUS] == 200)"),
        (
            "[STATUS]==200",
            "no comparison: write LEFT OP RIGHT with OP one of == != < <= > >= between spaces",
        ),
        (
            "[STATUS] =",
            "no comparison: write LEFT OP RIGHT with OP one of == != < <= > >= between spaces",
        ),
        ("[STATUS] == ", "nothing right of the operator"),
        (" == 200", "nothing left of the operator"),
        (
            "[STAUTS] == 200",
            "unknown placeholder [STAUTS] (http targets have [BODY], [CERTIFICATE_EXPIRATION], [CONNECTED], [DNS_RCODE], [HEADER], [IP], [PHASE], [RESPONSE_TIME], [STATUS])",
        ),
        (
            "[EXIT_CODE] == 0",
            "[EXIT_CODE] is not offered by http targets (they have [BODY], [CERTIFICATE_EXPIRATION], [CONNECTED], [DNS_RCODE], [HEADER], [IP], [PHASE], [RESPONSE_TIME], [STATUS])",
        ),
        (
            "[DOMAIN_EXPIRATION] > 720h",
            "[DOMAIN_EXPIRATION] is not supported: trio-monitor does no WHOIS/RDAP look-ups for domain expiry",
        ),
        (
            "[CONTEXT].token == x",
            "[CONTEXT] is not supported: trio-monitor has no Gatus suites, so no suite context",
        ),
        ("[STATUS] == abc", "[STATUS] is compared with a number, got 'abc'"),
        ("[STATUS] < 48h", "[STATUS] is compared with a number, got '48h'"),
        (
            "[RESPONSE_TIME] < fast",
            "[RESPONSE_TIME] is compared with a number or a duration like 500ms, 48h, got 'fast'",
        ),
        (
            "[BODY].count > many",
            "[BODY].count is compared with a number or a duration like 500ms, 48h, got 'many'",
        ),
        ("[IP] > 5", "> compares numbers, and [IP] is text"),
        ("[CONNECTED] < 1", "< compares numbers, and [CONNECTED] is true or false"),
        ("[CONNECTED] == yes", "[CONNECTED] is true or false, got 'yes'"),
        ("[STATUS] == [IP]", "cannot compare [STATUS] (a number) with [IP] (text)"),
        ("[STATUS] < [IP]", "< compares numbers, and [IP] is text"),
        ("[STATUS] == any(200, ok)", "[STATUS] is compared with a number, got 'ok'"),
        ("[STATUS] == any(200,)", "any() lists values separated by commas, got 'any(200,)'"),
        ("[STATUS] < pat(3*)", "pat() works only with == and !=, not <"),
        (
            "pat(1) == any(1)",
            "no placeholder: one side must be one, e.g. [STATUS] or [BODY].status",
        ),
        ("1 == 1", "no placeholder: one side must be one, e.g. [STATUS] or [BODY].status"),
        ("len(5) == 1", "len() takes a placeholder, e.g. len([BODY].items)"),
        ("has(len([BODY])) == true", "has() takes a placeholder, e.g. has([BODY].items)"),
        ("len([CONNECTED]) == 1", "len() takes a text, a body or a JSON path, not [CONNECTED]"),
        (
            "len([RESPONSE_TIME]) == 1",
            "len() takes a text, a body or a JSON path, not [RESPONSE_TIME]",
        ),
        ("size([BODY]) == 1", "unknown function size() (there are len, has, pat and any)"),
        ("[BODY].a. == 1", "invalid JSON path '.a.': expected a shorthand selector"),
        ("[BODY]x == 1", "[BODY] is followed by a JSON path like .status or [0], got 'x'"),
        ("[HEADER] == x", "[HEADER] needs a name after a dot, e.g. [HEADER].content-type"),
        ("[PHASE] < 5", "[PHASE] needs a name after a dot, e.g. [PHASE].connect"),
        (
            "[PHASE].tsl < 5",
            "[PHASE].tsl: no such name (there are connect, dns, tls, transfer, ttfb)",
        ),
        ("[STATUS].code == 200", "[STATUS] takes no path, got '.code' after it"),
    ],
)
def test_what_cannot_be_compiled_is_one_line(text, message):
    assert problem(text) == message


def test_a_kind_without_placeholders_takes_no_conditions():
    with pytest.raises(ConditionError, match=r"\(push targets have no placeholders\)"):
        compile_condition("[STATUS] == 200", {}, kind="push")


@given(st.text(max_size=80))
@pytest.mark.fuzz
def test_compiling_any_text_is_a_condition_or_one_line(text):
    try:
        condition = compile_condition(text, KIND, kind="http", known=KIND)
    except ConditionError as exc:
        message = str(exc)
    else:
        condition.check(Scope(FACTS))  # and it checks without raising
        return
    assert message
    assert "\n" not in message


_PIECES = st.sampled_from(
    ["[STATUS]", "[BODY]", "[BODY].a", "[BODY][0]", "[HEADER].x", "[PHASE].tls", "[IP]",
     "len(", "has(", "pat(", "any(", ")", "(", "[", "]", " == ", " != ", " < ", " >= ",
     "200", "48h", "true", "*", ",", ".", "?", "$", "'", '"', "..", "[?@.a == 1]", "\n"]
)  # fmt: skip


@given(st.lists(_PIECES, max_size=8).map("".join))
@pytest.mark.fuzz
def test_compiling_near_conditions_is_a_condition_or_one_line(text):
    test_compiling_any_text_is_a_condition_or_one_line.hypothesis.inner_test(text)


# --- apply -----------------------------------------------------------------------


def conditions(*texts: str) -> tuple[Condition, ...]:
    return tuple(compile_condition(t, KIND) for t in texts)


def test_without_conditions_the_result_itself_comes_back():
    result = probe_result()
    assert apply(result, (), FACTS) is result


def test_passing_conditions_are_listed_and_change_nothing_else():
    result = probe_result(slow=True)
    checked = apply(result, conditions("[STATUS] == 200", "[BODY].status == UP"), FACTS)
    assert checked.conditions == (
        ConditionResult("[STATUS] == 200", True, "200"),
        ConditionResult("[BODY].status == UP", True, "UP"),
    )
    assert (checked.ok, checked.error, checked.slow) == (True, None, True)


def test_error_detail_is_one_line_whatever_the_actual_value():
    facts = {**FACTS, "BODY": b"127.0.0.10\n127.0.0.11\x1b[2J"}
    checked = apply(probe_result(), conditions("[BODY] == 127.0.0.1"), facts)
    assert checked.error_detail == "[BODY] (127.0.0.10\\n127.0.0.11\\x1b[2J) == 127.0.0.1"
    assert checked.conditions[0].actual == "127.0.0.10\n127.0.0.11\x1b[2J"  # JSON escapes it


def test_a_failed_condition_fails_an_ok_result():
    result = probe_result(slow=True)
    checked = apply(
        result,
        conditions("[STATUS] == 200", "[BODY].status == DOWN", "[RESPONSE_TIME] < 100"),
        FACTS,
    )
    assert (checked.ok, checked.error, checked.slow) == (False, ErrorKind.CONDITION, False)
    assert checked.error_detail == "[BODY].status (UP) == DOWN; [RESPONSE_TIME] (123.4ms) < 100"
    assert [c.ok for c in checked.conditions] == [True, False, False]
    line = to_dict(checked)
    assert line["error"] == "condition"
    assert line["conditions"][1] == {
        "condition": "[BODY].status == DOWN",
        "ok": False,
        "actual": "UP",
    }


def test_a_failed_result_keeps_its_own_error():
    result = probe_result(ok=False, error=ErrorKind.STATUS, error_detail="HTTP 500")
    checked = apply(result, conditions("[STATUS] == 200"), FACTS | {"STATUS": 500})
    assert (checked.ok, checked.error, checked.error_detail) == (
        False,
        ErrorKind.STATUS,
        "HTTP 500",
    )
    assert checked.conditions == (ConditionResult("[STATUS] == 200", False, "500"),)


def test_no_connection_is_ok_when_the_conditions_ask_for_none():
    refused = probe_result(ok=False, error=ErrorKind.CONNECT, error_detail="refused")
    closed = {"CONNECTED": False}
    checked = apply(refused, conditions("[CONNECTED] == false"), closed)
    assert (checked.ok, checked.error, checked.error_detail) == (True, None, None)
    assert apply(refused, conditions("[CONNECTED] != true"), closed).ok
    # every condition must pass, and one must ask for no connection
    assert not apply(refused, conditions("[CONNECTED] == false", "[IP] == x"), closed).ok
    assert not apply(refused, conditions("has([IP]) == false"), closed).ok
    # a connection that was made fails `[CONNECTED] == false`
    opened = apply(probe_result(), conditions("[CONNECTED] == false"), {"CONNECTED": True})
    assert (opened.ok, opened.error_detail) == (False, "[CONNECTED] (true) == false")
    # a failure after connecting is no closed port
    timeout = probe_result(ok=False, error=ErrorKind.TIMEOUT)
    assert not apply(timeout, conditions("[CONNECTED] == false"), {"CONNECTED": True}).ok


def test_common_facts_from_a_result():
    assert common_facts(3.5, "[::1]:443", {"dns": None}) == {
        "RESPONSE_TIME": 3.5,
        "CONNECTED": True,
        "IP": "::1",
        "PHASE": {"dns": None},
    }
    assert common_facts(None, "127.0.0.1:80", None)["IP"] == "127.0.0.1"
    assert common_facts(None, "::1", None)["IP"] == "::1"  # icmp: an address alone
    assert common_facts(None, None, None)["CONNECTED"] is False


# --- the config key --------------------------------------------------------------


def load_problems(*targets: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({"targets": list(targets)}, env={}, path="m.toml")
    return info.value.problems


def test_each_bad_condition_is_one_problem_with_its_key_path(line_kind_registered):
    problems = load_problems(
        {"url": "line://127.0.0.1:7", "conditions": ["[CONNECTED] == true", "[BODY] = x"]},
        {
            "url": "line://127.0.0.1:8",
            "conditions": [
                "[STATUS] == 200",
                "[DOMAIN_EXPIRATION] > 720h",
                "[IP] > 1",
                "[STAUTS] == 1",
            ],
        },
    )
    assert problems == [
        "m.toml: targets[0].conditions[1]: '[BODY] = x': no comparison: write LEFT OP RIGHT"
        " with OP one of == != < <= > >= between spaces",
        "m.toml: targets[1].conditions[0]: '[STATUS] == 200': [STATUS] is not offered by"
        " line targets (they have [BODY], [CONNECTED], [IP], [PHASE], [RESPONSE_TIME])",
        "m.toml: targets[1].conditions[1]: '[DOMAIN_EXPIRATION] > 720h': [DOMAIN_EXPIRATION]"
        " is not supported: trio-monitor does no WHOIS/RDAP look-ups for domain expiry",
        "m.toml: targets[1].conditions[2]: '[IP] > 1': > compares numbers, and [IP] is text",
        "m.toml: targets[1].conditions[3]: '[STAUTS] == 1': unknown placeholder [STAUTS]"
        " (line targets have [BODY], [CONNECTED], [IP], [PHASE], [RESPONSE_TIME])",
    ]


def test_a_condition_text_with_a_newline_stays_on_one_line(line_kind_registered):
    (line,) = load_problems({"url": "line://127.0.0.1:7", "conditions": ["[IP]\n= x"]})
    assert "\n" not in line
    assert line.startswith("m.toml: targets[0].conditions[0]: '[IP]\\n= x': ")


def test_conditions_must_be_an_array_of_strings(line_kind_registered):
    assert load_problems({"url": "line://127.0.0.1:7", "conditions": "[IP] == x"}) == [
        "m.toml: targets[0].conditions: expected an array, got '[IP] == x'"
    ]
    assert load_problems({"url": "line://127.0.0.1:7", "conditions": [200]}) == [
        "m.toml: targets[0].conditions[0]: expected a string, got 200"
    ]


def test_targets_get_compiled_conditions_shared_between_them(line_kind_registered):
    written = ["[CONNECTED] == true", "len([BODY]) > 0"]
    config = parse_config(
        {
            "targets": [
                {"url": "line://127.0.0.1:7", "conditions": written},
                {"url": "line://127.0.0.1:8", "conditions": written},
                {"url": "line://127.0.0.1:9"},
            ]
        }
    )
    first, second, third = config.targets
    assert [c.text for c in first.conditions] == written
    assert all(a is b for a, b in zip(first.conditions, second.conditions, strict=True))
    assert third.conditions == ()
    again = parse_config({"targets": [{"url": "line://127.0.0.1:7", "conditions": written}]})
    assert again.targets[0].conditions == first.conditions  # a reload sees no change


# --- end to end, through a kind --------------------------------------------------


class LineServer:
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.port = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            await stream.send_all(self.answer)

    async def start(self, nursery: trio.Nursery) -> LineServer:
        serve = functools.partial(trio.serve_tcp, self.handle, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        self.port = listeners[0].socket.getsockname()[1]
        return self


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_kind_checks_its_targets_conditions(line_kind_registered):
    out = io.BytesIO()
    async with trio.open_nursery() as nursery:
        lines = await LineServer(b'{"state": "DOWN"}\n').start(nursery)
        url = f"line://127.0.0.1:{lines.port}"
        config = parse_config(
            {
                "targets": [
                    {"name": "up", "url": url, "conditions": ["[BODY] == pat(*DOWN*)"]},
                    {"name": "down", "url": url, "conditions": ["[BODY].state == UP"]},
                    {
                        "name": "closed",
                        "url": f"line://127.0.0.1:{closed_port()}",
                        "conditions": ["[CONNECTED] == false"],
                    },
                ]
            }
        )
        await run_monitor(config, once=True, out=out, handle_signals=False)
        nursery.cancel_scope.cancel()
    probes = {
        r["target"]: r for r in map(json.loads, out.getvalue().splitlines()) if r["type"] == "probe"
    }
    assert (probes["up"]["ok"], probes["up"]["conditions"][0]["ok"]) == (True, True)
    down = probes["down"]
    assert (down["ok"], down["error"], down["error_detail"]) == (
        False,
        "condition",
        "[BODY].state (DOWN) == UP",
    )
    assert down["conditions"] == [
        {"condition": "[BODY].state == UP", "ok": False, "actual": "DOWN"}
    ]
    closed = probes["closed"]
    assert (closed["ok"], closed["error"]) == (True, None)
    assert closed["conditions"] == [
        {"condition": "[CONNECTED] == false", "ok": True, "actual": "false"}
    ]


def test_the_line_kind_declares_its_placeholders():
    assert set(line_kind.KIND.placeholders) == {*COMMON, "BODY"}


# --- a second body placeholder, and elements by CSS selector (the browser kind's) -------

PAGE = {**COMMON, "DOM": Type.BODY, "SELECTOR": Type.ELEMENTS, "BODY": Type.BODY}


@pytest.mark.parametrize(
    ("text", "ok", "actual"),
    [
        ("[DOM] == pat(*ready*)", True, "Dashboard ready"),
        ("len([DOM]) == 15", True, "15"),
        ("[DOM].status == UP", False, None),  # the text is no JSON: missing
        ("[BODY] == [1]", True, "[1]"),  # each body placeholder reads its own fact
        ("len([BODY]) == 1", True, "1"),
        ("[BODY][0] == 1", True, "1"),
        ("[SELECTOR].#App .Title == Welcome", True, "Welcome"),  # case kept
        ("[SELECTOR].h1 == pat(Dash*)", True, "Dashboard"),
        ("[SELECTOR].main>p == x", False, None),  # no element: missing
        ("has([SELECTOR].h1) == true", True, "true"),
        ("len([SELECTOR].h1) == 9", True, "9"),
    ],
)
def test_a_second_body_and_elements_by_selector(text, ok, actual):
    facts = {
        "DOM": "Dashboard ready",
        "BODY": b"[1]",
        "SELECTOR": {"#App .Title": "Welcome", "h1": "Dashboard", "main>p": None},
    }
    result = compile_condition(text, PAGE).check(Scope(facts))
    assert result[:2] == (ok, actual)


def test_the_selectors_a_condition_reads_are_known_at_load():
    from trio_monitor.conditions import keys

    conditions = tuple(
        compile_condition(text, PAGE | {"HEADER": Type.FIELDS})
        for text in ("[SELECTOR].#a b == x", "len([SELECTOR].h1) > 0", "[HEADER].X-Id == 1")
    )
    assert keys(conditions, "SELECTOR") == {"#a b", "h1"}
    assert keys(conditions, "HEADER") == {"x-id"}
    with pytest.raises(ConditionError) as info:
        compile_condition("[SELECTOR] == x", PAGE)
    assert str(info.value) == (
        "[SELECTOR] needs a CSS selector after a dot, e.g. [SELECTOR].h1 or [SELECTOR].#status"
    )
    with pytest.raises(ConditionError) as info:
        compile_condition("[DOM]x == 1", PAGE)
    assert str(info.value) == "[DOM] is followed by a JSON path like .status or [0], got 'x'"
