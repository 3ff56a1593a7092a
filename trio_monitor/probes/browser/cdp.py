"""The Chrome DevTools Protocol over one WebSocket: commands and their answers, and
events routed to flattened page sessions by their sessionId.

One `Connection` per Chromium process, read by one task (`read`): an answer wakes the
command waiting for it, an event goes to its session's handlers, all synchronously
(O(1) per message). A `PageSession` is what a probe (and its steps) drive:
`send(method, params)`, `on(event, handler)`, `evaluate(js)`.

Once the connection is broken (`broken(reason)`: the process died, hung or grew too
big), every command waiting and every later one raises `BrowserTrouble` with the reason.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import trio
import trio_websocket

SEND_TIMEOUT = 5.0  # seconds a command may take to be written (a healthy socket: none)

Handler = Callable[[dict[str, Any]], None]


class BrowserTrouble(Exception):
    """Chromium cannot be used (any more): the message says why."""


class CdpError(Exception):
    """A command was answered with an error (a bad selector, a closed target...)."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method
        self.message = message


class PageScriptError(Exception):
    """A script given to `evaluate` threw: the message is the page's description."""


class _Call:
    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.answer: dict[str, Any] | None = None  # None when the connection broke


class Connection:
    """The browser-level WebSocket: commands, answers, events by session."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._sessions: dict[str, PageSession] = {}
        self.trouble: str | None = None  # why it cannot be used; None while it can
        # called with the reason when a browser-level command goes unanswered
        self.on_hang: Callable[[str], None] = self.broken

    async def read(self) -> None:
        """Route every message until the connection closes (then return)."""
        try:
            while True:
                message = await self._ws.get_message()
                self._route(json.loads(message))
        except trio_websocket.ConnectionClosed:
            return

    def _route(self, message: dict[str, Any]) -> None:
        call_id = message.get("id")
        if call_id is not None:
            call = self._calls.pop(call_id, None)
            if call is not None:
                call.answer = message
                call.done.set()
            return
        session = self._sessions.get(message.get("sessionId", ""))
        if session is not None:
            session.event(message.get("method", ""), message.get("params", {}))

    def broken(self, reason: str) -> None:
        """Nothing more will be answered: wake every waiting command."""
        if self.trouble is None:
            self.trouble = reason
        calls, self._calls = self._calls, {}
        for call in calls.values():
            call.done.set()

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session_id: str | None = None,
        bound: float | None = None,
    ) -> dict[str, Any]:
        """Send a command and return its result. `bound`: seconds Chromium has to answer,
        else it counts as hung (`on_hang`); None: as long as the caller waits."""
        if self.trouble is not None:
            raise BrowserTrouble(self.trouble)
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        call = self._calls[call_id] = _Call()
        try:
            await self._write(json.dumps(message), method)
            if bound is None:
                await call.done.wait()
            else:
                with trio.move_on_after(bound) as waited:
                    await call.done.wait()
                if waited.cancelled_caught:
                    self.on_hang(f"Chromium did not answer {method} within {bound:g}s")
        finally:
            self._calls.pop(call_id, None)
        answer = call.answer
        if answer is None:
            raise BrowserTrouble(self.trouble or "the DevTools connection closed")
        error = answer.get("error")
        if error is not None:
            raise CdpError(method, str(error.get("message", error)))
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def _write(self, text: str, method: str) -> None:
        # never cut short: half a frame would break every later message
        with trio.CancelScope(shield=True):
            with trio.move_on_after(SEND_TIMEOUT) as writing:
                try:
                    await self._ws.send_message(text)
                except trio_websocket.ConnectionClosed:
                    self.broken("the DevTools connection closed")
        if writing.cancelled_caught:
            self.on_hang(f"Chromium did not read {method} within {SEND_TIMEOUT:g}s")

    def attach(self, session: PageSession) -> None:
        self._sessions[session.session_id] = session

    def detach(self, session: PageSession) -> None:
        self._sessions.pop(session.session_id, None)


class PageSession:
    """One page (a target attached with flatten=true): commands, events, scripts.

    What a probe or a step drives: `send` a command, `on` to see every event of a kind
    as it comes, `evaluate` a script.
    """

    def __init__(
        self, connection: Connection, session_id: str, target_id: str, context_id: str
    ) -> None:
        self.connection = connection
        self.session_id = session_id
        self.target_id = target_id  # also the main frame's id
        self.context_id = context_id  # its browser context (cookies, storage: its own)
        self._handlers: dict[str, list[Handler]] = {}

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A command to this page. Bounded by the caller only: a page's renderer may be
        busy (its own script), which is the page's trouble, not the browser's."""
        return await self.connection.send(method, params, self.session_id)

    def on(self, method: str, handler: Handler) -> None:
        """Call `handler(params)` for each `method` event from now on (synchronously)."""
        self._handlers.setdefault(method, []).append(handler)

    async def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        """The value of a script in the page (JSON-like); PageScriptError if it throws."""
        result = await self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "returnByValue": True,
                "awaitPromise": await_promise,
            },
        )
        details = result.get("exceptionDetails")
        if details is not None:
            raise PageScriptError(describe_exception(details))
        return result.get("result", {}).get("value")

    def event(self, method: str, params: dict[str, Any]) -> None:
        for handler in self._handlers.get(method, ()):
            handler(params)


def describe_exception(details: dict[str, Any]) -> str:
    """Runtime.ExceptionDetails as one line: "Uncaught ReferenceError: x is not defined"."""
    exception = details.get("exception") or {}
    text = exception.get("description") or details.get("text") or "script error"
    return str(text).splitlines()[0]
