"""One browser probe: a fresh page in its own browser context, the navigation, the wait
(`wait_for`), then the checks on the rendered page, and the context disposed of.

What the page does is counted from DevTools events as they come (`_Page`): requests,
failed sub-requests, uncaught script errors, bytes, the document's response. The checks,
in order: the navigation itself (a network error is dns/connect/tls), the document's
status (400 and above: `status`), uncaught script errors, failed sub-requests and
`contains` (`content`), then the conditions. Chromium's own trouble is `browser`.
"""

from __future__ import annotations

import json
import random
import time
from typing import TYPE_CHECKING, Any

import trio
from attrs import evolve, frozen

from ..._config import Target
from ..._errors import ErrorKind, ProbeFailure
from ..._records import BrowserDetails, ProbeResult
from ...conditions import apply, common_facts, keys
from ...net.addr import with_port
from ..base import retry_after
from .artifacts import ConsoleLog, capture, masked
from .cdp import (
    BrowserTrouble,
    CdpError,
    Handler,
    PageScriptError,
    PageSession,
    describe_exception,
)
from .config import BrowserSpec
from .css import WAIT_IDLE, WAIT_SELECTOR
from .steps import StepRun

if TYPE_CHECKING:
    from . import BrowserProber
    from .chromium import Chromium

MAX_TEXT = 1 << 20  # characters of the rendered text read (contains, [DOM])
POLL = 0.05  # seconds between two looks for wait_for's selector
# seconds to wait, once the page is ready, for its first contentful paint (for lcp_ms): a
# page that shows nothing never has one
PAINT_WAIT = 0.25
DETAILS_SHOWN = 3  # failed requests or script errors named in error_detail
_RNG = random.Random()  # retry jitter only

# Largest contentful paint is only reported to an observer: one is registered in every
# document before its own scripts run; the last entry it saw is the LCP
LCP_OBSERVER = """
try {
  new PerformanceObserver((list) => {
    const entries = list.getEntries();
    window.__trioMonitorLcp = entries[entries.length - 1].startTime;
  }).observe({ type: "largest-contentful-paint", buffered: true });
} catch (e) {}
"""

# what the checks read once the wait is over; %s: the selectors, as a JSON array
READ_PAGE = """(() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const at = (v) => (nav && v > 0 ? v : null);
  const elements = {};
  for (const css of %s) {
    let found = null;
    try { found = document.querySelector(css); } catch (e) {}
    elements[css] = found === null ? null : (found.innerText ?? found.textContent);
  }
  const text = document.body ? document.body.innerText : "";
  return {
    text: text.slice(0, %d),
    dcl: at(nav && nav.domContentLoadedEventStart),
    load: at(nav && nav.loadEventStart),
    elements: elements,
  };
})()"""
# the paint observer's last entry, two frames after the first paint (it has had it then)
READ_LCP = """new Promise((painted) => requestAnimationFrame(() => requestAnimationFrame(
  () => setTimeout(painted, 0)))).then(() => window.__trioMonitorLcp ?? null)"""

# Chromium's network errors (net::ERR_...) -> our kinds; anything else is `connect`
_NET_ERRORS = {
    "ERR_NAME_NOT_RESOLVED": ErrorKind.DNS,
    "ERR_NAME_RESOLUTION_FAILED": ErrorKind.DNS,
    "ERR_TIMED_OUT": ErrorKind.TIMEOUT,
    "ERR_CONNECTION_TIMED_OUT": ErrorKind.TIMEOUT,
    "ERR_TOO_MANY_REDIRECTS": ErrorKind.REDIRECTS,
    "ERR_INVALID_RESPONSE": ErrorKind.PROTOCOL,
    "ERR_INVALID_HTTP_RESPONSE": ErrorKind.PROTOCOL,
    "ERR_EMPTY_RESPONSE": ErrorKind.PROTOCOL,
}


