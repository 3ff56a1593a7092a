"""[[alerts.exec]]: run a command (argv, no shell) with the alert JSON on stdin.

The command runs in a session (and process group) of its own. Its stdout is read and
thrown away (our stdout is JSON lines: it must not write there) and only the last
TAIL bytes of its stderr are kept for the log, so memory stays bounded whatever it
writes. On timeout (or when we are cancelled) the whole process group is killed, so a
`sh -c "..."` leaves none of its children behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess

import httpx
import trio
from attrs import frozen

from .._config import Argv, ChannelSection, Duration, Retries
from .._records import AlertEvent, to_line
from .base import DELIVERED, Attempt, NotifierKind, deliver_with_retries, register

TAIL = 4096  # bytes of the command's stderr kept for the log
READ = 65536  # bytes read from a pipe at a time
AFTER_EXIT = 1.0  # seconds to finish reading stderr once the command has exited


@frozen
class ExecConfig(ChannelSection):
    """[[alerts.exec]]: run `command` (argv list, no shell) with the alert JSON on stdin."""

    command: Argv
    timeout: Duration = Duration(10.0)
    retries: Retries = Retries(0)  # a command may not be safe to run twice: opt in


async def _feed(stream: trio.abc.SendStream, data: bytes) -> None:
    async with stream:
        # a command that does not read its stdin may exit (and close it) first
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(data)


async def _discard(stream: trio.abc.ReceiveStream, tail: bytearray | None = None) -> None:
    """Read `stream` to its end, keeping at most its last TAIL bytes in `tail`."""
    async with stream:
        while chunk := await stream.receive_some(READ):
            if tail is not None:
                tail += chunk
                del tail[:-TAIL]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Exec:
    def __init__(self, config: ExecConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._rng = random.Random()

    def describe(self) -> str:
        return f"exec {self.config.command[0]}"

    async def deliver(self, alert: AlertEvent) -> bool:
        """Run the command (again after a failure, `retries` times). -> exited 0 in time?"""
        return await deliver_with_retries(
            self.describe(),
            alert,
            lambda: self._run(alert),
            retries=self.config.retries,
            limit=None,  # _run bounds itself: it kills the process group in time
            rng=self._rng,
        )

    async def _run(self, alert: AlertEvent) -> Attempt:
        """Run the command once with the alert JSON on stdin."""
        env = dict(os.environ)
        env.update(
            TRIO_MONITOR_EVENT=alert.event,
            TRIO_MONITOR_TARGET=alert.target,
            TRIO_MONITOR_IDEMPOTENCY_KEY=alert.key,
        )
        try:
            process = await trio.lowlevel.open_process(
                list(self.config.command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: killed as a whole
            )
        except OSError as exc:
            return Attempt(f"cannot run: {exc}", final=True)
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        stderr = bytearray()
        deadline = trio.move_on_after(self.config.timeout)
        try:
            with deadline:
                async with trio.open_nursery() as pipes:
                    pipes.start_soon(_feed, process.stdin, (to_line(alert) + "\n").encode())
                    pipes.start_soon(_discard, process.stdout)
                    pipes.start_soon(_discard, process.stderr, stderr)
                    await process.wait()
                    # a child it left running may hold the pipes open: read on briefly
                    pipes.cancel_scope.deadline = min(
                        pipes.cancel_scope.deadline, trio.current_time() + AFTER_EXIT
                    )
        finally:
            # Timed out (the command may have died of the pipes we closed meanwhile: it
            # is still the timeout), or we are being cancelled: the whole group goes.
            if deadline.cancelled_caught or process.returncode is None:
                _kill_group(process.pid)
                with trio.move_on_after(AFTER_EXIT, shield=True):
                    await process.wait()
        if deadline.cancelled_caught:
            return Attempt(f"killed after {self.config.timeout:g}s (process group)")
        if process.returncode == 0:
            return DELIVERED
        err = stderr.decode(errors="replace").strip().splitlines()
        return Attempt(f"exited {process.returncode}" + (f": {err[-1][:200]}" if err else ""))


def _destination(config: ExecConfig) -> str:
    return json.dumps(list(config.command))  # argv, unambiguous; not the timeout


register(NotifierKind(key="exec", section=ExecConfig, create=Exec, destination=_destination))
