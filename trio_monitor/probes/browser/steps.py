"""A browser target's `steps`: a short scripted path (a login, a checkout) run after the
page's first load, in order, under the probe's one deadline.

Config (`parse_steps`): each `[[targets.steps]]` table names one action (`goto`,
`click`, `fill`, `press`, `wait_for`, `expect_text`), checked at load with one problem
line each (`targets[0].steps[2].click: ...`); a `fill` value comes from `value` (with
${ENV}) or `value_file`, read at load like `token_file`.

Run (`StepRun`): each step through the page's `PageSession`: clicks scroll the element
into view and press the mouse at its centre (real input events), `fill` focuses the
field, selects what it holds and types the value (Input.insertText), `press` sends a key
down and up. A step that looks for an element or text waits for it up to STEP_WAIT (the
page may still be rendering after a click): then it fails with `content`; `wait_for`
waits as long as the deadline allows (`timeout`). Each step's time and outcome go into
`browser.steps`; the first failure names the step (`steps[2] click "#login": ...`).

A filled value is a secret: it is kept out of every repr, result, error and log (the
step's `target` is its selector), and masked in the page's console log (artifacts.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio
from attrs import frozen

from ..._config import _Invalid, expand_env, expand_path
from ..._errors import ErrorKind, ProbeFailure
from ..._records import BrowserStep
from ..._secrets import MASK
from .css import selector_problem, wait_problem

if TYPE_CHECKING:  # trio-websocket is loaded by a config with browser targets only
    from .cdp import PageSession
    from .probe import _Page

ACTIONS = ("goto", "click", "fill", "press", "wait_for", "expect_text")
# keys a step table may have besides its action, per action
EXTRA_KEYS: Mapping[str, frozenset[str]] = {
    "fill": frozenset({"value", "value_file"}),
    "press": frozenset({"selector"}),
}
STEP_WAIT = 2.0  # seconds a step waits for its element or text to appear
POLL = 0.05  # seconds between two looks
MAX_SHOWN = 80  # characters of a selector, URL or text a step's detail shows

# keys `press` knows: name -> (code, windowsVirtualKeyCode, text typed)
KEYS: Mapping[str, tuple[str, int, str]] = {
    "Enter": ("Enter", 13, "\r"),
    "Tab": ("Tab", 9, ""),
    "Escape": ("Escape", 27, ""),
    "Backspace": ("Backspace", 8, ""),
    "Delete": ("Delete", 46, ""),
    "Space": ("Space", 32, " "),
    "ArrowUp": ("ArrowUp", 38, ""),
    "ArrowDown": ("ArrowDown", 40, ""),
    "ArrowLeft": ("ArrowLeft", 37, ""),
    "ArrowRight": ("ArrowRight", 39, ""),
    "Home": ("Home", 36, ""),
    "End": ("End", 35, ""),
    "PageUp": ("PageUp", 33, ""),
    "PageDown": ("PageDown", 34, ""),
}


@frozen
class Step:
    """One resolved step. `value`: what `fill` types (a secret: never shown)."""

    action: str
    target: str  # the URL, selector, key, wait or text: what a result and a detail show
    selector: str | None = None  # click, fill, press's element
    value: str | None = None

    def __repr__(self) -> str:  # the value masked: a repr may reach a log or a traceback
        shown = "" if self.value is None else f", value={MASK!r}"
        return f"Step(action={self.action!r}, target={self.target!r}{shown})"


# --- config ------------------------------------------------------------------------


def _goto_problem(value: str) -> str | None:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
        return f"must be an http:// or https:// URL, got {value!r}"
    return None


def _read_value(
    table: Mapping[str, Any], where: str, env: Mapping[str, str], problems: list[str]
) -> str | None:
    from ..http.config import _read_secret  # the one secret-file rule (token_file's)

    value, path = table.get("value"), table.get("value_file")
    if (value is None) == (path is None):
        problems.append(f"{where}.value: set value or value_file (one of them)")
        return None
    if path is not None:
        if not isinstance(path, str):
            problems.append(f"{where}.value_file: must be a path (text)")
            return None
        key = f"{where}.value_file"
        return _read_secret(expand_path(path, key, env, problems), key, problems)
    if not isinstance(value, str):
        problems.append(f"{where}.value: must be text")
        return None
    try:
        return expand_env(value, env)
    except _Invalid as exc:
        problems.append(f"{where}.value: {exc}")
        return None


def _one_step(
    table: object, where: str, env: Mapping[str, str], problems: list[str]
) -> Step | None:
    if not isinstance(table, Mapping):
        problems.append(f'{where}: must be a table such as {{ click = "#login" }}')
        return None
    actions = [key for key in table if key in ACTIONS]
    if len(actions) != 1:
        what = "no action" if not actions else f"{len(actions)} actions ({', '.join(actions)})"
        problems.append(f"{where}: one action per step ({', '.join(ACTIONS)}), got {what}")
        return None
    (action,) = actions
    extra = sorted(set(table) - {action} - EXTRA_KEYS.get(action, frozenset()))
    if extra:
        problems.append(f"{where}.{extra[0]}: unknown key for a {action} step")
        return None
    arg = table[action]
    key = f"{where}.{action}"
    if not isinstance(arg, str):
        problems.append(f"{key}: must be text, got {arg!r:.60}")
        return None
    problem = {
        "goto": _goto_problem,
        "click": selector_problem,
        "fill": selector_problem,
        "wait_for": wait_problem,
    }.get(action, lambda _: None)(arg)
    if action == "press":
        selector = table.get("selector")
        if arg not in KEYS and len(arg) != 1:
            problem = f"unknown key {arg!r} (one character, or {', '.join(KEYS)})"
        elif selector is not None and not isinstance(selector, str):
            problems.append(f"{where}.selector: must be a CSS selector (text)")
            return None
        elif selector is not None and (why := selector_problem(selector)):
            problems.append(f"{where}.selector: {why}")
            return None
        if problem is None:
            return Step(action, arg, selector=selector)
    if action == "expect_text" and not arg:
        problem = "must not be empty"
    if problem is not None:
        problems.append(f"{key}: {problem}")
        return None
    if action == "fill":
        value = _read_value(table, where, env, problems)
        return None if value is None else Step(action, arg, selector=arg, value=value)
    return Step(action, arg, selector=arg if action == "click" else None)


def parse_steps(
    tables: tuple[Any, ...], where: str, env: Mapping[str, str], problems: list[str]
) -> tuple[Step, ...]:
    """The target's `steps`, each checked: one problem line per bad step."""
    steps = []
    for i, table in enumerate(tables):
        step = _one_step(table, f"{where}.steps[{i}]", env, problems)
        if step is not None:
            steps.append(step)
    return tuple(steps)