@frozen
class BrowserPlan:
    target: Target
    limit_key: str  # what per_host counts: the page's origin
    spec: BrowserSpec
    selectors: tuple[str, ...]  # the CSS selectors the conditions read ([SELECTOR].css)


def prepare(target: Target) -> BrowserPlan:
    spec: BrowserSpec = target.spec
    scheme, _, rest = spec.url.partition("://")
    origin = f"{scheme}://{rest.split('/', 1)[0].rpartition('@')[2]}"
    selectors = tuple(sorted(keys(target.conditions, "SELECTOR")))
    return BrowserPlan(target, origin, spec, selectors)


def _net_failure(error_text: str) -> ProbeFailure:
    """Page.navigate's errorText ("net::ERR_CONNECTION_REFUSED") as a failure."""
    code = error_text.removeprefix("net::")
    if code in _NET_ERRORS:
        return ProbeFailure(_NET_ERRORS[code], error_text)
    if "CERT" in code or "SSL" in code:
        return ProbeFailure(ErrorKind.TLS, error_text)
    return ProbeFailure(ErrorKind.CONNECT, error_text)


class _Page:
    """What the page did, from its events: filled in as they come."""

    def __init__(self, page: PageSession) -> None:
        self.main_frame = page.target_id
        self.requests: set[str] = set()
        self.own: set[str] = set()  # Chromium's own requests (the favicon): not the page's
        self.failed: dict[str, str] = {}  # request id -> "GET URL: why"
        self.errors: list[str] = []  # uncaught script errors, described
        self.transfer = 0
        self.methods: dict[str, tuple[str, str]] = {}  # request id -> (method, URL)
        self.document: dict[str, Any] | None = None  # the document's Network.Response
        self.document_id: str | None = None
        self.redirected = False  # the document's request was redirected
        self.lifecycle: set[tuple[str, str]] = set()  # (loaderId, name) seen
        self.changed = trio.Event()
        # set once the verdict is taken: what the page does while a failure's screenshot
        # is taken (Chromium fetches the favicon) is not the probe's
        self.final = False
        for event, handler in (
            ("Network.requestWillBeSent", self._request),
            ("Network.responseReceived", self._response),
            ("Network.loadingFinished", self._finished),
            ("Network.loadingFailed", self._failed),
            ("Runtime.exceptionThrown", self._exception),
        ):
            page.on(event, self._until_final(handler))
        page.on("Page.lifecycleEvent", self._lifecycle)

    def _until_final(self, handler: Handler) -> Handler:
        return lambda params: None if self.final else handler(params)

    def _request(self, p: dict[str, Any]) -> None:
        request_id = p["requestId"]
        if p.get("type") != "Document" and p.get("initiator", {}).get("type") == "other":
            self.own.add(request_id)  # nothing in the page asked for it
            return
        self.requests.add(request_id)  # a redirect's hops share the id: one request
        request = p.get("request", {})
        self.methods[request_id] = (request.get("method", "GET"), request.get("url", ""))
        if p.get("type") == "Document" and p.get("frameId") == self.main_frame:
            self.document_id = request_id
            self.redirected = self.redirected or "redirectResponse" in p

    def _response(self, p: dict[str, Any]) -> None:
        request_id = p["requestId"]
        response = p.get("response", {})
        if request_id in self.own:
            return
        if request_id == self.document_id:
            self.document = response
        elif response.get("status", 0) >= 400:
            self._fail(request_id, f"HTTP {response['status']}")

    def _finished(self, p: dict[str, Any]) -> None:
        if p["requestId"] not in self.own:
            self.transfer += int(p.get("encodedDataLength", 0))

    def _failed(self, p: dict[str, Any]) -> None:
        request_id = p["requestId"]
        if request_id not in self.own and request_id != self.document_id and not p.get("canceled"):
            self._fail(p["requestId"], p.get("blockedReason") or p.get("errorText", "failed"))

    def _fail(self, request_id: str, why: str) -> None:
        method, url = self.methods.get(request_id, ("GET", "?"))
        self.failed.setdefault(request_id, f"{method} {url}: {why}")

    def _exception(self, p: dict[str, Any]) -> None:
        self.errors.append(describe_exception(p.get("exceptionDetails", {})))

    def _lifecycle(self, p: dict[str, Any]) -> None:
        self.lifecycle.add((p.get("loaderId", ""), p.get("name", "")))
        self.changed.set()
        self.changed = trio.Event()

    async def reached(self, loader: str, name: str) -> None:
        while (loader, name) not in self.lifecycle:
            await self.changed.wait()


