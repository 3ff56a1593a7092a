"""Notifiers: webhooks and commands against real loopback servers and real processes,
and the running set of notifiers fed by the dispatcher."""

from __future__ import annotations

import json
import os
import sys

import pytest
import trio
from factories import alert_event

from trio_monitor import parse_config
from trio_monitor.alerts.base import Notifiers, Report
from trio_monitor.alerts.exec import Exec
from trio_monitor.alerts.webhook import Webhook
from trio_monitor.engine.dispatch import Dispatcher
from trio_monitor.engine.state import MemoryStateStore

pytestmark = pytest.mark.usefixtures("fast_backoff")


def alert(event="down", target="api"):
    return alert_event(event, target, url="http://127.0.0.1/", reason="connect")


def alerts_config(**alerts):
    return configured(**alerts).alerts


def configured(**alerts):
    return parse_config({"alerts": alerts})


async def test_webhook_posts_alert_json(server, client):
    (hook,) = alerts_config(
        webhook=[{"url": server.url("/hook"), "headers": {"X-Token": "s3cret"}}]
    ).channels("webhook")
    assert await Webhook(hook, client).deliver(alert())
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
    # the same key for every attempt, here or after a restart: receivers drop repeats
    assert request["headers"]["idempotency-key"] == alert().key
    assert len(alert().key) == 32
    assert alert().key != alert(event="up").key


async def test_webhook_retries_server_errors(server, client, caplog):
    (hook,) = alerts_config(webhook=[{"url": server.url("/hook"), "retries": 3}]).channels(
        "webhook"
    )
    server.hook_failures = 2
    assert await Webhook(hook, client).deliver(alert())
    assert server.hits["/hook"] == 3
    assert caplog.text.count("HTTP 500") == 2


async def test_webhook_gives_up_and_does_not_retry_client_errors(server, client, caplog):
    (hook,) = alerts_config(webhook=[{"url": server.url("/status/404"), "retries": 3}]).channels(
        "webhook"
    )
    assert not await Webhook(hook, client).deliver(alert())
    assert server.hits["/status/404"] == 1
    assert "giving up on down alert for api: HTTP 404" in caplog.text


async def test_webhook_timeout_is_logged(server, client, caplog):
    (hook,) = alerts_config(
        webhook=[{"url": server.url("/hang"), "retries": 1, "timeout": "100ms"}]
    ).channels("webhook")
    assert not await Webhook(hook, client).deliver(alert())
    # both attempts timed out (on a loaded machine one may end before the server even
    # reads the request, so count the attempts in the log, not at the server)
    assert caplog.text.count("failed: no answer within 0.1s") == 2
    assert "giving up on down alert for api: no answer within 0.1s" in caplog.text
    assert server.hits["/hang"] <= 2


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.mark.subprocess
async def test_exec_gets_alert_on_stdin_and_env(tmp_path):
    out = tmp_path / "got.json"
    code = (
        "import os, sys, pathlib; data = sys.stdin.read(); "
        f"pathlib.Path({str(out)!r}).write_text(os.environ['TRIO_MONITOR_IDEMPOTENCY_KEY'] + ' ' "
        "+ os.environ['TRIO_MONITOR_EVENT'] + ' ' "
        "+ os.environ['TRIO_MONITOR_TARGET'] + ' ' + data); print('noise on stdout')"
    )
    (notifier,) = alerts_config(exec=[{"command": python_command(code)}]).channels("exec")
    assert await Exec(notifier).deliver(alert(event="up", target="web"))
    key, event, target, data = out.read_text().split(" ", 3)
    assert (event, target) == ("up", "web")
    assert key == alert(event="up", target="web").key
    assert json.loads(data)["event"] == "up"


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            python_command("import sys; sys.stderr.write('pager down'); sys.exit(3)"),
            "giving up on down alert for api: exited 3: pager down",
        ),
        (["/nonexistent/page-me"], "cannot run"),
        (python_command("import time; time.sleep(60)"), "killed after 0.2s"),
    ],
)
async def test_exec_failures_are_logged_not_raised(command, message, caplog):
    (notifier,) = alerts_config(exec=[{"command": command, "timeout": "200ms"}]).channels("exec")
    assert not await Exec(notifier).deliver(alert())
    assert message in caplog.text


def dispatcher() -> Dispatcher:
    return Dispatcher(MemoryStateStore(alerts_config()))


@pytest.mark.subprocess
async def test_notifiers_route_by_event_and_reconfigure(server, client, tmp_path):
    log_file = tmp_path / "events"
    append = python_command(f"import sys; open({str(log_file)!r}, 'a').write(sys.stdin.read())")
    downs_only = {"url": server.url("/hook"), "events": ["down"]}
    dispatch = dispatcher()
    async with trio.open_nursery() as nursery:
        notifiers = Notifiers(dispatch, nursery, client)
        notifiers.configure(configured(webhook=[downs_only], exec=[{"command": append}]))
        dispatch.publish(alert("down"))
        dispatch.publish(alert("up"))
        await server.wait_received(1)
        hook = notifiers.deliveries()["webhook[0]"]
        # reload without the webhook: its task ends, the command's keeps going
        notifiers.configure(configured(exec=[{"command": append}]))
        assert set(notifiers.deliveries()) == {"exec[0]"}
        dispatch.publish(alert("down", target="second"))
        dispatch.close()
    assert (hook.delivered, notifiers.deliveries()["exec[0]"].delivered) == (1, 3)
    assert notifiers.given_up == {}
    assert [json.loads(b)["event"] for b in server.received] == ["down"]
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(x["event"], x["target"]) for x in lines] == [
        ("down", "api"),
        ("up", "api"),
        ("down", "second"),
    ]


