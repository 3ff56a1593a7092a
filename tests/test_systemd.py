"""sd_notify against a fake NOTIFY_SOCKET: real unix datagram sockets, exact datagrams."""

from __future__ import annotations

import functools
import io
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from factories import config_doc, write_config
from fakes import FakeProber

from trio_monitor import load_config, run_monitor
from trio_monitor._systemd import (
    STATUS_MAX,
    SystemdNotifier,
    monotonic_usec,
    serve_watchdog,
    watchdog_interval,
)


def _received(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on the socket, now (sends are synchronous: nothing to wait for)."""
    datagrams = []
    while True:
        try:
            datagrams.append(sock.recv(65536))
        except BlockingIOError:
            return datagrams


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A fake systemd: a datagram socket bound in tmp_path, named by $NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    if len(os.fsencode(path)) >= 100:  # sun_path holds 108 bytes
        pytest.skip(f"tmp_path too long for a unix socket: {path}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        for name in ("WATCHDOG_USEC", "WATCHDOG_PID"):
            monkeypatch.delenv(name, raising=False)
        yield sock


@pytest.fixture
def abstract_systemd(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """The same in the abstract namespace: NOTIFY_SOCKET=@name."""
    name = f"trio-monitor-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        yield sock


# --- the messages ------------------------------------------------------------------


def test_each_message_is_one_exact_datagram(systemd):
    notifier = SystemdNotifier()
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.stopping()
    assert notifier.watchdog()
    assert notifier.status("monitoring 3 targets")
    assert _received(systemd) == [
        b"READY=1",
        b"STOPPING=1",
        b"WATCHDOG=1",
        b"STATUS=monitoring 3 targets",
    ]


def test_status_rides_in_the_same_datagram(systemd):
    notifier = SystemdNotifier()
    notifier.ready(status="monitoring 3 targets")
    notifier.stopping(status="stopping")
    notifier.watchdog(status="3 targets, 1 down")
    assert _received(systemd) == [
        b"READY=1\nSTATUS=monitoring 3 targets",
        b"STOPPING=1\nSTATUS=stopping",
        b"WATCHDOG=1\nSTATUS=3 targets, 1 down",
    ]


def test_reloading_carries_clock_monotonic_usec(systemd):
    notifier = SystemdNotifier()
    before = monotonic_usec()
    assert notifier.reloading(status="reloading")
    after = monotonic_usec()
    notifier.ready()
    [reload, ready] = _received(systemd)
    lines = reload.decode().split("\n")
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=")
    assert before <= int(lines[1].removeprefix("MONOTONIC_USEC=")) <= after
    assert lines[2:] == ["STATUS=reloading"]
    assert ready == b"READY=1"


def test_status_is_one_line_and_bounded(systemd):
    notifier = SystemdNotifier()
    notifier.status("reload failed:\nline 2")
    notifier.status("x" * (STATUS_MAX + 100))
    first, second = _received(systemd)
    assert first == b"STATUS=reload failed: line 2"
    assert second == b"STATUS=" + b"x" * STATUS_MAX


def test_abstract_socket(abstract_systemd):
    notifier = SystemdNotifier()
    assert notifier.ready()
    assert notifier.watchdog()
    assert _received(abstract_systemd) == [b"READY=1", b"WATCHDOG=1"]


# --- no systemd, broken systemd ------------------------------------------------------


def test_without_notify_socket_everything_is_a_no_op(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    notifier = SystemdNotifier()
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None  # no socket to ping
    for send in (notifier.ready, notifier.reloading, notifier.stopping, notifier.watchdog):
        assert send() is False
    assert notifier.status("x") is False


def test_unsupported_socket_kinds_are_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="trio_monitor"):
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert "NOTIFY_SOCKET" in caplog.text


def test_a_failing_send_never_raises_and_warns_once(tmp_path, caplog):
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.DEBUG, logger="trio_monitor"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
        assert notifier.stopping() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot notify systemd" in warnings[0].getMessage()
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 2


async def test_a_full_socket_drops_instead_of_blocking(systemd):
    """systemd not reading (hung, or flooded): sends fail fast, the loop never waits."""
    systemd.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    notifier = SystemdNotifier()

    def flood() -> list[bool]:
        return [notifier.status("x" * 200) for _ in range(5000)]

    # In a thread, so that a blocking send would fail this test instead of hanging it.
    with trio.fail_after(10):
        sent = await trio.to_thread.run_sync(flood, abandon_on_cancel=True)
    assert sent[0] is True
    assert sent[-1] is False  # the queue filled up; the rest were dropped


def test_unset_environment_keeps_children_out(systemd):
    env = {"NOTIFY_SOCKET": os.environ["NOTIFY_SOCKET"], "WATCHDOG_USEC": "5000000", "PATH": "/x"}
    notifier = SystemdNotifier(env, unset_environment=True)
    assert env == {"PATH": "/x"}
    assert notifier.watchdog_interval() == 5.0
    assert notifier.ready()
    assert _received(systemd) == [b"READY=1"]


# --- watchdog_interval ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "60000000"}, 60.0),
        ({"WATCHDOG_USEC": "1500000", "WATCHDOG_PID": str(os.getpid())}, 1.5),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_watchdog_interval(env, expected):
    assert watchdog_interval(env) == expected


def test_watchdog_interval_reads_the_environment(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 2.0


# --- serve_watchdog ------------------------------------------------------------------


async def _collect(sock: socket.socket, pings: list[tuple[float, bytes]]) -> None:
    tsock = trio.socket.from_stdlib_socket(sock.dup())
    with tsock:
        while True:
            data = await tsock.recv(65536)
            pings.append((trio.current_time(), data))


async def test_watchdog_pings_at_half_the_timeout_only_while_healthy(
    systemd, monkeypatch, autojump_clock, caplog
):
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")  # 10 s: a ping every 5 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    healthy = True
    pings: list[tuple[float, bytes]] = []
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, systemd, pings)
        await nursery.start(serve_watchdog, SystemdNotifier(), lambda: healthy)
        await trio.sleep_until(t0 + 12)
        healthy = False  # e.g. the scheduler has started no round for too long
        with caplog.at_level(logging.WARNING, logger="trio_monitor"):
            await trio.sleep_until(t0 + 27)
            healthy = True
            await trio.sleep_until(t0 + 36)
        nursery.cancel_scope.cancel()
    assert [(round(t - t0, 6), data) for t, data in pings] == [
        (0.0, b"WATCHDOG=1"),
        (5.0, b"WATCHDOG=1"),
        (10.0, b"WATCHDOG=1"),
        # 15, 20, 25: unhealthy, no ping; systemd (10 s) would have restarted us by 20
        (30.0, b"WATCHDOG=1"),
        (35.0, b"WATCHDOG=1"),
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2  # one warning going bad, one coming back: not one per check
    assert "unhealthy" in messages[0]
    assert "healthy again" in messages[1]


async def test_watchdog_never_pings_an_unhealthy_monitor(
    systemd, monkeypatch, autojump_clock, caplog
):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    checks = 0

    def healthy() -> bool:
        nonlocal checks
        checks += 1
        return False

    with caplog.at_level(logging.WARNING, logger="trio_monitor"):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_watchdog, SystemdNotifier(), healthy)
            await trio.sleep(10.5)
            nursery.cancel_scope.cancel()
    assert checks == 11  # at 0, 1, ..., 10 s
    assert _received(systemd) == []
    assert caplog.records == []  # never healthy yet (still starting): nothing to warn about


async def test_a_failing_health_check_counts_as_unhealthy(
    systemd, monkeypatch, autojump_clock, caplog
):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")

    def healthy() -> bool:
        raise RuntimeError("bug")

    async with trio.open_nursery() as nursery:
        await nursery.start(serve_watchdog, SystemdNotifier(), healthy)
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert _received(systemd) == []
    assert "health check failed" in caplog.text


async def test_watchdog_sends_the_status_with_each_ping(systemd, monkeypatch, autojump_clock):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    rounds = iter(range(1, 100))
    async with trio.open_nursery() as nursery:
        await nursery.start(
            functools.partial(serve_watchdog, status=lambda: f"round {next(rounds)}"),
            SystemdNotifier(),
            lambda: True,
        )
        await trio.sleep(1.5)
        nursery.cancel_scope.cancel()
    assert _received(systemd) == [b"WATCHDOG=1\nSTATUS=round 1", b"WATCHDOG=1\nSTATUS=round 2"]


@pytest.mark.parametrize(
    "env",
    [
        {},  # no watchdog
        {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"},  # someone else's watchdog
    ],
)
async def test_without_a_watchdog_serve_watchdog_returns_at_once(systemd, monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_watchdog, SystemdNotifier(), lambda: True)
    assert _received(systemd) == []


async def test_without_notify_socket_serve_watchdog_returns_at_once(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    with trio.fail_after(1):
        await serve_watchdog(SystemdNotifier(), lambda: True)


# --- the monitor, wired ----------------------------------------------------------------


async def test_a_running_monitor_tells_systemd_what_it_does(systemd, tmp_path):
    path = write_config(
        tmp_path,
        config_doc(
            {"name": "a", "url": "http://127.0.0.1:9/"},
            monitor={"interval": "1s", "stagger": "0s"},
            storage={"enabled": False},
        ),
        name="monitor.toml",
    )
    config = load_config(str(path))
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": os.environ["NOTIFY_SOCKET"], "WATCHDOG_USEC": "2000000"}
    )

    def assignments(datagram: bytes) -> list[str]:
        """Its names, but STATUS (its text is free)."""
        names = [line.partition("=")[0] for line in datagram.decode().split("\n")]
        return [name for name in names if name != "STATUS"]

    async with trio.open_nursery() as nursery:
        monitor = await nursery.start(
            functools.partial(
                run_monitor,
                config,
                out=io.BytesIO(),
                config_path=str(path),
                handle_signals=False,
                probers={"http": FakeProber()},
                systemd=notifier,
            )
        )
        [ready] = _received(systemd)
        assert assignments(ready) == ["READY"]

        assert await monitor.reload()
        path.write_text("not toml")
        assert not await monitor.reload()  # a failed reload must end with READY=1 too
        sent = _received(systemd)
        sent = [d for d in sent if not d.startswith(b"WATCHDOG=1")]
        assert [assignments(d) for d in sent] == [
            ["RELOADING", "MONOTONIC_USEC"],
            ["READY"],
            ["RELOADING", "MONOTONIC_USEC"],
            ["READY"],
        ]

        with trio.fail_after(5):  # healthy and on schedule: pinged every second
            with trio.socket.from_stdlib_socket(systemd.dup()) as tsock:
                while not (await tsock.recv(4096)).startswith(b"WATCHDOG=1"):
                    pass
        monitor.stop()
        assert assignments(_received(systemd)[-1]) == ["STOPPING"]
    assert all(not d.startswith(b"READY=1") for d in _received(systemd))
