"""CSS selectors checked at config load: `wait_for = "selector:CSS"` and the steps'
selectors (`click`, `fill`, `press`'s `selector`, a step's `wait_for`).

A selector Chromium cannot parse would make every probe of the target fail at run time
(querySelector throws); here it is one line at `validate` instead. The parser is
soupsieve's (CSS Selectors Level 4, compiled without a document: `:is()`, `:not(a, b)`,
`:has()`, `:nth-child(2n of .x)`, attribute flags), from the `browser` extra; it is
imported by configs with browser targets only. Where soupsieve and Chromium differ:

- pseudo-classes Chromium has and soupsieve does not (`:valid`, `:modal`,
  `:-webkit-autofill`, ...) are accepted (checked as if they were `:root`);
- soupsieve's own (`:-soup-contains()`, `:contains()`) are refused: Chromium throws;
- a pseudo-element (`p::before`) is refused: querySelector never matches one.
"""

from __future__ import annotations

import re
import warnings
from types import ModuleType

INSTALL = "pip install 'trio-monitor[browser]'"
WAIT_LOAD, WAIT_IDLE, WAIT_SELECTOR = "load", "networkidle", "selector:"
# Chromium's pseudo-classes that soupsieve does not know (besides any -webkit- one)
CHROMIUM_ONLY = frozenset(
    {
        "autofill",
        "closed",
        "fullscreen",
        "invalid",
        "modal",
        "picture-in-picture",
        "target-current",
        "user-invalid",
        "user-valid",
        "valid",
        "xr-overlay",
    }
)
_SOUP_ONLY = re.compile(r":(-soup-[\w-]+|contains)\(", re.IGNORECASE)
_UNKNOWN = re.compile(r"':([-\w]+)' was detected as a pseudo-class", re.IGNORECASE)
_TRIES = 8  # Chromium-only pseudo-classes set aside in one selector, at most


def parser() -> ModuleType | None:
    """soupsieve, or None when the `browser` extra is not installed."""
    try:
        import soupsieve
    except ImportError:  # soupsieve itself, or Beautiful Soup that it imports
        return None
    return soupsieve


def missing(where: str) -> str:
    """The one problem line of a config with browser targets and no selector parser."""
    return f"{where}.kind: browser targets need the browser extra ({INSTALL})"


def _chromium_only(name: str) -> bool:
    name = name.lower()
    return name in CHROMIUM_ONLY or name.startswith("-webkit-")


def selector_problem(css: str) -> str | None:
    """Why `css` cannot be a selector for Chromium's querySelector, or None."""
    text = css.strip()
    if not text:
        return "must be a CSS selector, got an empty one"
    sv = parser()
    if sv is None:  # reported once per config (missing)
        return None
    soup_only = _SOUP_ONLY.search(text)
    if soup_only:
        return f"not a CSS selector (:{soup_only[1]}() is not CSS; Chromium refuses it): {css!r}"
    checked = text
    for _ in range(_TRIES):
        try:
            with warnings.catch_warnings():  # deprecation notes on soupsieve's own syntax
                warnings.simplefilter("ignore")
                sv.compile(checked)
            return None
        except sv.SelectorSyntaxError as exc:
            why = str(exc).splitlines()[0].strip() or "cannot parse it"
            unknown = _UNKNOWN.search(why)
            if unknown is not None:
                name = unknown[1]
                aside = checked
                if _chromium_only(name):  # a plain one (not a function) is set aside
                    pattern = rf":{re.escape(name)}(?![-\w(])"
                    aside = re.sub(pattern, ":root", checked, flags=re.IGNORECASE)
                if aside != checked:
                    checked = aside
                    continue
                why = f"unknown pseudo-class ':{name}'"
            return f"not a CSS selector ({why[0].lower()}{why[1:]}): {css!r}"
        except NotImplementedError:  # soupsieve's word for a pseudo-element
            return f"a pseudo-element never matches an element: {css!r}"
    return f"not a CSS selector: {css!r}"


def wait_selector(value: str) -> str | None:
    """The selector of `wait_for = "selector:CSS"` (stripped), None when not one."""
    css = value.removeprefix(WAIT_SELECTOR).strip()
    return css if value.startswith(WAIT_SELECTOR) and css else None


def wait_problem(value: str) -> str | None:
    """Why `value` cannot be a `wait_for` (the target's or a step's), or None."""
    if value in (WAIT_LOAD, WAIT_IDLE):
        return None
    css = wait_selector(value)
    if css is None:
        return f'must be "load", "networkidle" or "selector:CSS", got {value!r}'
    return selector_problem(css)
