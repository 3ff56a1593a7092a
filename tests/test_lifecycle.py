"""run_monitor in-process against the loopback server: shutdown, flushing, reload, no leaks."""

from __future__ import annotations

import errno
import json
import logging
import math
import threading

import memory_notifier
import pytest
import tomli_w
import trio
from factories import config_doc, write_config
from fakes import FakeProber, running
from servers import closed_port

from trio_monitor import load_config, parse_config, run_monitor
from trio_monitor._lifecycle import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, MIN_DRAIN
from trio_monitor.alerts import base as alert_kinds
from trio_monitor.store import HistoryReader


class LineSink:
    """A binary `out` for run_monitor that wakes the test when lines arrive.

    The monitor writes from a worker thread; from_thread hands each write back to trio.
    """

    def __init__(
        self, fail_with: type[Exception] | None = None, block: bool = False, full_for: int = 0
    ):
        self.data = b""
        self.fail_with = fail_with
        self.full_for = full_for  # the first writes fail as on a full disk
        self.unblock = threading.Event() if block else None
        self._changed = trio.Event()

    def write(self, chunk: bytes) -> int:
        if self.fail_with:
            raise self.fail_with()
        if self.full_for:
            self.full_for -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        if self.unblock is not None:
            self.unblock.wait()
        self.data += chunk
        trio.from_thread.run_sync(self._changed.set)
        return len(chunk)

    def flush(self) -> None:
        pass

    @property
    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.data.decode().splitlines()]

    def of_type(self, kind: str) -> list[dict]:
        return [r for r in self.records if r["type"] == kind]

    async def wait_for(self, predicate) -> None:
        with trio.fail_after(10):
            while not predicate(self):
                self._changed = trio.Event()
                await self._changed.wait()


def run_config(targets, **monitor):
    return config_doc(
        *targets, monitor={"interval": "100ms", "timeout": "2s", "stagger": "0s", **monitor}
    )


def all_tasks() -> set[trio.lowlevel.Task]:
    """Every task in this run, except the test server's per-connection handlers."""
    found, stack = set(), [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if not task.name.endswith("serve_listeners._run_handler"):
            found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


async def test_once_exit_codes(server):
    ok = parse_config({"targets": [{"name": "ok", "url": server.url("/ok")}]})
    out = LineSink()
    assert await run_monitor(ok, once=True, out=out, handle_signals=False) == EXIT_OK
    assert [r["type"] for r in out.records] == ["probe", "round"]

    bad = parse_config(
        {
            "monitor": {"retries": 0},
            "targets": [
                {"name": "ok", "url": server.url("/ok")},
                {"name": "down", "url": f"http://127.0.0.1:{closed_port()}/"},
            ],
        }
    )
    out = LineSink()
    assert await run_monitor(bad, once=True, out=out, handle_signals=False) == EXIT_FAILED
    (round_line,) = out.of_type("round")
    assert (round_line["targets"], round_line["ok"], round_line["failed"]) == (2, 1, 1)


async def test_stop_leaves_no_task_and_loses_no_line(server, tmp_path):
    targets = [{"name": f"t{i}", "url": server.url(f"/slow/{i * 5}")} for i in range(20)]
    config = load_config(write_config(tmp_path, run_config(targets)))
    before = all_tasks()
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config, out=out)
        await out.wait_for(lambda o: len(o.of_type("round")) >= 2)
        monitor.stop()
    assert all_tasks() == before
    # every probe that ran was written, and every line is whole
    assert out.data.endswith(b"\n")
    probes = out.of_type("probe")
    rounds = out.of_type("round")
    assert sum(r["ok"] + r["failed"] for r in rounds) == len(probes)


async def test_stop_cancels_hanging_probes_after_grace(server):
    config = parse_config(
        {
            "monitor": {"grace": "300ms", "timeout": "1h", "stagger": "0s"},
            "targets": [{"url": server.url("/hang")}],
        }
    )
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config, out=out)
        await server.wait_in_flight(1)
        stopped = trio.current_time()
        monitor.stop()
    assert 0.3 <= trio.current_time() - stopped < 5
    assert out.of_type("probe") == []  # cancelled, so no result to report


async def test_a_stop_ends_within_max_grace_min_drain_counted_from_the_stop(autojump_clock):
    """Rounds that use all of the grace, then a notifier that never finishes: the stop
    still ends max(grace, MIN_DRAIN) after it began (the grace is part of the drain's
    time), not grace + MIN_DRAIN."""
    alert_kinds.register(memory_notifier.KIND)
    memory_notifier.DELIVERING.clear()
    try:
        config = parse_config(
            {
                "monitor": {"grace": "2s", "timeout": "1h", "stagger": "0s", "interval": "1h"},
                "alerts": {"failure_threshold": 1, "memory": [{"name": "stuck", "hang": True}]},
                "targets": [
                    {"name": "bad", "url": "http://127.0.0.1:1/"},
                    {"name": "hang", "url": "http://127.0.0.1:2/"},
                ],
            }
        )
        prober = FakeProber(durations={"hang": 3600}, fail={"bad"})
        async with trio.open_nursery() as nursery:
            monitor = await nursery.start(
                lambda task_status: run_monitor(
                    config,
                    out=LineSink(),
                    handle_signals=False,
                    probers={"http": prober},
                    task_status=task_status,
                )
            )
            delivering = memory_notifier.DELIVERING.setdefault("stuck", trio.Event())
            await delivering.wait()  # the `down` alert of "bad"; "hang" is still probing
            stopped = trio.current_time()
            monitor.stop()
        assert trio.current_time() - stopped == pytest.approx(MIN_DRAIN)
    finally:
        alert_kinds.unregister(memory_notifier.KIND.key)


