"""`import gatus`: each fixture (Gatus's documented syntax, tests/fixtures/gatus/) as the
TOML it becomes, what it cannot map as comments, and the result checked by our loader."""

from __future__ import annotations

import datetime
import tomllib
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trio_monitor._config import parse_config
from trio_monitor._errors import ConfigError
from trio_monitor.cli.import_gatus import convert

FIXTURES = Path(__file__).parent / "fixtures" / "gatus"
MONITOR = {"interval": "1m", "expect_status": ["100-599"]}  # Gatus's default interval
SERVER = {"listen": "127.0.0.1:9180"}


def imported(name: str):
    return convert((FIXTURES / name).read_text(encoding="utf-8"), name)


def toml_of(name: str) -> dict:
    """The TOML written for a fixture, as a dict (and the document it validates as)."""
    conversion = imported(name)
    doc = tomllib.loads(conversion.text)
    assert doc == conversion.document
    return doc


def comments(name: str) -> list[str]:
    return [
        line.removeprefix("# gatus: ")
        for line in imported(name).text.splitlines()
        if line.startswith("# gatus: ")
    ]


def validates(name: str) -> None:
    conversion = imported(name)
    env = dict.fromkeys(conversion.env, "set-me")
    config = parse_config(conversion.document, env=env, path=name)
    assert len(config.targets) == len(conversion.document["targets"])


# --- each fixture: the TOML it becomes -------------------------------------------


def test_http_endpoints():
    assert toml_of("http.yaml") == {
        "monitor": MONITOR,
        "server": SERVER,
        "targets": [
            {
                "name": "website",
                "group": "core",
                "url": "http://127.0.0.1:8080/health",
                "interval": "5m",
                "conditions": [
                    "[STATUS] == 200",
                    "[BODY].status == UP",
                    "[RESPONSE_TIME] < 500",
                    "len([BODY].data) < 5",
                    "[BODY].name == pat(john*)",
                    "[STATUS] == any(200, 429)",
                ],
            },
            {
                # a JSON body with a JSON Content-Type: a TOML table
                "name": "create-item",
                "url": "http://127.0.0.1:8080/items",
                "method": "POST",
                "conditions": ["[STATUS] == 201"],
                "headers": {"Content-Type": "application/json"},
                "json": {"name": "Test Item", "price": "19.99"},
            },
            {
                # Gatus's [ENDPOINT_NAME] in a body is known now: written out
                "name": "form",
                "url": "http://127.0.0.1:8080/form",
                "method": "PUT",
                "body": "name=form",
                "conditions": ["[STATUS] < 300"],
            },
        ],
    }


def test_graphql_body_becomes_json():
    (target,) = toml_of("graphql.yaml")["targets"]
    assert target["json"] == {"query": '{\n  users(gender: "female") {\n    id\n  }\n}\n'}
    assert target["method"] == "POST"
    assert "body" not in target


def test_client_configuration():
    targets = toml_of("client.yaml")["targets"]
    assert targets[0] == {
        "name": "website",
        "url": "https://127.0.0.1:8443/health",
        "timeout": "5s",
        "verify_tls": False,
        "follow_redirects": False,
        "conditions": ["[STATUS] == 200"],
    }
    assert targets[1]["resolver"] == "127.0.0.1:53"
    assert targets[2] == {
        "name": "with-custom-oauth2",
        "url": "http://127.0.0.1:8080/health",
        "conditions": ["[STATUS] == 200"],
    }
    assert targets[3]["proxy"] == "http://127.0.0.1:3128"
    notes = comments("client.yaml")
    assert any(n.startswith("client.oauth2 not imported") for n in notes)
    assert any(n.startswith("client.identity-aware-proxy not imported") for n in notes)
    assert any(n.startswith("client.dns-resolver: asked over UDP first") for n in notes)


