"""The HTTP server inside a running monitor: it serves what the monitor sees, and stops
with it."""

from __future__ import annotations

import httpx
import trio
from factories import config_doc, write_config
from fakes import running
from prometheus_client.parser import text_string_to_metric_families
from test_lifecycle import LineSink, all_tasks

from trio_monitor import load_config, parse_config


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


def _info_series(text: str) -> dict[str, dict[str, str]]:
    """trio_monitor_target_labels, read with Prometheus' own parser: target -> labels."""
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "trio_monitor_target_labels"
    ]
    return {s.labels["target"]: s.labels for s in family.samples if s.value == 1.0}


async def test_a_relabelled_target_shows_its_new_labels_everywhere(server, tmp_path):
    """JSON lines, the API, the metrics and the `removed` line follow a reload."""

    def write(pay_team: str, *extra: dict) -> None:
        doc = config_doc(
            {"name": "pay", "url": server.url("/ok"), "labels": {"team": pay_team}},
            {"name": "web", "url": server.url("/ok"), "labels": {"env": "dev"}},
            *extra,
            monitor={"interval": "200ms", "stagger": "0s", "labels": {"env": "prod"}},
            server={"listen": "127.0.0.1:0"},
        )
        write_config(tmp_path, doc)

    write("payments", {"name": "old", "url": server.url("/ok"), "labels": {"team": "legacy"}})
    path = tmp_path / "m.toml"
    out = LineSink()

    def labels_of(name: str) -> object:
        return [p["labels"] for p in out.of_type("probe") if p["target"] == name][-1]

    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, load_config(path), out=out, config_path=str(path))
        await out.wait_for(
            lambda o: {p["target"] for p in o.of_type("probe")} >= {"pay", "web", "old"}
        )
        host, port = monitor.listening
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:

            async def seen() -> tuple[dict, dict, dict]:
                api = {t["name"]: t["labels"] for t in (await client.get("/api/v1/targets")).json()}
                filtered = (await client.get("/api/v1/targets?label=team=billing")).json()
                metrics = _info_series((await client.get("/metrics")).text)
                return api, {t["name"] for t in filtered}, metrics

            assert labels_of("pay") == {"env": "prod", "team": "payments"}
            assert labels_of("web") == {"env": "dev"}  # its own over [monitor]'s
            api, billing, metrics = await seen()
            assert api["pay"] == {"env": "prod", "team": "payments"}
            assert billing == set()
            assert metrics["pay"] == {"target": "pay", "env": "prod", "team": "payments"}
            assert metrics["old"]["team"] == "legacy"
            write("billing")
            assert await monitor.reload()
            probes = len(out.of_type("probe"))
            await out.wait_for(
                lambda o: any(
                    p["target"] == "pay" and p["labels"]["team"] == "billing"
                    for p in o.of_type("probe")[probes:]
                )
            )
            api, billing, metrics = await seen()
            assert set(api) == {"pay", "web"}
            assert api["pay"] == {"env": "prod", "team": "billing"}
            assert billing == {"pay"}
            assert metrics["pay"] == {"target": "pay", "env": "prod", "team": "billing"}
            assert "old" not in metrics
        monitor.stop()
    (removed,) = out.of_type("removed")
    assert removed["target"] == "old"
    assert removed["labels"] == {"env": "prod", "team": "legacy"}
