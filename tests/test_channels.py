"""Alert channels: templated webhooks and their presets against a real loopback
receiver, Apprise (json://, form://, mailto:// to a loopback SMTP server), the template
sandbox, the shared retries, per-notifier rate limits and the sent/failed/dropped counts."""

from __future__ import annotations

import json
import socket
import sys
import threading
import urllib.parse

import pytest
import trio
import trio.testing
from factories import alert_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_monitor import ConfigError, parse_config
from trio_monitor._records import to_line
from trio_monitor.alerts import templates
from trio_monitor.alerts.apprise import Apprise
from trio_monitor.alerts.base import Notifiers, TokenBucket
from trio_monitor.alerts.exec import Exec
from trio_monitor.alerts.webhook import Webhook
from trio_monitor.engine.dispatch import Dispatcher
from trio_monitor.engine.state import MemoryStateStore

pytestmark = pytest.mark.usefixtures("fast_backoff")


def alert(event="down", target="api", **fields):
    fields.setdefault("reason", "connect")
    fields.setdefault("detail", "connection refused")
    return alert_event(event, target, url="http://127.0.0.1/", **fields)


def channels(key: str, *tables: dict) -> tuple:
    return parse_config({"alerts": {key: list(tables)}}, env={"TOKEN": "t0ken"}).alerts.channels(
        key
    )


def problems(alerts: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({"alerts": alerts}, env={}, path="m.toml")
    assert all("\n" not in line for line in info.value.problems)
    return info.value.problems


async def post(server, client, **table) -> tuple[bytes, dict[str, str]]:
    """Deliver one down alert through a webhook with `table`: the body and headers
    the receiver got."""
    (hook,) = channels("webhook", {"url": server.url("/hook"), **table})
    assert await Webhook(hook, client).deliver(alert())
    request = server.requests[-1]
    return request["body"], request["headers"]


# --- templated webhooks and presets -------------------------------------------------

SUMMARY = "DOWN api: connect: connection refused"


async def test_a_webhook_without_a_template_sends_the_json_line_as_before(server, client):
    body, headers = await post(server, client)
    assert body == to_line(alert()).encode()
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == alert().key


@pytest.mark.parametrize(
    ("preset", "expected", "content_type"),
    [
        ("slack", {"text": SUMMARY}, "application/json"),
        (
            "discord",
            {"content": SUMMARY, "allowed_mentions": {"parse": []}},
            "application/json",
        ),
        ("mattermost", {"text": SUMMARY}, "application/json"),
        ("google_chat", {"text": SUMMARY}, "application/json; charset=UTF-8"),
        (
            "teams",
            {
                "type": "message",
                "attachments": [
                    {
                        "contentType": "application/vnd.microsoft.card.adaptive",
                        "contentUrl": None,
                        "content": {
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "type": "AdaptiveCard",
                            "version": "1.2",
                            "body": [
                                {
                                    "type": "TextBlock",
                                    "text": "DOWN api",
                                    "weight": "Bolder",
                                    "size": "Medium",
                                    "wrap": True,
                                },
                                {"type": "TextBlock", "text": SUMMARY, "wrap": True},
                            ],
                        },
                    }
                ],
            },
            "application/json",
        ),
    ],
)
async def test_json_presets_send_each_services_documented_shape(
    server, client, preset, expected, content_type
):
    body, headers = await post(server, client, preset=preset)
    assert json.loads(body) == expected
    assert headers["content-type"] == content_type
    assert headers["idempotency-key"] == alert().key


async def test_ntfy_preset_sends_a_plain_body_and_its_headers(server, client):
    body, headers = await post(server, client, preset="ntfy", headers={"Authorization": "x"})
    assert body == SUMMARY.encode()
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert (headers["title"], headers["priority"], headers["tags"]) == (
        "DOWN api",
        "urgent",
        "rotating_light,down",
    )
    assert headers["authorization"] == "x"  # the table's headers are kept


async def test_ntfy_title_beyond_latin1_goes_as_an_encoded_word(server, client):
    (hook,) = channels("webhook", {"url": server.url("/hook"), "preset": "ntfy"})
    assert await Webhook(hook, client).deliver(alert(target="сервер"))
    title = server.requests[-1]["headers"]["title"]
    assert title.startswith("=?utf-8?")
    from email.header import decode_header

    ((raw, charset),) = decode_header(title)
    assert raw.decode(charset) == "DOWN сервер"


async def test_json_values_are_escaped_in_presets(server, client):
    (hook,) = channels("webhook", {"url": server.url("/hook"), "preset": "slack"})
    nasty = alert(detail='"quoted" \\ <tag> & é\nline')
    assert await Webhook(hook, client).deliver(nasty)
    text = json.loads(server.received[-1])["text"]
    assert text == 'DOWN api: connect: "quoted" \\ <tag> & é\nline'


async def test_a_template_renders_the_alerts_fields(server, client):
    template = (
        "{{ event }}|{{ target }}|{{ key }}|{{ time }}|{{ reason }}|{{ url }}"
        "|{{ summary }}|{{ json | length > 0 }}"
    )
    body, headers = await post(server, client, template=template, content_type="text/plain")
    a = alert()
    assert body.decode() == (
        f"down|api|{a.key}|{json.loads(to_line(a))['ts']}|connect|http://127.0.0.1/|{SUMMARY}|True"
    )
    assert headers["content-type"] == "text/plain"


async def test_a_template_failing_at_run_time_fails_that_alert_once(server, client, caplog):
    # fine for a slow alert; a down alert has no latency: that alert fails, unsent
    (hook,) = channels(
        "webhook", {"url": server.url("/hook"), "template": "{{ latency_ms + 1 }}", "retries": 3}
    )
    assert not await Webhook(hook, client).deliver(alert())
    assert server.hits["/hook"] == 0
    assert caplog.text.count("giving up on down alert for api: template: ") == 1
    assert await Webhook(hook, client).deliver(alert("slow", latency_ms=2.0))
    assert server.received == [b"3.0"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ target }", "alerts.webhook[0].template: unexpected '}' (line 1)"),
        ("ok\n{% if %}", "alerts.webhook[0].template: Expected an expression, got 'end of"),
        ("{{ nope }}", "alerts.webhook[0].template: unknown field 'nope'"),
        (
            "{{ ''.__class__.__mro__ }}",
            "alerts.webhook[0].template: refused by the sandbox: access to attribute "
            "'__class__' of 'str' object is unsafe",
        ),
        (
            "{{ target.__class__ }}",
            "alerts.webhook[0].template: refused by the sandbox",
        ),
        ("{{ cycler.__init__.__globals__ }}", "alerts.webhook[0].template: refused by the sandbox"),
    ],
)
def test_bad_templates_are_one_config_error_line(template, message):
    (line,) = problems({"webhook": [{"url": "http://127.0.0.1/", "template": template}]})
    assert line.startswith(f"m.toml: {message}"), line


