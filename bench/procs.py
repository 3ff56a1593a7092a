"""Child processes for the benchmark: started, measured, and always ended.

Linux only: children get PR_SET_PDEATHSIG (SIGTERM when this process dies, even by
SIGKILL), are reaped with os.wait4 for their own resource usage, and are sampled
through /proc.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def raise_nofile_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it). -> the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = hard if hard != resource.RLIM_INFINITY else 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


@dataclass(frozen=True)
class Usage:
    """What one finished child cost, from os.wait4 and a clock around it."""

    exit_code: int
    wall_s: float
    cpu_s: float  # user + sys
    peak_rss_mb: float
    timed_out: bool


class Children:
    """Every child started through here is ended by end_all(), whatever happened."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []

    def spawn(self, argv: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, preexec_fn=_die_with_parent, **kwargs)
        self._procs.append(proc)
        return proc

    def end(self, proc: subprocess.Popen, grace: float = 5.0) -> int:
        """SIGTERM, `grace` seconds to exit, then SIGKILL. -> exit code."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(grace)
        if proc in self._procs:
            self._procs.remove(proc)
        return proc.returncode

    def end_all(self) -> None:
        for proc in list(self._procs):
            self.end(proc)

    def run(self, argv: list[str], stdout: Path, stderr: Path, timeout: float) -> Usage:
        """Run to completion (killed after `timeout` s), measuring wall, CPU and peak RSS."""
        with stdout.open("wb") as out, stderr.open("wb") as err:
            started = time.perf_counter()
            proc = self.spawn(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            timed_out = not _wait_exit(proc.pid, timeout)
            if timed_out:
                proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        self._procs.remove(proc)
        return Usage(
            exit_code=proc.returncode,
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
            timed_out=timed_out,
        )


def _wait_exit(pid: int, timeout: float) -> bool:
    """Wait until the child exits (without reaping it). -> False on timeout."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return bool(ready)


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """The child's first stdout line, or '' if none came within `timeout` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode().strip() if ready else ""


def cpu_seconds(pid: int) -> float:
    """user + sys CPU seconds of a live process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores, not idle or iowait), /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def rss_mb(pid: int) -> float:
    """Resident set size of a live process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def workdir_for(path: Path | None, prefix: str) -> Iterator[Path]:
    """`path` (created), or a temporary folder removed afterwards."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)
