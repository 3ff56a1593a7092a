"""[[alerts.exec]]: run a command (argv, no shell) with the alert JSON on stdin."""

from __future__ import annotations

import logging
import os

import httpx
import trio
from attrs import frozen

from .._config import EVENTS, Argv, Duration, Event
from .._records import AlertEvent, to_line
from .base import NotifierKind, register

log = logging.getLogger("trio_monitor")


@frozen
class ExecConfig:
    """[[alerts.exec]]: run `command` (argv list, no shell) with the alert JSON on stdin."""

    command: Argv
    timeout: Duration = Duration(10.0)
    events: tuple[Event, ...] = EVENTS


class Exec:
    def __init__(self, config: ExecConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config

    def describe(self) -> str:
        return f"exec {self.config.command[0]}"

    async def deliver(self, alert: AlertEvent) -> bool:
        """Run the command with the alert JSON on stdin. -> exited 0 in time?"""
        env = dict(os.environ)
        env.update(TRIO_MONITOR_EVENT=alert.event, TRIO_MONITOR_TARGET=alert.target)
        with trio.move_on_after(self.config.timeout):
            try:
                done = await trio.run_process(
                    list(self.config.command),
                    stdin=(to_line(alert) + "\n").encode(),
                    capture_stdout=True,  # our stdout is JSON lines: the command must not write there
                    capture_stderr=True,
                    check=False,
                    env=env,
                )
            except OSError as exc:
                log.error("%s: cannot run: %s", self.describe(), exc)
                return False
            if done.returncode == 0:
                return True
            err = done.stderr.decode(errors="replace").strip().splitlines()
            log.error(
                "%s: exited %d%s",
                self.describe(),
                done.returncode,
                f": {err[-1][:200]}" if err else "",
            )
            return False
        log.error("%s: killed after %gs", self.describe(), self.config.timeout)
        return False


register(NotifierKind(key="exec", section=ExecConfig, create=Exec))
