"""A real redis-server for the cluster tests: Debian's /usr/bin/redis-server on a free
loopback port, append-only file in a temp directory, no RDB snapshots.

conftest.py gives one per test as the `redis_server` fixture; a test that uses it is
marked `redis` and skipped, with the reason, where redis-server is missing (.ci/run
installs it). `kill` (SIGKILL), `restart` (same port, same directory: the AOF is
replayed) and `restart_empty` (same port, the directory wiped) let tests take Redis away
and bring it back.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/sbin/redis-server"
READY_S = 10.0


def missing() -> str | None:
    """Why redis-server cannot run here, or None if it can."""
    if Path(REDIS_SERVER).is_file():
        return None
    return (
        "Debian's redis-server is not installed (apt-get install redis-server; .ci/run installs it)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; `url` stays the same across restarts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Start it and wait until it answers PING (a port taken meanwhile: another one)."""
        assert self.proc is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self.proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + READY_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _pings(self.port):
                    return
                time.sleep(0.02)  # polling for readiness, not settling
            self._reap(signal.SIGKILL)
            self.port = _free_port()
        raise RuntimeError(f"redis-server did not start: see {self.directory / 'redis.log'}")

    def _command(self) -> list[str]:
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": str(self.directory),
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": "",  # no RDB snapshots: the append-only file alone
            "daemonize": "no",
            "logfile": str(self.directory / "redis.log"),
        }
        return [
            REDIS_SERVER,
            *(part for key, value in options.items() for part in (f"--{key}", value)),
        ]

    def stop(self) -> None:
        """SIGTERM, then wait (it writes nothing more: no RDB)."""
        self._reap(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: what the append-only file has (fsync each second) survives."""
        self._reap(signal.SIGKILL)

    def restart(self) -> None:
        """Killed and started again on the same port with the same data."""
        self.kill()
        self.start()

    def restart_empty(self) -> None:
        """Killed and started again on the same port with no data at all."""
        self.kill()
        for path in self.directory.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        self.start()

    def _reap(self, sig: signal.Signals) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def start_redis(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()