def test_tcp_endpoint():
    assert toml_of("tcp.yaml")["targets"] == [
        {
            "name": "redis",
            "url": "tcp://127.0.0.1:6379",
            "interval": "30s",
            "send": "PING\r\n",
            "conditions": ["[CONNECTED] == true", "[BODY] == pat(*PONG*)"],
        }
    ]


def test_tls_endpoint():
    assert toml_of("tls.yaml")["targets"] == [
        {
            "name": "tls-ldaps-example",
            "url": "tls://127.0.0.1:636",
            "interval": "30m",
            "timeout": "5s",
            "conditions": ["[CONNECTED] == true", "[CERTIFICATE_EXPIRATION] > 48h"],
        }
    ]


def test_starttls_becomes_tls_with_starttls_by_port():
    smtp, imap = toml_of("starttls.yaml")["targets"]
    assert (smtp["url"], smtp["starttls"]) == ("tls://127.0.0.1:587", "smtp")
    assert (imap["url"], imap["starttls"]) == ("tls://127.0.0.1:143", "imap")
    assert smtp["conditions"] == ["[CONNECTED] == true", "[CERTIFICATE_EXPIRATION] > 48h"]


def test_icmp_endpoint():
    assert toml_of("icmp.yaml")["targets"] == [
        {
            "name": "ping-example",
            "url": "icmp://127.0.0.1",
            "ip_family": "ipv4",
            "conditions": ["[CONNECTED] == true", "[RESPONSE_TIME] < 100"],
        }
    ]


def test_dns_endpoint():
    assert toml_of("dns.yaml")["targets"] == [
        {
            "name": "example-dns-query",
            "url": "dns://example.com",
            "record_type": "A",
            "resolver": "127.0.0.1",
            "conditions": ["[BODY] == 93.184.215.14", "[DNS_RCODE] == NOERROR"],
        }
    ]
    (note,) = [n for n in comments("dns.yaml") if n.startswith("endpoint ")]
    assert note.startswith("endpoint 'reverse-lookup' (127.0.0.1:5353) not imported: ")
    assert "dns.query-type PTR" in note


def test_websocket_endpoint():
    assert toml_of("websocket.yaml")["targets"] == [
        {
            "name": "example",
            "url": "ws://127.0.0.1:8080/echo",
            "send": "status",
            "conditions": ["[CONNECTED] == true", "[BODY] == pat(*served by*)"],
        }
    ]


def test_external_endpoints_become_push_targets():
    doc = toml_of("external.yaml")
    assert doc["targets"] == [
        {"name": "ext-ep-test", "group": "core", "kind": "push", "expect_every": "30m"},
        {"name": "no-heartbeat", "kind": "push", "expect_every": "1h"},
    ]
    assert "expect_status" not in doc["monitor"]  # no HTTP target
    notes = comments("external.yaml")
    assert sum("Gatus's token is not kept" in n for n in notes) == 2
    assert any(n.startswith("no heartbeat.interval in Gatus") for n in notes)
    assert "potato" not in imported("external.yaml").text


def test_environment_references_are_kept():
    conversion = imported("env.yaml")
    first, second = toml_of("env.yaml")["targets"]
    # YAML anchors followed; Gatus's $NAME written as ${NAME}
    assert first["headers"] == {
        "Authorization": "Bearer ${GATUS_IMPORT_TEST_TOKEN}",
        "X-Api-Key": "${GATUS_IMPORT_TEST_KEY}",
    }
    assert (first["group"], second["group"]) == ("core", "example")
    assert conversion.env == ("GATUS_IMPORT_TEST_KEY", "GATUS_IMPORT_TEST_TOKEN")
    # a reference where we do not expand one is kept, and said
    assert second["url"] == "http://${GATUS_IMPORT_TEST_HOST}/"
    assert any(
        n.startswith("url refers to ${GATUS_IMPORT_TEST_HOST}") for n in comments("env.yaml")
    )


# --- what cannot be mapped: comments ---------------------------------------------


