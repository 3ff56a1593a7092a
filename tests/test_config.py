"""The config file: scalar syntaxes, resolution into Targets, and one-line error messages."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from factories import target_schemes

from trio_monitor import ConfigError, Target, load_config, parse_config
from trio_monitor._config import (
    USER_AGENT,
    _Invalid,
    format_duration,
    parse_duration,
    parse_size,
    parse_status_spec,
)
from trio_monitor.probes.http import HttpSpec

DAY = 86400.0

URL = "http://127.0.0.1:8080/"
SHIPPED = Path(__file__).resolve().parents[1] / "monitor.toml"


def problems(data: dict, *, env: dict[str, str] | None = None) -> list[str]:
    """The problem lines parse_config reports for `data` (as file "m.toml")."""
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={} if env is None else env, path="m.toml")
    lines = info.value.problems
    assert all("\n" not in line for line in lines), lines
    assert str(info.value) == "\n".join(lines)
    return lines


def load_problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value.problems


def only_target(data: dict, env: dict[str, str] | None = None) -> Target:
    config = parse_config(data, env={} if env is None else env, path="m.toml")
    (target,) = config.targets
    return target


# --- durations and sizes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s500ms", 90.5),
        ("1.5s", 1.5),
        ("2d", 172800.0),
        (" 1h 30m ", 5400.0),
    ],
)
def test_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad", ["", "   ", "10", "s", "10x", "10 sec", "ms500", "-5s", "1.s", "5m-", "1h30", "1,5s"]
)
def test_bad_duration_string(bad):
    with pytest.raises(_Invalid, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", [5, 1.5, None, True, ["10s"]])
def test_duration_must_be_a_string(bad):
    with pytest.raises(_Invalid, match=r'expected a duration string like "500ms"'):
        parse_duration(bad)


def test_zero_duration_only_where_allowed():
    with pytest.raises(_Invalid, match="greater than 0"):
        parse_duration("0s")
    assert parse_duration("0s", allow_zero=True) == 0.0
    assert parse_config({"monitor": {"grace": "0s"}}).monitor.grace == 0.0
    assert problems({"monitor": {"interval": "0ms"}}) == [
        "m.toml: monitor.interval: duration must be greater than 0, got '0ms'"
    ]


@pytest.mark.parametrize("seconds", [0.25, 1.0, 90.0, 5400.0, 86400.0, 93784.5])
def test_format_duration_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (0, 0),
        (1048576, 1048576),
        ("100", 100),
        ("100B", 100),
        ("512KiB", 512 * 1024),
        ("10 KB", 10_000),
        ("1MB", 10**6),
        ("1mib", 2**20),
        ("2GiB", 2 * 2**30),
        ("1GB", 10**9),
    ],
)
def test_size(value, size):
    assert parse_size(value) == size


@pytest.mark.parametrize("bad", ["1.5MB", "lots", "1 TB", "", "-1", -1, 1.5, True, None])
def test_bad_size(bad):
    with pytest.raises(_Invalid):
        parse_size(bad)


def test_size_errors_in_config():
    assert problems({"targets": [{"url": URL, "max_body": -5}]}) == [
        "m.toml: targets[0].max_body: size must be 0 or more, got -5"
    ]
    assert problems({"monitor": {"max_body": "1.5MB"}}) == [
        "m.toml: monitor.max_body: expected a size in bytes like 1048576 or \"1MiB\", got '1.5MB'"
    ]


# --- resolution: defaults and overrides ------------------------------------------


def test_built_in_defaults():
    assert only_target({"targets": [{"url": URL}]}) == Target(
        name=URL,
        url=URL,
        interval=30.0,
        confirm_interval=5.0,
        recover_interval=5.0,
        timeout=10.0,
        retries=1,
        slow=None,
        content_alert=False,
        kind="http",
        spec=HttpSpec(
            url=URL,
            method="GET",
            headers=(("user-agent", USER_AGENT),),
            expect_status=frozenset(range(200, 400)),
            follow_redirects=True,
            max_redirects=10,
            contains=None,
            max_body=1 << 20,
            on_too_large="truncate",
            verify_tls=True,
            connection="fresh",
            resolver=None,
            ip_family="any",
            addresses="first",
            min_addresses_ok=None,
        ),
    )


def test_confirm_and_recover_intervals_never_exceed_the_targets_interval():
    short = {"url": URL, "name": "short", "interval": "1s"}
    # inherited (default or [monitor]): capped at the target's interval
    assert only_target({"targets": [short]}).confirm_interval == 1.0
    inherited = only_target({"monitor": {"recover_interval": "3s"}, "targets": [short]})
    assert (inherited.confirm_interval, inherited.recover_interval) == (1.0, 1.0)
    # recover_interval defaults to the confirm_interval
    own = only_target({"targets": [{"url": URL, "confirm_interval": "2s"}]})
    assert (own.confirm_interval, own.recover_interval) == (2.0, 2.0)
    # set longer than the interval it applies to: an error, one line each
    assert problems(
        {
            "monitor": {"interval": "10s", "confirm_interval": "11s"},
            "targets": [{**short, "confirm_interval": "2s", "recover_interval": "1500ms"}],
        }
    ) == [
        "m.toml: targets[0].confirm_interval: must be at most the interval (1s), got 2s",
        "m.toml: targets[0].recover_interval: must be at most the interval (1s), got 1500ms",
        "m.toml: monitor.confirm_interval: must be at most the interval (10s), got 11s",
    ]


def test_empty_config_is_valid():
    config = parse_config({}, env={}, path="m.toml")
    assert config.targets == ()
    assert config.path == "m.toml"
    assert config.alerts.failure_threshold == 3


MONITOR = {
    "interval": "1m",
    "confirm_interval": "10s",
    "recover_interval": "20s",
    "timeout": "3s",
    "retries": 2,
    "method": "head",
    "headers": {"X-Team": "ops", "Accept-Language": "en"},
    "user_agent": "probe/1",
    "expect_status": ["2xx"],
    "follow_redirects": False,
    "max_redirects": 3,
    "max_body": "1KiB",
    "on_too_large": "fail",
    "verify_tls": False,
    "resolver": "127.0.0.1:5353",
    "ip_family": "ipv4",
    "addresses": "all",
    "min_addresses_ok": 2,
    "slow": "800ms",
}


def test_targets_inherit_the_monitor_section():
    target = only_target({"monitor": MONITOR, "targets": [{"url": URL, "name": "a"}]})
    assert target == Target(
        name="a",
        url=URL,
        interval=60.0,
        confirm_interval=10.0,
        recover_interval=20.0,
        timeout=3.0,
        retries=2,
        slow=0.8,
        content_alert=False,
        kind="http",
        spec=HttpSpec(
            url=URL,
            method="HEAD",
            headers=(("user-agent", "probe/1"), ("x-team", "ops"), ("accept-language", "en")),
            expect_status=frozenset(range(200, 300)),
            follow_redirects=False,
            max_redirects=3,
            contains=None,
            max_body=1024,
            on_too_large="fail",
            verify_tls=False,
            connection="fresh",
            resolver=("127.0.0.1", 5353),
            ip_family="ipv4",
            addresses="all",
            min_addresses_ok=2,
        ),
    )


def test_per_target_overrides():
    own = {
        "url": URL,
        "name": "  b  ",
        "interval": "5s",
        "confirm_interval": "2s",
        "recover_interval": "3s",
        "timeout": "1s",
        "retries": 0,
        "method": "post",
        "headers": {"X-Team": "web", "Authorization": "Bearer t"},
        "expect_status": [204],
        "follow_redirects": True,
        "max_redirects": 0,
        "contains": "healthy",
        "slow": "2s",
        "max_body": 10,
        "on_too_large": "truncate",
        "verify_tls": True,
        "resolver": "[::1]",
        "ip_family": "ipv6",
        "addresses": "all",
        "min_addresses_ok": 1,
        "content_alert": True,
    }
    target = only_target({"monitor": MONITOR, "targets": [own]})
    assert target == Target(
        name="b",
        url=URL,
        interval=5.0,
        confirm_interval=2.0,
        recover_interval=3.0,
        timeout=1.0,
        retries=0,
        slow=2.0,
        content_alert=True,
        kind="http",
        spec=HttpSpec(
            url=URL,
            method="POST",
            headers=(
                ("user-agent", "probe/1"),
                ("x-team", "web"),
                ("accept-language", "en"),
                ("authorization", "Bearer t"),
            ),
            expect_status=frozenset({204}),
            follow_redirects=True,
            max_redirects=0,
            contains="healthy",
            max_body=10,
            on_too_large="truncate",
            verify_tls=True,
            connection="fresh",
            resolver=("::1", 53),
            ip_family="ipv6",
            addresses="all",
            min_addresses_ok=1,
            own_status=True,
        ),
    )


def test_a_user_agent_header_beats_user_agent():
    target = only_target(
        {
            "monitor": {"user_agent": "a/1"},
            "targets": [{"url": URL, "headers": {"User-Agent": "b/2"}}],
        }
    )
    assert dict(target.spec.headers) == {"user-agent": "b/2"}


def test_name_defaults_to_the_url():
    config = parse_config(
        {"targets": [{"url": URL}, {"url": URL + "x", "name": "x"}]}, env={}, path="m.toml"
    )
    assert [t.name for t in config.targets] == [URL, "x"]


def test_empty_name():
    assert problems({"targets": [{"url": URL, "name": "  "}]}) == [
        "m.toml: targets[0].name: must not be empty"
    ]


# --- expect_status ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "codes"),
    [
        ([200], {200}),
        (["2xx"], set(range(200, 300))),
        (["5XX"], set(range(500, 600))),
        (["200-299"], set(range(200, 300))),
        (["401 - 403"], {401, 402, 403}),
        ([200, "3xx", "404-405"], {200, 404, 405} | set(range(300, 400))),
        ([204, 204], {204}),
    ],
)
def test_expect_status(spec, codes):
    assert parse_status_spec(tuple(spec)) == frozenset(codes)
    assert (
        only_target({"targets": [{"url": URL, "expect_status": spec}]}).spec.expect_status == codes
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["6xx"], 'invalid status \'6xx\' (use 200, "2xx" or "200-299")'),
        (["2xxx"], 'invalid status \'2xxx\' (use 200, "2xx" or "200-299")'),
        (["ok"], 'invalid status \'ok\' (use 200, "2xx" or "200-299")'),
        (["299-200"], "invalid status range '299-200' (codes are 100-599)"),
        ([99], "invalid status range 99 (codes are 100-599)"),
        ([600], "invalid status range 600 (codes are 100-599)"),
        ([], "expect_status must list at least one status"),
    ],
)
def test_bad_expect_status(spec, message):
    assert problems({"targets": [{"url": URL, "expect_status": spec}]}) == [
        f"m.toml: targets[0].expect_status: {message}"
    ]
    assert problems({"monitor": {"expect_status": spec}}) == [
        f"m.toml: monitor.expect_status: {message}"
    ]


def test_expect_status_wrong_types():
    assert problems(
        {
            "targets": [
                {"url": URL, "expect_status": 200},
                {"url": URL + "1", "expect_status": "2xx"},
                {"url": URL + "2", "expect_status": [True]},
            ]
        }
    ) == [
        "m.toml: targets[0].expect_status: expected an array, got 200",
        "m.toml: targets[1].expect_status: expected an array, got '2xx'",
        'm.toml: targets[2].expect_status[0]: expected a status like 200, "2xx" or "200-299", got True',
    ]


# --- ${ENV} in header values -----------------------------------------------------


ENV_CONFIG = {
    "monitor": {"headers": {"X-Env": "${STAGE}"}},
    "alerts": {
        "webhook": [{"url": URL + "hook", "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}}]
    },
    "targets": [{"url": URL, "headers": {"Authorization": "Basic ${USER}:${PASSWORD}"}}],
}


def test_env_expansion_in_header_values():
    env = {"STAGE": "prod", "HOOK_TOKEN": "h00k", "USER": "me", "PASSWORD": "pw"}
    config = parse_config(ENV_CONFIG, env=env, path="m.toml")
    assert dict(config.targets[0].spec.headers) == {
        "user-agent": USER_AGENT,
        "x-env": "prod",
        "authorization": "Basic me:pw",
    }
    assert config.alerts.channels("webhook")[0].headers == {"authorization": "Bearer h00k"}


def test_env_defaults_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("TRIO_MONITOR_TEST_TOKEN", "from-os")
    config = parse_config(
        {"targets": [{"url": URL, "headers": {"T": "${TRIO_MONITOR_TEST_TOKEN}"}}]}
    )
    assert dict(config.targets[0].spec.headers)["t"] == "from-os"


def test_unset_env_variables_are_reported_everywhere():
    assert problems(ENV_CONFIG, env={"USER": "me"}) == [
        "m.toml: monitor.headers.X-Env: environment variable STAGE is not set",
        "m.toml: alerts.webhook[0].headers.Authorization: environment variable HOOK_TOKEN is not set",
        "m.toml: targets[0].headers.Authorization: environment variable PASSWORD is not set",
    ]


def test_env_is_not_expanded_outside_header_values():
    target = only_target({"targets": [{"url": URL, "name": "${NAME}", "contains": "${X}"}]})
    assert (target.name, target.spec.contains) == ("${NAME}", "${X}")


def test_headers_http_cannot_carry_are_refused_one_line_each():
    data = {
        "monitor": {"headers": {"X-Team": "équipe €"}, "user_agent": "bot\u2603"},
        "alerts": {"webhook": [{"url": URL, "headers": {"X-Bad": "a\rb"}}]},
        "targets": [
            {"url": URL, "headers": {"X-Token": "${TOKEN}", "Clé": "v", "X-Nul": "a\0"}},
            {"url": URL, "name": "get", "method": "GÉT"},
        ],
    }
    assert problems(data, env={"TOKEN": "line\nbreak"}) == [
        "m.toml: monitor.user_agent: header value cannot carry '☃' (U+2603): use printable"
        " characters up to U+00FF (sent as Latin-1), no control characters; percent-encode the rest",
        "m.toml: monitor.headers.X-Team: header value cannot carry '€' (U+20AC): use printable"
        " characters up to U+00FF (sent as Latin-1), no control characters; percent-encode the rest",
        "m.toml: alerts.webhook[0].headers.X-Bad: header value cannot carry '\\r' (U+000D): use"
        " printable characters up to U+00FF (sent as Latin-1), no control characters;"
        " percent-encode the rest",
        "m.toml: targets[0].headers.X-Token: header value cannot carry '\\n' (U+000A): use"
        " printable characters up to U+00FF (sent as Latin-1), no control characters;"
        " percent-encode the rest",
        "m.toml: targets[0].headers.Clé: invalid header name 'Clé': use letters, digits and"
        " !#$%&'*+-.^_`|~ only",
        "m.toml: targets[0].headers.X-Nul: header value cannot carry '\\x00' (U+0000): use"
        " printable characters up to U+00FF (sent as Latin-1), no control characters;"
        " percent-encode the rest",
        "m.toml: targets[1].method: invalid method 'GÉT': use letters, digits and"
        " !#$%&'*+-.^_`|~ only",
    ]


def test_latin1_header_values_and_tabs_are_valid():
    target = only_target(
        {
            "monitor": {"user_agent": "sonde/1 (é)"},
            "targets": [{"url": URL, "headers": {"X-A": "a\tb ÿ"}}],
        }
    )
    assert dict(target.spec.headers) == {"user-agent": "sonde/1 (é)", "x-a": "a\tb ÿ"}


# --- names, alerts ---------------------------------------------------------------


def test_duplicate_names_name_both_indexes():
    assert problems(
        {
            "targets": [
                {"url": URL, "name": "api"},
                {"url": URL + "a"},
                {"url": URL + "b", "name": " api "},
                {"url": URL + "a"},
            ]
        }
    ) == [
        "m.toml: targets[2].name: duplicate target name 'api' (first used by targets[0])",
        f"m.toml: targets[3].name: duplicate target name '{URL}a' (first used by targets[1])",
    ]


def test_exec_command_as_list_or_string():
    config = parse_config(
        {
            "alerts": {
                "exec": [
                    {"command": ["/usr/bin/notify", "--urgent", "two words"]},
                    {"command": "/usr/bin/notify --urgent 'two words'"},
                ]
            }
        },
        env={},
    )
    first, second = config.alerts.channels("exec")
    assert first.command == second.command == ("/usr/bin/notify", "--urgent", "two words")
    assert first.events == (
        "down", "up", "slow", "content_changed", "flapping", "flap_end",
        "cert_expiring", "cert_renewed", "reminder", "group_down", "group_up", "degrading",
    )  # fmt: skip


def test_bad_exec_commands():
    assert problems(
        {"alerts": {"exec": [{"command": ""}, {"command": []}, {"command": [1]}, {"command": 5}]}}
    ) == [
        "m.toml: alerts.exec[0].command: command must not be empty",
        "m.toml: alerts.exec[1].command: command must not be empty",
        'm.toml: alerts.exec[2].command: expected a command like ["notify", "--urgent"], got [1]',
        'm.toml: alerts.exec[3].command: expected a command like ["notify", "--urgent"], got 5',
    ]


def test_an_exec_command_a_shell_could_not_split():
    assert problems({"alerts": {"exec": [{"command": "notify 'unterminated"}]}}) == [
        'm.toml: alerts.exec[0].command: cannot split "notify \'unterminated" like a shell:'
        " no closing quotation",
    ]


def test_bad_webhook():
    assert problems(
        {"alerts": {"webhook": [{"url": "ftp://127.0.0.1/", "events": ["down", "sideways"]}]}}
    ) == [
        'm.toml: alerts.webhook[0].events[1]: must be one of "down", "up", "slow", "content_changed", "flapping", "flap_end", "cert_expiring", "cert_renewed", "reminder", "group_down", "group_up", "degrading", got \'sideways\'',
        "m.toml: alerts.webhook[0].url: invalid URL 'ftp://127.0.0.1/': expected http:// or https:// with a host",
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:8080", "expected {schemes} with a host"),
        ("http://", "expected {schemes} with a host"),
        ("http://local host/", "invalid host name"),
        ("http://127.0.0.1:70000/", "port must be 1-65535"),
    ],
)
def test_bad_url(url, message):
    (line,) = problems({"targets": [{"url": url}]})
    expected = message.format(schemes=target_schemes())  # every registered kind's
    assert line == f"m.toml: targets[0].url: invalid URL {url!r}: {expected}"


def test_url_credentials_are_sent_as_basic_auth_and_shown_redacted():
    target = only_target({"targets": [{"url": "http://alice:p%40ss@127.0.0.1:8080/x?y=1"}]})

    shown = "http://alice:***@127.0.0.1:8080/x?y=1"
    assert (target.name, target.url) == (shown, shown)
    assert target.spec.url == "http://127.0.0.1:8080/x?y=1"  # where requests go
    assert dict(target.spec.headers)["authorization"] == "Basic YWxpY2U6cEBzcw=="  # alice:p@ss


def test_a_configured_authorization_header_beats_url_credentials():  # as in curl
    target = only_target(
        {"targets": [{"url": "http://a:b@127.0.0.1/", "headers": {"Authorization": "Bearer t"}}]}
    )
    assert dict(target.spec.headers)["authorization"] == "Bearer t"


def test_a_bad_url_is_shown_redacted():
    (line,) = problems({"targets": [{"url": "http://alice:s3cret@127.0.0.1:70000/"}]})
    assert line == (
        "m.toml: targets[0].url: invalid URL 'http://alice:***@127.0.0.1:70000/': "
        "port must be 1-65535"
    )


def test_allowed_hosts_are_host_names_or_addresses():
    section = {"allowed_hosts": ["Status.Example.com", "[::1]", "10.0.0.5", "mon_1"]}
    config = parse_config({"server": section}, env={})
    assert config.server.allowed_hosts == ("status.example.com", "::1", "10.0.0.5", "mon_1")
    assert problems({"server": {"allowed_hosts": ["http://x/", "x:9180", ""]}}) == [
        f"m.toml: server.allowed_hosts[{i}]: expected a host name or address (no scheme, "
        f"no port), got {value!r}"
        for i, value in enumerate(["http://x/", "x:9180", ""])
    ]


def test_missing_url():
    assert problems({"targets": [{"name": "a"}]}) == [
        "m.toml: targets[0].url: required key missing"
    ]


# --- resolver, ip_family, addresses ----------------------------------------------


@pytest.mark.parametrize(
    ("value", "nameserver"),
    [
        ("10.0.0.53", ("10.0.0.53", 53)),
        (" 127.0.0.1:5353 ", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),  # a bare IPv6 address is all address
        ("[::1]", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:DB8::1]:65535", ("2001:db8::1", 65535)),
        ("[127.0.0.1]:1", ("127.0.0.1", 1)),
    ],
)
def test_resolver_is_an_ip_and_a_port(value, nameserver):
    target = only_target({"targets": [{"url": URL, "resolver": value}]})
    assert target.spec.resolver == nameserver


EXPECTED_NAMESERVER = (
    'expected "IP" or "IP:PORT" like "10.0.0.53", "127.0.0.1:5353" or "[::1]:5353"'
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "dns.example.com",
            f"{EXPECTED_NAMESERVER}, got 'dns.example.com' (an IP address: a name would need a resolver itself)",
        ),
        (
            "localhost:53",
            f"{EXPECTED_NAMESERVER}, got 'localhost:53' (an IP address: a name would need a resolver itself)",
        ),
        ("127.0.0.1:0", "port must be 1-65535, got '127.0.0.1:0'"),
        ("127.0.0.1:65536", "port must be 1-65535, got '127.0.0.1:65536'"),
        ("127.0.0.1:", "port must be 1-65535, got '127.0.0.1:'"),
        ("[::1]:99999999999", "port must be 1-65535, got '[::1]:99999999999'"),
        ("[::1]:-1", "port must be 1-65535, got '[::1]:-1'"),
        ("[::1", f"{EXPECTED_NAMESERVER}, got '[::1'"),
        ("[::1]53", f"{EXPECTED_NAMESERVER}, got '[::1]53'"),
        ("[fe80::1%eth0]:53", "a zone index (%eth0) is not supported, got '[fe80::1%eth0]:53'"),
        ("", f"{EXPECTED_NAMESERVER}, got '' (an IP address: a name would need a resolver itself)"),
        (53, f"{EXPECTED_NAMESERVER}, got 53"),
    ],
)
def test_a_bad_resolver_is_one_line(value, message):
    assert problems(
        {"monitor": {"resolver": value}, "targets": [{"url": URL, "resolver": value}]}
    ) == [
        f"m.toml: monitor.resolver: {message}",
        f"m.toml: targets[0].resolver: {message}",
    ]


def test_ip_family_and_addresses_are_choices():
    assert problems(
        {"monitor": {"ip_family": "inet6"}, "targets": [{"url": URL, "addresses": "some"}]}
    ) == [
        'm.toml: monitor.ip_family: must be one of "any", "ipv4", "ipv6", got \'inet6\'',
        'm.toml: targets[0].addresses: must be one of "first", "all", got \'some\'',
    ]


def test_min_addresses_ok_needs_all_addresses():
    only_all = 'applies only with addresses = "all" (set it, or remove this key)'
    assert problems(
        {
            "monitor": {"min_addresses_ok": 2},
            "targets": [
                {"url": URL, "name": "a", "min_addresses_ok": 1},
                {"url": URL, "name": "b", "min_addresses_ok": 1, "addresses": "all"},
            ],
        }
    ) == [
        f"m.toml: targets[0].min_addresses_ok: {only_all}",
        f"m.toml: monitor.min_addresses_ok: {only_all}",
    ]
    assert problems({"targets": [{"url": URL, "addresses": "all", "min_addresses_ok": 0}]}) == [
        "m.toml: targets[0].min_addresses_ok: must be 1 or more, got 0"
    ]
    # a default for the targets that check every address; "first" ones ignore it
    config = parse_config(
        {
            "monitor": {"addresses": "all", "min_addresses_ok": 2},
            "targets": [{"url": URL, "name": "a"}, {"url": URL, "name": "b", "addresses": "first"}],
        },
        env={},
    )
    assert [t.spec.min_addresses_ok for t in config.targets] == [2, None]
    # unset: every address must be ok
    assert (
        only_target({"targets": [{"url": URL, "addresses": "all"}]}).spec.min_addresses_ok is None
    )


# --- ranges ----------------------------------------------------------------------

HOOK = {"url": URL + "hook"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"monitor": {"interval": "99ms"}},
            "monitor.interval: must be from 100ms to 7d, got '99ms'",
        ),
        ({"monitor": {"interval": "8d"}}, "monitor.interval: must be from 100ms to 7d, got '8d'"),
        (
            {"monitor": {"interval": "9" * 400 + "d"}},  # a float overflows to infinity
            f"monitor.interval: must be from 100ms to 7d, got '{'9' * 400}d'",
        ),
        (
            {"targets": [{"url": URL, "interval": "0.0000001s"}]},
            "targets[0].interval: must be from 100ms to 7d, got '0.0000001s'",
        ),
        ({"monitor": {"timeout": "0.5ms"}}, "monitor.timeout: must be from 1ms to 1h, got '0.5ms'"),
        ({"monitor": {"timeout": "2h"}}, "monitor.timeout: must be from 1ms to 1h, got '2h'"),
        ({"monitor": {"slow": "61m"}}, "monitor.slow: must be from 1ms to 1h, got '61m'"),
        ({"monitor": {"grace": "2d"}}, "monitor.grace: must be from 0ms to 1d, got '2d'"),
        ({"monitor": {"stagger": "25h"}}, "monitor.stagger: must be from 0ms to 1d, got '25h'"),
        (
            {"monitor": {"concurrency": 100_001}},
            "monitor.concurrency: must be 100000 or less, got 100001",
        ),
        (
            {"monitor": {"per_host": 10**9}},
            "monitor.per_host: must be 100000 or less, got 1000000000",
        ),
        ({"monitor": {"retries": 11}}, "monitor.retries: must be 10 or less, got 11"),
        (
            {"monitor": {"max_redirects": 101}},
            "monitor.max_redirects: must be 100 or less, got 101",
        ),
        (
            {"monitor": {"max_body": "2GiB"}},
            "monitor.max_body: size must be at most 1GiB, got '2GiB'",
        ),
        (
            {"alerts": {"failure_threshold": 10**6}},
            "alerts.failure_threshold: must be 100000 or less, got 1000000",
        ),
        (
            {"alerts": {"webhook": [HOOK | {"timeout": "2h"}]}},
            "alerts.webhook[0].timeout: must be from 1ms to 1h, got '2h'",
        ),
        (
            {"alerts": {"webhook": [HOOK | {"retries": 50}]}},
            "alerts.webhook[0].retries: must be 10 or less, got 50",
        ),
        (
            {"alerts": {"exec": [{"command": "x", "timeout": "0ms"}]}},
            "alerts.exec[0].timeout: duration must be greater than 0, got '0ms'",
        ),
        (
            {"storage": {"raw_retention": "30m"}},
            "storage.raw_retention: must be from 1h to 36500d, got '30m'",
        ),
        (
            {"storage": {"rollup_retention": "36501d"}},
            "storage.rollup_retention: must be from 1h to 36500d, got '36501d'",
        ),
    ],
)
def test_ranges(data, message):
    assert problems(data) == [f"m.toml: {message}"]


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"group_window": "11m"}, "alerts.group_window: must be from 0ms to 10m, got '11m'"),
        (
            {"group_window": "-1s"},
            "alerts.group_window: invalid duration '-1s'"
            ' (use e.g. "500ms", "10s", "5m", "1h30m")',
        ),
        (
            {"group_window": 10},
            'alerts.group_window: expected a duration string like "500ms", "10s", "5m", got 10',
        ),
        ({"group_min": 1}, "alerts.group_min: must be 2 or more, got 1"),
        ({"group_min": 100_001}, "alerts.group_min: must be 100000 or less, got 100001"),
        ({"group_min": "3"}, "alerts.group_min: expected an integer, got '3'"),
        ({"group_min": 2.5}, "alerts.group_min: expected an integer, got 2.5"),
        ({"group_min": True}, "alerts.group_min: expected an integer, got True"),
        ({"group_by": "network"}, "alerts.group_by: expected an array, got 'network'"),
        (
            {"group_by": ["network", "subnet"]},
            "alerts.group_by[1]: expected one of address, certificate, resolver, network,"
            " error or label:NAME, got 'subnet'",
        ),
        (
            {"group_by": [3]},
            "alerts.group_by[0]: expected one of address, certificate, resolver, network,"
            " error or label:NAME, got 3",
        ),
        (
            {"group_by": ["network", "error", "network"]},
            "alerts.group_by: each cause once, got network twice",
        ),
        (
            {"group_by": ["label:"]},
            "alerts.group_by[0]: label name '': letters, digits and _ (not a digit first),"
            " at most 64",
        ),
        (
            {"group_by": ["label:bad name"]},
            "alerts.group_by[0]: label name 'bad name': letters, digits and _ (not a digit"
            " first), at most 64",
        ),
        (
            {"group_by": []},
            'alerts.group_by: at least one cause (group_window = "0s" turns grouping off)',
        ),
    ],
)
def test_grouping_settings_problems(alerts, message):
    assert problems({"alerts": alerts, "targets": [{"url": URL}]}) == [f"m.toml: {message}"]


def test_grouping_settings_problems_are_one_line_each():
    bad = {"group_window": "1h", "group_min": 1, "group_by": ["rack"]}
    assert problems({"alerts": bad}) == [
        "m.toml: alerts.group_window: must be from 0ms to 10m, got '1h'",
        "m.toml: alerts.group_min: must be 2 or more, got 1",
        "m.toml: alerts.group_by[0]: expected one of address, certificate, resolver, network,"
        " error or label:NAME, got 'rack'",
    ]


def test_the_ends_of_each_range_are_valid():
    config = parse_config(
        {
            "monitor": {
                "interval": "100ms",
                "timeout": "1ms",
                "slow": "1h",
                "grace": "1d",
                "stagger": "0s",
                "concurrency": 100_000,
                "retries": 10,
                "max_redirects": 100,
                "max_body": "1GiB",
            },
            "storage": {"raw_retention": "1h", "rollup_retention": "36500d"},
            "targets": [{"url": URL, "interval": "7d", "timeout": "1h"}],
        },
        env={},
    )
    assert (config.targets[0].interval, config.monitor.max_body) == (7 * 86400.0, 1 << 30)


def test_keys_that_must_agree_names_and_paths_one_line_each():
    data = {
        "monitor": {"adaptive": True, "concurrency": 5, "adaptive_min": 10},
        "storage": {"path": " "},
        "targets": [
            {"url": URL, "name": "a\nb"},
            {"url": URL, "name": "esc\x1b[31m"},
            {"url": URL, "name": "nul\x00"},
            {
                "url": URL,
                "name": "c",
                "headers": {"Content-Length": "5", "Transfer-Encoding": "chunked"},
            },
        ],
    }
    assert problems(data) == [
        "m.toml: targets[0].name: must not contain control characters, got 'a\\nb'",
        "m.toml: targets[1].name: must not contain control characters, got 'esc\\x1b[31m'",
        "m.toml: targets[2].name: must not contain control characters, got 'nul\\x00'",
        "m.toml: targets[3].headers.Content-Length: Content-Length is set by the request itself;"
        " remove it",
        "m.toml: targets[3].headers.Transfer-Encoding: Transfer-Encoding is set by the request"
        " itself; remove it",
        "m.toml: monitor.adaptive_min: must be at most concurrency (5) with adaptive = true, got 10",
        "m.toml: storage.path: must not be empty (remove it for the default)",
    ]
    # without adaptive, adaptive_min is not used: a small concurrency stays valid
    assert parse_config({"monitor": {"concurrency": 5}}, env={}).monitor.concurrency == 5


# --- wrong types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("monitor", "message"),
    [
        ({"concurrency": "10"}, "monitor.concurrency: expected an integer, got '10'"),
        ({"retries": 1.5}, "monitor.retries: expected an integer, got 1.5"),
        ({"retries": True}, "monitor.retries: expected an integer, got True"),
        ({"concurrency": 0}, "monitor.concurrency: must be 1 or more, got 0"),
        ({"retries": -1}, "monitor.retries: must be 0 or more, got -1"),
        ({"verify_tls": "yes"}, "monitor.verify_tls: expected true or false, got 'yes'"),
        ({"follow_redirects": 1}, "monitor.follow_redirects: expected true or false, got 1"),
        (
            {"interval": 5},
            'monitor.interval: expected a duration string like "500ms", "10s", "5m", got 5',
        ),
        ({"method": 5}, "monitor.method: expected a string, got 5"),
        ({"headers": "x"}, "monitor.headers: expected a mapping"),
        ({"headers": {"X": 1}}, "monitor.headers.X: expected a string, got 1"),
        (
            {"on_too_large": "drop"},
            'monitor.on_too_large: must be one of "truncate", "fail", got \'drop\'',
        ),
    ],
)
def test_wrong_types(monitor, message):
    assert problems({"monitor": monitor}) == [f"m.toml: {message}"]


def test_wrong_shapes():
    assert problems({"monitor": "fast", "alerts": 3, "targets": "all"}) == [
        "m.toml: monitor: expected a table, got 'fast'",
        "m.toml: alerts: expected a table, got 3",
        "m.toml: targets: expected an array, got 'all'",
    ]
    # `[targets]` where `[[targets]]` was meant
    assert problems({"targets": {"url": URL}}) == [
        "m.toml: targets: expected an array, got a table"
    ]
    assert problems({"targets": [URL]}) == [f"m.toml: targets[0]: expected a table, got '{URL}'"]


def test_unknown_keys():
    assert problems(
        {
            "monitor": {"bogus": 1, "intervall": "1s"},
            "alerts": {"webhook": [{"url": URL, "secret": "x"}]},
            "targets": [{"url": URL, "tiemout": "1s"}],
            "extra": {},
        }
    ) == [
        "m.toml: monitor.bogus: unknown key",
        "m.toml: monitor.intervall: unknown key",
        "m.toml: alerts.webhook[0].secret: unknown key",
        "m.toml: targets[0].tiemout: unknown key",
        "m.toml: extra: unknown key",
    ]


# --- files -----------------------------------------------------------------------


def test_load_config(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(
        f'[monitor]\ninterval = "10s"\n\n[[targets]]\nurl = "{URL}"\n', encoding="utf-8"
    )
    config = load_config(path, env={})
    assert config.path == str(path)
    assert config.targets[0].interval == 10.0


def test_file_errors_name_the_file_and_key_path(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(
        f"""