def test_the_sandbox_refuses_at_run_time_too():
    # a template the load-time sample did not reach: refused when rendered, never run
    template = templates.compile_template(
        "{% if event == 'up' %}{{ ''.__class__.__mro__ }}{% endif %}"
    )
    with pytest.raises(templates.TemplateError, match="SecurityError: access to attribute"):
        templates.render(template, alert("up"))


def test_template_and_preset_together_and_bad_presets_are_config_errors():
    both = {"url": "http://127.0.0.1/", "template": "{{ summary }}", "preset": "slack"}
    assert problems({"webhook": [both]}) == [
        "m.toml: alerts.webhook[0].template: set either template or preset, not both"
    ]
    assert problems({"webhook": [{"url": "http://127.0.0.1/", "preset": "pager"}]}) == [
        'm.toml: alerts.webhook[0].preset: must be one of "slack", "discord", "teams", '
        '"mattermost", "google_chat", "ntfy", got \'pager\''
    ]


@pytest.mark.fuzz
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [*"{}%#()[]|._'\"=- x0\n", "{{", "}}", "{%", "%}", "if", "event", "__class__"]
        )
    ).map("".join)
)
def test_any_template_text_is_accepted_or_one_error_line(text):
    try:
        parse_config(
            {"alerts": {"webhook": [{"url": "http://127.0.0.1/", "template": text}]}},
            env={},
            path="m.toml",
        )
    except ConfigError as exc:
        (line,) = exc.problems
        assert line.startswith("m.toml: alerts.webhook[0].template: ")
        assert "\n" not in line


def test_summaries_per_event():
    assert templates.summary(alert()) == SUMMARY
    up = alert_event("up", "api", downtime_s=3723.0)
    assert templates.summary(up) == "UP api: down for 1h02m"
    slow = alert_event("slow", "api", latency_ms=2300.4, slow_ms=1000.0)
    assert templates.summary(slow) == "SLOW api: 2300 ms (slow above 1000 ms)"
    reminder = alert("reminder", since=alert().ts - 7260.0)
    assert templates.summary(reminder) == (
        "REMINDER api: still down after 2h01m: connect: connection refused"
    )
    group = alert_event("group_down", "group", cause="14 targets on 10.1.2.0/24 failing")
    assert templates.summary(group) == "GROUP_DOWN group: 14 targets on 10.1.2.0/24 failing"