def test_unmapped_features_become_comments():
    doc = toml_of("unsupported.yaml")
    assert doc["server"] == {"listen": "0.0.0.0:8081"}  # web.port
    assert doc["targets"] == [
        {
            "name": "check-domain-and-certificate-expiration",
            "url": "http://127.0.0.1:8080/",
            "interval": "1h",
            "conditions": ["[STATUS] == 200"],
        }
    ]
    notes = comments("unsupported.yaml")
    for start in (
        "metrics not imported",
        "storage not imported",
        "alerting not imported",
        "maintenance not imported",
        "security not imported",
        "ui not imported",
        "condition '[DOMAIN_EXPIRATION] > 720h' not imported",
        "alerts not imported",
        "maintenance-windows not imported",
        "endpoint 'ssh-example' (ssh://127.0.0.1:22) not imported",
        "endpoint 'udp-example' (udp://127.0.0.1:80) not imported",
        "endpoint 'sctp-example' (sctp://127.0.0.1:38412) not imported",
        "disabled in Gatus (enabled: false): commented out",
    ):
        assert any(n.startswith(start) for n in notes), start
    text = imported("unsupported.yaml").text
    assert '# name = "disabled"' in text  # there, to uncomment


def test_global_comments_come_before_any_table():
    text = imported("unsupported.yaml").text
    assert text.index("# gatus: storage not imported") < text.index("[monitor]")


def test_a_condition_on_a_placeholder_the_kind_lacks_is_a_comment():
    conversion = convert(
        "endpoints:\n"
        "  - name: t\n"
        '    url: "tcp://127.0.0.1:1"\n'
        '    conditions: ["[CONNECTED] == true", "[STATUS] == 200"]\n',
        "c.yaml",
    )
    assert conversion.document["targets"][0]["conditions"] == ["[CONNECTED] == true"]
    assert "# gatus: condition '[STATUS] == 200' not imported: kind tcp has no [STATUS]" in (
        conversion.text
    )


def test_same_name_in_two_groups_gets_gatus_display_name():
    conversion = convert(
        "endpoints:\n"
        "  - {name: api, group: eu, url: 'http://127.0.0.1/', conditions: ['[STATUS] == 200']}\n"
        "  - {name: api, group: us, url: 'http://127.0.0.1/', conditions: ['[STATUS] == 200']}\n",
        "c.yaml",
    )
    assert [t["name"] for t in conversion.document["targets"]] == ["eu/api", "us/api"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("endpoints: [", "c.yaml: line 1: not valid YAML: expected the node content"),
        ("a: b: c\n", "c.yaml: line 1: not valid YAML: mapping values are not allowed here"),
        ("- a\n- b\n", "c.yaml: not a Gatus config (no `endpoints` or `external-endpoints` list)"),
        ("monitor:\n  interval: 30s\n", "c.yaml: not a Gatus config"),
        ("endpoints: 3\n", "c.yaml: endpoints: expected a list, got 3"),
        ("endpoints: [3]\n", "c.yaml: endpoints[0]: expected a mapping, got 3"),
    ],
)
def test_not_gatus_is_one_line(text, problem):
    with pytest.raises(ConfigError) as caught:
        convert(text, "c.yaml")
    (line,) = caught.value.problems
    assert line.startswith(problem)


# --- the result validates ------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture",
    [
        "http.yaml",
        "graphql.yaml",
        "client.yaml",
        "tcp.yaml",
        "tls.yaml",
        "starttls.yaml",
        "icmp.yaml",
        "dns.yaml",
        "websocket.yaml",
        "external.yaml",
        "unsupported.yaml",
    ],
)
def test_each_fixture_validates(fixture):
    validates(fixture)


def test_validation_names_the_problem():
    # Gatus takes any timeout; ours is at most 1h: our loader's one line, key path and all
    conversion = convert(
        "endpoints: [{name: t, url: 'http://127.0.0.1/', client: {timeout: 2h}}]", "c"
    )
    assert conversion.document["targets"][0]["timeout"] == "2h"
    with pytest.raises(ConfigError) as caught:
        parse_config(conversion.document, env={}, path="m.toml")
    assert caught.value.problems == ["m.toml: targets[0].timeout: must be from 1ms to 1h, got '2h'"]