class _Load:
    """One probe's progress: what a timeout reports, what the line shows."""

    __slots__ = ("done_at", "lcp", "read", "stage", "started")

    def __init__(self) -> None:
        self.stage = "page from Chromium"  # what it waits for: a timeout says so
        self.started: float | None = None  # the navigation's start
        self.done_at: float | None = None  # when wait_for was satisfied
        self.read: dict[str, Any] | None = None  # READ_PAGE's answer
        self.lcp: object = None  # READ_LCP's

    @property
    def latency_ms(self) -> float | None:
        if self.started is None or self.done_at is None:
            return None
        return round((self.done_at - self.started) * 1000, 3)


async def _load(page: PageSession, plan: BrowserPlan, seen: _Page, load: _Load) -> None:
    """Navigate, wait, read the page; raises ProbeFailure for a navigation that failed."""
    spec = plan.spec
    for domain in ("Page", "Runtime", "Network", "Log"):
        await page.send(f"{domain}.enable")
    await page.send("Page.setLifecycleEventsEnabled", {"enabled": True})
    await page.send("Page.addScriptToEvaluateOnNewDocument", {"source": LCP_OBSERVER})
    load.stage = "answer from the page's server"
    load.started = trio.current_time()
    loader = await navigate(page, spec.url)
    if spec.wait_for == WAIT_SELECTOR:
        assert spec.selector is not None
        load.stage = f"element matching {spec.selector!r}"
        await _selector(page, spec.selector)
    else:
        load.stage = "load event"
        await seen.reached(loader, "load")
        if spec.wait_for == WAIT_IDLE:
            load.stage = "network idle"
            await seen.reached(loader, "networkIdle")
    load.done_at = trio.current_time()
    load.stage = "rendered text"
    load.read = await page.evaluate(READ_PAGE % (json.dumps(plan.selectors), MAX_TEXT))
    load.stage = "first paint"  # for lcp_ms only: what was checked is read
    with trio.move_on_after(PAINT_WAIT):
        await seen.reached(loader, "firstContentfulPaint")
    load.lcp = await page.evaluate(READ_LCP, await_promise=True)


async def navigate(page: PageSession, url: str) -> str:
    """Page.navigate to `url` -> its loaderId; ProbeFailure when the navigation failed."""
    navigated = await page.send("Page.navigate", {"url": url})
    if navigated.get("errorText"):
        raise _net_failure(navigated["errorText"])
    loader: str = navigated.get("loaderId", "")
    return loader


async def _selector(page: PageSession, selector: str) -> None:
    found = f"document.querySelector({json.dumps(selector)}) !== null"
    while True:
        try:
            if await page.evaluate(found):
                return
        except PageScriptError as exc:  # not a valid selector: it never will match
            raise ProbeFailure(ErrorKind.CONTENT, f"wait_for: {exc}") from None
        await trio.sleep(POLL)