[monitor]
bogus = 1
interval = 5
verify_tls = "yes"

[[targets]]
url = "{URL}"

[[targets]]
url = "{URL}b"
timeout = "soon"
retries = "2"
""",
        encoding="utf-8",
    )
    assert load_problems(path) == [
        f'{path}: monitor.interval: expected a duration string like "500ms", "10s", "5m", got 5',
        f"{path}: monitor.verify_tls: expected true or false, got 'yes'",
        f"{path}: monitor.bogus: unknown key",
        f'{path}: targets[1].timeout: invalid duration \'soon\' (use e.g. "500ms", "10s", "5m", "1h30m")',
        f"{path}: targets[1].retries: expected an integer, got '2'",
    ]


def test_several_semantic_problems_together(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(
        f"""
[monitor]
expect_status = ["9xx"]
headers = {{ X = "${{NOPE}}" }}

[[targets]]
name = "a"
url = "{URL}"

[[targets]]
name = "a"
url = "{URL}"
expect_status = ["200-100"]
""",
        encoding="utf-8",
    )
    assert load_problems(path) == [
        f'{path}: monitor.expect_status: invalid status \'9xx\' (use 200, "2xx" or "200-299")',
        f"{path}: monitor.headers.X: environment variable NOPE is not set",
        f"{path}: targets[1].name: duplicate target name 'a' (first used by targets[0])",
        f"{path}: targets[1].expect_status: invalid status range '200-100' (codes are 100-599)",
    ]


def test_toml_syntax_error(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[monitor]\ninterval = "10s\n', encoding="utf-8")
    (line,) = load_problems(path)
    assert line.startswith(f"{path}: TOML syntax error: ")
    assert "line 2" in line
    assert "\n" not in line


def test_missing_file(tmp_path):
    assert load_problems(tmp_path / "nope.toml") == [f"{tmp_path / 'nope.toml'}: file not found"]


def test_non_utf8_file(tmp_path):
    path = tmp_path / "m.toml"
    data = b'[monitor]\noutput = "caf\xe9"\n'
    path.write_bytes(data)
    at = data.index(b"\xe9")
    assert load_problems(path) == [
        f"{path}: not UTF-8 text (invalid continuation byte at byte {at})"
    ]


def test_unreadable_path(tmp_path):
    (line,) = load_problems(tmp_path)
    assert line.startswith(f"{tmp_path}: cannot read: ")


def test_the_shipped_config_validates():
    config = load_config(SHIPPED, env={})
    assert config.targets
    assert config.server is not None  # the quick start serves the status page


def test_shipped_config_examples_of_other_kinds_validate(tmp_path):
    # the commented-out examples after the "more kinds" line, uncommented, are a valid
    # config: what the file shows a new user works when they take it
    text = SHIPPED.read_text()
    head, _, examples = text.partition("# --- more kinds")
    uncommented = "\n".join(
        line.removeprefix("# ").removeprefix("#") for line in examples.splitlines()[3:]
    )
    path = tmp_path / "monitor.toml"
    path.write_text(head + uncommented)
    config = load_config(path, env={})
    kinds = {t.kind for t in config.targets}
    assert {"http", "tcp", "tls", "dns", "icmp", "ws", "browser", "push"} <= kinds


def test_cert_expiry_and_its_steps():
    config = parse_config(
        {
            "monitor": {"cert_expiry": "21d", "cert_expiry_steps": ["10d", "2d"]},
            "targets": [
                {"url": "https://a.test/"},
                {"url": "https://b.test/", "cert_expiry": "30d", "cert_expiry_steps": ["12h"]},
                {"url": "https://c.test/", "cert_expiry": "0s"},
                {"url": "https://d.test/", "cert_expiry": "5d"},  # inherited 10d is skipped
            ],
        }
    )
    assert [t.cert_alerts for t in config.targets] == [
        (21 * DAY, 10 * DAY, 2 * DAY),
        (30 * DAY, DAY / 2),
        (),
        (5 * DAY, 2 * DAY),
    ]
    assert parse_config({"targets": [{"url": "https://a.test/"}]}).targets[0].cert_alerts == (
        14 * DAY,
        7 * DAY,
        DAY,
    )


@pytest.mark.parametrize(
    ("table", "line"),
    [
        ({"cert_expiry": "400d"}, "targets[0].cert_expiry: must be from 0ms to 365d, got '400d'"),
        ({"cert_expiry": 14}, "targets[0].cert_expiry: expected a duration string"),
        (
            {"cert_expiry_steps": ["20d"]},
            "targets[0].cert_expiry_steps: each step must be more than 0s and shorter than "
            "cert_expiry (14d), got 20d",
        ),
        ({"cert_expiry_steps": "7d"}, "targets[0].cert_expiry_steps: expected an array"),
    ],
)
def test_bad_cert_expiry_is_one_line(table, line):
    with pytest.raises(ConfigError) as caught:
        parse_config({"targets": [{"url": "https://a.test/", **table}]})
    [problem] = caught.value.problems
    assert line in problem


def test_bad_monitor_cert_expiry_steps():
    with pytest.raises(ConfigError) as caught:
        parse_config({"monitor": {"cert_expiry_steps": ["0s"]}, "targets": []})
    assert caught.value.problems == [
        "<memory>: monitor.cert_expiry_steps: each step must be more than 0s and shorter "
        "than cert_expiry (14d), got 0s"
    ]


def test_labels_notifier_names_and_target_alert_policy():
    config = parse_config(
        {
            "monitor": {"labels": {"env": "prod"}},
            "alerts": {
                "failure_threshold": 3,
                "webhook": [{"url": "http://127.0.0.1/h", "name": "pager"}],
                "exec": [{"command": "true"}],
            },
            "targets": [
                {
                    "name": "api",
                    "url": "http://127.0.0.1/",
                    "labels": {"team": "payments", "env": "staging"},
                    "depends_on": ["router"],
                    "alerts": {
                        "failure_threshold": 5,
                        "notify": ["pager", "exec[0]"],
                        "repeat": "1s",
                    },
                },
                {"name": "router", "url": "http://127.0.0.1/r"},
            ],
        },
        env={},
    )
    api, router = config.targets
    assert dict(api.labels) == {"env": "staging", "team": "payments"}
    assert dict(router.labels) == {"env": "prod"}
    assert hash(api) == hash(attrs.evolve(api))  # targets stay hashable
    assert (api.failure_threshold, api.success_threshold) == (5, 1)
    assert (router.failure_threshold, router.notify, router.repeat) == (3, None, None)
    assert (api.notify, api.repeat, api.depends_on) == (("pager", "exec[0]"), 1.0, ("router",))


def test_bad_labels_names_and_dependencies():
    url = "http://127.0.0.1/"
    assert problems(
        {
            "monitor": {"labels": {"9lives": "x"}},
            "alerts": {
                "webhook": [{"url": url, "name": "a"}, {"url": url, "name": "a"}],
                "exec": [{"command": "true", "match_re": {"team": "("}}],
            },
            "targets": [
                {"name": "t0", "url": url, "labels": {"team": "a\nb"}},
                {"name": "t1", "url": url, "alerts": {"notify": ["nobody"], "repeat": "0.5s"}},
            ],
        }
    ) == [
        "m.toml: monitor.labels: label name '9lives': letters, digits and _ (not a digit first), at most 64",
        "m.toml: alerts.exec[0].match_re: label team: bad regular expression '(': missing ), unterminated subpattern at position 0",
        "m.toml: targets[0].labels: label team: at most 200 characters, no control characters",
        "m.toml: targets[1].alerts.repeat: must be from 1s to 30d, got '0.5s'",
    ]
    assert problems(
        {
            "alerts": {"webhook": [{"url": url, "name": "a"}, {"url": url, "name": "a"}]},
            "targets": [
                {"name": "t0", "url": url, "depends_on": ["t0", "nope"]},
                {"name": "t1", "url": url, "alerts": {"notify": ["nobody"]}, "depends_on": ["t2"]},
                {"name": "t2", "url": url, "depends_on": ["t3"]},
                {"name": "t3", "url": url, "depends_on": ["t1"]},
            ],
        }
    ) == [
        "m.toml: alerts.webhook[1].name: duplicate notifier name 'a' (first used by alerts.webhook[0])",
        "m.toml: targets[0].depends_on[0]: a target cannot depend on itself",
        "m.toml: targets[0].depends_on[1]: no target named 'nope'",
        "m.toml: targets[1].alerts.notify[0]: no notifier named 'nobody' (a)",
        "m.toml: targets: depends_on makes a cycle: t1 -> t2 -> t3 -> t1",
    ]


def test_a_long_dependency_chain_is_no_cycle_and_no_recursion():
    url = "http://127.0.0.1/"
    chain = [{"name": f"t{i}", "url": url, "depends_on": [f"t{i + 1}"]} for i in range(5000)]
    chain.append({"name": "t5000", "url": url})
    assert len(parse_config({"targets": chain}).targets) == 5001


def test_a_url_with_control_characters_is_one_line():
    assert problems({"targets": [{"url": "http://127.0.0.1/a\x85b"}]}) == [
        "m.toml: targets[0].url: invalid URL 'http://127.0.0.1/a\\x85b': control characters are not allowed"
    ]


# --- [cluster] -----------------------------------------------------------------------

CLUSTER = {"redis": "redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0", "node": "eu-1a"}


def test_cluster_section_resolves_env_and_keeps_the_password_out_of_sight():
    config = parse_config(
        {"cluster": CLUSTER, "targets": [{"url": URL, "locations": 3, "quorum": 2}]},
        env={"REDIS_PASSWORD": "s3cret"},
    )
    cluster = config.cluster
    assert cluster is not None
    assert cluster.redis == "redis://:s3cret@127.0.0.1:6379/0"
    assert cluster.redis_shown == "redis://:***@127.0.0.1:6379/0"
    assert "s3cret" not in repr(config)
    assert (cluster.node, cluster.location, cluster.redis_down) == ("eu-1a", "default", "wait")
    assert cluster.member == "default/eu-1a"
    target = config.targets[0]
    assert (target.locations, target.quorum) == (3, 2)


def test_cluster_node_defaults_to_the_host_name(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "box-7.example.com")
    config = parse_config(
        {"cluster": {"redis": "rediss://127.0.0.1:6380/0", "location": "eu-west"}}, env={}
    )
    assert config.cluster is not None
    assert (config.cluster.node, config.cluster.location) == ("box-7", "eu-west")
    assert parse_config({}, env={}).cluster is None


def test_cluster_node_and_location_take_env_one_file_for_every_node():
    """README's walk-through: `node = "${NODE}"`, each process started with its own."""
    cluster = {"redis": "redis://127.0.0.1/", "node": "${NODE}", "location": "${SITE}"}
    config = parse_config({"cluster": cluster}, env={"NODE": "n2", "SITE": "eu-west"})
    assert config.cluster is not None
    assert config.cluster.member == "eu-west/n2"


