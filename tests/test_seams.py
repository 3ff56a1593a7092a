"""The seams work as the architecture says: a probe kind and an alert channel are each
one module plus one registration (tests/line_kind.py, tests/memory_notifier.py), and
the scheduler, state machine, dispatch, metrics, config and notifiers take them as
they take the built-in ones."""

from __future__ import annotations

import functools
import io
import json

import line_kind
import memory_notifier
import pytest
import trio
from factories import target_schemes
from fakes import running

from trio_monitor import ConfigError, parse_config, run_monitor
from trio_monitor.probes import base as probe_kinds


class LineServer:
    """Answers each TCP connection with one line: `answers` in turn, then the last."""

    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers)
        self.port = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        async with stream:
            await stream.send_all(answer)

    async def start(self, nursery: trio.Nursery) -> LineServer:
        serve = functools.partial(trio.serve_tcp, self.handle, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        self.port = listeners[0].socket.getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"line://127.0.0.1:{self.port}"


def problems(doc: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, env={}, path="m.toml")
    return info.value.problems


def records(out: io.BytesIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_a_kind_registered_from_a_test_runs_end_to_end(line_kind_registered, server):
    out = io.BytesIO()
    async with trio.open_nursery() as nursery:
        lines = await LineServer(b"READY\n").start(nursery)
        config = parse_config(
            {
                "targets": [
                    {"name": "line", "url": lines.url, "expect": "READY"},
                    {"name": "web", "url": server.url("/ok")},
                ]
            }
        )
        assert [t.kind for t in config.targets] == ["line", "http"]
        code = await run_monitor(config, once=True, out=out, handle_signals=False)
        nursery.cancel_scope.cancel()
    assert code == 0
    probes = {r["target"]: r for r in records(out) if r["type"] == "probe"}
    assert (probes["line"]["kind"], probes["line"]["ok"], probes["line"]["status"]) == (
        "line",
        True,
        None,
    )
    assert (probes["web"]["kind"], probes["web"]["status"]) == ("http", 200)


def test_each_kind_has_its_own_keys(line_kind_registered):
    url = "line://127.0.0.1:7"
    assert problems({"targets": [{"url": url, "method": "POST"}]}) == [
        "m.toml: targets[0].method: unknown key"
    ]
    assert problems({"targets": [{"url": "http://127.0.0.1/", "expect": "x"}]}) == [
        "m.toml: targets[0].expect: unknown key"
    ]
    assert problems({"targets": [{"url": url, "expect": "a\nb"}]}) == [
        "m.toml: targets[0].expect: must be one line"
    ]
    assert problems({"targets": [{"url": "http://127.0.0.1/", "kind": "line"}]}) == [
        "m.toml: targets[0].url: kind 'line' takes line:// URLs, got 'http://127.0.0.1/'"
    ]
    kinds = ", ".join(sorted(f'"{k.name}"' for k in probe_kinds.kinds()))
    assert {'"http"', '"line"'} <= set(kinds.split(", "))
    assert problems({"targets": [{"url": url, "kind": "nope"}]}) == [
        f"m.toml: targets[0].kind: must be one of {kinds}, got 'nope'"
    ]
    (target,) = parse_config({"targets": [{"url": url, "kind": "line"}]}).targets
    assert (target.kind, target.spec) == ("line", line_kind.LineSpec(expect=""))


def test_without_the_registration_the_scheme_is_unknown():
    assert "line" not in probe_kinds.schemes()
    assert problems({"targets": [{"url": "line://127.0.0.1:7"}]}) == [
        "m.toml: targets[0].url: invalid URL 'line://127.0.0.1:7': "
        f"expected {target_schemes()} with a host"
    ]


async def test_state_alerts_and_channels_take_a_new_kind(line_kind_registered, memory_channel):
    """Down then up for a kind without HTTP status, delivered to a channel registered
    from the test: the state machine and the notifiers need nothing kind-specific."""
    async with trio.open_nursery() as nursery:
        lines = await LineServer(b"BUSY\n", b"BUSY\n", b"READY\n").start(nursery)
        config = parse_config(
            {
                "monitor": {"interval": "100ms", "stagger": "0s"},
                "alerts": {
                    "failure_threshold": 2,
                    "memory": [{"name": "pager"}, {"name": "ups", "events": ["up"]}],
                },
                "targets": [{"name": "line", "url": lines.url, "expect": "READY"}],
            }
        )
        out = io.BytesIO()
        async with trio.open_nursery() as monitoring:
            monitor = await running(monitoring, config, out=out)
            down, up = await memory_notifier.wait_delivered("pager", 2)
            await memory_notifier.wait_delivered("ups", 1)
            monitor.stop()
        nursery.cancel_scope.cancel()  # the line server
    assert (down.event, down.reason, down.failures) == ("down", "content", 2)
    assert up.event == "up"
    assert up.detail.startswith("line ok in ")
    assert [a.event for a in memory_notifier.DELIVERED["ups"]] == ["up"]
    alerts = [r["event"] for r in records(out) if r["type"] == "alert"]
    assert alerts[:2] == ["down", "up"]
    rounds = [r for r in records(out) if r["type"] == "round"]
    assert set(rounds[-1]["drops"]) == {"output", "pager", "ups"}  # their `name`s


def test_channel_tables_are_checked_like_any_section(memory_channel):
    assert problems({"alerts": {"memory": [{"fail": True}]}}) == [
        "m.toml: alerts.memory[0].name: required key missing"
    ]
    assert problems({"alerts": {"nope": [{}]}}) == ["m.toml: alerts.nope: unknown key"]
    assert problems({"alerts": {"memory": {"name": "x"}}}) == [
        "m.toml: alerts.memory: expected an array, got a table"
    ]
    alerts = parse_config({"alerts": {"memory": [{"name": "x"}]}}).alerts
    assert alerts.channels("memory") == (memory_notifier.MemoryConfig(name="x"),)