# --- fuzz: whatever the file holds, a TOML document or one line per problem ---------

_NOTES = settings(max_examples=150, deadline=None, database=None)
# what YAML reads: scalars of each type it builds (dates too), lists, mappings
_SCALARS = (
    st.text(max_size=20)
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.booleans()
    | st.none()
    | st.dates()
    | st.sampled_from(["http://127.0.0.1/", "tcp://127.0.0.1:9", "dns://8.8.8.8", "1m", "$X"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_ENDPOINT_KEYS = st.sampled_from(
    ["name", "group", "url", "enabled", "interval", "method", "headers", "body", "graphql",
     "client", "conditions", "dns", "alerts", "ui", "heartbeat", "query-name", "query-type",
     "timeout", "insecure", "dns-resolver", "tls", "network", "address", "port"]
) | st.text(max_size=8)  # fmt: skip
_MAPPINGS = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_ENDPOINT_KEYS, inner | _VALUES, max_size=6)
    ),
    max_leaves=20,
)
_DOCS = st.fixed_dictionaries(
    {},
    optional={
        "endpoints": st.lists(_MAPPINGS, max_size=3),
        "external-endpoints": st.lists(_MAPPINGS, max_size=2),
        "web": _MAPPINGS,
        "storage": _VALUES,
    },
) | st.dictionaries(st.text(max_size=8), _MAPPINGS, max_size=3)


def _converts_or_one_line(text: str) -> None:
    try:
        conversion = convert(text, "g.yaml")
    except ConfigError as exc:
        _one_line_each(exc.problems, "g.yaml: ")
        return
    written = tomllib.loads(conversion.text)  # valid TOML, comments included
    assert written | {"targets": written.get("targets", [])} == conversion.document
    env = dict.fromkeys(conversion.env, "set-me")
    try:
        parse_config(conversion.document, env=env, path="m.toml")
    except ConfigError as exc:
        _one_line_each(exc.problems, "m.toml: ")


def _one_line_each(problems: list[str], prefix: str) -> None:
    assert problems
    assert all(p.startswith(prefix) and "\n" not in p for p in problems), problems


@pytest.mark.fuzz
@_NOTES
@given(st.text(max_size=200))
@example("endpoints:\n  - name: 2001-02-30\n")  # PyYAML's ValueError
@example("endpoints: &e [*e]\n")  # a recursive document
@example("endpoints: " + "[" * 5000 + "]" * 5000)  # PyYAML's RecursionError
@example("endpoints:\n  - {name: a, url: 'http://127.0.0.1/', client: \"x\\ny = 1\"}\n")
def test_any_text_converts_or_is_one_line(text):
    _converts_or_one_line(text)


@pytest.mark.fuzz
@_NOTES
@given(_DOCS)
@example({"endpoints": [{"name": datetime.date(2024, 1, 1), "url": "http://127.0.0.1/"}]})
@example({"endpoints": [{"name": "a", "url": "http://127.0.0.1/", "interval": "9" * 400 + "h"}]})
@example({"endpoints": [{"name": "a", "url": "http://127.0.0.1/"}], "x\ny = 1": 1})
def test_any_mapping_converts_or_is_one_line(doc):
    _converts_or_one_line(yaml.safe_dump(doc, allow_unicode=True))


@pytest.mark.fuzz
@_NOTES
@given(st.text(max_size=40))
def test_a_note_quoting_the_yaml_stays_one_comment_line(value):
    """What a note quotes from the file (a key, a value) never leaves its comment."""
    text = yaml.safe_dump(
        {"endpoints": [{"name": "a", "url": "http://127.0.0.1/", "client": value, value: 1}]}
    )
    conversion = convert(text, "g.yaml")
    assert tomllib.loads(conversion.text) | {"targets": []} == conversion.document