def test_targets_default_to_one_location_and_quorum():
    target = only_target({"targets": [{"url": URL}]})
    assert (target.locations, target.quorum) == (1, 1)


@pytest.mark.parametrize(
    ("cluster", "target", "env", "line"),
    [
        (CLUSTER, {}, {}, "m.toml: cluster.redis: environment variable REDIS_PASSWORD is not set"),
        (
            {"redis": "http://:pw@127.0.0.1/"},
            {},
            {},
            "m.toml: cluster.redis: expected a redis:// or rediss:// URL, got 'http://:***@127.0.0.1/'",
        ),
        (
            {"redis": "redis://127.0.0.1/", "node": "eu/1a"},
            {},
            {},
            "m.toml: cluster.node: expected 1-64 letters, digits, '_', '.' or '-', got 'eu/1a'",
        ),
        (
            {"redis": "redis://127.0.0.1/", "node": "${NODE}"},
            {},
            {},
            "m.toml: cluster.node: environment variable NODE is not set",
        ),
        (
            {"redis": "redis://127.0.0.1/", "location": "${SITE}x/y"},
            {},
            {"SITE": "eu"},
            "m.toml: cluster.location: expected 1-64 letters, digits, '_', '.' or '-', got 'eux/y'",
        ),
        (
            {"redis": "redis://127.0.0.1/", "redis_down": "panic"},
            {},
            {},
            """m.toml: cluster.redis_down: must be one of "wait", "local", got 'panic'""",
        ),
        (
            {"redis": "redis://127.0.0.1/"},
            {"locations": 2, "quorum": 3},
            {},
            "m.toml: targets[0].quorum: must be at most locations (2), got 3",
        ),
        (
            None,
            {"locations": 2},
            {},
            "m.toml: targets[0].locations: more than one location needs a [cluster] section",
        ),
    ],
)
def test_cluster_problems_are_one_line_each(cluster, target, env, line):
    doc: dict = {"targets": [{"url": URL, **target}]}
    if cluster is not None:
        doc["cluster"] = cluster
    assert problems(doc, env=env) == [line]


def test_quorum_below_one_is_refused():
    [line] = problems({"targets": [{"url": URL, "quorum": 0}]})
    assert line.startswith("m.toml: targets[0].quorum: ")


def test_cluster_without_coredis_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "coredis", None)  # as if not installed
    assert problems({"cluster": {"redis": "redis://127.0.0.1/"}}) == [
        "m.toml: cluster: cluster mode needs the coredis library: "
        "pip install 'trio-monitor[cluster]'"
    ]