async def test_abort_exits_130(server):
    config = parse_config(
        {"monitor": {"timeout": "1h", "stagger": "0s"}, "targets": [{"url": server.url("/hang")}]}
    )
    codes = []

    async def run(task_status):
        codes.append(
            await run_monitor(config, out=LineSink(), handle_signals=False, task_status=task_status)
        )

    async with trio.open_nursery() as nursery:
        monitor = await nursery.start(run)
        await server.wait_in_flight(1)
        monitor.stop()
        monitor.abort()
    assert codes == [EXIT_INTERRUPTED]


async def test_closed_output_stops_the_monitor(server, caplog):
    config = parse_config(
        {"monitor": {"interval": "100ms"}, "targets": [{"url": server.url("/ok")}]}
    )
    caplog.set_level(logging.INFO, "trio_monitor")
    code = await run_monitor(config, out=LineSink(fail_with=BrokenPipeError), handle_signals=False)
    assert code == EXIT_OK
    assert "output closed" in caplog.text


async def test_a_full_disk_loses_lines_but_not_the_monitor(server, caplog, monkeypatch):
    monkeypatch.setattr("trio_monitor.sinks.jsonl.RETRY_FIRST", 0.05)
    config = parse_config(
        {"monitor": {"interval": "100ms"}, "targets": [{"url": server.url("/ok")}]}
    )
    out = LineSink(full_for=3)
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config, out=out)
        # writing resumes, and the round lines count what the full disk lost
        await out.wait_for(lambda o: any(r["dropped"] > 0 for r in o.of_type("round")))
        assert not monitor.stopping
        monitor.stop()
    lost = max(r["dropped"] for r in out.of_type("round"))
    assert lost >= 3
    assert "cannot write output output: No space left on device" in caplog.text


async def test_stuck_output_never_slows_probing(server, caplog, monkeypatch):
    monkeypatch.setattr("trio_monitor._lifecycle.OUTPUT_QUEUE", 4)
    config = parse_config(
        {"monitor": {"interval": "100ms"}, "targets": [{"url": server.url("/ok")}]}
    )
    out = LineSink(block=True)
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config, out=out)
        with trio.fail_after(10):  # rounds go on while nothing can be written
            await server.wait_hits("/ok", 20)
        out.unblock.set()
        # later round lines tell how many lines were dropped meanwhile
        await out.wait_for(lambda o: any(r["dropped"] > 0 for r in o.of_type("round")))
        monitor.stop()
    assert "not keeping up" in caplog.text


async def test_reload_keeps_state_of_unchanged_targets(server, tmp_path, caplog):
    path = tmp_path / "m.toml"
    broken = {"name": "broken", "url": server.url("/status/500")}
    write_config(tmp_path, run_config([broken], interval="1h"))
    config = load_config(path)
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config, out=out, config_path=str(path))
        await out.wait_for(lambda o: len(o.of_type("probe")) == 1)
        # add a target; "broken" is unchanged, so its failure count (1) survives
        extra = {"name": "extra", "url": server.url("/ok")}
        write_config(tmp_path, run_config([broken, extra], interval="1h"))
        assert await monitor.reload()
        await out.wait_for(lambda o: any(p["target"] == "extra" for p in o.of_type("probe")))
        assert monitor.state.get("broken").failures == 1
        # a broken file is refused and the running config stays
        path.write_text("[monitor]\ninterval = 'soon'\n")
        assert not await monitor.reload()
        assert [t.name for t in monitor.config.targets] == ["broken", "extra"]
        monitor.stop()
    assert "reload failed, keeping the running config" in caplog.text
    assert "monitor.interval" in caplog.text


