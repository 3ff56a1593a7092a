"""The keys of browser targets (`kind = "browser"` with an http:// or https:// URL),
their resolution into a `BrowserSpec`, and the Chromium check at config load.

A config with a browser target must find Chromium (`[monitor] chromium`, else
`chromium` on PATH): one problem line naming the Debian package if not, so a monitor
that cannot render says so at `validate`, not as failed probes. A config without one
never looks.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from ..._config import Count, MonitorSection, TargetSection
from ...conditions import COMMON, Type
from ..base import Resolve
from .css import (
    WAIT_LOAD,
    WAIT_SELECTOR,
    missing,
    parser,
    selector_problem,
    wait_problem,
    wait_selector,
)
from .steps import Step, parse_steps

PLACEHOLDERS: Mapping[str, Type] = {
    **COMMON,  # CONNECTED: the document got an HTTP answer; IP: the server's address
    "STATUS": Type.NUMBER,  # the document's HTTP status (after redirects)
    "DOM": Type.BODY,  # the rendered text (document.body.innerText), JSON paths too
    "SELECTOR": Type.ELEMENTS,  # [SELECTOR].css: the text of the element it selects
}

INSTALL = "apt-get install chromium"


def selector_key_problem(placeholder: str, key: str) -> str | None:
    """Why a condition's [SELECTOR].css cannot select anything in Chromium, or None."""
    return selector_problem(key) if placeholder == "SELECTOR" else None


@frozen
class BrowserTargetSection(TargetSection):
    """[[targets]] with kind = "browser"."""

    # "load" (the load event), "networkidle" (then no request for 500 ms) or
    # "selector:CSS" (an element matching CSS exists)
    wait_for: str = WAIT_LOAD
    contains: str | None = None  # text the rendered page must show
    allow_console_errors: bool = False  # uncaught script errors do not fail the probe
    max_failed_requests: Count = Count(0)  # failed sub-requests tolerated
    # a scripted path after the first load: one action per table (steps.py)
    steps: tuple[dict[str, Any], ...] = ()


@frozen
class BrowserSpec:
    """A browser target's page and checks, every default applied."""

    url: str  # what Chromium loads (userinfo included: the target's own)
    wait_for: str  # WAIT_LOAD or WAIT_IDLE, or WAIT_SELECTOR when `selector` is set
    selector: str | None
    contains: str | None
    allow_console_errors: bool
    max_failed_requests: int
    steps: tuple[Step, ...] = ()  # resolved and checked (a fill's value read)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What the steps type into fields: masked wherever the page echoes it."""
        return tuple(step.value for step in self.steps if step.value)


def chromium_path(m: MonitorSection) -> str | None:
    """The Chromium executable to run: `[monitor] chromium`, else PATH's `chromium`;
    None when it is not there."""
    if m.chromium is not None:
        return m.chromium if os.access(m.chromium, os.X_OK) and os.path.isfile(m.chromium) else None
    return shutil.which("chromium")


def _missing(m: MonitorSection, where: str) -> str:
    if m.chromium is not None:
        return (
            f"monitor.chromium: no executable file at {m.chromium!r} ({INSTALL}, or fix the path)"
        )
    return (
        f"{where}.kind: a browser target needs Chromium, and there is no `chromium` on PATH"
        f" ({INSTALL}, or set [monitor] chromium)"
    )


def _wait_for(value: str, where: str, problems: list[str]) -> tuple[str, str | None]:
    problem = wait_problem(value)
    if problem is not None:
        problems.append(f"{where}.wait_for: {problem}")
        return WAIT_LOAD, None
    selector = wait_selector(value)
    return (value, None) if selector is None else (WAIT_SELECTOR, selector)  # load, networkidle


def browser_resolver(m: MonitorSection, env: Mapping[str, str], problems: list[str]) -> Resolve:
    checked = False  # Chromium is looked for once per config, and only with browser targets

    def resolve(t: BrowserTargetSection, where: str, problems: list[str]) -> BrowserSpec:
        nonlocal checked
        if not checked:
            checked = True
            if chromium_path(m) is None:
                problems.append(_missing(m, where))
            if parser() is None:
                problems.append(missing(where))
        assert t.url is not None  # a kind with URL schemes has one (_config.py checks)
        wait_for, selector = _wait_for(t.wait_for, where, problems)
        return BrowserSpec(
            url=t.url,
            wait_for=wait_for,
            selector=selector,
            contains=t.contains,
            allow_console_errors=t.allow_console_errors,
            max_failed_requests=t.max_failed_requests,
            steps=parse_steps(t.steps, where, env, problems),
        )

    return resolve
