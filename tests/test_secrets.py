"""_secrets.py: the one URL redaction rule, and that no URL password gets out anywhere: not
in JSON lines, the API, metric labels, history, alert payloads, logs or reports."""

from __future__ import annotations

import json
import sys

import httpx
import pytest
import trio
from factories import config_doc, write_config
from fakes import running
from test_lifecycle import LineSink

from trio_monitor import load_config
from trio_monitor._secrets import redact_url
from trio_monitor.alerts.webhook import Webhook, WebhookConfig

SECRET = "pa55-w0rd"  # what must never be seen
TOKEN = "t0ken-NEVER-shown"  # a secret from a file or ${ENV}: never in any text at all


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@host/x", "http://user:***@host/x"),
        ("https://TOKEN@host:8443/", "https://***@host:8443/"),  # a lone user is a token
        ("http://u:@h/", "http://u:***@h/"),
        ("http://u:p%40ss@h/a?b=c@d#e@f", "http://u:***@h/a?b=c@d#e@f"),  # "@" after the host
        ("http://u:p@ss@h/", "http://u:***@h/"),  # the userinfo ends at the last "@"
        ("http://host:80/path?q=1", "http://host:80/path?q=1"),  # written as it was
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),  # [cluster] redis
        ("rediss://default:pw@h:6380/0", "rediss://default:***@h:6380/0"),
        ("not a url", "not a url"),
        ("", ""),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_webhook_logs_name_it_redacted():
    hook = Webhook(WebhookConfig(url=f"http://hooks:{SECRET}@127.0.0.1:9/h?k=v"), None)  # type: ignore[arg-type]
    assert hook.describe() == "webhook http://hooks:***@127.0.0.1:9/h"


@pytest.mark.subprocess  # the report is the real console script's
async def test_url_passwords_are_used_but_never_shown(server, tmp_path, caplog):
    port = server.port
    guarded = f"http://alice:{SECRET}@127.0.0.1:{port}/basic/alice/{SECRET}"
    failing = f"http://bob:{SECRET}@127.0.0.1:{port}/status/500"
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "password").write_text(TOKEN)
    config_path = write_config(
        tmp_path,
        config_doc(
            {"url": guarded},  # named by its URL: the redacted one
            {"url": failing},
            {
                "name": "bearer",
                "url": f"http://127.0.0.1:{port}/echo",
                "token_file": str(tmp_path / "token"),
            },
            {
                "name": "basic",
                "url": f"http://127.0.0.1:{port}/status/500",  # down: an alert goes out
                "basic_auth": {"username": "carol", "password_file": str(tmp_path / "password")},
            },
            monitor={"interval": "100ms", "stagger": "0s", "retries": 0},
            alerts={
                "failure_threshold": 1,
                "webhook": [{"url": f"http://hooks:{SECRET}@127.0.0.1:{port}/hook"}],
            },
            server={"listen": "127.0.0.1:0"},
        ),
    )
    shown_guarded = f"http://alice:***@127.0.0.1:{port}/basic/alice/{SECRET}"
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, load_config(config_path), out=out)
        await out.wait_for(lambda o: len(o.of_type("round")) >= 2)
        await server.wait_received(2)  # the "down" alerts of the failing targets
        host, listen_port = monitor.listening
        async with httpx.AsyncClient(base_url=f"http://{host}:{listen_port}") as client:
            api = (await client.get("/api/v1/targets")).text
            metrics = (await client.get("/metrics")).text
        monitor.stop()

    probes = {p["target"]: p for p in out.of_type("probe")}
    assert probes[shown_guarded]["ok"], probes  # the credentials were sent, as Basic auth
    assert probes[shown_guarded]["url"] == shown_guarded
    guarded_request = next(r for r in server.requests if r["path"].startswith("/basic/"))
    assert guarded_request["headers"]["authorization"].startswith("Basic ")
    sent = {r["headers"].get("authorization") for r in server.requests}
    assert f"Bearer {TOKEN}" in sent
    assert probes["bearer"]["ok"]
    alert = next(a for a in map(json.loads, server.received) if a["target"] != "basic")
    assert alert["url"] == alert["target"] == f"http://bob:***@127.0.0.1:{port}/status/500"

    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-m", "trio_monitor", "report", "-c", "m.toml", "--format", "html"],
            cwd=tmp_path,
            capture_stdout=True,
            capture_stderr=True,
        )
    report = done.stdout.decode()
    assert "bob:***@" in report
    shown = {
        "JSON lines": out.data.decode(),
        "API": api,
        "metrics": metrics,
        "alert": server.received[0].decode(),
        "logs": caplog.text,
        "report": report,
    }
    shown["alerts"] = b"".join(server.received).decode()
    for where, text in shown.items():
        assert f":{SECRET}" not in text, where
        assert TOKEN not in text, where
    for path in tmp_path.glob("m.db*"):
        assert f":{SECRET}".encode() not in path.read_bytes(), path
        assert TOKEN.encode() not in path.read_bytes(), path