async def test_slow_notifier_never_blocks_publish(server, client, monkeypatch):
    monkeypatch.setattr("trio_monitor.alerts.base.QUEUE", 2)
    stuck = {"url": server.url("/hang"), "retries": 0, "timeout": "1h"}
    dispatch = dispatcher()
    async with trio.open_nursery() as nursery:
        notifiers = Notifiers(dispatch, nursery, client)
        notifiers.configure(configured(webhook=[stuck]))
        for _ in range(5):
            dispatch.publish(alert())  # returns at once even though the hook hangs
        # publish never waited, so the task had taken none yet: 2 queued, 3 dropped,
        # counted like any consumer's drops
        assert dispatch.drops() == {"webhook[0]": 3}
        await server.wait_in_flight(1)
        nursery.cancel_scope.cancel()
    assert notifiers.deliveries()["webhook[0]"].delivered == 0


@pytest.mark.subprocess
async def test_failed_deliveries_are_counted(client):
    dispatch = dispatcher()
    async with trio.open_nursery() as nursery:
        notifiers = Notifiers(dispatch, nursery, client)
        notifiers.configure(configured(exec=[{"command": ["/nonexistent/page-me"]}]))
        dispatch.publish(alert("down"))
        dispatch.publish(alert("up"))
        dispatch.close()
    assert notifiers.deliveries()["exec[0]"].failed == 2
    assert notifiers.deliveries()["exec[0]"].given_up == 2
    assert notifiers.given_up == {"exec[0]": 2}  # what the round line reports


def _rss_high_water_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.mark.subprocess
async def test_exec_output_is_discarded_and_memory_stays_bounded(caplog):
    endless = python_command(
        "import sys\nwhile True: sys.stdout.write('x' * 65536); sys.stderr.write('e' * 65536)"
    )
    (notifier,) = alerts_config(exec=[{"command": endless, "timeout": "1500ms"}]).channels("exec")
    before = _rss_high_water_kib()
    assert not await Exec(notifier).deliver(alert())
    # the command wrote hundreds of MiB in that time; kept in memory, the high-water
    # mark would have grown by as much
    assert _rss_high_water_kib() - before < 64 * 1024
    assert "killed after 1.5s (process group)" in caplog.text


@pytest.mark.subprocess
async def test_exec_timeout_kills_the_whole_process_group(tmp_path, caplog):
    pid_file = tmp_path / "sleep.pid"
    command = ["sh", "-c", f"sleep 1000 & echo $! > {pid_file}; wait"]
    (notifier,) = alerts_config(exec=[{"command": command, "timeout": "500ms"}]).channels("exec")
    assert not await Exec(notifier).deliver(alert())
    try:
        grandchild = os.pidfd_open(int(pid_file.read_text()))
    except ProcessLookupError:
        pass  # already gone and reaped
    else:
        with trio.fail_after(5):  # a pidfd turns readable once its process has ended
            await trio.lowlevel.wait_readable(grandchild)
        os.close(grandchild)
    assert "killed after 0.5s (process group)" in caplog.text


async def test_with_an_outbox_it_feeds_the_queues_and_hears_back(server, client):
    hook = {"url": server.url("/hook")}
    dispatch = dispatcher()
    async with trio.open_nursery() as nursery:
        notifiers = Notifiers(dispatch, nursery, client, outbox=True)
        notifiers.configure(configured(webhook=[hook]))
        dispatch.publish(alert("down"))  # not for the notifiers: the outbox feeds them
        (route,) = notifiers.routes()
        route.queue.offer(alert("up"))
        dispatch.close()  # their queues are the outbox's to close
        report = await notifiers.reports.receive()
        notifiers.close()
        # a reload while shutting down starts nothing
        notifiers.configure(configured(webhook=[hook, {"url": server.url("/other")}]))
        assert len(notifiers.routes()) == 1
    assert report == Report(route.notifier, alert("up").key, delivered=True)
    assert [json.loads(b)["event"] for b in server.received] == ["up"]
    assert set(dispatch.drops()) == {"webhook[0]"}  # counted like every consumer's


CERT_FIELDS = {
    "subject": "CN=api.test",
    "not_after": 1_800_000_000.0,
    "days_left": 6.5,
    "step_days": 7.0,
    "detail": "certificate CN=api.test expires on 2027-01-15 (in 6 days)",
}


@pytest.mark.subprocess
async def test_notifiers_carry_the_certificate_fields(server, client, tmp_path):
    cert_alert = alert_event("cert_expiring", "api", url="https://127.0.0.1/", **CERT_FIELDS)
    out = tmp_path / "got.json"
    code = f"import sys, pathlib; pathlib.Path({str(out)!r}).write_text(sys.stdin.read())"
    config = alerts_config(
        webhook=[{"url": server.url("/hook"), "events": ["cert_expiring"]}],
        exec=[{"command": python_command(code), "events": ["cert_expiring"]}],
    )
    assert await Webhook(config.channels("webhook")[0], client).deliver(cert_alert)
    assert await Exec(config.channels("exec")[0]).deliver(cert_alert)
    for body in (json.loads(server.received[0]), json.loads(out.read_text())):
        assert body["event"] == "cert_expiring"
        assert body["not_after"] == "2027-01-15T08:00:00.000Z"
        fields = {k: body[k] for k in ("subject", "days_left", "step_days", "detail")}
        assert fields == {k: CERT_FIELDS[k] for k in fields}