# --- run ---------------------------------------------------------------------------

# the element's centre, scrolled into view; null when nothing matches
_LOCATE = """(() => {
  const el = document.querySelector(%s);
  if (el === null) return null;
  el.scrollIntoView({block: "center", inline: "center"});
  const r = el.getBoundingClientRect();
  return {x: r.left + r.width / 2, y: r.top + r.height / 2};
})()"""
# focus the field and select what it holds (typing then replaces it); false: no element
_FOCUS = """(() => {
  const el = document.querySelector(%s);
  if (el === null) return false;
  el.scrollIntoView({block: "center"});
  el.focus();
  if (typeof el.select === "function") el.select();
  return true;
})()"""
_HAS_TEXT = "document.body !== null && document.body.innerText.includes(%s)"
_COMPLETE = 'document.readyState === "complete"'


def _shown(text: str) -> str:
    return json.dumps(text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…")


class _StepFailed(Exception):
    def __init__(self, kind: ErrorKind, why: str) -> None:
        super().__init__(why)
        self.kind = kind
        self.why = why


class StepRun:
    """A probe's steps as they run: the results so far, the one running."""

    def __init__(self, steps: tuple[Step, ...]) -> None:
        self.steps = steps
        self.results: list[BrowserStep] = []
        self._current: int | None = None
        self._started = 0.0

    def name(self, i: int) -> str:
        step = self.steps[i]
        return f"steps[{i}] {step.action} {_shown(step.target)}"

    async def run(self, page: PageSession, seen: _Page) -> None:
        """Every step, in order; ProbeFailure naming the first that fails."""
        from .cdp import BrowserTrouble, CdpError, PageScriptError

        if not self.steps:
            return
        ctx = _Context(page, seen)
        for i, step in enumerate(self.steps):
            self._current, self._started = i, trio.current_time()
            try:
                await _STEPS[step.action](ctx, step)
            except _StepFailed as exc:
                self._record(i, exc.why)
                raise ProbeFailure(exc.kind, f"{self.name(i)}: {exc.why}") from None
            except ProbeFailure as exc:  # a goto's navigation error
                self._record(i, exc.detail)
                raise ProbeFailure(exc.kind, f"{self.name(i)}: {exc.detail}") from None
            except (BrowserTrouble, CdpError, PageScriptError) as exc:
                self._record(i, str(exc))
                raise ProbeFailure(ErrorKind.BROWSER, f"{self.name(i)}: {exc}") from None
            self._record(i, None)
        self._current = None

    def timed_out(self, timeout: float) -> ProbeFailure | None:
        """The failure of the step the deadline cut short, or of the first one it came
        before; None when every step had run."""
        i = self._current
        if i is None:
            if len(self.results) == len(self.steps):
                return None
            i, self._started = len(self.results), trio.current_time()
        why = f"not done within the {timeout:g}s timeout"
        self._record(i, why)
        self._current = None
        return ProbeFailure(ErrorKind.TIMEOUT, f"{self.name(i)}: {why}")

    def _record(self, i: int, error: str | None) -> None:
        step = self.steps[i]
        ms = round((trio.current_time() - self._started) * 1000, 3)
        self.results.append(BrowserStep(step.action, step.target, error is None, ms, error))


class _Context:
    """The page the steps drive, and whether its main frame is loading a document."""

    def __init__(self, page: PageSession, seen: _Page) -> None:
        self.page = page
        self.seen = seen
        self.loading = False
        self.stopped = trio.Event()
        page.on("Page.frameStartedLoading", self._started)
        page.on("Page.frameStoppedLoading", self._stopped)

    def _started(self, p: dict[str, Any]) -> None:
        if p.get("frameId") == self.page.target_id:
            self.loading = True

    def _stopped(self, p: dict[str, Any]) -> None:
        if p.get("frameId") == self.page.target_id:
            self.loading = False
            self.stopped.set()
            self.stopped = trio.Event()

    async def settled(self) -> None:
        """Until the main frame is not loading (a navigation a click started)."""
        while self.loading:
            await self.stopped.wait()


async def _poll(check: Any, wait: float | None) -> bool:
    """Call `check()` until it is true (-> True) or `wait` seconds passed (-> False).
    Scripts that fail meanwhile (a navigation replacing the document) count as no."""
    from .cdp import CdpError, PageScriptError

    with trio.move_on_after(wait if wait is not None else float("inf")):
        while True:
            try:
                if await check():
                    return True
            except (CdpError, PageScriptError):
                pass
            await trio.sleep(POLL)
    return False


async def _element(page: PageSession, selector: str, script: str) -> Any:
    """`script` (with the selector) until it finds the element; _StepFailed if it never does."""
    found: list[Any] = []

    async def check() -> bool:
        value = await page.evaluate(script % json.dumps(selector))
        if value:
            found.append(value)
        return bool(value)

    if not await _poll(check, STEP_WAIT):
        raise _StepFailed(ErrorKind.CONTENT, f"no element matches (waited {STEP_WAIT:g}s)")
    return found[-1]


async def _goto(ctx: _Context, step: Step) -> None:
    from .probe import navigate

    await ctx.seen.reached(await navigate(ctx.page, step.target), "load")


async def _click(ctx: _Context, step: Step) -> None:
    page = ctx.page
    assert step.selector is not None
    at = await _element(page, step.selector, _LOCATE)
    mouse = {"x": at["x"], "y": at["y"], "button": "left", "clickCount": 1}
    await page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": at["x"], "y": at["y"]})
    await page.send("Input.dispatchMouseEvent", {"type": "mousePressed", **mouse})
    await page.send("Input.dispatchMouseEvent", {"type": "mouseReleased", **mouse})


async def _fill(ctx: _Context, step: Step) -> None:
    page = ctx.page
    assert step.selector is not None
    assert step.value is not None
    await _element(page, step.selector, _FOCUS)
    if step.value:
        await page.send("Input.insertText", {"text": step.value})
    else:  # nothing to type: delete what was selected
        await _key(page, "Delete")


async def _press(ctx: _Context, step: Step) -> None:
    page = ctx.page
    if step.selector is not None:
        await _element(page, step.selector, _FOCUS)
    await _key(page, step.target)


async def _key(page: PageSession, key: str) -> None:
    if key in KEYS:
        code, vk, text = KEYS[key]
    else:  # one character (checked at load): typed as it is
        code, vk, text = "", ord(key.upper()) if key.isascii() and key.isalnum() else 0, key
    down: dict[str, Any] = {"type": "keyDown", "key": " " if key == "Space" else key, "code": code}
    if vk:
        down["windowsVirtualKeyCode"] = vk
    if text:
        down["text"] = text
    await page.send("Input.dispatchKeyEvent", down)
    up = {k: v for k, v in down.items() if k != "text"}
    await page.send("Input.dispatchKeyEvent", {**up, "type": "keyUp"})


async def _wait_for(ctx: _Context, step: Step) -> None:
    page = ctx.page
    if step.target.startswith("selector:"):
        selector = json.dumps(step.target.removeprefix("selector:").strip())

        async def present() -> bool:
            return bool(await page.evaluate(f"document.querySelector({selector}) !== null"))

        await _poll(present, None)
        return

    async def complete() -> bool:
        return bool(await page.evaluate(_COMPLETE))

    # the document a click or a press may have replaced: its load, then its idle
    await _poll(complete, None)
    await ctx.settled()
    tree = await page.send("Page.getFrameTree")
    loader = tree.get("frameTree", {}).get("frame", {}).get("loaderId", "")
    await ctx.seen.reached(loader, "load")
    if step.target == "networkidle":
        await ctx.seen.reached(loader, "networkIdle")


async def _expect_text(ctx: _Context, step: Step) -> None:
    page = ctx.page

    async def shown() -> bool:
        return bool(await page.evaluate(_HAS_TEXT % json.dumps(step.target)))

    if not await _poll(shown, STEP_WAIT):
        raise _StepFailed(ErrorKind.CONTENT, f"not in the rendered page (waited {STEP_WAIT:g}s)")


_STEPS = {
    "goto": _goto,
    "click": _click,
    "fill": _fill,
    "press": _press,
    "wait_for": _wait_for,
    "expect_text": _expect_text,
}
