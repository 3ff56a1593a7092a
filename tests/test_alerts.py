"""Notifiers: webhooks and commands against real loopback servers and real processes."""

from __future__ import annotations

import json
import logging
import random
import sys

import pytest
import trio
from factories import alert_event

from trio_monitor import parse_config
from trio_monitor.alerts.base import Notifiers, run_exec, send_webhook
from trio_monitor.probes.http.transport import open_http_client


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr("trio_monitor.alerts.base.WEBHOOK_BACKOFF", 0.001)


@pytest.fixture
async def client():
    async with open_http_client(4) as (client, _router):
        yield client


def alert(event="down", target="api"):
    return alert_event(event, target, url="http://127.0.0.1/", reason="connect")


def alerts_config(**alerts):
    return parse_config({"alerts": alerts}).alerts


async def test_webhook_posts_alert_json(server, client):
    (hook,) = alerts_config(
        webhook=[{"url": server.url("/hook"), "headers": {"X-Token": "s3cret"}}]
    ).webhook
    assert await send_webhook(client, hook, alert(), random.Random(1))
    body = json.loads(server.received[0])
    assert (body["type"], body["event"], body["target"], body["reason"]) == (
        "alert",
        "down",
        "api",
        "connect",
    )
    request = server.requests[-1]
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["x-token"] == "s3cret"


async def test_webhook_retries_server_errors(server, client, caplog):
    (hook,) = alerts_config(webhook=[{"url": server.url("/hook"), "retries": 3}]).webhook
    server.hook_failures = 2
    assert await send_webhook(client, hook, alert(), random.Random(1))
    assert server.hits["/hook"] == 3
    assert caplog.text.count("HTTP 500") == 2


async def test_webhook_gives_up_and_does_not_retry_client_errors(server, client, caplog):
    (hook,) = alerts_config(webhook=[{"url": server.url("/status/404"), "retries": 3}]).webhook
    assert not await send_webhook(client, hook, alert(), random.Random(1))
    assert server.hits["/status/404"] == 1
    assert "giving up on down alert for api" in caplog.text


async def test_webhook_timeout_is_logged(server, client, caplog):
    (hook,) = alerts_config(
        webhook=[{"url": server.url("/hang"), "retries": 1, "timeout": "100ms"}]
    ).webhook
    assert not await send_webhook(client, hook, alert(), random.Random(1))
    # both attempts timed out (on a loaded machine one may end before the server even
    # reads the request, so count the attempts in the log, not at the server)
    assert caplog.text.count("no answer within 0.1s") == 2
    assert server.hits["/hang"] <= 2


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.mark.subprocess
async def test_exec_gets_alert_on_stdin_and_env(tmp_path):
    out = tmp_path / "got.json"
    code = (
        "import os, sys, pathlib; data = sys.stdin.read(); "
        f"pathlib.Path({str(out)!r}).write_text(os.environ['TRIO_MONITOR_EVENT'] + ' ' "
        "+ os.environ['TRIO_MONITOR_TARGET'] + ' ' + data); print('noise on stdout')"
    )
    (notifier,) = alerts_config(exec=[{"command": python_command(code)}]).exec
    assert await run_exec(notifier, alert(event="up", target="web"))
    event, target, data = out.read_text().split(" ", 2)
    assert (event, target) == ("up", "web")
    assert json.loads(data)["event"] == "up"


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("command", "message"),
    [
        (python_command("import sys; sys.stderr.write('pager down'); sys.exit(3)"), "exited 3"),
        (["/nonexistent/page-me"], "cannot run"),
        (python_command("import time; time.sleep(60)"), "killed after 0.2s"),
    ],
)
async def test_exec_failures_are_logged_not_raised(command, message, caplog):
    (notifier,) = alerts_config(exec=[{"command": command, "timeout": "200ms"}]).exec
    assert not await run_exec(notifier, alert())
    assert message in caplog.text


@pytest.mark.subprocess
async def test_notifiers_route_by_event_and_reconfigure(server, client, tmp_path):
    log_file = tmp_path / "events"
    append = python_command(f"import sys; open({str(log_file)!r}, 'a').write(sys.stdin.read())")
    downs_only = {"url": server.url("/hook"), "events": ["down"]}
    async with trio.open_nursery() as nursery:
        notifiers = Notifiers(nursery, client)
        notifiers.configure(alerts_config(webhook=[downs_only], exec=[{"command": append}]))
        notifiers.publish(alert("down"))
        notifiers.publish(alert("up"))
        await server.wait_received(1)
        # reload without the webhook: its task ends, the command's keeps going
        notifiers.configure(alerts_config(exec=[{"command": append}]))
        notifiers.publish(alert("down", target="second"))
        notifiers.close()
    assert [json.loads(b)["event"] for b in server.received] == ["down"]
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(x["event"], x["target"]) for x in lines] == [
        ("down", "api"),
        ("up", "api"),
        ("down", "second"),
    ]


async def test_slow_notifier_never_blocks_publish(server, client, caplog, monkeypatch):
    monkeypatch.setattr("trio_monitor.alerts.base.QUEUE", 2)
    caplog.set_level(logging.ERROR, "trio_monitor")
    stuck = {"url": server.url("/hang"), "retries": 0, "timeout": "1h"}
    async with trio.open_nursery() as nursery:
        notifiers = Notifiers(nursery, client)
        notifiers.configure(alerts_config(webhook=[stuck]))
        for _ in range(5):
            notifiers.publish(alert())  # returns at once even though the hook hangs
        await server.wait_in_flight(1)
        nursery.cancel_scope.cancel()
    # publish never waited, so the task had taken none yet: 2 queued, 3 dropped
    assert caplog.text.count("queue full, dropped down alert") == 3
