"""The HTTP server inside a running monitor: it serves what the monitor sees, and stops
with it."""

from __future__ import annotations

import httpx
import trio
from fakes import running
from prometheus_client.parser import text_string_to_metric_families
from test_lifecycle import LineSink, all_tasks

from trio_monitor import parse_config


def config_for(server, interval="100ms", **server_section):
    # /healthz is unhealthy when probes start later than half the shortest interval: tests
    # that assert a healthy monitor leave room for a loaded machine
    return parse_config(
        {
            "monitor": {"interval": interval, "stagger": "0s"},
            "server": {"listen": "127.0.0.1:0", **server_section},
            "targets": [
                {"name": "web", "url": server.url("/ok")},
                {"name": "broken", "url": server.url("/status/500")},
            ],
        }
    )


async def test_status_page_api_metrics_and_health_of_a_running_monitor(server):
    before = all_tasks()
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config_for(server, interval="300ms"), out=out)
        await out.wait_for(lambda o: sum(p["target"] == "web" for p in o.of_type("probe")) >= 3)
        host, port = monitor.listening
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            targets = {t["name"]: t for t in (await client.get("/api/v1/targets")).json()}
            assert targets["web"]["state"] == "UP"
            assert targets["broken"]["last"]["error"] == "status"
            assert targets["web"]["checks_24h"] >= 3
            assert (await client.get("/healthz")).status_code == 200
            assert "<html" in (await client.get("/")).text.lower()
            families = {
                f.name: f
                for f in text_string_to_metric_families((await client.get("/metrics")).text)
            }
            success = {s.labels["target"]: s.value for s in families["probe_success"].samples}
            assert success == {"web": 1.0, "broken": 0.0}
        monitor.stop()
    assert all_tasks() == before  # the server went down with the monitor
    with trio.fail_after(5):
        async with httpx.AsyncClient() as client:
            try:
                await client.get(f"http://{host}:{port}/healthz")
            except httpx.ConnectError:
                pass
            else:
                raise AssertionError("the server still answers after the monitor stopped")


async def test_token_guards_everything_but_health(server):
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(
            nursery, config_for(server, interval="10s", token="s3cret"), out=out
        )
        host, port = monitor.listening
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            assert (await client.get("/api/v1/targets")).status_code == 401
            assert (await client.get("/metrics")).status_code == 401
            authorized = {"Authorization": "Bearer s3cret"}
            assert (await client.get("/api/v1/targets", headers=authorized)).status_code == 200
            await out.wait_for(lambda o: len(o.of_type("round")) >= 1)
            assert (await client.get("/healthz")).status_code == 200
        monitor.stop()