async def test_editing_a_down_target_keeps_its_outage(server, tmp_path):
    """Its timeout changes: no second `down`; its URL changes to a healthy one: one `up`,
    and the one incident in history is closed."""
    path = tmp_path / "m.toml"
    alerts = {"failure_threshold": 2, "group_window": "0s"}  # its down at once
    target = {"name": "t", "url": server.url("/status/500"), "content_alert": True}

    def write(**fields):
        doc = run_config([target | fields], timeout="5s")
        write_config(tmp_path, doc | {"alerts": alerts, "storage": {"path": "h.db"}})

    write()
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, load_config(path), out=out, config_path=str(path))
        await out.wait_for(lambda o: len(o.of_type("alert")) == 1)
        write(timeout="6s")
        assert await monitor.reload()
        probes = len(out.of_type("probe"))
        await out.wait_for(lambda o: len(o.of_type("probe")) >= probes + 3)
        assert monitor.state.get("t").state == "DOWN"
        write(timeout="6s", url=server.url("/ok"))
        assert await monitor.reload()
        await out.wait_for(lambda o: len(o.of_type("alert")) == 2)
        probes = len(out.of_type("probe"))
        await out.wait_for(lambda o: len(o.of_type("probe")) >= probes + 2)
        monitor.stop()
    assert [(a["event"], a["url"]) for a in out.of_type("alert")] == [
        ("down", server.url("/status/500")),
        ("up", server.url("/ok")),  # and no `content_changed` for the new URL's body
    ]
    with HistoryReader(str(tmp_path / "h.db")) as reader:
        (incident,) = reader.incidents(0.0, math.inf)
    assert incident.end is not None


async def test_a_reload_that_removes_most_targets_needs_allow_shrink(tmp_path, caplog):
    path = tmp_path / "m.toml"
    four = [{"name": n, "url": f"http://127.0.0.1:{i + 1}/"} for i, n in enumerate("abcd")]

    def write(targets, **monitor):
        write_config(tmp_path, run_config(targets, interval="1h", **monitor))

    write(four)
    async with trio.open_nursery() as nursery:
        monitor = await running(
            nursery,
            load_config(path),
            out=LineSink(),
            config_path=str(path),
            probers={"http": FakeProber()},
        )

        # an empty file (an editor or `cp` caught half-way), then a file cut short
        for text in ("", tomli_w.dumps(run_config(four[:1]))):
            path.write_text(text)
            caplog.clear()
            assert not await monitor.reload()
            assert [t.name for t in monitor.config.targets] == ["a", "b", "c", "d"]
            removed = 4 if not text else 3
            assert [r.getMessage() for r in caplog.records] == [
                f"reload failed, keeping the running config: {path}: it would remove"
                f" {removed} of 4 targets; if that is meant, set [monitor] allow_shrink = true"
            ]
        # half of them may go, with a warning
        caplog.clear()
        write(four[:2])
        assert await monitor.reload()
        assert "reload removes 2 targets: c, d" in caplog.text
        # all of them, when the file says so
        write([], allow_shrink=True)
        assert await monitor.reload()
        assert monitor.config.targets == ()
        monitor.stop()


class PickyProber(FakeProber):
    """Cannot prepare a target named "unpreparable": what no validation foresaw."""

    def prepare(self, target):
        if target.name == "unpreparable":
            raise UnicodeEncodeError("ascii", "é", 0, 1, "ordinal not in range(128)")
        return super().prepare(target)


async def test_a_reload_that_fails_to_apply_keeps_the_running_config(tmp_path, caplog):
    path = tmp_path / "m.toml"
    ok = {"name": "ok", "url": "http://127.0.0.1:1/"}
    write_config(tmp_path, run_config([ok], interval="1h"))
    config = load_config(path)
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(
            nursery, config, out=out, config_path=str(path), probers={"http": PickyProber()}
        )
        await out.wait_for(lambda o: len(o.of_type("probe")) == 1)
        before = monitor.scheduler._slots["ok"]
        bad = {"name": "unpreparable", "url": "http://127.0.0.1:2/"}
        write_config(tmp_path, run_config([ok, bad], interval="2h", concurrency=7))
        assert not await monitor.reload()
        # nothing changed: the config, the schedule (same slot), the limits
        assert monitor.config is config
        assert [t.name for t in monitor.scheduler.targets] == ["ok"]
        assert monitor.scheduler._slots["ok"] is before
        assert monitor.scheduler.limiter.total_tokens == config.monitor.concurrency
        monitor.stop()
    (line,) = [r.getMessage() for r in caplog.records if "reload failed" in r.getMessage()]
    assert line == (
        f"reload failed, keeping the running config: {path}: UnicodeEncodeError: 'ascii'"
        " codec can't encode character '\\xe9' in position 0: ordinal not in range(128)"
    )


async def test_alert_lines_reach_output(server):
    config = parse_config(
        {
            "monitor": {"interval": "100ms", "retries": 0},
            "alerts": {"failure_threshold": 2, "group_window": "0s"},  # no grouping delay
            "targets": [{"name": "flaky", "url": server.url("/body/page")}],
        }
    )
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config, out=out)
        await out.wait_for(lambda o: [a["event"] for a in o.of_type("alert")] == ["down"])
        server.bodies["page"] = b"back"
        await out.wait_for(lambda o: len(o.of_type("alert")) == 2)
        monitor.stop()
    down, up = out.of_type("alert")
    assert (down["event"], down["reason"], down["failures"]) == ("down", "status", 2)
    assert up["event"] == "up"
    assert up["downtime_s"] > 0