# --- shared retries, exec retries ---------------------------------------------------


@pytest.mark.subprocess
async def test_exec_retries_when_asked(tmp_path, caplog):
    marker = tmp_path / "tried"
    code = (
        "import pathlib, sys; p = pathlib.Path(sys.argv[1]); "
        "first = not p.exists(); p.touch(); sys.exit(1 if first else 0)"
    )
    (config,) = channels("exec", {"command": [sys.executable, "-c", code, str(marker)]})
    assert not await Exec(config).deliver(alert())  # retries = 0: one run
    marker.unlink()
    (config,) = channels(
        "exec", {"command": [sys.executable, "-c", code, str(marker)], "retries": 1}
    )
    assert await Exec(config).deliver(alert())
    assert "exec " + sys.executable + ": attempt 1 failed: exited 1" in caplog.text


# --- rate limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20/min", (20, 60.0)), ("1/s", (1, 1.0)), ("100/h", (100, 3600.0)), ("5/10s", (5, 10.0))],
)
def test_rate_limits_parse(text, expected):
    (hook,) = channels("webhook", {"url": "http://127.0.0.1/", "rate_limit": text})
    assert hook.rate_limit == expected


@pytest.mark.parametrize("text", ["0/min", "20", "x/min", "5/0s", "5/2d", 20])
def test_bad_rate_limits_are_config_errors(text):
    (line,) = problems({"webhook": [{"url": "http://127.0.0.1/", "rate_limit": text}]})
    assert line.startswith("m.toml: alerts.webhook[0].rate_limit: "), line


async def test_token_bucket_bursts_then_paces(autojump_clock):
    bucket = TokenBucket(2, 60.0)
    start = trio.current_time()
    times = []
    for _ in range(5):
        await bucket.take()
        times.append(round(trio.current_time() - start, 6))
    assert times == [0.0, 0.0, 30.0, 60.0, 90.0]
    await trio.sleep(600)  # idle: the bucket refills up to its burst, no more
    for _ in range(3):
        await bucket.take()
    assert round(trio.current_time() - start, 6) == 690.0 + 30.0


def dispatcher() -> Dispatcher:
    return Dispatcher(MemoryStateStore(parse_config({}).alerts))


async def test_alerts_over_the_rate_wait_in_the_queue_and_overflow_is_dropped(
    memory_channel, autojump_clock, monkeypatch
):
    monkeypatch.setattr("trio_monitor.alerts.base.QUEUE", 4)
    dispatch = dispatcher()
    config = parse_config({"alerts": {"memory": [{"name": "m", "rate_limit": "2/min"}]}})
    async with trio.open_nursery() as nursery:
        notifiers = Notifiers(dispatch, nursery, None)  # type: ignore[arg-type]
        notifiers.configure(config)
        start = trio.current_time()
        for i in range(8):
            dispatch.publish(alert(target=f"t{i}"))
        # 4 queued, 4 dropped and counted at once: publishing never waits for the rate
        assert dispatch.drops() == {"m": 4}
        times = []
        for n in range(1, 5):
            await memory_channel.wait_delivered("m", n, within=1000)
            times.append(trio.current_time() - start)
        dispatch.close()
    assert [round(t) for t in times] == [0, 0, 30, 60]
    assert [a.target for a in memory_channel.DELIVERED["m"]] == ["t0", "t1", "t2", "t3"]
    assert notifiers.sent == {"m": 4}


async def test_sent_and_failed_are_counted_per_notifier(memory_channel):
    dispatch = dispatcher()
    config = parse_config({"alerts": {"memory": [{"name": "ok"}, {"name": "bad", "fail": True}]}})
    async with trio.open_nursery() as nursery:
        notifiers = Notifiers(dispatch, nursery, None)  # type: ignore[arg-type]
        notifiers.configure(config)
        dispatch.publish(alert())
        dispatch.publish(alert("up"))
        dispatch.close()
    assert notifiers.sent == {"ok": 2}  # by the notifier's name
    assert notifiers.given_up == {"bad": 2}


# --- Apprise ------------------------------------------------------------------------


async def test_apprise_json_to_a_loopback_receiver(server):
    (config,) = channels("apprise", {"urls": [f"json://127.0.0.1:{server.port}/hook"]})
    assert await Apprise(config).deliver(alert())
    body = json.loads(server.received[-1])
    assert (body["title"], body["message"], body["type"]) == ("DOWN api", SUMMARY, "failure")
    assert server.requests[-1]["method"] == "POST"


