"""Debian's prometheus-blackbox-exporter as a third prober, when it is installed.

`apt-get install prometheus-blackbox-exporter`; the bench starts its own instance on a
free loopback port with a config of two modules, `http_2xx` and `http_2xx_ca` (HTTPS
verified against the bench's CA), and drives it with the aiohttp prober's blackbox mode
(one GET /probe?target=...&module=... per target, the same concurrency). blackbox opens
a new connection for every probe, so it runs in the fresh-connection scenarios; what is
charged to it is the exporter's own process CPU.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from procs import Children

BINARIES = ("prometheus-blackbox-exporter", "blackbox_exporter")
START_TIMEOUT = 15.0


def binary() -> str | None:
    return next((found for name in BINARIES if (found := shutil.which(name))), None)


def version() -> str:
    found = binary()
    if found is None:
        return "not installed"
    done = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=10)
    words = (done.stdout or done.stderr).split()
    return words[2] if len(words) > 2 else "unknown"


@dataclass(frozen=True)
class Blackbox:
    pid: int
    url: str  # http://127.0.0.1:PORT


def _config(timeout_s: float, ca_file: Path | None) -> str:
    ca = f"\n      tls_config:\n        ca_file: {ca_file}" if ca_file else ""
    return (
        "modules:\n"
        "  http_2xx:\n"
        "    prober: http\n"
        f"    timeout: {timeout_s:g}s\n"
        "    http:\n"
        "      preferred_ip_protocol: ip4\n"
        "  http_2xx_ca:\n"
        "    prober: http\n"
        f"    timeout: {timeout_s:g}s\n"
        "    http:\n"
        f"      preferred_ip_protocol: ip4{ca}\n"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running_blackbox(
    children: Children, workdir: Path, timeout_s: float, ca_file: Path | None
) -> Iterator[Blackbox]:
    found = binary()
    assert found is not None
    config = workdir / "blackbox.yml"
    config.write_text(_config(timeout_s, ca_file))
    port = _free_port()
    argv = [found, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]
    argv.append("--log.level=warn")
    with (workdir / "blackbox.err").open("ab") as err:
        proc = children.spawn(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"blackbox_exporter did not start; see {workdir}/blackbox.err")
            time.sleep(0.05)
        yield Blackbox(proc.pid, f"http://127.0.0.1:{port}")
    finally:
        children.end(proc)
