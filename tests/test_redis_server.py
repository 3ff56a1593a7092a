"""The redis_server fixture itself: a real redis-server that tests can kill, restart
with its data (AOF) and restart empty."""

from __future__ import annotations

import socket

from redis_server import RedisServer


def _command(server: RedisServer, *args: str) -> bytes:
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(payload.encode())
        return sock.recv(4096)


def test_a_restart_keeps_the_append_only_file_and_restart_empty_loses_it(
    redis_server: RedisServer,
) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert _command(redis_server, "SET", "k", "v") == b"+OK\r\n"
    pid = redis_server.pid
    redis_server.stop()
    redis_server.start()
    assert redis_server.pid != pid
    assert _command(redis_server, "GET", "k") == b"$1\r\nv\r\n"
    redis_server.restart_empty()
    assert _command(redis_server, "GET", "k") == b"$-1\r\n"