async def test_apprise_form_with_templates_and_env(server):
    (config,) = channels(
        "apprise",
        {
            "urls": ["form://127.0.0.1:" + str(server.port) + "/hook?token=${TOKEN}"],
            "title": "[{{ event }}] {{ target }}",
            "body": "{{ target }} is {{ event }} since {{ time }}",
        },
    )
    a = alert("up", downtime_s=5.0)
    assert await Apprise(config).deliver(a)
    form = dict(urllib.parse.parse_qsl(server.received[-1].decode()))
    time = json.loads(to_line(a))["ts"]
    assert (form["title"], form["message"], form["type"]) == (
        "[up] api",
        f"api is up since {time}",
        "success",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    """aiosmtpd in its own thread on 127.0.0.1: the messages it received."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received: list = []

    class Keep(Message):
        def handle_message(self, message):
            received.append(message)

    controller = Controller(Keep(), hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller.port, received
    finally:
        controller.stop()


async def test_apprise_mailto_to_a_loopback_smtp_server(smtp_server):
    port, received = smtp_server
    url = f"mailto://127.0.0.1:{port}?from=monitor@example.com&to=ops@example.com&mode=insecure"
    (config,) = channels("apprise", {"urls": [url]})
    assert await Apprise(config).deliver(alert())
    (message,) = received
    assert message["Subject"] == "DOWN api"
    assert message["To"].endswith("ops@example.com")
    payload = message.get_payload(decode=True) if not message.is_multipart() else None
    text = payload.decode() if payload else message.as_string()
    assert SUMMARY in text


async def test_apprise_retries_only_the_urls_that_failed(server, caplog):
    server.hook_failures = 1
    good = f"json://127.0.0.1:{server.port}/hook"
    flaky = f"json://127.0.0.1:{server.port}/hook?name=second"
    (config,) = channels("apprise", {"urls": [good, flaky], "retries": 2})
    assert await Apprise(config).deliver(alert())
    # the first URL's call met the failure; only it was tried again
    assert server.hits["/hook"] == 3
    assert len(server.received) == 2
    assert "attempt 1 failed: not delivered to json://127.0.0.1" in caplog.text


async def test_apprise_call_past_its_bound_is_abandoned_and_counted(caplog):
    (config,) = channels(
        "apprise", {"urls": ["json://127.0.0.1:9/x"], "timeout": "100ms", "retries": 0}
    )
    notifier = Apprise(config)
    release = threading.Event()
    notifier._plugins[0].notify = lambda **_: release.wait(30)  # a call that hangs
    try:
        with trio.fail_after(10):
            assert not await notifier.deliver(alert())
    finally:
        release.set()
    assert notifier.abandoned == 1
    assert "abandoned a call still running (1 so far)" in caplog.text
    assert "giving up on down alert for api: no answer within 1.2s" in caplog.text


def test_apprise_urls_are_redacted_and_checked():
    (config,) = channels(
        "apprise",
        {"urls": ["json://user:s3cret@127.0.0.1:9/x", "tgram://123456789:abcdefghijklmnop/42/"]},
    )
    shown = Apprise(config).describe()
    assert "s3cret" not in shown
    assert "abcdefghijklmnop" not in shown
    assert shown.startswith("apprise json://user:***@127.0.0.1:9/x, tgram://")
    lines = problems({"apprise": [{"urls": ["nonsense://secret-token", "json://${UNSET}/"]}]})
    assert lines == [
        "m.toml: alerts.apprise[0].urls[0]: not a URL Apprise can send to (scheme 'nonsense')",
        "m.toml: alerts.apprise[0].urls[1]: environment variable UNSET is not set",
    ]
    assert all("secret-token" not in line for line in lines)


def test_apprise_missing_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setattr("trio_monitor.alerts.apprise._apprise", lambda: None)
    assert problems({"apprise": [{"urls": ["json://127.0.0.1/"]}]}) == [
        "m.toml: alerts.apprise[0]: needs Apprise, an optional dependency: "
        "pip install 'trio-monitor[apprise]'"
    ]


async def test_apprise_never_blocks_the_loop(server):
    """While Apprise waits on a hanging receiver in its thread, the loop runs on."""
    (config,) = channels(
        "apprise",
        {"urls": [f"json://127.0.0.1:{server.port}/hang"], "timeout": "1s", "retries": 0},
    )
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        assert not await Apprise(config).deliver(alert())
        nursery.cancel_scope.cancel()
    assert ticks >= 20  # about a second of 10 ms ticks went by meanwhile