def _checks(spec: BrowserSpec, seen: _Page, text: str) -> ProbeFailure | None:
    status = None if seen.document is None else seen.document.get("status")
    if status is not None and status >= 400:
        return ProbeFailure(ErrorKind.STATUS, f"HTTP {status} for the page")
    if seen.errors and not spec.allow_console_errors:
        count = len(seen.errors)
        listed = "; ".join(seen.errors[:DETAILS_SHOWN])
        return ProbeFailure(ErrorKind.CONTENT, f"{_n(count, 'uncaught script error')}: {listed}")
    if len(seen.failed) > spec.max_failed_requests:
        listed = "; ".join(list(seen.failed.values())[:DETAILS_SHOWN])
        return ProbeFailure(
            ErrorKind.CONTENT,
            f"{_n(len(seen.failed), 'failed request')} (max_failed_requests"
            f" {spec.max_failed_requests}): {listed}",
        )
    if spec.contains is not None and spec.contains not in text:
        return ProbeFailure(ErrorKind.CONTENT, f"{spec.contains!r} not in the rendered page")
    return None


def _n(count: int, what: str) -> str:
    return f"{count} {what}" if count == 1 else f"{count} {what}s"


def _ms(value: object) -> float | None:
    return round(float(value), 1) if isinstance(value, int | float) else None


def _text(load: _Load) -> str | None:
    text = (load.read or {}).get("text")
    return text if isinstance(text, str) else None


def _details(seen: _Page | None, load: _Load, steps: StepRun) -> BrowserDetails | None:
    if seen is None:
        return None
    read = load.read or {}
    return BrowserDetails(
        dom_content_loaded_ms=_ms(read.get("dcl")),
        load_ms=_ms(read.get("load")),
        lcp_ms=_ms(load.lcp),
        requests=len(seen.requests),
        failed_requests=len(seen.failed),
        console_errors=len(seen.errors),
        transfer_bytes=seen.transfer,
        steps=tuple(steps.results),
    )


def _remote_addr(document: dict[str, Any] | None) -> str | None:
    ip = None if document is None else document.get("remoteIPAddress")
    if not ip:
        return None
    return with_port(ip.strip("[]"), document["remotePort"])  # type: ignore[index]


def facts(result: ProbeResult, text: str | None, elements: dict[str, Any]) -> dict[str, object]:
    """What a browser target's conditions are checked against (config.PLACEHOLDERS)."""
    found = common_facts(result.latency_ms, result.remote_addr, result.phases_ms)
    found["STATUS"] = result.status
    found["DOM"] = text
    found["SELECTOR"] = elements
    return found


def _result(
    plan: BrowserPlan,
    round_no: int,
    ts: float,
    attempt: _Attempt,
    failure: ProbeFailure | None,
    attempts: int = 1,
) -> ProbeResult:
    """The probe's line from its last attempt: `failure` (the load's own), else the
    checks', else the conditions'."""
    target = plan.target
    load, seen = attempt.load, attempt.seen
    read = load.read or {}
    text = _text(load)
    document = None if seen is None else seen.document
    if failure is None and seen is not None:
        failure = _checks(plan.spec, seen, text or "")
    final_url = None if document is None or not seen or not seen.redirected else document.get("url")
    result = ProbeResult(
        ts=ts,
        target=target.name,
        url=target.url,
        ok=failure is None,
        status=None if document is None else document.get("status"),
        latency_ms=load.latency_ms,
        error=failure.kind if failure else None,
        error_detail=masked(failure.detail, plan.spec.secrets) if failure else None,
        attempts=attempts,
        round=round_no,
        bytes=0 if text is None else len(text.encode()),
        slow=bool(
            failure is None
            and target.slow
            and load.latency_ms
            and load.latency_ms > target.slow * 1000
        ),
        final_url=final_url,
        remote_addr=_remote_addr(document),
        kind="browser",
        browser=_details(seen, load, attempt.steps),
    )
    if target.conditions:
        elements = read.get("elements") if isinstance(read.get("elements"), dict) else {}
        result = apply(result, target.conditions, facts(result, text, elements or {}))
    return result


