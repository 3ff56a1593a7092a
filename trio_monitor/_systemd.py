"""systemd's notify protocol (sd_notify), spoken directly: no libsystemd needed.

Under a `Type=notify` (or `notify-reload`) unit, systemd passes `$NOTIFY_SOCKET`, a unix
datagram socket (a path, or an abstract name written with a leading "@"), and the
service sends it newline-separated assignments: READY=1 once it serves, RELOADING=1 and
READY=1 around a reload, STOPPING=1 when it begins to stop, STATUS=... for
`systemctl status`, and WATCHDOG=1 at least every `$WATCHDOG_USEC` when the unit has
`WatchdogSec=`. Without `$NOTIFY_SOCKET` every call here does nothing.

Sends are one non-blocking `sendto` each (a full socket drops the message instead of
waiting) and never raise: a notification that cannot be sent is worth a warning, not
the monitor. The first failure is logged as a warning, later ones at debug level.

The watchdog (serve_watchdog) pings only while the monitor says it is healthy, so a
ping means "rounds are on schedule", not merely "the process exists": systemd restarts
a monitor whose scheduler is stuck, or whose event loop stalls for longer than
`WatchdogSec=` (the pinging task cannot run then either).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, MutableMapping

import trio

log = logging.getLogger("trio_monitor")

STATUS_MAX = 512  # characters of STATUS= text sent at most (systemd reads 4 KiB datagrams)
ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: the clock systemd compares MONOTONIC_USEC with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd enforces, in seconds (ping at half of it), or None.

    From `$WATCHDOG_USEC`; None when it is unset, not a positive integer, or when
    `$WATCHDOG_PID` is set to another process (the variables were inherited, the
    watchdog is not ours).
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
        pid = env.get("WATCHDOG_PID")
        if pid and int(pid) != os.getpid():
            return None
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


def _address(value: str | None) -> str | bytes | None:
    """$NOTIFY_SOCKET -> a socket address for sendto, or None (unset or unsupported)."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + os.fsencode(value[1:])  # abstract namespace
    if value.startswith("/"):
        return value
    # e.g. "vsock:..." (systemd >= 254, for VMs): not something this process runs under
    log.warning("NOTIFY_SOCKET=%r is not a unix socket; systemd will not be notified", value)
    return None


def _one_line(text: str) -> str:
    # A newline would end the assignment and start another: STATUS is one line.
    return " ".join(text.split("\n"))[:STATUS_MAX]


class SystemdNotifier:
    """Tells systemd what the monitor is doing. Every method is synchronous, cheap, safe
    from any task, and a no-op when systemd did not ask for notifications.

    `environ` defaults to os.environ. With `unset_environment`, NOTIFY_SOCKET,
    WATCHDOG_USEC and WATCHDOG_PID are removed from it once read, so commands the
    monitor runs (alert `exec` commands) do not inherit them.
    """

    def __init__(
        self,
        environ: MutableMapping[str, str] | Mapping[str, str] | None = None,
        *,
        unset_environment: bool = False,
    ) -> None:
        env = os.environ if environ is None else environ
        self._address = _address(env.get("NOTIFY_SOCKET"))
        self._watchdog = watchdog_interval(env)
        self._warned = False
        if unset_environment and isinstance(env, MutableMapping):
            for name in ENVIRONMENT:
                env.pop(name, None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout (seconds) systemd set for this process, or None."""
        return self._watchdog if self.enabled else None

    def notify(self, *assignments: str) -> bool:
        """Send assignments ("READY=1", ...) in one datagram. -> sent? Never raises."""
        if self._address is None:
            return False
        try:
            message = "\n".join(assignments).encode("utf-8", "replace")
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a full socket drops the message: never wait
                sock.sendto(message, self._address)
        except Exception as exc:  # never the caller's problem
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot notify systemd (%s: %s); further failures are logged at debug level",
                    type(exc).__name__,
                    exc,
                )
            else:
                log.debug("cannot notify systemd: %s", exc)
            return False
        return True

    def _send(self, *assignments: str, status: str | None) -> bool:
        if status is not None:
            assignments += (f"STATUS={_one_line(status)}",)
        return self.notify(*assignments)

    def ready(self, status: str | None = None) -> bool:
        """Started, or done reloading (also after a failed reload: the old config runs)."""
        return self._send("READY=1", status=status)

    def reloading(self, status: str | None = None) -> bool:
        """A reload begins; send ready() when it is over, whatever its outcome.

        MONOTONIC_USEC lets `Type=notify-reload` (systemd >= 253) tell this reload from an
        earlier one; older systemd and `Type=notify` ignore it.
        """
        return self._send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", status=status)

    def stopping(self, status: str | None = None) -> bool:
        """Graceful shutdown began (systemd stops enforcing the watchdog)."""
        return self._send("STOPPING=1", status=status)

    def watchdog(self, status: str | None = None) -> bool:
        """Alive and on schedule: resets systemd's watchdog timer."""
        return self._send("WATCHDOG=1", status=status)

    def status(self, text: str) -> bool:
        """One line for `systemctl status`."""
        return self._send(status=text)


async def serve_watchdog(
    notifier: SystemdNotifier,
    healthy: Callable[[], bool],
    *,
    status: Callable[[], str] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Ping systemd's watchdog every half timeout while healthy(); runs until cancelled.

    Returns at once when systemd set no watchdog. healthy() is asked before every ping:
    while it is false (or raises) nothing is sent, so systemd restarts the monitor once
    it has been unhealthy for about `WatchdogSec=`. `status`, if given, is sent with
    each ping as STATUS= (one datagram, no extra traffic).
    """
    timeout = notifier.watchdog_interval()
    if timeout is None:
        task_status.started()
        return
    period = timeout / 2
    pinged = was_healthy = False
    while True:
        try:
            ok = bool(healthy())
        except Exception:
            log.exception("watchdog: health check failed; not pinging")
            ok = False
        if ok:
            if pinged and not was_healthy:
                log.warning("watchdog: healthy again, pinging systemd")
            text = None
            if status is not None:
                try:
                    text = status()
                except Exception:
                    log.exception("watchdog: status text failed")
            notifier.watchdog(text)
            pinged = True
        elif pinged and was_healthy:
            log.warning(
                "watchdog: monitor unhealthy, not pinging systemd "
                "(it restarts the monitor after %gs without a ping)",
                timeout,
            )
        was_healthy = ok
        task_status.started()  # once the first check is done (a no-op after that)
        task_status = trio.TASK_STATUS_IGNORED
        await trio.sleep(period)