class _Attempt:
    """One attempt's page in its own browser context: the last attempt's is reported."""

    __slots__ = ("console", "load", "screenshot", "seen", "steps")

    def __init__(self, spec: BrowserSpec) -> None:
        self.load = _Load()
        self.steps = StepRun(spec.steps)
        self.seen: _Page | None = None
        self.console: ConsoleLog | None = None
        self.screenshot: bytes | None = None  # a failed attempt's, taken before its close

    @property
    def navigation_failed(self) -> bool:
        """The page's own navigation failed (not a step's goto): worth a retry."""
        return self.load.started is not None and self.load.read is None


async def _attempt(
    chromium: Chromium, plan: BrowserPlan, attempt: _Attempt, round_no: int, ts: float
) -> None:
    """Load the page in a fresh context, run the steps, and take a screenshot while the
    page is open if the probe fails (conditions included); ProbeFailure for a navigation
    or a step that failed."""
    page = await chromium.open_page()
    try:
        seen = attempt.seen = _Page(page)
        attempt.console = ConsoleLog(page, plan.spec.secrets)
        try:
            await _load(page, plan, seen, attempt.load)
            await attempt.steps.run(page, seen)
        except BaseException:
            seen.final = True
            attempt.screenshot = await capture(page)  # what the page shows now
            raise
        seen.final = True
        # any failure, conditions' too, is seen while the page is open
        if not _result(plan, round_no, ts, attempt, None).ok:
            attempt.screenshot = await capture(page)
    finally:
        await chromium.close_page(page)


async def probe(
    prober: BrowserProber, plan: BrowserPlan, round_no: int, deadlines: set[trio.CancelScope]
) -> ProbeResult:
    """Load the page within the target's timeout: again, in a fresh context, after a
    `dns`, `connect` or `protocol` failure of its navigation while `retries` last (as
    HTTP targets). Never raises but Cancelled."""
    target = plan.target
    ts = time.time()
    attempt = _Attempt(plan.spec)
    attempts = 1
    failure: ProbeFailure | None = None
    async with prober.limiter:  # before the deadline: waiting for a page slot is our load
        try:
            chromium = await prober.chromium()
        except BrowserTrouble as exc:
            failure = ProbeFailure(ErrorKind.BROWSER, str(exc))
        else:
            with chromium.guard(), trio.move_on_after(target.timeout) as deadline:
                deadlines.add(deadline)
                try:
                    for retry in range(target.retries + 1):
                        if retry:
                            attempts += 1
                            attempt, failure = _Attempt(plan.spec), None
                        try:
                            await _attempt(chromium, plan, attempt, round_no, ts)
                            break
                        except ProbeFailure as exc:
                            failure = exc
                        if not attempt.navigation_failed or not await retry_after(
                            failure, retry, target.retries, deadline, _RNG
                        ):
                            break
                except (BrowserTrouble, CdpError, PageScriptError) as exc:
                    # a command refused or a script of ours that threw: Chromium's trouble
                    failure = ProbeFailure(ErrorKind.BROWSER, str(exc))
                finally:
                    deadlines.discard(deadline)
            load = attempt.load
            if chromium.trouble is not None:
                failure = ProbeFailure(ErrorKind.BROWSER, chromium.trouble)
            elif deadline.cancelled_caught and load.read is None:  # the page was not ready
                failure = ProbeFailure(
                    ErrorKind.TIMEOUT, f"no {load.stage} within {target.timeout:g}s"
                )
            elif deadline.cancelled_caught:
                # a step cut short or never begun (the deadline came while lcp_ms was
                # awaited); without steps left, only lcp_ms was missed
                failure = attempt.steps.timed_out(target.timeout)
    result = _result(plan, round_no, ts, attempt, failure, attempts)
    console = attempt.console
    if result.ok or console is None or result.browser is None:
        return result
    shot, log = await prober.artifacts.save(target.name, ts, attempt.screenshot, console.text())
    return evolve(result, browser=evolve(result.browser, screenshot=shot, console_log=log))
